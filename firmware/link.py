# Serial link framing between the host and the token (USB serial, a pty,
# TCP): one frame per message, shared by the firmware (firmware/devlink.py)
# and the host (terminal/transport/serial.py, terminal/emulator/serial_server.py).
#
# Portable: runs unchanged on CPython and MicroPython.
#
# A frame on the wire:
#
#   00 | COBS( type | seq | length | payload | crc ) | 00
#
#   type     1 byte, one of the message types below
#   seq      1 byte; a request's answer carries the request's seq
#   length   2 bytes big-endian, the payload length (0..MAX_PAYLOAD)
#   payload  `length` bytes
#   crc      2 bytes big-endian, CRC-16/CCITT-FALSE (poly 0x1021, init
#            0xFFFF, not reflected, no final XOR; check value of
#            "123456789" is 0x29B1) over type..payload
#
# COBS (Cheshire and Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM
# ToN 1999) removes every 00 byte from the frame, so 00 is only ever a
# delimiter: a receiver that starts in the middle of a frame, or after
# garbage, is back in step at the next 00. A frame starts with a 00 as well
# as ending with one, so garbage before a frame is cut off from it; empty
# frames (00 00) are ignored.
#
# The decoder never raises on wire data: a run of bytes between delimiters
# that is not a valid frame comes out as a Fault (bad CRC, too long, or
# malformed), in order with the Frames. LinkError is for API misuse only.

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

import binascii
from array import array

_crc_hqx = getattr(binascii, "crc_hqx", None)  # CPython: CRC-CCITT in C; MicroPython has none

# --- message types ---
APDU_COMMAND = const(0x01)  # host -> device: a C-APDU
APDU_RESPONSE = const(0x02)  # device -> host: the R-APDU, same seq
POWER_ON = const(0x10)  # host -> device; answered with ATR
POWER_OFF = const(0x11)  # host -> device; answered with an empty ATR
RESET = const(0x12)  # host -> device; answered with ATR
ATR = const(0x13)  # device -> host: the answer to reset
DEVICE_INFO_REQUEST = const(0x20)  # host -> device
DEVICE_INFO = const(0x21)  # device -> host: "key=value" lines (UTF-8)
LOG = const(0x30)  # device -> host: one log line (UTF-8), own seq
# Provisioning: the personalisation (a card profile, JSON) in chunks, then
# a commit; each request is answered with PROVISION_ACK or ERROR.
PROVISION_BEGIN = const(0x40)  # host -> device: length (4) | CRC-32 (4) | flags (1)
PROVISION_DATA = const(0x41)  # host -> device: offset (4) | bytes
PROVISION_COMMIT = const(0x42)  # host -> device: no payload
PROVISION_ACK = const(0x43)  # device -> host: bytes held (4) | UTF-8 text
ERROR = const(0x7F)  # payload: error code (1 byte) + UTF-8 text

TYPE_NAMES = {
    APDU_COMMAND: "APDU_COMMAND",
    APDU_RESPONSE: "APDU_RESPONSE",
    POWER_ON: "POWER_ON",
    POWER_OFF: "POWER_OFF",
    RESET: "RESET",
    ATR: "ATR",
    DEVICE_INFO_REQUEST: "DEVICE_INFO_REQUEST",
    DEVICE_INFO: "DEVICE_INFO",
    LOG: "LOG",
    PROVISION_BEGIN: "PROVISION_BEGIN",
    PROVISION_DATA: "PROVISION_DATA",
    PROVISION_COMMIT: "PROVISION_COMMIT",
    PROVISION_ACK: "PROVISION_ACK",
    ERROR: "ERROR",
}

# --- fault kinds, which are also the ERROR codes of a NAK ---
# A NAK (an ERROR frame with one of these codes) tells the sender that a
# frame was lost on the way: resend the outstanding request.
FAULT_CRC = const(1)  # a frame whose CRC does not match
FAULT_FRAMING = const(2)  # bad COBS, a runt, or a length field that disagrees
FAULT_TOO_LONG = const(3)  # more than the maximum frame size between delimiters
# --- other ERROR codes: the frame arrived intact but cannot be served ---
ERR_UNSUPPORTED = const(4)  # a message type the device does not take
ERR_NOT_POWERED = const(5)  # an APDU before POWER_ON or after POWER_OFF
ERR_BAD_REQUEST = const(6)  # a request whose payload makes no sense
ERR_NOT_PERSONALISED = const(7)  # an APDU to a device that holds no personalisation
ERR_ALREADY_PERSONALISED = const(8)  # PROVISION_BEGIN/COMMIT without the force flag on a personalised device
ERR_TOO_LARGE = const(9)  # a personalisation over PROVISION_MAX (or over the free memory)
ERR_OUT_OF_ORDER = const(10)  # DATA/COMMIT without BEGIN, an offset past what has arrived or past the length
ERR_INTEGRITY = const(11)  # at COMMIT: fewer bytes than announced, or a CRC-32 that does not match
ERR_BAD_PROFILE = const(12)  # at COMMIT: not JSON, or not a profile the card application accepts
ERR_STORE = const(13)  # the store cannot be written (or read)

