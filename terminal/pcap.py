"""Traces as packet captures: pcap and pcapng files with link type 264 (ISO 14443), as Wireshark reads them.

Each packet is a 4-byte pseudo-header (version 0, event, 2-byte big-endian
length) and what was on the air. Events: ``0xFE`` a frame from the reader
(PCD -> PICC), ``0xFF`` a frame from the card (PICC -> PCD), both ending in
CRC_A, least significant byte first (ISO/IEC 14443-3 §6.2.4); ``0xFC`` field
on, ``0xFD`` field off (no data); ``0xFA``/``0xFB`` frames in the two
directions without CRC_A.

Writing (:func:`to_pcapng`, :func:`to_pcap`): field on at the first
C-APDU, each C-APDU as one I-block from the reader at ``t_start``, its
R-APDU as one I-block from the card at ``t_end`` with the same block number,
the block number toggling from one exchange to the next (ISO/IEC 14443-4
§7.5.3), field off at the last R-APDU. The transports hand over whole APDUs
(ISO-DEP chaining and R-blocks happen below them), so that is what a trace
holds.

Reading (:func:`from_pcapng`, :func:`from_pcap`): I-blocks are joined across
chaining (PCB b5), R- and S-blocks, RATS/ATS and the anticollision frames
are passed over, frames whose CRC_A is wrong were not received and are
skipped. A pcapng file written here carries in its section header a comment
with the trace's ATR and ``meta`` and, on the C-APDU of an exchange that
failed, a packet comment with the error and its end time: reading it back
gives the same trace. A pcap file has no room for them: it loses the ATR,
``meta`` (so it cannot be replayed with the same order), errors, and the
time base (its timestamps are wall-clock ones).
"""

from __future__ import annotations

import datetime
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.iso7816 import ATRError
from emvkit.terminal.iso14443 import (
    EDC_LENGTH,
    PCB_BLOCK_NUMBER,
    PCB_CHAINING,
    PCB_CID,
    PCB_NAD,
    RATS,
    Ats,
    block_kind,
    crc_a,
    historical_bytes_from_atr,
)
from emvkit.terminal.jsonfile import parse_json
from emvkit.terminal.transport.trace import FORMAT, Exchange, Trace, trace_from_json

__all__ = [
    "EVENT_FIELD_OFF",
    "EVENT_FIELD_ON",
    "EVENT_PCD_TO_PICC",
    "EVENT_PICC_TO_PCD",
    "LINKTYPE_ISO_14443",
    "Packet",
    "from_pcap",
    "from_pcapng",
    "i_block",
    "packets_of",
    "to_pcap",
    "to_pcapng",
]

LINKTYPE_ISO_14443 = 264
EVENT_PICC_TO_PCD = 0xFF
EVENT_PCD_TO_PICC = 0xFE
EVENT_FIELD_OFF = 0xFD
EVENT_FIELD_ON = 0xFC
EVENT_PICC_TO_PCD_NO_CRC = 0xFB
EVENT_PCD_TO_PICC_NO_CRC = 0xFA
_FROM_READER = (EVENT_PCD_TO_PICC, EVENT_PCD_TO_PICC_NO_CRC)
_FROM_CARD = (EVENT_PICC_TO_PCD, EVENT_PICC_TO_PCD_NO_CRC)
_PCB_I_BLOCK = 0x02  # §7.1.1.1: I-block, no chaining, no CID, no NAD, block number 0

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_SNAPLEN = 0xFFFF
_SHB, _IDB, _EPB, _SPB, _PB = 0x0A0D0D0A, 0x00000001, 0x00000006, 0x00000003, 0x00000002
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT, _SHB_USERAPPL, _IF_NAME, _IF_TSRESOL = 0, 1, 4, 2, 9
_APPLICATION = "emvkit"
_REQA = b"\x26"  # ISO/IEC 14443-3 §6.4.1, a short frame
_ATQA = b"\x04\x00"  # single-size UID, bit frame anticollision
_RATS_PARAMETER = 0x80  # FSDI 8 (256 bytes), CID 0


@dataclass(frozen=True)
class Packet:
    """One packet of the capture: microseconds (from the trace's time base), event, frame, comment."""

    t_us: int
    event: int
    data: bytes = b""
    comment: str | None = None

    def record(self) -> bytes:
        """The pseudo-header (version 0, event, big-endian length) and the frame."""
        return struct.pack(">BBH", 0, self.event, len(self.data)) + self.data


def i_block(block_number: int, inf: bytes) -> bytes:
    """An I-block as sent on the air (ISO/IEC 14443-4 §7.1): PCB, INF, CRC_A."""
    frame = bytes((_PCB_I_BLOCK | (block_number & PCB_BLOCK_NUMBER),)) + inf
    return frame + crc_a(frame)


