"""Fault injection between a terminal and an emulated card.

A :class:`FaultPlan` says what goes wrong; :class:`FaultyCard` wraps any card
(``process(bytes) -> bytes``) and applies it:

- ``tear_after=N``: the card leaves the field when the N+1th command arrives
  (after answering N): :class:`emvkit.terminal.errors.CardRemoved` from then on;
- ``force_sw={INS: SW}``: answer that instruction with a bare status word;
- ``corrupt_tag=T``: flip the last byte of data object T wherever a response
  carries it (a record, a certificate, a signature);
- ``latency_ms``: sleep before each answer.

In URLs: ``emu:visa?tear=3&sw=A8:6985&corrupt=90&latency=2``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl

from emvkit.firmware import tlv
from emvkit.terminal.errors import CardRemoved, ConfigError

__all__ = ["CardLike", "FaultPlan", "FaultyCard"]


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
        plan = cls()
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            try:
                if key == "tear":
                    plan.tear_after = int(value)
                elif key == "sw":
                    for item in value.split(","):
                        ins, sw = item.split(":")
                        plan.force_sw[int(ins, 16)] = int(sw, 16)
                elif key == "corrupt":
                    plan.corrupt_tag = int(value, 16)
                elif key == "latency":
                    plan.latency_ms = float(value)
                else:
                    raise ConfigError(f"unknown fault {key!r} (tear, sw, corrupt, latency)")
            except ValueError as exc:
                raise ConfigError(f"fault {key}={value!r}: {exc}") from exc
        return plan


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