NAK_CODES = (FAULT_CRC, FAULT_FRAMING, FAULT_TOO_LONG)

FAULT_NAMES = {
    FAULT_CRC: "bad CRC",
    FAULT_FRAMING: "malformed frame",
    FAULT_TOO_LONG: "frame too long",
    ERR_UNSUPPORTED: "unsupported message type",
    ERR_NOT_POWERED: "card not powered",
    ERR_BAD_REQUEST: "bad request",
    ERR_NOT_PERSONALISED: "not personalised",
    ERR_ALREADY_PERSONALISED: "already personalised",
    ERR_TOO_LARGE: "personalisation too large",
    ERR_OUT_OF_ORDER: "provisioning out of order",
    ERR_INTEGRITY: "personalisation damaged",
    ERR_BAD_PROFILE: "not a card profile",
    ERR_STORE: "store failure",
}

MAX_PAYLOAD = const(1024)
HEADER_SIZE = const(4)  # type, seq, length
CRC_SIZE = const(2)
OVERHEAD = const(6)  # header + CRC
PROVISION_MAX = const(24576)  # the largest personalisation a device takes (bytes of profile JSON)
PROVISION_CHUNK = const(1020)  # the most profile bytes one PROVISION_DATA carries (MAX_PAYLOAD - offset)
FLAG_FORCE = const(0x01)  # PROVISION_BEGIN flags: replace an existing personalisation


def max_body(max_payload: int) -> int:
    return max_payload + OVERHEAD


def max_encoded(max_payload: int) -> int:
    # COBS adds one code byte per 254 bytes (and one for the last block).
    n = max_body(max_payload)
    return n + n // 254 + 1


def max_wire(max_payload: int) -> int:
    # Both delimiters included.
    return max_encoded(max_payload) + 2


class LinkError(ValueError):
    # API misuse: a type, seq or payload that cannot be framed.
    def __init__(self, msg: str) -> None:
        super().__init__(msg)


# --- CRC-16/CCITT-FALSE ---

def _crc_table():
    # 16-bit entries in an array: 512 bytes of heap (a tuple of ints takes 1 KB).
    table = array("H", bytes(512))
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table[i] = c & 0xFFFF
    return table


_CRC_TABLE = _crc_table()


def crc16_portable(data, crc: int = 0xFFFF) -> int:
    # Table-driven, one byte at a time; what MicroPython uses. The loop is as
    # tight as the bytecode gets: the table in a local, one expression a byte
    # (a two-table hi/lo split or an array('H') table measure slower on the
    # unix port). `data` may be a memoryview: no copy.
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


def crc16(data, crc: int = 0xFFFF) -> int:
    # CRC-16/CCITT-FALSE of `data` (any bytes-like); `crc` continues a
    # running CRC. binascii.crc_hqx is the same CRC with a chosen initial value.
    return _crc(data, crc)


_crc = crc16_portable if _crc_hqx is None else _crc_hqx  # (data, crc): the codec calls it directly

# A frame body followed by its own CRC (big-endian) has a CRC of 0: the
# decoder checks that, without cutting the CRC off first.


# --- COBS ---
#
# A block is a code byte k (1..FF) and k - 1 data bytes; a block whose code
# is not FF stands for its data and a 00, except the last one. Encoding walks
# the 00 bytes of the source (bytes.find, C speed), decoding walks the code
# bytes: the Python loops run once per block, never once per byte.

def cobs_encode_into(src, n: int, dst, d: int) -> int:
    # Encode src[0:n] into dst starting at index d; return the end index.
    # dst must have room for n + n // 254 + 1 bytes. A final run of exactly
    # 254 non-zero bytes gets no trailing 01 block (the usual convention).
    mv = memoryview(src)
    find = src.find
    pos = 0
    while True:
        z = find(b"\x00", pos, n)
        end = n if z < 0 else z
        full = False
        while end - pos >= 254:
            dst[d] = 0xFF
            dst[d + 1:d + 255] = mv[pos:pos + 254]
            d += 255
            pos += 254
            full = True
        if z >= 0 or pos < end or not full:
            k = end - pos
            dst[d] = k + 1
            dst[d + 1:d + 1 + k] = mv[pos:end]
            d += k + 1
        if z < 0:
            return d
        pos = z + 1


