"""Property tests of the BER-TLV and DOL codecs (firmware/tlv.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emvkit.firmware import tlv

# Tags of one, two and three bytes. The first byte is class (b8-b7),
# construction (b6) and tag number (b5-b1, all ones meaning "more bytes").
# Padding bytes 00 and FF cannot start a tag.


@st.composite
def tags(draw: st.DrawFn, constructed: bool) -> int:
    cls = draw(st.integers(0, 3)) << 6
    form = 0x20 if constructed else 0x00
    if draw(st.booleans()):
        return cls | form | draw(st.integers(1 if cls | form == 0 else 0, 0x1E))
    first = cls | form | 0x1F
    middle = draw(st.lists(st.integers(0x80, 0xFF), max_size=1))
    tag = first
    for b in middle:
        tag = (tag << 8) | b
    return (tag << 8) | draw(st.integers(0x01, 0x7F))


def _valid(tag: int) -> bool:
    return tag > 0 and tlv.tag_bytes(tag)[0] not in (0x00, 0xFF)


primitive = st.builds(
    lambda t, v: tlv.TLV(t, v),
    tags(constructed=False).filter(_valid),
    st.binary(max_size=300),
)
tree = st.recursive(
    primitive,
    lambda children: st.builds(
        lambda t, c: tlv.TLV(t, children=c),
        tags(constructed=True).filter(_valid),
        st.lists(children, max_size=4),
    ),
    max_leaves=20,
)


@given(st.lists(tree, max_size=5))
@settings(max_examples=300)
def test_decode_encode_round_trip(nodes: list[tlv.TLV]) -> None:
    encoded = tlv.encode(nodes)
    assert tlv.decode(encoded) == nodes
    assert tlv.encode(tlv.decode(encoded)) == encoded


@given(st.binary(max_size=400))
@settings(max_examples=2000)
def test_random_bytes_raise_only_tlverror(data: bytes) -> None:
    try:
        nodes = tlv.decode(data)
    except tlv.TLVError as exc:
        assert 0 <= exc.offset <= len(data)
        return
    # Whatever decodes must re-encode to something that decodes the same.
    assert tlv.decode(tlv.encode(nodes)) == nodes


@given(st.binary(max_size=60))
@settings(max_examples=1000)
def test_random_dol_raises_only_tlverror(data: bytes) -> None:
    try:
        entries = tlv.parse_dol(data)
    except tlv.TLVError:
        return
    assert tlv.dol_length(entries) == sum(n for _, n in entries)


dol_entries = st.lists(
    st.tuples(tags(constructed=False).filter(_valid), st.integers(0, 40)),
    max_size=12,
    unique_by=lambda e: e[0],
).filter(lambda entries: sum(n for _, n in entries) <= tlv.MAX_DOL_DATA)  # longer: refused (tlv_cases)


def _dol_bytes(entries: list[tuple[int, int]]) -> bytes:
    return b"".join(tlv.tag_bytes(t) + tlv.encode_length(n) for t, n in entries)


@given(dol_entries, st.data())
def test_dol_build_and_parse(entries: list[tuple[int, int]], data: st.DataObject) -> None:
    dol = _dol_bytes(entries)
    assert tlv.parse_dol(dol) == entries
    source = {t: data.draw(st.binary(min_size=n, max_size=n)) for t, n in entries}
    built = tlv.build_dol(dol, source)
    assert len(built) == tlv.dol_length(dol)
    assert tlv.split_dol(dol, built) == source


@given(dol_entries, st.data())
def test_dol_build_pads_and_truncates_by_format(entries: list[tuple[int, int]], data: st.DataObject) -> None:
    fmts = {t: data.draw(st.sampled_from(["n", "cn", "b", "an"])) for t, _ in entries}
    source = {t: data.draw(st.binary(max_size=45)) for t, _ in entries}
    parts = tlv.split_dol(_dol_bytes(entries), tlv.build_dol(_dol_bytes(entries), source, fmts))
    for tag, length in entries:
        value, got, fmt = source[tag], parts[tag], fmts[tag]
        if fmt == "n":
            expected = value[-length:] if len(value) >= length else bytes(length - len(value)) + value
            if length == 0:
                expected = b""
        else:
            filler = b"\xff" if fmt == "cn" else b"\x00"
            expected = value[:length] + filler * (length - len(value))
        assert got == expected, (fmt, value.hex(), length)
