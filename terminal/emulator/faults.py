"""Fault injection between a terminal and an emulated card.

A :class:`FaultPlan` says what goes wrong; :class:`FaultyCard` wraps any card
(``process(bytes) -> bytes``) and applies it:

- ``tear_after=N``: the card leaves the field when the N+1th command arrives
  (after answering N): :class:`emvkit.terminal.errors.CardRemoved` from then on;
- ``force_sw={INS: SW}``: answer that instruction with a bare status word;
- ``corrupt_tag=T``: flip the last byte of data object T wherever a response
  carries it (a record, a certificate, a signature);
- ``latency_ms``: sleep before each answer (0 to :data:`MAX_LATENCY_MS`, 10 s).

In URLs: ``emu:visa?tear=3&sw=A8:6985&corrupt=90&latency=2``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl

from emvkit.firmware import tlv
from emvkit.terminal.errors import CardRemoved, ConfigError

__all__ = ["MAX_LATENCY_MS", "CardLike", "FaultPlan", "FaultyCard"]


class CardLike(Protocol):
    def process(self, command_apdu: bytes) -> bytes: ...


@dataclass
class FaultPlan:
    tear_after: int | None = None
    force_sw: dict[int, int] = field(default_factory=dict)
    corrupt_tag: int | None = None
    latency_ms: float = 0.0

    @property
    def empty(self) -> bool:
        return self.tear_after is None and not self.force_sw and self.corrupt_tag is None and not self.latency_ms

    @classmethod
    def from_query(cls, query: str) -> FaultPlan:
        """The plan a URL query asks for; ``ConfigError`` naming the fault for any value out of range."""
        plan = cls()
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            if key == "tear":
                plan.tear_after = _count(key, value)
            elif key == "sw":
                for item in value.split(","):
                    ins, _, sw = item.partition(":")
                    plan.force_sw[_hex(key, value, ins, 2)] = _hex(key, value, sw, 4)
            elif key == "corrupt":
                if len(value) not in (2, 4, 6):
                    raise ConfigError(f"fault corrupt={value!r}: a tag is 2, 4 or 6 hex digits, such as 9F4B")
                plan.corrupt_tag = _hex(key, value, value, len(value))
            elif key == "latency":
                plan.latency_ms = _milliseconds(key, value)
            else:
                raise ConfigError(f"unknown fault {key!r} (tear, sw, corrupt, latency)")
        return plan


# The longest latency=: far beyond any reader's wait for an answer, short enough that a run ends.
MAX_LATENCY_MS = 10_000
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


def _count(key: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        raise ConfigError(f"fault {key}={value!r}: a number of commands, 0..999999")
    return int(value)


def _hex(key: str, value: str, digits: str, size: int) -> int:
    if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError(f"fault {key}={value!r}: expected INS:SW, 2 and 4 hex digits, such as A8:6985"
                          if key == "sw" else f"fault {key}={value!r}: not {size} hex digits")
    return int(digits, 16)


def _milliseconds(key: str, value: str) -> float:
    ms = float(value) if _DECIMAL.fullmatch(value) else -1.0
    if not 0 <= ms <= MAX_LATENCY_MS:
        raise ConfigError(f"fault {key}={value!r}: milliseconds, a decimal number 0..{MAX_LATENCY_MS}")
    return ms


def _corrupt(data: bytes, tag: int) -> bytes:
    try:
        nodes = tlv.decode(data)
    except tlv.TLVError:
        return data
    hits = [n for n in tlv.find_all(nodes, tag) if n.children is None and n.value]
    if not hits:
        return data
    for node in hits:
        node.value = node.value[:-1] + bytes((node.value[-1] ^ 0x01,))
    return tlv.encode(nodes)


class FaultyCard:
    def __init__(self, card: CardLike, plan: FaultPlan) -> None:
        self.card = card
        self.plan = plan
        self.commands = 0
        self.torn = False

    def process(self, command_apdu: bytes) -> bytes:
        plan = self.plan
        if self.torn or (plan.tear_after is not None and self.commands >= plan.tear_after):
            self.torn = True
            raise CardRemoved(f"card torn away before command {self.commands + 1} (fault injection)")
        self.commands += 1
        if plan.latency_ms:
            time.sleep(plan.latency_ms / 1000.0)
        if len(command_apdu) > 1 and command_apdu[1] in plan.force_sw:
            sw = plan.force_sw[command_apdu[1]]
            return bytes((sw >> 8, sw & 0xFF))
        response = self.card.process(command_apdu)
        if plan.corrupt_tag is not None and len(response) > 2:
            response = _corrupt(response[:-2], plan.corrupt_tag) + response[-2:]
        return response