def _stuff_in_place(buf, start: int, end: int) -> None:
    # COBS in place when the source is shorter than 254 bytes (so no run
    # reaches 254): buf[start + 1:end] holds the source and buf[start] is
    # free; every 00 of the source becomes the code of the block after it,
    # buf[start] the code of the first block. Same bytes as cobs_encode_into.
    find = buf.find
    pos = start
    z = find(b"\x00", start + 1, end)
    while z >= 0:
        buf[pos] = z - pos
        pos = z
        z = find(b"\x00", z + 1, end)
    buf[pos] = end - pos


def cobs_encode(data) -> bytes:
    src = bytes(data)
    n = len(src)
    dst = bytearray(n + n // 254 + 1)
    return bytes(dst[:cobs_encode_into(src, n, dst, 0)])


def _unstuff_in_place(raw, n: int) -> int:
    # COBS-decode raw[0:n] in place (raw: a bytearray, n >= 1, no 00 in
    # raw[0:n]): the decoded bytes end up in raw[1:1 + m]; returns m, or -1
    # when raw[0:n] is not valid COBS (a block that runs past the end). Each
    # code byte after the first becomes the 00 it stands for; one that
    # follows a full FF block (which stands for no 00) is cut out instead.
    code = raw[0]
    r = code
    cuts = None
    while r < n:
        c = raw[r]
        if not c:
            return -1  # a 00 code byte (the Decoder never passes one)
        if code == 0xFF:
            if cuts is None:
                cuts = []
            cuts.append(r)
        else:
            raw[r] = 0
        code = c
        r += c
    if r != n:
        return -1
    if cuts is None:
        return n - 1
    w = cuts[0]
    cuts.append(n)
    for i in range(1, len(cuts)):
        a = cuts[i - 1] + 1
        k = cuts[i] - a
        raw[w:w + k] = raw[a:a + k]
        w += k
    return w - 1


def cobs_decode_into(src, n: int, dst) -> int:
    # Decode src[0:n] (no delimiters) into dst; return the decoded length,
    # or -1 when src is not valid COBS (a 00 code byte, or a block that runs
    # past the end). 00 bytes inside blocks are not looked for: the Decoder
    # never passes any. dst must have room for n bytes.
    if n == 0:
        return 0
    raw = bytearray(src[:n])
    m = _unstuff_in_place(raw, n)
    if m > 0:
        dst[:m] = raw[1:1 + m]
    return m


def cobs_decode(data) -> bytes:
    src = bytes(data)
    n = len(src)
    if b"\x00" in src:
        raise LinkError("not valid COBS")
    if n == 0:
        return b""
    raw = bytearray(src)
    m = _unstuff_in_place(raw, n)
    if m < 0:
        raise LinkError("not valid COBS")
    return bytes(raw[1:1 + m])


# --- frames ---

class Frame:
    # One decoded message.
    __slots__ = ("type", "seq", "payload")

    def __init__(self, type: int, seq: int, payload: bytes = b"") -> None:
        self.type = type
        self.seq = seq
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and other.type == self.type and other.seq == self.seq \
            and other.payload == self.payload

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        name = TYPE_NAMES.get(self.type, "0x%02X" % self.type)
        return "Frame(%s, seq=%d, %d bytes)" % (name, self.seq, len(self.payload))


class Fault:
    # A run of bytes between delimiters that was not a valid frame. `kind`
    # is FAULT_CRC, FAULT_FRAMING or FAULT_TOO_LONG; `size` is the number of
    # wire bytes dropped.
    __slots__ = ("kind", "size")

    def __init__(self, kind: int, size: int) -> None:
        self.kind = kind
        self.size = size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fault) and other.kind == self.kind and other.size == self.size

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return "Fault(%s, %d bytes)" % (FAULT_NAMES.get(self.kind, str(self.kind)), self.size)


def _check(ftype: int, seq: int, n: int, max_payload: int) -> None:
    if not 0 <= ftype <= 0xFF:
        raise LinkError("frame type %r is not a byte" % ftype)
    if not 0 <= seq <= 0xFF:
        raise LinkError("sequence number %r is not a byte" % seq)
    if n > max_payload:
        raise LinkError("payload of %d bytes exceeds the maximum of %d" % (n, max_payload))