def _us(t: float) -> int:
    return round(t * 1_000_000)


def packets_of(trace: Trace) -> Iterator[Packet]:
    """The packets of a trace: field on, one I-block per APDU, field off; an error as the C-APDU's comment."""
    if not trace.exchanges:
        return
    t0 = _us(trace.exchanges[0].t_start)
    yield Packet(t0, EVENT_FIELD_ON)
    # The activation as far as a trace knows it (no UID, so no anticollision or SELECT): REQA/ATQA tell
    # Wireshark the card is Type A (it then checks CRC_A), RATS/ATS the frame sizes (ISO/IEC 14443-3 §6.3,
    # 14443-4 §5).
    yield Packet(t0, EVENT_PCD_TO_PICC_NO_CRC, _REQA)
    yield Packet(t0, EVENT_PICC_TO_PCD_NO_CRC, _ATQA)
    rats = bytes((RATS, _RATS_PARAMETER))
    yield Packet(t0, EVENT_PCD_TO_PICC, rats + crc_a(rats))
    ats = _ats_of(trace.atr)
    yield Packet(t0, EVENT_PICC_TO_PCD, ats + crc_a(ats))
    block_number = 0
    for e in trace.exchanges:
        comment = None if e.error is None else json.dumps({"error": e.error, "t_end": round(e.t_end, 6)})
        yield Packet(_us(e.t_start), EVENT_PCD_TO_PICC, i_block(block_number, e.command), comment)
        if e.response is not None:
            yield Packet(_us(e.t_end), EVENT_PICC_TO_PCD, i_block(block_number, e.response))
        block_number ^= 1
    yield Packet(_us(trace.exchanges[-1].t_end), EVENT_FIELD_OFF)


def _ats_of(atr: bytes) -> bytes:
    """An ATS carrying the historical bytes of the trace's PC/SC pseudo-ATR (defaults when it has none)."""
    try:
        historical = historical_bytes_from_atr(atr) if atr else b""
    except ATRError:
        historical = b""
    return Ats(historical=historical).to_bytes()


def _offset_us(trace: Trace) -> int:
    """What to add to the trace's (monotonic) times so that the capture shows the transaction's date and
    time (``meta``), or 0 when the trace does not say when it was."""
    date, when = trace.meta.get("date"), trace.meta.get("time")
    if not trace.exchanges or not isinstance(date, str) or not isinstance(when, str):
        return 0
    try:
        wall = datetime.datetime.fromisoformat(f"{date}T{when}").timestamp()
    except ValueError:
        return 0
    return _us(wall) - _us(trace.exchanges[0].t_start)


# --- pcapng (the pcapng specification, IETF draft-ietf-opsawg-pcapng) -----------------------------


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


def to_pcapng(trace: Trace) -> bytes:
    """A pcapng file of the trace; its section header comment keeps what the packets cannot (ATR, meta)."""
    offset = _offset_us(trace)
    header = {"format": FORMAT, "version": 1, "atr": trace.atr.hex().upper(), "meta": trace.meta,
              "time_offset_us": offset}
    shb_options = (_option(_SHB_USERAPPL, _APPLICATION.encode()) + _option(_OPT_COMMENT, json.dumps(header).encode())
                   + _option(_OPT_END, b""))
    out = [_block(_SHB, struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + shb_options)]
    idb_options = _option(_IF_NAME, b"iso14443") + _option(_IF_TSRESOL, b"\x06") + _option(_OPT_END, b"")
    out.append(_block(_IDB, struct.pack("<HHI", LINKTYPE_ISO_14443, 0, _SNAPLEN) + idb_options))
    for p in packets_of(trace):
        record = p.record()
        t = p.t_us + offset
        body = struct.pack("<IIIII", 0, (t >> 32) & 0xFFFFFFFF, t & 0xFFFFFFFF, len(record), len(record))
        body += record + b"\0" * (-len(record) % 4)
        if p.comment is not None:
            body += _option(_OPT_COMMENT, p.comment.encode()) + _option(_OPT_END, b"")
        out.append(_block(_EPB, body))
    return b"".join(out)


def to_pcap(trace: Trace) -> bytes:
    """A classic pcap file of the trace (microsecond timestamps); it holds no ATR, meta or errors."""
    offset = _offset_us(trace)
    out = [struct.pack("<IHHiIII", _PCAP_MAGIC_US, 2, 4, 0, 0, _SNAPLEN, LINKTYPE_ISO_14443)]
    for p in packets_of(trace):
        record = p.record()
        seconds, micros = divmod(p.t_us + offset, 1_000_000)
        out.append(struct.pack("<IIII", seconds & 0xFFFFFFFF, micros, len(record), len(record)) + record)
    return b"".join(out)


