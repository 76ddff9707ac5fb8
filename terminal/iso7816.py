"""ISO/IEC 7816 on the terminal side: the ATR (7816-3 §8.2), status words and
instruction bytes (7816-4 §5), and the contactless pseudo-ATR.

The status words, instruction bytes and the PPSE name are the card side's
(``emvkit.firmware.iso7816``, where they are MicroPython ``const()``s),
imported here so that each is defined once: the terminal and the card cannot
disagree on them. :func:`contactless_atr` is the firmware's ``pseudo_atr``
with the terminal's error type.

A contactless reader has no real ATR to report, so PC/SC Part 3 §3.1.3.2.3
defines a pseudo-ATR built from the card's ATS. For an ISO 14443-4 Type A card
it is ``3B 8n 80 01 <historical bytes> TCK``: T0 announces TD1 and ``n``
historical bytes, TD1 = 80 announces TD2 (protocol T=0 nibble), TD2 = 01 says
T=1 and ends the interface bytes, and TCK makes the XOR of T0..TCK zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emvkit.firmware.iso7816 import (
    INS_GENERATE_AC,
    INS_GET_DATA,
    INS_GET_PROCESSING_OPTIONS,
    INS_GET_RESPONSE,
    INS_INTERNAL_AUTHENTICATE,
    INS_READ_RECORD,
    INS_SELECT,
    PPSE,
    SW_NO_PRECISE_DIAGNOSIS,
    pseudo_atr,
    sw_bytes,
)
from emvkit.terminal.errors import EmvkitError

__all__ = [
    "ATR",
    "INS_GENERATE_AC",
    "INS_GET_DATA",
    "INS_GET_PROCESSING_OPTIONS",
    "INS_GET_RESPONSE",
    "INS_INTERNAL_AUTHENTICATE",
    "INS_NAMES",
    "INS_READ_RECORD",
    "INS_SELECT",
    "NO_PRECISE_DIAGNOSIS",
    "PPSE",
    "SW_NO_PRECISE_DIAGNOSIS",
    "ATRError",
    "contactless_atr",
    "parse_atr",
]

# The names of the instructions an EMV contactless terminal sends (EMV Book 3 Table 13), for traces and logs.
INS_NAMES: dict[int, str] = {
    INS_SELECT: "SELECT",
    INS_GET_PROCESSING_OPTIONS: "GET PROCESSING OPTIONS",
    INS_READ_RECORD: "READ RECORD",
    INS_GENERATE_AC: "GENERATE AC",
    INS_GET_RESPONSE: "GET RESPONSE",
    INS_INTERNAL_AUTHENTICATE: "INTERNAL AUTHENTICATE",
    INS_GET_DATA: "GET DATA",
}

NO_PRECISE_DIAGNOSIS = sw_bytes(SW_NO_PRECISE_DIAGNOSIS)  # ISO 7816-4 §5.6: the R-APDU when a card fails

_MAX_ATR_LENGTH = 33  # ISO 7816-3 §8.2.1: TS plus at most 32 bytes
_TS_VALUES = (0x3B, 0x3F)  # direct and inverse convention


class ATRError(EmvkitError):
    """An ATR that violates ISO 7816-3 §8.2, or historical bytes that do not fit one."""


@dataclass(frozen=True)
class ATR:
    """The parts of an ATR (ISO 7816-3 §8.2.2).

    ``interface_bytes`` maps names such as ``"TA1"`` or ``"TD2"`` to their
    values, in the order they appear. ``protocols`` lists the T values that the
    TDi bytes indicate (an ATR without TD1 implies T=0). ``tck`` is ``None``
    when no TCK is present, which the standard allows only for T=0 alone;
    ``tck_valid`` is true when TCK is absent or T0..TCK XOR to zero (§8.2.5).
    """

    ts: int
    t0: int
    interface_bytes: dict[str, int] = field(hash=False)
    historical_bytes: bytes
    protocols: tuple[int, ...]
    tck: int | None
    tck_valid: bool


def contactless_atr(historical: bytes = b"") -> bytes:
    """Build the PC/SC Part 3 pseudo-ATR of an ISO 14443-4 Type A card.

    ``historical`` is the ATS's historical bytes (at most 15). With none the
    result is ``3B 80 80 01 01``.
    """
    try:
        return pseudo_atr(bytes(historical))
    except ValueError as exc:
        raise ATRError(str(exc)) from None


def parse_atr(atr: bytes, *, check_tck: bool = True) -> ATR:
    """Split an ATR into TS, T0, interface bytes, historical bytes and TCK.

    Raises :class:`ATRError` when the ATR is truncated, too long, has trailing
    bytes or a bad TS, and (unless ``check_tck`` is false) when TCK is wrong.
    """
    atr = bytes(atr)
    if len(atr) < 2:
        raise ATRError(f"ATR of {len(atr)} bytes is too short (TS and T0 are mandatory)")
    if len(atr) > _MAX_ATR_LENGTH:
        raise ATRError(f"ATR of {len(atr)} bytes is longer than {_MAX_ATR_LENGTH}")
    ts, t0 = atr[0], atr[1]
    if ts not in _TS_VALUES:
        raise ATRError(f"TS {ts:02X} is neither 3B (direct) nor 3F (inverse convention)")

    interface: dict[str, int] = {}
    protocols: list[int] = []
    pos = 2
    presence = t0 >> 4  # Y1: which of TA1, TB1, TC1, TD1 follow
    group = 1
    while True:
        td: int | None = None
        for bit, letter in ((0x1, "A"), (0x2, "B"), (0x4, "C"), (0x8, "D")):
            if not presence & bit:
                continue
            if pos >= len(atr):
                raise ATRError(f"ATR ends before T{letter}{group}")
            interface[f"T{letter}{group}"] = atr[pos]
            if letter == "D":
                td = atr[pos]
            pos += 1
        if td is None:
            break
        protocols.append(td & 0x0F)
        presence = td >> 4
        group += 1

    k = t0 & 0x0F
    if pos + k > len(atr):
        raise ATRError(f"ATR announces {k} historical bytes but has {len(atr) - pos}")
    historical = atr[pos : pos + k]
    pos += k

    # §8.2.5: TCK is absent only when T=0 is the sole protocol indicated.
    tck_expected = any(t != 0 for t in protocols)
    tck: int | None = None
    if tck_expected:
        if pos >= len(atr):
            raise ATRError("ATR indicates a protocol other than T=0 but has no TCK")
        tck = atr[pos]
        pos += 1
    if pos != len(atr):
        raise ATRError(f"{len(atr) - pos} unexpected byte(s) after the end of the ATR")

    tck_valid = tck is None or _xor(atr[1:]) == 0
    if check_tck and not tck_valid:
        raise ATRError(f"TCK {tck:02X} is wrong: T0..TCK XOR to {_xor(atr[1:]):02X}, not 00")
    return ATR(
        ts=ts,
        t0=t0,
        interface_bytes=interface,
        historical_bytes=historical,
        protocols=tuple(protocols) or (0,),
        tck=tck,
        tck_valid=tck_valid,
    )


def _xor(data: bytes) -> int:
    result = 0
    for byte in data:
        result ^= byte
    return result
