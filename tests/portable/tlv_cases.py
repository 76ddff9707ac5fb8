# Portable tests of firmware.tlv: run by pytest on CPython (tests/test_portable.py)
# and by tests/portable/run.py under MicroPython. Plain asserts only.
# CPython imports the installed package; MicroPython the firmware folder on MICROPYPATH.
try:
    from emvkit.firmware import tlv
except ImportError:
    from firmware import tlv

_PPSE = bytes.fromhex(
    "6F33840E325041592E5359532E4444463031A521BF0C1E611C4F07A0000000031010"
    "500A566973612044656269748701019F2A0103"
)


def _raises(data, offset):
    try:
        tlv.decode(data)
    except tlv.TLVError as exc:
        assert exc.offset == offset, (exc.offset, offset, str(exc))
        return str(exc)
    raise AssertionError("no TLVError for %s" % data)


def test_decode_nested_ppse():
    nodes = tlv.decode(_PPSE)
    assert len(nodes) == 1 and nodes[0].tag == 0x6F
    aid = tlv.find_path(nodes, [0x6F, 0xA5, 0xBF0C, 0x61, 0x4F])
    assert aid is not None and aid.value == bytes.fromhex("A0000000031010")
    assert tlv.find_value(nodes, 0x50) == b"Visa Debit"
    assert tlv.find_value(nodes, 0x9F2A) == b"\x03"
    assert tlv.find(nodes, 0x87).value == b"\x01"
    assert tlv.find(nodes, 0x5A) is None


def test_encode_is_inverse():
    assert tlv.encode(tlv.decode(_PPSE)) == _PPSE


def test_three_byte_tag_and_long_lengths():
    value = bytes(range(200))
    data = bytes.fromhex("DF810C") + b"\x81\xc8" + value
    node = tlv.decode(data)[0]
    assert node.tag == 0xDF810C and node.value == value
    assert tlv.encode_tlv(0xDF810C, value) == data
    big = bytes(300)
    enc = tlv.encode_tlv(0x9F10, big)
    assert enc[:5] == bytes.fromhex("9F10") + b"\x82\x01\x2c"
    assert tlv.decode(enc)[0].value == big


def test_long_forms_83_84_accepted():
    assert tlv.decode(bytes.fromhex("5A830000020102"))[0].value == b"\x01\x02"
    assert tlv.decode(bytes.fromhex("5A84000000020102"))[0].value == b"\x01\x02"


def test_padding_skipped():
    data = bytes.fromhex("00FF5A0212340000FF9F02060000000001000000")
    nodes = tlv.decode(data)
    assert [n.tag for n in nodes] == [0x5A, 0x9F02]
    inner = tlv.decode(bytes.fromhex("7008005A021234FF0000"))[0]
    assert len(inner.children) == 1 and inner.children[0].value == b"\x12\x34"


def test_indefinite_length_rejected():
    msg = _raises(bytes.fromhex("6F80"), 1)
    assert "indefinite" in msg


def test_truncations():
    _raises(bytes.fromhex("9F"), 0)  # truncated tag
    _raises(bytes.fromhex("9F02"), 2)  # no length byte
    _raises(bytes.fromhex("5A8201"), 1)  # truncated long length
    _raises(bytes.fromhex("5A0512"), 0)  # truncated value
    _raises(bytes.fromhex("5A0112" "9F0203"), 3)  # second object truncated
    _raises(bytes.fromhex("70035A0312"), 2)  # inside a template


def test_length_form_85_rejected():
    _raises(bytes.fromhex("5A850000000001FF"), 1)


def test_find_all_and_flatten():
    data = bytes.fromhex("7008 5A021234 5A025678 7004 9F3601AA".replace(" ", ""))
    nodes = tlv.decode(data)
    assert [n.value for n in tlv.find_all(nodes, 0x5A)] == [b"\x12\x34", b"\x56\x78"]
    flat = tlv.flatten(nodes)
    assert flat[0x5A] == b"\x12\x34" and flat[0x9F36] == b"\xaa"


def test_constructed_node_from_children_and_value():
    node = tlv.TLV(0x77, children=[tlv.TLV(0x82, b"\x19\x80"), tlv.TLV(0x94, b"\x08\x01\x01\x00")])
    assert node.encode() == bytes.fromhex("770A820219809404 08010100".replace(" ", ""))
    again = tlv.TLV(0x77, value=node.value)
    assert again == node


