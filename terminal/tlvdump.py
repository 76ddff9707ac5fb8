"""Human-readable and JSON views of decoded BER-TLV trees.

Values are shown by their format in the data dictionary (EMV 4.3 Book 3
§4.3, :mod:`emvkit.terminal.tags`): ``n`` as its digits, ``cn`` as its digits up to
the first ``F`` pad, ``an``/``ans`` as quoted text, ``b`` as hex. Bit-mapped
data elements are followed by what their set bits mean
(:func:`emvkit.terminal.bitmaps.explain`).

Cardholder data is masked unless asked otherwise: the PAN keeps its first 6
and last 4 digits (the PCI DSS display rule), track data and discretionary
data show nothing but that masked PAN, PIN data shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from emvkit.firmware import tlv as _tlv
from emvkit.firmware.tlv import TLV, tag_hex
from emvkit.terminal import bitmaps, tags

INDENT: Final = "  "

# Tags whose value holds a DF name that is often ASCII (2PAY.SYS.DDF01).
_DF_NAMES: Final = frozenset({0x84, 0x9D})


# --- PAN and track data masking ---

def mask_pan(digits: str) -> str:
    """Keep the first 6 and last 4 digits of a PAN, star the rest.

    ``mask_pan("4761739001010119") == "476173******0119"``. A PAN of 10
    digits or fewer keeps only its last 4.
    """
    if len(digits) > 10:
        return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]
    keep = min(4, len(digits))
    return "*" * (len(digits) - keep) + digits[len(digits) - keep:]


def _pan_from_track2(value: bytes) -> str | None:
    # Track 2 (equivalent) data: PAN, separator D, YYMM, service code, ...
    nibbles = value.hex().upper()
    pan, sep, _rest = nibbles.partition("D")
    if not sep or not pan or not pan.isdigit():
        return None
    return pan


def _pan_from_track1(value: bytes) -> str | None:
    # Track 1 data, ISO/IEC 7813 structure B: "B" PAN "^" NAME "^" ...
    text = value.decode("latin-1")
    field, sep, _rest = text.partition("^")
    if not sep:
        return None
    pan = field[1:] if field[:1] == "B" else field
    pan = pan.replace(" ", "")
    return pan if pan.isdigit() else None


def _masked_track(label: str, pan: str | None) -> str:
    if pan is None:
        return f"<{label}, masked>"
    return f"<{label}: PAN {mask_pan(pan)}, masked>"


def _mask_pan_value(value: bytes) -> str:
    digits = _cn_digits(value)
    return "<PAN, masked>" if digits is None else mask_pan(digits)


# tag -> the text shown instead of the value when not revealing.
_MASKERS: Final[dict[int, Callable[[bytes], str]]] = {
    0x5A: _mask_pan_value,
    0x57: lambda v: _masked_track("track 2", _pan_from_track2(v)),
    0x9F6B: lambda v: _masked_track("track 2", _pan_from_track2(v)),
    0x56: lambda v: _masked_track("track 1", _pan_from_track1(v)),
    0x9F1F: lambda v: _masked_track("track 1 discretionary data", None),
    0x9F20: lambda v: _masked_track("track 2 discretionary data", None),
    0xDF812A: lambda v: _masked_track("DD card (track 1)", None),
    0xDF812B: lambda v: _masked_track("DD card (track 2)", None),
    0x99: lambda v: _masked_track("PIN data", None),
}

SENSITIVE_TAGS: Final = frozenset(_MASKERS)


def masked_value(tag: int, value: bytes) -> str | None:
    """The masked text for a sensitive tag, or None if ``tag`` is not sensitive."""
    masker = _MASKERS.get(tag)
    return None if masker is None else masker(bytes(value))


# --- raw responses, masked ---

def _masked_value(tag: int, value: bytes) -> str:
    digits = value.hex().upper()
    if tag == 0x5A:
        return mask_pan(digits)
    if tag in (0x57, 0x9F6B):  # track 2 equivalent: PAN, D, then expiry, service code, discretionary data
        pan, sep, rest = digits.partition("D")
        if sep and pan.isdigit():
            return mask_pan(pan) + "D" + "*" * len(rest)
    return "*" * len(digits)


def _masked_nodes(nodes: list[TLV]) -> str:
    """The nodes' encoding in hex (canonical: the response re-encodes to its own bytes), sensitive values masked."""
    out = []
    for node in nodes:
        if node.children is not None:
            raw, shown = _tlv.encode(node.children), _masked_nodes(node.children)
        else:
            raw = node.value
            shown = _masked_value(node.tag, raw) if node.tag in SENSITIVE_TAGS else raw.hex().upper()
        out.append(_tlv.tag_hex(node.tag) + _tlv.encode_length(len(raw)).hex().upper() + shown)
    return "".join(out)