class _Reader:
    """Bounds-checked reads from a capture; every fault is a ConfigError naming the file."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.where, self.pos = data, where, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ConfigError(f"{self.where}: truncated {what} at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def _options(body: bytes, endian: str, where: str) -> dict[int, list[bytes]]:
    found: dict[int, list[bytes]] = {}
    r = _Reader(body, where)
    while not r.done:
        if len(body) - r.pos < 4:
            break
        code, length = struct.unpack(endian + "HH", r.take(4, "option header"))
        if code == _OPT_END:
            break
        value = r.take(length, "option")
        r.take(-length % 4, "option padding")
        found.setdefault(code, []).append(value)
    return found


def _tsresol(options: dict[int, list[bytes]]) -> int:
    """Ticks per second of an interface (if_tsresol: b8 0 = power of 10, 1 = power of 2; default 10^6)."""
    raw = options.get(_IF_TSRESOL, [b"\x06"])[0][:1] or b"\x06"
    value = raw[0]
    if value & 0x80:
        return 1 << min(value & 0x7F, 63)
    return int(10 ** min(value, 18))


def from_pcapng(data: bytes, where: str = "pcapng") -> Trace:
    """A trace from a pcapng file with ISO 14443 packets (link type 264)."""
    r = _Reader(data, where)
    if len(data) < 12 or struct.unpack("<I", data[:4])[0] != _SHB:
        raise ConfigError(f"{where}: not a pcapng file")
    endian = "<"
    header: dict[str, Any] | None = None
    interfaces: list[tuple[int, int]] = []  # (link type, ticks per second)
    packets: list[Packet] = []
    while not r.done:
        if len(data) - r.pos < 12:
            raise ConfigError(f"{where}: truncated block at byte {r.pos}")
        if struct.unpack("<I", data[r.pos:r.pos + 4])[0] == _SHB:
            magic = data[r.pos + 8:r.pos + 12]
            if magic == struct.pack("<I", _BYTE_ORDER_MAGIC):
                endian = "<"
            elif magic == struct.pack(">I", _BYTE_ORDER_MAGIC):
                endian = ">"
            else:
                raise ConfigError(f"{where}: bad byte-order magic in the section header")
        kind, total = struct.unpack(endian + "II", r.take(8, "block header"))
        if total < 12 or total % 4:
            raise ConfigError(f"{where}: bad block length {total} at byte {r.pos - 8}")
        body = r.take(total - 12, "block")
        (trailer,) = struct.unpack(endian + "I", r.take(4, "block trailer"))
        if trailer != total:
            raise ConfigError(f"{where}: block lengths disagree at byte {r.pos - total}")
        if kind == _SHB:
            if len(body) < 16:
                raise ConfigError(f"{where}: truncated section header")
            interfaces = []
            for comment in _options(body[16:], endian, where).get(_OPT_COMMENT, []):
                header = _section_comment(comment, where) or header
        elif kind == _IDB:
            if len(body) < 8:
                raise ConfigError(f"{where}: truncated interface description")
            linktype = struct.unpack(endian + "H", body[:2])[0]
            interfaces.append((linktype, _tsresol(_options(body[8:], endian, where))))
        elif kind == _EPB:
            if len(body) < 20:
                raise ConfigError(f"{where}: truncated packet block")
            interface, high, low, captured, _ = struct.unpack(endian + "IIIII", body[:20])
            if interface >= len(interfaces):
                raise ConfigError(f"{where}: packet on undeclared interface {interface}")
            linktype, ticks = interfaces[interface]
            if linktype != LINKTYPE_ISO_14443:
                raise ConfigError(f"{where}: link type {linktype}, not ISO 14443 ({LINKTYPE_ISO_14443})")
            padded = captured + (-captured % 4)
            if 20 + padded > len(body):
                raise ConfigError(f"{where}: packet longer than its block")
            comments = _options(body[20 + padded:], endian, where).get(_OPT_COMMENT, [])
            t_us = ((high << 32) | low) * 1_000_000 // ticks
            packets.append(_packet(t_us, body[20:20 + captured], comments[0].decode("utf-8", "replace")
                                   if comments else None, where))
        # other blocks (name resolution, statistics, ...) say nothing about the exchanges
    if not interfaces and not packets:
        raise ConfigError(f"{where}: no interface and no packet")
    offset = int(header.get("time_offset_us", 0)) if header else 0
    trace = _exchanges(packets, offset, where)
    if header is not None:
        base = trace_from_json({"format": FORMAT, "version": 1, "atr": header.get("atr", ""),
                                "meta": header.get("meta", {}), "exchanges": []}, where)
        trace.atr, trace.meta = base.atr, base.meta
    return trace


def _section_comment(raw: bytes, where: str) -> dict[str, Any] | None:
    """The trace header an emvkit capture keeps in its section comment (None for another comment)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.startswith("{"):
        return None
    doc = parse_json(text, f"{where}: section comment")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    if not isinstance(doc.get("time_offset_us", 0), int):
        raise ConfigError(f"{where}: section comment: time_offset_us must be an integer")
    return doc