def test_primitive_with_children_is_refused():
    try:
        tlv.TLV(0x5A, children=[])
    except ValueError:
        return
    raise AssertionError("primitive with children accepted")


def test_tag_helpers():
    assert tlv.tag_bytes(0x9F02) == b"\x9f\x02"
    assert tlv.tag_hex(0x5A) == "5A" and tlv.tag_hex(0xDF8101) == "DF8101"
    assert tlv.tag_constructed(0xBF0C) and tlv.tag_constructed(0x70)
    assert not tlv.tag_constructed(0x9F02) and not tlv.tag_constructed(0x5A)


def test_parse_dol():
    pdol = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
    entries = tlv.parse_dol(pdol)
    assert entries[0] == (0x9F66, 4) and entries[-1] == (0x9F37, 4)
    assert tlv.dol_length(pdol) == 4 + 6 + 6 + 2 + 5 + 2 + 3 + 1 + 4


def test_build_dol_padding_rules():
    dol = bytes.fromhex("9F0206" "5A0A" "5003" "9F3704" "DF0102" "7002")
    formats = {0x9F02: "n", 0x5A: "cn", 0x50: "ans"}
    source = {
        0x9F02: b"\x12\x34",  # n: leading zeros
        0x5A: b"\x47\x61\x73",  # cn: trailing FF
        0x50: b"VISA",  # ans: truncated on the right
        0x9F37: b"\xde\xad\xbe\xef",
        0x70: b"\x01\x02",  # constructed: zeros
    }
    out = tlv.build_dol(dol, source, formats)
    assert out == bytes.fromhex(
        "000000001234" "476173FFFFFFFFFFFFFF" "564953" "DEADBEEF" "0000" "0000"
    )


def test_build_dol_numeric_truncated_on_left():
    out = tlv.build_dol(bytes.fromhex("9F0202"), {0x9F02: b"\x00\x00\x00\x01\x23\x45"}, {0x9F02: "n"})
    assert out == b"\x23\x45"


def test_split_dol():
    dol = bytes.fromhex("9F02069F3704")
    parts = tlv.split_dol(dol, bytes.fromhex("000000000100" "01020304"))
    assert parts[0x9F02] == bytes.fromhex("000000000100") and parts[0x9F37] == b"\x01\x02\x03\x04"
    try:
        tlv.split_dol(dol, b"\x00")
    except tlv.TLVError:
        return
    raise AssertionError("short DOL data accepted")


def test_dol_rejects_padding_bytes():
    try:
        tlv.parse_dol(b"\x00\x9f\x02\x06")
    except tlv.TLVError as exc:
        assert exc.offset == 0
        return
    raise AssertionError("padding in DOL accepted")


def _raises_tlv_error(f, *args):
    try:
        f(*args)
    except tlv.TLVError as exc:
        return exc
    raise AssertionError("accepted: %r" % (args,))


def test_dol_rejects_multi_byte_lengths():
    # Book 3 §5.4: a DOL entry's length is one byte; 84 40000000 would ask for 1 GiB.
    exc = _raises_tlv_error(tlv.parse_dol, bytes.fromhex("9F3704" "9F02" "8440000000"))
    assert exc.offset == 5
    _raises_tlv_error(tlv.parse_dol, bytes.fromhex("9F0281FF"))
    _raises_tlv_error(tlv.build_dol, bytes.fromhex("9F028440000000"), {})
    _raises_tlv_error(tlv.parse_dol, bytes.fromhex("9F02"))
    assert tlv.parse_dol(bytes.fromhex("9F027F")) == [(0x9F02, 0x7F)]


def test_build_dol_data_fits_one_short_command():
    # ISO/IEC 7816-4 §5.1: a short C-APDU carries at most 255 bytes of data.
    assert len(tlv.build_dol(bytes.fromhex("9F017F" "9F027F" "9F0301"), {})) == 255
    _raises_tlv_error(tlv.build_dol, bytes.fromhex("9F017F" "9F027F" "9F0302"), {})
    _raises_tlv_error(tlv.build_dol, bytes.fromhex("9F017F") * 40, {})


def test_depth_limit():
    data = b""
    for _ in range(40):
        data = tlv.encode_tlv(0x70, data)
    try:
        tlv.decode(data)
    except tlv.TLVError as exc:
        assert "nested" in exc.reason
        return
    raise AssertionError("unbounded nesting accepted")
