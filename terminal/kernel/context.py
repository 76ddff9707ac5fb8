"""What a kernel works with: the transaction request, the data gathered so
far, TVR and TSI, and the account of each step.

Kernels are sans-IO generators: an :data:`Exchange` yields
:class:`~emvkit.terminal.apdu.CommandAPDU` (for the card) and
:class:`~emvkit.terminal.kernel.authorisation.OnlineRequest` (for the issuer)
and is sent back the card's :class:`~emvkit.terminal.apdu.ResponseAPDU` and
the issuer's answer; :func:`emvkit.terminal.session.drive` is the loop that
does so. The kernel reads no clock and draws no random numbers: the request
brings the date, the time and the random source. Inside a kernel,
:class:`KernelStop` ends processing with an outcome; it never leaves the
kernel package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU, ResponseAPDU, sw_meaning
from emvkit.terminal.bitmaps import TSI_BITS, TVR_BITS, is_set, set_bit
from emvkit.terminal.kernel.authorisation import AuthorisationResponse, OnlineRequest
from emvkit.terminal.kernel.config import AppConfig, TerminalConfig
from emvkit.terminal.kernel.oda import IccPublicKey, OdaFailure, RecoveredCertificate
from emvkit.terminal.kernel.outcome import Cvm, Outcome, OutcomeParameterSet, Step, TransactionResult
from emvkit.terminal.tags import FORMATS
from emvkit.terminal.tags import info as tag_info

__all__ = [
    "Exchange",
    "KernelContext",
    "KernelInput",
    "KernelOutput",
    "KernelStop",
    "Preprocessing",
    "Random",
    "TransactionRequest",
    "bcd_amount",
    "expect_ok",
    "format1_value",
    "parse_template",
    "response_objects",
    "transmit",
]

T = TypeVar("T")

# What a kernel yields: a command for the card, or a request for the issuer.
KernelOutput: TypeAlias = CommandAPDU | OnlineRequest
# What the driver sends back: the card's response to a command; the issuer's
# answer to an OnlineRequest, None when the host could not be reached.
KernelInput: TypeAlias = ResponseAPDU | AuthorisationResponse | None
# A kernel step: yields, is sent the answers, returns a T.
Exchange: TypeAlias = Generator[KernelOutput, KernelInput, T]

# n bytes from the terminal's random source (unpredictable numbers, random selection).
Random: TypeAlias = Callable[[int], bytes]

TRANSACTION_TYPES = {"purchase": 0x00, "cash": 0x01, "cashback": 0x09, "refund": 0x20}


def bcd_amount(minor_units: int) -> bytes:
    """Amount as n 12 (6 bytes BCD)."""
    return bytes.fromhex(f"{minor_units:012d}")


def transmit(command: CommandAPDU) -> Exchange[ResponseAPDU]:
    """Send a command to the card; the card's response. Another kind of
    answer is the driver's bug."""
    response = yield command
    if not isinstance(response, ResponseAPDU):
        raise TypeError(f"a command APDU answered with {type(response).__name__}, not a ResponseAPDU")
    return response


@dataclass
class TransactionRequest:
    """What the merchant asked for, and what the terminal brings to it: the
    date, the time and the random source.

    The kernel has no clock and no randomness of its own. Left None, the last
    three are the driver's to fill in (:func:`emvkit.terminal.session.stamp`:
    today, now, the system's random source), as
    :func:`emvkit.terminal.session.run_transaction` does; the kernel refuses a
    request without them."""

    amount: int  # minor units
    amount_other: int = 0
    transaction_type: int = 0x00
    currency: bytes | None = None  # default: the terminal's
    date: dt.date | None = None
    time: dt.time | None = None
    random: Random | None = None

    def terminal_values(self) -> tuple[dt.date, dt.time, Random]:
        """Date, time and random source; ValueError when the driver has not set them."""
        if self.date is None or self.time is None or self.random is None:
            missing = [name for name in ("date", "time", "random") if getattr(self, name) is None]
            raise ValueError(f"the request has no {', '.join(missing)}: the kernel reads no clock and no "
                             "random source, the driver supplies them (emvkit.terminal.session.stamp)")
        return self.date, self.time, self.random


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
    oda_failure: OdaFailure | None = None
    oda_certificates: list[RecoveredCertificate] = field(default_factory=list)
    icc_key: IccPublicKey | None = None  # kernel 2: recovered for CDA, used again in the second GENERATE AC
    cvm: Cvm = Cvm.NA
    card_data: dict[int, bytes] = field(default_factory=dict)  # what the card returned
    pdol: bytes = b""  # the card's PDOL
    pdol_data: bytes = b""  # as sent in GPO (CDA hashes it)
    cdol1_data: bytes = b""  # as sent in the first GENERATE AC
    authorisation: AuthorisationResponse | None = None  # the issuer's answer, after online processing

    def __post_init__(self) -> None:
        today, now, random = self.request.terminal_values()
        self.today = today
        self.random = random
        self.data.update(self.config.terminal_data())
        self.data.update({
            0x9F02: bcd_amount(self.request.amount),
            0x9F03: bcd_amount(self.request.amount_other),
            0x9C: bytes((self.request.transaction_type,)),
            0x9A: bytes.fromhex(today.strftime("%y%m%d")),
            0x9F21: bytes.fromhex(now.strftime("%H%M%S")),
            0x9F37: random(4),
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
            oda_failure=self.oda_failure, oda_certificates=tuple(self.oda_certificates),
            steps=self.steps, error=error, authorisation=self.authorisation,
        )


def expect_ok(response: ResponseAPDU, command: str) -> None:
    """A status word other than 9000 ends the kernel (Book C-2/C-3: End Application)."""
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