def masked_response(response: bytes, reveal: bool = False) -> str:
    """An R-APDU in hex with the value of every sensitive data object (:data:`SENSITIVE_TAGS`) replaced by
    ``*`` unless ``reveal``, its tag and length kept: the PAN keeps its first 6 and last 4 digits, track 2
    its masked PAN; data that is not (canonical) BER-TLV shows its length only."""
    data, sw = response[:-2], response[-2:]
    if reveal or not data:
        return response.hex().upper()
    try:
        nodes = _tlv.decode(data)
    except _tlv.TLVError:
        nodes = None
    if nodes is None or _tlv.encode(nodes) != data:  # not (canonical) BER-TLV: its bytes cannot be sorted out
        return f"<{len(data)} bytes, not BER-TLV, masked>{sw.hex().upper()}"
    return _masked_nodes(nodes) + sw.hex().upper()


# --- values by format ---

def _n_digits(value: bytes) -> str | None:
    digits = value.hex()
    return digits if digits.isdigit() or not digits else None


def _cn_digits(value: bytes) -> str | None:
    digits = value.hex().upper()
    head, _, pad = digits.partition("F")
    if not head.isdigit() and head:
        return None
    if pad.strip("F"):
        return None  # digits after the pad
    return head


def _quoted(value: bytes) -> str:
    out: list[str] = []
    for byte in value:
        if byte in (0x22, 0x5C):  # " and backslash
            out.append("\\" + chr(byte))
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02X}")
    return '"' + "".join(out) + '"'


def format_value(tag: int, value: bytes, *, reveal: bool = False) -> str:
    """The value of one primitive data object as shown by :func:`format_tree`."""
    value = bytes(value)
    if not reveal:
        masked = masked_value(tag, value)
        if masked is not None:
            return masked
    fmt = tags.FORMATS.get(tag, "b")
    hexed = value.hex().upper()
    if fmt == "n":
        digits = _n_digits(value)
        return digits if digits is not None else f"{hexed} (not BCD)"
    if fmt == "cn":
        digits = _cn_digits(value)
        return digits if digits is not None else f"{hexed} (not cn)"
    if fmt in ("an", "ans"):
        return _quoted(value)
    if tag in _DF_NAMES and value and all(0x20 <= b <= 0x7E for b in value):
        return f"{hexed} {_quoted(value)}"
    return hexed


# --- the text tree ---

def format_tree(nodes: Sequence[TLV], *, reveal: bool = False) -> str:
    """An indented text tree, one line per data object.

    Each line reads ``TAG Name [length] value``; children of a template are
    indented by two spaces; the meanings of the set bits of bit-mapped data
    elements follow their line, each starting with ``- ``. Cardholder data
    is masked unless ``reveal`` is true.
    """
    lines: list[str] = []
    _format_nodes(nodes, "", reveal, lines)
    return "\n".join(lines)


def _format_nodes(nodes: Sequence[TLV], indent: str, reveal: bool, lines: list[str]) -> None:
    for node in nodes:
        head = f"{indent}{tag_hex(node.tag)} {tags.name_of(node.tag)} [{len(node.value)}]"
        if node.children is not None:
            lines.append(head)
            _format_nodes(node.children, indent + INDENT, reveal, lines)
            continue
        shown = format_value(node.tag, node.value, reveal=reveal)
        lines.append(f"{head} {shown}" if shown else head)
        for line in bitmaps.explain(node.tag, node.value):
            lines.append(f"{indent}{INDENT}- {line}")


# --- JSON ---

def to_json_tree(nodes: Sequence[TLV], *, reveal: bool = False) -> list[dict[str, Any]]:
    """The tree as JSON-ready dicts.

    Primitive: ``{"tag": "9F02", "name": ..., "length": 6, "value": "000000001000"}``
    (value in uppercase hex). Constructed: ``{"tag": "6F", "name": ...,
    "length": N, "children": [...]}``. ``length`` counts the value bytes.
    With ``reveal=False`` a sensitive primitive carries ``"masked"`` (the text
    :func:`format_tree` shows) instead of ``"value"``.
    """
    out: list[dict[str, Any]] = []
    for node in nodes:
        entry: dict[str, Any] = {
            "tag": tag_hex(node.tag),
            "name": tags.name_of(node.tag),
            "length": len(node.value),
        }
        if node.children is not None:
            entry["children"] = to_json_tree(node.children, reveal=reveal)
        else:
            masked = None if reveal else masked_value(node.tag, node.value)
            if masked is None:
                entry["value"] = node.value.hex().upper()
            else:
                entry["masked"] = masked
        out.append(entry)
    return out
