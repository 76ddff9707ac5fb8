# BER-TLV and DOL codecs for EMV (EMV Book 3 Annex B, §5.4).
#
# Portable: runs unchanged on CPython and MicroPython. Tags are ints
# (0x9F02), values are bytes. Decoding is strict: every malformed input
# raises TLVError naming the byte offset and what was wrong.

_MAX_DEPTH = 32
# DOL-related data travels as the data field of one short C-APDU, which holds
# at most 255 bytes (ISO/IEC 7816-4 §5.1: Lc is one byte, Nc 1..255).
MAX_DOL_DATA = 255


class TLVError(ValueError):
    # A malformed TLV or DOL. `offset` is the byte offset of the fault.
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__("offset %d: %s" % (offset, reason))
        self.offset = offset
        self.reason = reason


def tag_constructed(tag: int) -> bool:
    # Bit 6 of the first tag byte (Annex B1).
    while tag > 0xFF:
        tag >>= 8
    return bool(tag & 0x20)


def tag_bytes(tag: int) -> bytes:
    if tag <= 0:
        raise ValueError("tag must be a positive int")
    n = 1
    while tag >> (8 * n):
        n += 1
    return tag.to_bytes(n, "big")


def tag_hex(tag: int) -> str:
    return "%0*X" % (2 * len(tag_bytes(tag)), tag)


def encode_length(n: int) -> bytes:
    # Minimal BER length form: short up to 127, then 81..84.
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    if n <= 0xFFFFFF:
        return b"\x83" + n.to_bytes(3, "big")
    if n <= 0xFFFFFFFF:
        return b"\x84" + n.to_bytes(4, "big")
    raise ValueError("length too large for BER-TLV")


def encode_tlv(tag: int, value: bytes) -> bytes:
    # One primitive (or pre-encoded constructed) data object.
    return tag_bytes(tag) + encode_length(len(value)) + bytes(value)


class TLV:
    # One data object. Primitive: `value` holds the content, `children` is
    # None. Constructed (bit 6 of the first tag byte): `children` holds the
    # nested objects and `value` their encoding (as received when decoded,
    # so signed data can be hashed byte for byte).
    __slots__ = ("tag", "value", "children")

    def __init__(self, tag: int, value: "bytes | None" = None, children: "list | None" = None) -> None:
        self.tag = tag
        if tag_constructed(tag):
            if children is None:
                children = decode(value or b"")
            if value is None:
                value = encode(children)
        elif children is not None:
            raise ValueError("primitive tag %s cannot have children" % tag_hex(tag))
        self.value = b"" if value is None else bytes(value)
        self.children = children

    @property
    def constructed(self) -> bool:
        return self.children is not None

    def encode(self) -> bytes:
        if self.children is not None:
            return encode_tlv(self.tag, encode(self.children))
        return encode_tlv(self.tag, self.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TLV) or other.tag != self.tag:
            return False
        if self.children is not None:
            return self.children == other.children
        return other.children is None and self.value == other.value

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        if self.children is not None:
            return "TLV(0x%s, children=%r)" % (tag_hex(self.tag), self.children)
        return "TLV(0x%s, %r)" % (tag_hex(self.tag), self.value)


def encode(nodes: list) -> bytes:
    return b"".join([n.encode() for n in nodes])


def _read_tag(data: bytes, pos: int, end: int) -> tuple:
    # Returns (tag, next position). Annex B1: b5..b1 all set means more
    # bytes follow; b8 set in a subsequent byte means another follows.
    start = pos
    b = data[pos]
    tag = b
    pos += 1
    if b & 0x1F == 0x1F:
        while True:
            if pos >= end:
                raise TLVError(start, "truncated tag")
            b = data[pos]
            pos += 1
            tag = (tag << 8) | b
            if not b & 0x80:
                break
    return tag, pos


def _read_length(data: bytes, pos: int, end: int) -> tuple:
    # Returns (length, next position). Annex B2: short form, or 81..84.
    if pos >= end:
        raise TLVError(pos, "truncated length: no length byte")
    n = data[pos]
    if n < 0x80:
        return n, pos + 1
    k = n & 0x7F
    if k == 0:
        raise TLVError(pos, "indefinite length (80) is not allowed")
    if k > 4:
        raise TLVError(pos, "length form %02X not supported (81..84 only)" % n)
    if pos + 1 + k > end:
        raise TLVError(pos, "truncated length: %d length bytes announced" % k)
    return int.from_bytes(data[pos + 1:pos + 1 + k], "big"), pos + 1 + k


def _decode(data: bytes, pos: int, end: int, depth: int, out: list) -> None:
    # Hot loop: one-byte tags and short lengths are read inline; the rare
    # forms go through _read_tag/_read_length.
    if depth > _MAX_DEPTH:
        raise TLVError(pos, "templates nested deeper than %d levels" % _MAX_DEPTH)
    append = out.append
    while pos < end:
        first = data[pos]
        if first == 0x00 or first == 0xFF:
            pos += 1  # padding between data objects (Annex B)
            continue
        start = pos
        if first & 0x1F == 0x1F:
            if pos + 1 < end and data[pos + 1] < 0x80:
                tag = (first << 8) | data[pos + 1]
                pos += 2
            else:
                tag, pos = _read_tag(data, pos, end)
        else:
            tag = first
            pos += 1
        if pos < end and data[pos] < 0x80:
            length = data[pos]
            pos += 1
        else:
            length, pos = _read_length(data, pos, end)
        vend = pos + length
        if vend > end:
            raise TLVError(start, "truncated value: tag %X announces %d bytes, %d left"
                           % (tag, length, end - pos))
        node = _new(_TLV)
        node.tag = tag
        node.value = data[pos:vend]
        if first & 0x20:
            children: list = []
            _decode(data, pos, vend, depth + 1, children)
            node.children = children
        else:
            node.children = None
        append(node)
        pos = vend


