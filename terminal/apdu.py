"""Command and response APDUs (ISO/IEC 7816-4 §5.1) and the status-word table.

:class:`Channel` is the one place where the transport-level status words are
handled: ``61xx`` (more data: GET RESPONSE) and ``6Cxx`` (wrong Le: re-send
with the exact length). Everything above it, the kernel included, sees only
final responses.
"""

from __future__ import annotations

from dataclasses import dataclass

from emvkit.terminal.errors import APDUError
from emvkit.terminal.transport.base import Transport

__all__ = [
    "Channel",
    "CommandAPDU",
    "ResponseAPDU",
    "sw_meaning",
]


@dataclass(frozen=True)
class CommandAPDU:
    """A command APDU, ISO 7816-4 cases 1 to 4, short or extended length.

    ``le`` is ``None`` when no response data is expected (cases 1 and 3);
    ``le=256`` (short) or ``le=65536`` (extended) mean "as much as there is"
    and are encoded as ``00`` / ``0000``.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise APDUError(f"{name.upper()} {value:#x} does not fit in one byte")
        limit = 65535 if self.extended else 255
        if len(self.data) > limit:
            raise APDUError(f"command data of {len(self.data)} bytes needs extended length")
        if self.le is not None and not 0 < self.le <= limit + 1:
            raise APDUError(f"Le {self.le} out of range 1..{limit + 1}")

    @property
    def case(self) -> int:
        if not self.data:
            return 1 if self.le is None else 2
        return 3 if self.le is None else 4

    def to_bytes(self) -> bytes:
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        if self.extended:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                le = (self.le % 65536).to_bytes(2, "big")
                out += le if self.data else b"\x00" + le
        else:
            if self.data:
                out += bytes((len(self.data),)) + self.data
            if self.le is not None:
                out.append(self.le % 256)
        return bytes(out)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandAPDU:
        """Parse an encoded command (ISO 7816-4 §5.1, Table 4 and 5)."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise APDUError(f"command APDU of {len(raw)} bytes: a header is 4 bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:
            lc = body[0]
            if n == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + lc:
                return cls(cla, ins, p1, p2, body[1:-1], le=body[-1] or 256)
            raise APDUError(f"Lc {lc} does not match a body of {n} bytes")
        # Extended length: body starts 00 then two bytes.
        if n == 3:
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or 65536, extended=True)
        if n < 3:
            raise APDUError(f"malformed extended length field in a body of {n} bytes")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise APDUError("extended Lc of zero")
        if n == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:], extended=True)
        if n == 5 + lc:
            le = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, body[3:-2], le=le, extended=True)
        raise APDUError(f"extended Lc {lc} does not match a body of {n} bytes")

    def with_le(self, le: int) -> CommandAPDU:
        return CommandAPDU(self.cla, self.ins, self.p1, self.p2, self.data, le, self.extended)

    def __str__(self) -> str:
        text = f"{self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}"
        if self.data:
            text += f" Lc={len(self.data)} {self.data.hex().upper()}"
        if self.le is not None:
            text += f" Le={self.le}"
        return text


@dataclass(frozen=True)
class ResponseAPDU:
    """Response data and the two status bytes."""

    data: bytes
    sw1: int
    sw2: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseAPDU:
        if len(raw) < 2:
            raise APDUError(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), raw[-2], raw[-1])

    def to_bytes(self) -> bytes:
        return self.data + bytes((self.sw1, self.sw2))

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    def __str__(self) -> str:
        return f"{self.data.hex().upper()} SW={self.sw:04X} ({sw_meaning(self.sw)})"


_SW_EXACT = {
    0x9000: "normal processing",
    0x6200: "warning: state of non-volatile memory unchanged",
    0x6281: "warning: part of returned data may be corrupted",
    0x6282: "warning: end of file or record reached before reading Le bytes",
    0x6283: "warning: selected file or application blocked",
    0x6284: "warning: FCI not formatted according to ISO 7816-4",
    0x6300: "warning: authentication failed",
    0x6400: "error: state of non-volatile memory unchanged",
    0x6581: "error: memory failure",
    0x6700: "wrong length",
    0x6800: "functions in CLA not supported",
    0x6881: "logical channel not supported",
    0x6882: "secure messaging not supported",
    0x6900: "command not allowed",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6984: "referenced data invalidated",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6987: "expected secure messaging data objects missing",
    0x6988: "secure messaging data objects incorrect",
    0x6A80: "incorrect parameters in the data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A84: "not enough memory space in the file",
    0x6A85: "Lc inconsistent with TLV structure",
    0x6A86: "incorrect parameters P1-P2",
    0x6A87: "Lc inconsistent with P1-P2",
    0x6A88: "referenced data not found",
    0x6B00: "wrong parameters P1-P2",
    0x6D00: "instruction code not supported or invalid",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
    0x9408: "selected file or application invalidated",
}


def sw_meaning(sw: int) -> str:
    """A short English meaning of a status word (ISO 7816-4 §5.1.3)."""
    if sw in _SW_EXACT:
        return _SW_EXACT[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le: exact length is {sw2 or 256}"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed, {sw2 & 0x0F} tries left"
    if sw1 in (0x62, 0x63):
        return "warning"
    if 0x64 <= sw1 <= 0x6F:
        return "error"
    return "unknown status"


class Channel:
    """Exchanges APDUs with a card over a transport.

    Handles ``61xx`` by GET RESPONSE (concatenating the data) and ``6Cxx`` by
    re-sending the command with Le set to the length the card names, both a
    bounded number of times, so that every caller sees final responses only.
    """

    MAX_CHAINED = 64

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def transmit(self, command: CommandAPDU | bytes) -> ResponseAPDU:
        cmd = command if isinstance(command, CommandAPDU) else CommandAPDU.from_bytes(command)
        response = ResponseAPDU.from_bytes(self.transport.transmit(cmd.to_bytes()))
        if response.sw1 == 0x6C:
            cmd = cmd.with_le(response.sw2 or 256)
            response = ResponseAPDU.from_bytes(self.transport.transmit(cmd.to_bytes()))
        data = bytearray(response.data)
        for _ in range(self.MAX_CHAINED):
            if response.sw1 != 0x61:
                return ResponseAPDU(bytes(data), response.sw1, response.sw2)
            get_response = CommandAPDU(cmd.cla & 0x03, 0xC0, 0x00, 0x00, le=response.sw2 or 256)
            response = ResponseAPDU.from_bytes(self.transport.transmit(get_response.to_bytes()))
            data += response.data
        raise APDUError(f"card kept answering 61xx after {self.MAX_CHAINED} GET RESPONSE commands")
