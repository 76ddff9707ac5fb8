"""A tap on a time axis against the 500 ms contactless budget: host time, card time and the air time
the APDUs would take at 106, 212, 424 and 848 kbit/s.

Air time (an estimate from the frame sizes, fc = 13.56 MHz, one bit (etu) = 128 / (D fc) with D = 1,
2, 4, 8 for 106, 212, 424, 848 kbit/s):

* a standard frame of n bytes, CRC_A included (ISO/IEC 14443-3 §6.2.3.2, §6.2.4): start of
  communication, 8 data bits and an odd parity bit per byte, end of communication: (2 + 9 n) etu;
* each APDU goes as ISO-DEP blocks (ISO/IEC 14443-4 §7): the C-APDU chained in I-blocks of at most
  FSC bytes (PCB, INF, CRC_A), each but the last answered by R(ACK); the R-APDU chained in I-blocks
  of at most FSD bytes, each but the last fetched by the reader's R(ACK);
* between a frame and its answer the frame delay times (ISO/IEC 14443-3 §6.2.1): reader -> card
  (9 x 128 + 84) / fc when the reader's last bit is 1, (9 x 128 + 20) / fc when it is 0 (the parity
  bit of its last byte); card -> reader 1172 / fc. These are the 106 kbit/s values, taken for every
  rate (the least the card may take: its own processing is card time, not air time).

Host time is what the terminal measured for each exchange (``t_end - t_start``). Card time is the
host time when the reader is not on the air (``emu:``, ``mpy:``, ``qemu:``, ``serial:``,
``scripted:``: no frames were sent), and the host time less the air time at 106 kbit/s for ``pcsc:``
and ``nfc:`` readers (an estimate: the reader's rate and its own latency are unknown). The estimated
tap at a rate is the card times, the air times at that rate and the terminal's time between
exchanges, from the first C-APDU to the last R-APDU; the activation (REQA to ATS) is not in a trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from emvkit.terminal.iso14443 import EDC_LENGTH, PCB_CHAINING, PCB_R_ACK, crc_a, frame_size
from emvkit.terminal.transport.trace import Exchange, Trace

__all__ = [
    "BIT_RATES",
    "BUDGET_MS",
    "ApduTiming",
    "Timeline",
    "apdu_air_s",
    "frame_pair_s",
    "frame_s",
    "iso_dep_frames",
    "timeline_of",
]

FC = 13.56e6  # Hz, the carrier
BIT_RATES = (106, 212, 424, 848)  # kbit/s: fc/128, fc/64, fc/32, fc/16
_DIVISOR = {106: 1, 212: 2, 424: 4, 848: 8}
FDT_PCD_PICC = {1: (9 * 128 + 84) / FC, 0: (9 * 128 + 20) / FC}  # by the last bit the reader sent
FDT_PICC_PCD = 1172 / FC
BUDGET_MS = 500.0
DEFAULT_FSC = 32  # FSCI 2, the default when the ATS has no T0 (ISO/IEC 14443-4 §5.2.3)
DEFAULT_FSD = 256  # FSDI 8, what readers ask for in RATS
_ON_THE_AIR = ("pcsc:", "nfc:")
_I_BLOCK = 0x02


def etu_s(kbps: int) -> float:
    """One bit on the air at ``kbps`` (106, 212, 424, 848)."""
    return 128 / (_DIVISOR[kbps] * FC)


def frame_s(n: int, kbps: int) -> float:
    """A standard frame of ``n`` bytes (CRC_A included): start, 9 bits per byte, end."""
    return (2 + 9 * n) * etu_s(kbps)


def _last_bit(frame: bytes) -> int:
    """The last bit of a standard frame: the odd parity bit of its last byte."""
    return 1 - bin(frame[-1]).count("1") % 2


def frame_pair_s(sent: bytes, got: int, kbps: int) -> float:
    """The reader's frame ``sent`` (CRC_A included) and the card's answer of ``got`` bytes, with the frame
    delay time after each (PCD→PICC depends on the last bit the reader sent)."""
    return frame_s(len(sent), kbps) + FDT_PCD_PICC[_last_bit(sent)] + frame_s(got, kbps) + FDT_PICC_PCD


def _frame(pcb: int, inf: bytes = b"") -> bytes:
    body = bytes((pcb,)) + inf
    return body + crc_a(body)


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def iso_dep_frames(command: bytes, response: bytes, fsc: int = DEFAULT_FSC,
                   fsd: int = DEFAULT_FSD) -> list[tuple[bytes, bytes]]:
    """The (reader's frame, card's answer) pairs that carry one APDU exchange, CRC_A included."""
    room_c, room_d = fsc - 1 - EDC_LENGTH, fsd - 1 - EDC_LENGTH
    sent, got = _chunks(command, room_c), _chunks(response, room_d)
    ack = _frame(PCB_R_ACK)
    pairs = [(_frame(_I_BLOCK | PCB_CHAINING, part), ack) for part in sent[:-1]]
    more = PCB_CHAINING if len(got) > 1 else 0
    pairs.append((_frame(_I_BLOCK, sent[-1]), _frame(_I_BLOCK | more, got[0])))
    for i, part in enumerate(got[1:], 2):
        pairs.append((ack, _frame(_I_BLOCK | (PCB_CHAINING if i < len(got) else 0), part)))
    return pairs


def apdu_air_s(command: bytes, response: bytes, kbps: int, fsc: int = DEFAULT_FSC,
               fsd: int = DEFAULT_FSD) -> float:
    """Air time of one APDU exchange at ``kbps``: every frame and the frame delay times after each."""
    return sum(frame_pair_s(sent, len(got), kbps) for sent, got in iso_dep_frames(command, response, fsc, fsd))


@dataclass(frozen=True)
class ApduTiming:
    """One exchange on the time axis (times in milliseconds from the first C-APDU)."""

    number: int
    exchange: Exchange
    start_ms: float
    host_ms: float
    card_ms: float
    air_ms: dict[int, float]
    frames: int

    @property
    def status(self) -> str:
        r = self.exchange.response
        return r[-2:].hex().upper() if r and len(r) >= 2 else (self.exchange.error or "no response")


@dataclass(frozen=True)
class Timeline:
    apdus: list[ApduTiming]
    host_ms: float  # first C-APDU to last R-APDU, as measured
    terminal_ms: float  # the terminal's own time between exchanges
    fsc: int
    fsd: int
    on_the_air: bool
    estimated_ms: dict[int, float] = field(default_factory=dict)  # per bit rate

    def within_budget(self, kbps: int) -> bool:
        return self.estimated_ms[kbps] <= BUDGET_MS


def timeline_of(trace: Trace, fsc: int = DEFAULT_FSC, fsd: int = DEFAULT_FSD) -> Timeline:
    """Each exchange of the trace with its host, card and air times, and the tap's estimates."""
    if fsc not in _FRAME_SIZES or fsd not in _FRAME_SIZES:
        raise ValueError(f"frame sizes are {', '.join(map(str, _FRAME_SIZES))}")
    reader = str(trace.meta.get("reader", ""))
    on_air = reader.startswith(_ON_THE_AIR)
    exchanges = trace.exchanges
    origin = exchanges[0].t_start if exchanges else 0.0
    apdus = []
    for i, e in enumerate(exchanges, 1):
        response = e.response or b""
        air = {kbps: apdu_air_s(e.command, response, kbps, fsc, fsd) * 1000 for kbps in BIT_RATES}
        host = max(e.t_end - e.t_start, 0.0) * 1000
        card = max(host - air[106], 0.0) if on_air else host
        apdus.append(ApduTiming(i, e, (e.t_start - origin) * 1000, host, card, air,
                                len(iso_dep_frames(e.command, response, fsc, fsd))))
    host_total = (exchanges[-1].t_end - origin) * 1000 if exchanges else 0.0
    gaps = sum(max(b.t_start - a.t_end, 0.0) for a, b in pairwise(exchanges)) * 1000
    estimated = {kbps: sum(a.card_ms + a.air_ms[kbps] for a in apdus) + gaps for kbps in BIT_RATES}
    return Timeline(apdus, host_total, gaps, fsc, fsd, on_air, estimated)


_FRAME_SIZES = tuple(frame_size(i) for i in range(9))