_new = object.__new__
_TLV = TLV


def decode(data: bytes) -> list:
    # Decode a sequence of data objects into a list of TLV nodes.
    data = bytes(data)
    out: list = []
    _decode(data, 0, len(data), 0, out)
    return out


def find(nodes: list, tag: int) -> "TLV | None":
    # First occurrence of `tag`, depth first, in document order.
    for n in nodes:
        if n.tag == tag:
            return n
        if n.children is not None:
            hit = find(n.children, tag)
            if hit is not None:
                return hit
    return None


def find_all(nodes: list, tag: int) -> list:
    out: list = []
    for n in nodes:
        if n.tag == tag:
            out.append(n)
        if n.children is not None:
            out.extend(find_all(n.children, tag))
    return out


def find_path(nodes: list, path: list) -> "TLV | None":
    # Follow tags from the top level: find_path(fci, [0x6F, 0xA5, 0x88]).
    node = None
    for tag in path:
        node = None
        for n in nodes:
            if n.tag == tag:
                node = n
                break
        if node is None:
            return None
        nodes = node.children or []
    return node


def find_value(nodes: list, tag: int, default: "bytes | None" = None) -> "bytes | None":
    hit = find(nodes, tag)
    return default if hit is None else hit.value


def flatten(nodes: list, out: "dict | None" = None) -> dict:
    # Primitive objects as {tag: value}; the first occurrence wins.
    if out is None:
        out = {}
    for n in nodes:
        if n.children is not None:
            flatten(n.children, out)
        elif n.tag not in out:
            out[n.tag] = n.value
    return out


# --- Data Object Lists (EMV Book 3 §5.4) ---

def parse_dol(dol: bytes) -> list:
    # A DOL is a list of (tag, length) entries with no values.
    dol = bytes(dol)
    out = []
    pos = 0
    end = len(dol)
    while pos < end:
        if dol[pos] == 0x00 or dol[pos] == 0xFF:
            raise TLVError(pos, "invalid tag byte %02X in DOL" % dol[pos])
        tag, pos = _read_tag(dol, pos, end)
        # Book 3 §5.4: the length of a DOL entry is one byte; a BER long
        # form (81..84) has no place there.
        if pos >= end:
            raise TLVError(pos, "truncated DOL entry: no length byte")
        if dol[pos] & 0x80:
            raise TLVError(pos, "DOL entry %s: length byte %02X is a multi-byte length (a DOL length is one "
                           "byte, 00..7F)" % (tag_hex(tag), dol[pos]))
        out.append((tag, dol[pos]))
        pos += 1
    return out


def _entries(dol: "bytes | list") -> list:
    if isinstance(dol, list):
        return dol
    return parse_dol(dol)


def dol_length(dol: "bytes | list") -> int:
    total = 0
    for _tag, length in _entries(dol):
        total += length
    return total


def build_dol(dol: "bytes | list", source: dict, formats: "dict | None" = None) -> bytes:
    # Concatenate the values named by the DOL (§5.4). Format n is padded
    # with leading zeros and truncated on the left; cn is padded with
    # trailing FF; everything else is padded with trailing zeros and
    # truncated on the right. Unknown, absent and constructed data objects
    # are filled with zeros.
    entries = _entries(dol)
    total = dol_length(entries)
    if total > MAX_DOL_DATA:
        raise TLVError(0, "the DOL asks for %d bytes, more than one command carries (%d)" % (total, MAX_DOL_DATA))
    out = bytearray()
    for tag, length in entries:
        value = None if tag_constructed(tag) else source.get(tag)
        if value is None:
            out.extend(bytes(length))
            continue
        fmt = formats.get(tag) if formats else None
        have = len(value)
        if have == length:
            out.extend(value)
        elif fmt == "n":
            if have > length:
                out.extend(value[have - length:])
            else:
                out.extend(bytes(length - have))
                out.extend(value)
        elif have > length:
            out.extend(value[:length])
        else:
            out.extend(value)
            out.extend((b"\xff" if fmt == "cn" else b"\x00") * (length - have))
    return bytes(out)


def split_dol(dol: "bytes | list", data: bytes) -> dict:
    # The inverse on the card side: cut DOL-related data into {tag: value}.
    entries = _entries(dol)
    need = dol_length(entries)
    if len(data) != need:
        raise TLVError(0, "DOL data is %d bytes, the DOL asks for %d" % (len(data), need))
    out = {}
    pos = 0
    for tag, length in entries:
        out[tag] = bytes(data[pos:pos + length])
        pos += length
    return out