def _frame_into(wire, body, ftype: int, seq: int, payload, n: int) -> int:
    # The whole frame, both delimiters, into wire[0:end]; returns end. Short
    # bodies (under 254 bytes: nearly every APDU) are laid out at wire[2:]
    # and stuffed in place; longer ones go through `body`, which must have
    # room for n + OVERHEAD bytes.
    m = n + OVERHEAD
    if m < 254:
        buf = wire
        at = 2
    else:
        buf = body
        at = 0
    buf[at] = ftype
    buf[at + 1] = seq
    buf[at + 2] = n >> 8
    buf[at + 3] = n & 0xFF
    buf[at + 4:at + 4 + n] = payload
    end = at + 4 + n
    crc = _crc(memoryview(buf)[at:end], 0xFFFF)
    buf[end] = crc >> 8
    buf[end + 1] = crc & 0xFF
    wire[0] = 0
    if m < 254:
        _stuff_in_place(wire, 1, m + 2)
        d = m + 2
    else:
        d = cobs_encode_into(body, m, wire, 1)
    wire[d] = 0
    return d + 1


class FrameWriter:
    # Encodes frames into one preallocated buffer, reused for every frame:
    # encode() returns a memoryview that is valid until the next call.
    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._body = bytearray(max_body(max_payload))
        self._wire = bytearray(max_wire(max_payload))
        self._view = memoryview(self._wire)

    def encode(self, ftype: int, seq: int, payload=b"") -> memoryview:
        n = len(payload)
        _check(ftype, seq, n, self.max_payload)
        return self._view[:_frame_into(self._wire, self._body, ftype, seq, payload, n)]


def encode_frame(ftype: int, seq: int, payload=b"", max_payload: int = MAX_PAYLOAD) -> bytes:
    # One frame as new bytes (allocates; FrameWriter reuses its buffer).
    n = len(payload)
    _check(ftype, seq, n, max_payload)
    m = n + OVERHEAD
    if m < 254:
        wire = bytearray(m + 3)
        _frame_into(wire, None, ftype, seq, payload, n)
        return bytes(wire)
    wire = bytearray(max_wire(n))
    return bytes(wire[:_frame_into(wire, bytearray(m), ftype, seq, payload, n)])


def _parse(raw, view, n: int, max_payload: int):
    # The event for one run of n wire bytes between delimiters, in raw[0:n]
    # (a scratch bytearray, decoded in place; `view` is memoryview(raw); COBS,
    # no 00, n >= 1): a Frame, or the Fault that says why not.
    m = _unstuff_in_place(raw, n)
    if m < OVERHEAD:
        return Fault(FAULT_FRAMING, n)
    if _crc(view[1:1 + m], 0xFFFF):  # over the body and its own CRC: 0
        return Fault(FAULT_CRC, n)
    length = (raw[3] << 8) | raw[4]
    if length != m - OVERHEAD or length > max_payload:
        return Fault(FAULT_FRAMING, n)
    return Frame(raw[1], raw[2], bytes(view[1 + HEADER_SIZE:m - 1]))