def from_pcap(data: bytes, where: str = "pcap") -> Trace:
    """A trace from a classic pcap file with ISO 14443 packets (link type 264): no ATR, meta or errors."""
    if len(data) < 24:
        raise ConfigError(f"{where}: not a pcap file (too short)")
    for endian in ("<", ">"):
        (magic,) = struct.unpack(endian + "I", data[:4])
        if magic in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS):
            break
    else:
        raise ConfigError(f"{where}: not a pcap file")
    divisor = 1000 if magic == _PCAP_MAGIC_NS else 1
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_ISO_14443:
        raise ConfigError(f"{where}: link type {linktype}, not ISO 14443 ({LINKTYPE_ISO_14443})")
    r = _Reader(data, where)
    r.take(24, "file header")
    packets = []
    while not r.done:
        seconds, fraction, captured, _ = struct.unpack(endian + "IIII", r.take(16, "packet header"))
        frame = r.take(captured, "packet")
        packets.append(_packet(seconds * 1_000_000 + fraction // divisor, frame, None, where))
    return _exchanges(packets, 0, where)


def _packet(t_us: int, record: bytes, comment: str | None, where: str) -> Packet:
    if len(record) < 4:
        raise ConfigError(f"{where}: packet of {len(record)} bytes has no ISO 14443 pseudo-header")
    version, event, length = struct.unpack(">BBH", record[:4])
    if version != 0:
        raise ConfigError(f"{where}: ISO 14443 pseudo-header version {version}, not 0")
    if length != len(record) - 4:
        raise ConfigError(f"{where}: ISO 14443 pseudo-header says {length} bytes, the packet has {len(record) - 4}")
    return Packet(t_us, event, record[4:], comment)


def _inf(frame: bytes) -> bytes:
    """The INF field of a block (PCB, then CID and NAD when the PCB says they are there)."""
    start = 1 + bool(frame[0] & PCB_CID) + bool(frame[0] & PCB_NAD)
    return frame[start:]


def _exchanges(packets: list[Packet], offset_us: int, where: str) -> Trace:
    """Join the I-blocks of the packets into exchanges (ISO/IEC 14443-4 §7.5.2 chaining)."""
    trace = Trace()
    command = bytearray()
    response = bytearray()
    start: int | None = None
    pending: Exchange | None = None  # a complete C-APDU waiting for its R-APDU
    after_rats = False

    def t(us: int) -> float:
        return (us - offset_us) / 1_000_000

    for p in packets:
        if p.event not in _FROM_READER + _FROM_CARD:
            continue  # field on/off and events this reader does not know
        frame = p.data
        if p.event in (EVENT_PCD_TO_PICC, EVENT_PICC_TO_PCD):
            if len(frame) < 1 + EDC_LENGTH or crc_a(frame[:-EDC_LENGTH]) != frame[-EDC_LENGTH:]:
                continue  # not received: the reader or card asks again
            frame = frame[:-EDC_LENGTH]
        if not frame:
            continue
        if p.event in _FROM_READER:
            after_rats = len(frame) == 2 and frame[0] == RATS
            if block_kind(frame[0]) != "I":
                continue
            if pending is not None:  # a new command: the last one was never (wholly) answered
                trace.exchanges.append(pending)
                pending = None
                response.clear()
            if start is None:
                start = p.t_us
            command += _inf(frame)
            if not frame[0] & PCB_CHAINING:
                error, t_end = _error_of(p.comment, where)
                pending = Exchange(bytes(command), None, t(start), t_end if t_end is not None else t(p.t_us), error)
                command.clear()
                start = None
        else:
            if after_rats:
                after_rats = False  # the ATS
                continue
            if block_kind(frame[0]) != "I" or pending is None:
                continue
            response += _inf(frame)
            if not frame[0] & PCB_CHAINING:
                pending.response, pending.t_end, pending.error = bytes(response), t(p.t_us), None
                trace.exchanges.append(pending)
                pending = None
                response.clear()
    if pending is not None:
        trace.exchanges.append(pending)
    return trace


def _error_of(comment: str | None, where: str) -> tuple[str | None, float | None]:
    """The error and end time an emvkit capture keeps in the comment of an unanswered C-APDU."""
    if not comment or not comment.startswith("{"):
        return None, None
    doc = parse_json(comment, f"{where}: packet comment")
    if not isinstance(doc, dict):
        return None, None
    error, t_end = doc.get("error"), doc.get("t_end")
    return (error if isinstance(error, str) else None,
            float(t_end) if isinstance(t_end, (int, float)) else None)
