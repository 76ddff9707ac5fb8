"""What a kernel works with: the transaction request, the data gathered so
far, TVR and TSI, and the account of each step.

Kernels are sans-IO generators (see :mod:`emvkit.terminal.kernel.driver`): they
yield :class:`~emvkit.terminal.apdu.CommandAPDU` and receive
:class:`~emvkit.terminal.apdu.ResponseAPDU`. Inside a kernel, :class:`KernelStop`
ends processing with an outcome; it never leaves the kernel package.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU, ResponseAPDU, sw_meaning
from emvkit.terminal.bitmaps import TSI_BITS, TVR_BITS, is_set, set_bit
from emvkit.terminal.kernel.config import AppConfig, TerminalConfig
from emvkit.terminal.kernel.outcome import Cvm, Outcome, OutcomeParameterSet, Step, TransactionResult
from emvkit.terminal.tags import FORMATS
from emvkit.terminal.tags import info as tag_info

__all__ = [
    "Exchange",
    "KernelContext",
    "KernelStop",
    "Preprocessing",
    "TransactionRequest",
    "bcd_amount",
    "expect_ok",
    "format1_value",
    "parse_template",
    "response_objects",
]

# A kernel step: yields commands, receives responses, returns a value.
Exchange = Generator[CommandAPDU, ResponseAPDU, object]

TRANSACTION_TYPES = {"purchase": 0x00, "cash": 0x01, "cashback": 0x09, "refund": 0x20}


def bcd_amount(minor_units: int) -> bytes:
    """Amount as n 12 (6 bytes BCD)."""
    return bytes.fromhex(f"{minor_units:012d}")


@dataclass
class TransactionRequest:
    """What the merchant asked for."""

    amount: int  # minor units
    amount_other: int = 0
    transaction_type: int = 0x00
    currency: bytes | None = None  # default: the terminal's
    date: datetime.date | None = None  # default: today
    time: datetime.time | None = None
    random: Callable[[int], bytes] = os.urandom  # unpredictable numbers, random selection


@dataclass
class Preprocessing:
    """Entry Point pre-processing indicators of one combination (Book B §3.1.1)."""

    not_allowed: bool = False
    zero_amount: bool = False
    floor_limit_exceeded: bool = False
    cvm_required_limit_exceeded: bool = False
    ttq: bytes = bytes(4)


class KernelStop(Exception):
    """Ends kernel processing with an outcome (internal to the kernel package)."""

    def __init__(self, outcome: Outcome, reason: str, cvm: Cvm = Cvm.NA) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.cvm = cvm


@dataclass
class KernelContext:
    config: TerminalConfig
    app: AppConfig
    request: TransactionRequest
    pre: Preprocessing
    kernel: int
    aid: bytes
    label: str = ""
    data: dict[int, bytes] = field(default_factory=dict)
    tvr: bytearray = field(default_factory=lambda: bytearray(5))
    tsi: bytearray = field(default_factory=lambda: bytearray(2))
    steps: list[Step] = field(default_factory=list)
    oda: str = "not performed"
    oda_result: str = ""
    cvm: Cvm = Cvm.NA
    card_data: dict[int, bytes] = field(default_factory=dict)  # what the card returned
    pdol: bytes = b""  # the card's PDOL
    pdol_data: bytes = b""  # as sent in GPO (CDA hashes it)
    cdol1_data: bytes = b""  # as sent in the first GENERATE AC
    authorisation: Any = None  # the issuer's AuthorisationResponse, after online processing

    def __post_init__(self) -> None:
        today = self.request.date or datetime.date.today()
        now = self.request.time or datetime.datetime.now().time()
        self.today = today
        self.data.update(self.config.terminal_data())
        self.data.update({
            0x9F02: bcd_amount(self.request.amount),
            0x9F03: bcd_amount(self.request.amount_other),
            0x9C: bytes((self.request.transaction_type,)),
            0x9A: bytes.fromhex(today.strftime("%y%m%d")),
            0x9F21: bytes.fromhex(now.strftime("%H%M%S")),
            0x9F37: self.request.random(4),
            0x9F66: self.pre.ttq,
            0x9F06: self.aid,
            0x4F: self.aid,
            0x95: bytes(self.tvr),
            0x9B: bytes(self.tsi),
        })
        if self.request.currency is not None:
            self.data[0x5F2A] = self.request.currency
        if self.app.application_version:
            self.data[0x9F09] = self.app.application_version

    # --- TVR, TSI and the account -------------------------------------------------

    def set_tvr(self, name: str) -> None:
        set_bit(self.tvr, TVR_BITS, name)
        self.data[0x95] = bytes(self.tvr)

    def tvr_is(self, name: str) -> bool:
        return is_set(self.tvr, TVR_BITS, name)

    def set_tsi(self, name: str) -> None:
        set_bit(self.tsi, TSI_BITS, name)
        self.data[0x9B] = bytes(self.tsi)

    def step(self, name: str, detail: str = "") -> None:
        self.steps.append(Step(name, detail))

    # --- data ------------------------------------------------------------------------

    def dol(self, dol: bytes, name: str = "DOL") -> bytes:
        """DOL-related data from everything known (Book 3 §5.4); a malformed
        DOL from the card ends the kernel."""
        self.data[0x95] = bytes(self.tvr)
        self.data[0x9B] = bytes(self.tsi)
        try:
            return tlv.build_dol(dol, self.data, FORMATS)
        except tlv.TLVError as exc:
            raise KernelStop(Outcome.END_APPLICATION, f"the card's {name} is malformed: {exc}") from exc

    def store_card_data(self, nodes: list[tlv.TLV], where: str) -> None:
        """Keep the card's primitive data objects; a second, different value
        of the same data object is a card error (Book 3 §10.2)."""
        for tag, value in tlv.flatten(nodes).items():
            known = self.card_data.get(tag)
            if known is not None and known != value:
                raise KernelStop(Outcome.END_APPLICATION, f"{where}: tag {tlv.tag_hex(tag)} returned twice")
            self.card_data[tag] = value
            info = tag_info(tag)
            if info is None or info.source != "terminal":
                self.data[tag] = value  # a card never overrides the terminal's own data

    def card(self, tag: int) -> bytes | None:
        return self.card_data.get(tag)

    def result(self, outcome: Outcome, error: str = "", cvm: Cvm | None = None) -> TransactionResult:
        params = OutcomeParameterSet.for_outcome(outcome, cvm if cvm is not None else self.cvm)
        self.data[0x95] = bytes(self.tvr)
        self.data[0x9B] = bytes(self.tsi)
        return TransactionResult(
            outcome=params, kernel=self.kernel, aid=self.aid, label=self.label, data=dict(self.data),
            tvr=bytes(self.tvr), tsi=bytes(self.tsi), oda=self.oda, oda_result=self.oda_result,
            steps=self.steps, error=error, authorisation=self.authorisation,
        )


def expect_ok(response: ResponseAPDU, command: str) -> None:
    """Anything but 9000 ends the kernel (Book C-2/C-3: End Application)."""
    if response.sw != 0x9000:
        raise KernelStop(Outcome.END_APPLICATION,
                         f"{command}: card answered {response.sw:04X} ({sw_meaning(response.sw)})")


def response_objects(response: ResponseAPDU, command: str) -> list[tlv.TLV]:
    """The response data's objects; malformed TLV ends the kernel."""
    try:
        return tlv.decode(response.data)
    except tlv.TLVError as exc:
        raise KernelStop(Outcome.END_APPLICATION, f"{command}: malformed response: {exc}") from exc


def format1_value(nodes: list[tlv.TLV]) -> bytes | None:
    """The value of a response message template format 1 (80), if that is what it is."""
    if len(nodes) == 1 and nodes[0].tag == 0x80 and nodes[0].children is None:
        value: bytes = nodes[0].value
        return value
    return None


def parse_template(response: ResponseAPDU, command: str, tags: tuple[int, ...],
                   nodes: list[tlv.TLV] | None = None) -> list[tlv.TLV]:
    """The response's single template (one of ``tags``) as decoded children."""
    if nodes is None:
        nodes = response_objects(response, command)
    if len(nodes) != 1 or nodes[0].tag not in tags or nodes[0].children is None:
        expected = " or ".join(tlv.tag_hex(t) for t in tags)
        raise KernelStop(Outcome.END_APPLICATION, f"{command}: response is not a {expected} template")
    children: list[tlv.TLV] = nodes[0].children
    return children