class Decoder:
    # Incremental decoder: feed() takes bytes as they arrive and returns the
    # Frames and Faults completed by them, in order. Bytes before the first
    # delimiter are treated like any other candidate frame.
    #
    # feed() looks for 00 delimiters with bytes.find. A run that starts and
    # ends inside one chunk (a whole frame in one read: the usual case) is
    # decoded straight from the chunk; the bytes of a run that is still open
    # at the end of a chunk are kept in a preallocated buffer until its
    # delimiter comes. A run longer than the largest frame is not kept: it
    # is counted, and reported as one FAULT_TOO_LONG at its delimiter.
    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._limit = max_encoded(max_payload)
        self._raw = bytearray(self._limit)
        self._view = memoryview(self._raw)
        self._n = 0  # bytes of the open run in _raw
        self._dropped = 0  # > 0: an over-long run, dropping to the next 00
        self._code_at = 0  # want(): index in _raw of the next COBS code byte

    def reset(self) -> None:
        self._n = 0
        self._dropped = 0
        self._code_at = 0

    def want(self) -> int:
        # How many bytes a blocking reader can ask for now without waiting
        # past the end of a well-formed frame: the rest of the current COBS
        # block plus the byte after it (the next code byte, or the closing
        # 00). One read per COBS block instead of one per byte. (Only for
        # readers that cannot poll: garbage can announce a block that never
        # comes.)
        n = self._n
        if self._dropped or n == 0:
            return 1
        raw = self._raw
        at = self._code_at
        while at < n:
            at += raw[at]  # the open run holds no 00: at always moves on
        self._code_at = at
        if at == n:
            return 1
        want = at - n + 1
        room = self._limit - n + 1
        return want if want < room else room

    def feed(self, data) -> list:
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        size = len(data)
        find = data.find
        if not self._n and not self._dropped and size > 2 and size <= self._limit and data[0] == 0 \
                and find(b"\x00", 1) == size - 1:
            # the usual read: one whole frame, both delimiters
            k = size - 2
            raw = self._raw
            raw[:k] = data[1:size - 1]
            return [_parse(raw, self._view, k, self.max_payload)]
        out = []  # type: list
        pos = 0
        while pos < size:
            z = find(b"\x00", pos)
            if z < 0:
                self._keep(data, pos, size)
                break
            if self._n or self._dropped:
                self._keep(data, pos, z)
                self._close(out)
            elif z > pos:
                # a whole run in this chunk: decoded in the scratch buffer
                k = z - pos
                if k > self._limit:
                    out.append(Fault(FAULT_TOO_LONG, k))
                else:
                    raw = self._raw
                    raw[:k] = data[pos:z]
                    out.append(_parse(raw, self._view, k, self.max_payload))
            pos = z + 1
        return out

    def _keep(self, data, pos: int, end: int) -> None:
        k = end - pos
        if self._dropped:
            self._dropped += k
            return
        n = self._n
        if n + k > self._limit:
            self._dropped = n + k
            self._n = 0
            self._code_at = 0
            return
        self._raw[n:n + k] = memoryview(data)[pos:end]
        self._n = n + k

    def _close(self, out: list) -> None:
        # The delimiter of the open run has come.
        n = self._n
        dropped = self._dropped
        self._n = 0
        self._dropped = 0
        self._code_at = 0
        if dropped:
            out.append(Fault(FAULT_TOO_LONG, dropped))
        elif n:
            out.append(_parse(self._raw, self._view, n, self.max_payload))


def decode_frames(data, max_payload: int = MAX_PAYLOAD) -> list:
    # Everything in `data` at once (a final frame needs its closing 00).
    return Decoder(max_payload).feed(data)


# --- payload helpers ---

def error_payload(code: int, text: str = "") -> bytes:
    return bytes((code,)) + text.encode()


def parse_error(payload: bytes) -> tuple:
    # (code, text) of an ERROR frame; a missing code reads as 0.
    if not payload:
        return 0, ""
    try:
        text = bytes(payload[1:]).decode()
    except UnicodeError:
        text = ""
    return payload[0], text


def info_payload(items: list) -> bytes:
    # [(key, value), ...] -> "key=value" lines.
    return "\n".join(["%s=%s" % (k, v) for k, v in items]).encode()


def parse_info(payload: bytes) -> dict:
    out = {}
    for line in bytes(payload).decode().split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


# --- provisioning payloads (integers big-endian) ---

def _u32(data, at: int) -> int:
    return (data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]


def _be32(n: int) -> bytes:
    return bytes(((n >> 24) & 0xFF, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))


def provision_begin_payload(length: int, crc: int, force: bool = False) -> bytes:
    if not 0 <= length <= 0xFFFFFFFF or not 0 <= crc <= 0xFFFFFFFF:
        raise LinkError("PROVISION_BEGIN: length and CRC-32 are 32-bit")
    return _be32(length) + _be32(crc) + bytes((FLAG_FORCE if force else 0,))


def parse_provision_begin(payload) -> "tuple | None":
    # (length, crc, force) of a PROVISION_BEGIN, None when malformed.
    if len(payload) != 9:
        return None
    return _u32(payload, 0), _u32(payload, 4), bool(payload[8] & FLAG_FORCE)


def provision_data_payload(offset: int, data) -> bytes:
    if not 0 <= offset <= 0xFFFFFFFF:
        raise LinkError("PROVISION_DATA: the offset is 32-bit")
    return _be32(offset) + bytes(data)


def ack_payload(held: int, text: str = "") -> bytes:
    return _be32(held) + text.encode()


def parse_ack(payload) -> "tuple | None":
    # (bytes held, text) of a PROVISION_ACK, None when malformed.
    if len(payload) < 4:
        return None
    try:
        text = bytes(payload[4:]).decode()
    except UnicodeError:
        return None
    return _u32(payload, 0), text


