"""Text and JSON views of TLV trees, and masking of cardholder data."""

from __future__ import annotations

import json

import pytest

from emvkit.firmware.tlv import TLV, decode
from emvkit.terminal.tlvdump import format_tree, format_value, mask_pan, to_json_tree

# SELECT 2PAY.SYS.DDF01 answer of a Visa card, built by hand:
# 6F(52) { 84(14) "2PAY.SYS.DDF01", A5(34) { BF0C(31) { 61(29) {
#   4F(7) A0000000031010, 50(11) "VISA CREDIT", 87(1) 01, 9F2A(1) 03 } } } }
PPSE_FCI = bytes.fromhex(
    "6F34"
    "840E325041592E5359532E4444463031"
    "A522BF0C1F611D"
    "4F07A0000000031010"
    "500B5649534120435245444954"
    "870101"
    "9F2A0103"
)

# A record with cardholder data (Visa test PAN 4761739001010119).
RECORD = bytes.fromhex(
    "7042"
    "57134761739001010119D22122011758928889000F"
    "5A084761739001010119"
    "5F200F56495341204143515549524552202F"
    "5F24032212315F340101"
    "9F1F0431323334"
)


def test_record_fixture_lengths() -> None:
    # 57: 2+19, 5A: 2+8, 5F20: 3+15, 5F24: 3+3, 5F34: 3+1, 9F1F: 3+4 = 66 = 0x42.
    assert len(RECORD) == 2 + 66
    (record,) = decode(RECORD)
    assert record.tag == 0x70
    assert [c.tag for c in record.children] == [0x57, 0x5A, 0x5F20, 0x5F24, 0x5F34, 0x9F1F]


def test_ppse_fci_tree() -> None:
    assert format_tree(decode(PPSE_FCI)) == "\n".join([
        "6F File Control Information (FCI) Template [52]",
        '  84 Dedicated File (DF) Name [14] 325041592E5359532E4444463031 "2PAY.SYS.DDF01"',
        "  A5 File Control Information (FCI) Proprietary Template [34]",
        "    BF0C File Control Information (FCI) Issuer Discretionary Data [31]",
        "      61 Application Template [29]",
        "        4F Application Identifier (AID) - card [7] A0000000031010",
        '        50 Application Label [11] "VISA CREDIT"',
        "        87 Application Priority Indicator [1] 01",
        "        9F2A Kernel Identifier [1] 03",
    ])


def test_record_is_masked_by_default() -> None:
    text = format_tree(decode(RECORD))
    assert text == "\n".join([
        "70 READ RECORD Response Message Template [66]",
        "  57 Track 2 Equivalent Data [19] <track 2: PAN 476173******0119, masked>",
        "  5A Application Primary Account Number (PAN) [8] 476173******0119",
        '  5F20 Cardholder Name [15] "VISA ACQUIRER /"',
        "  5F24 Application Expiration Date [3] 221231",
        "  5F34 Application Primary Account Number (PAN) Sequence Number [1] 01",
        "  9F1F Track 1 Discretionary Data [4] <track 1 discretionary data, masked>",
    ])
    assert "4761739001010119" not in text
    assert "D2212" not in text


def test_record_revealed() -> None:
    text = format_tree(decode(RECORD), reveal=True)
    assert "  57 Track 2 Equivalent Data [19] 4761739001010119D22122011758928889000F" in text
    assert "  5A Application Primary Account Number (PAN) [8] 4761739001010119" in text
    assert '  9F1F Track 1 Discretionary Data [4] "1234"' in text


@pytest.mark.parametrize(
    ("digits", "masked"),
    [
        ("4761739001010119", "476173******0119"),
        ("5413330089010012", "541333******0012"),
        ("6799998900000060019", "679999*********0019"),
        ("4000000000006", "400000***0006"),
        ("12345678901", "123456*8901"),
        ("1234567890", "******7890"),
        ("1234", "1234"),
        ("", ""),
    ],
)
def test_mask_pan(digits: str, masked: str) -> None:
    assert mask_pan(digits) == masked


def test_pan_with_odd_digit_count_is_cn_decoded() -> None:
    # 19 digits padded with one F nibble (cn, Book 3 §4.3).
    value = bytes.fromhex("6799998900000060019F")
    assert format_value(0x5A, value, reveal=True) == "6799998900000060019"
    assert format_value(0x5A, value) == "679999*********0019"


def test_track_2_data_of_kernel_2_is_masked() -> None:
    value = bytes.fromhex("5413330089010012D25122010000000000000F")
    assert format_value(0x9F6B, value) == "<track 2: PAN 541333******0012, masked>"


def test_track_2_without_separator_shows_nothing() -> None:
    assert format_value(0x57, bytes.fromhex("4761739001010119")) == "<track 2, masked>"


def test_track_1_data_is_masked() -> None:
    value = b"B5413330089010012^SMITH/JOHN^2512201"
    assert format_value(0x56, value) == "<track 1: PAN 541333******0012, masked>"
    assert format_value(0x56, value, reveal=True) == '"B5413330089010012^SMITH/JOHN^2512201"'
    assert format_value(0x56, b"no separators") == "<track 1, masked>"


def test_other_sensitive_values_are_hidden() -> None:
    assert format_value(0x9F20, bytes.fromhex("12345F")) == "<track 2 discretionary data, masked>"
    assert format_value(0x99, bytes.fromhex("0123456789ABCDEF")) == "<PIN data, masked>"


@pytest.mark.parametrize(
    ("tag", "value", "shown"),
    [
        (0x9F02, "000000001000", "000000001000"),  # n: its digits
        (0x9A, "240131", "240131"),
        (0x9F02, "00000000001A", "00000000001A (not BCD)"),
        (0x9F20, "12345F", "12345"),  # cn (revealed below): digits up to F
        (0x5A, "47617390010101FFFF0A", "47617390010101FFFF0A (not cn)"),
        (0x9F1C, "5445524D30303031", '"TERM0001"'),  # an
        (0x50, "56495341005C22", '"VISA\\x00\\\\\\""'),  # ans, escaped
        (0x82, "1980", "1980"),  # b: hex
        (0xDF7F, "00FF", "00FF"),  # unknown tag: hex
        (0x84, "A0000000031010", "A0000000031010"),  # binary DF name: hex only
    ],
)
def test_values_by_format(tag: int, value: str, shown: str) -> None:
    assert format_value(tag, bytes.fromhex(value), reveal=True) == shown


def test_bit_meanings_follow_their_line() -> None:
    nodes = decode(bytes.fromhex("77139F2701809F360200019F340342030282021980"))
    assert format_tree(nodes) == "\n".join([
        "77 Response Message Template Format 2 [19]",
        "  9F27 Cryptogram Information Data [1] 80",
        "  9F36 Application Transaction Counter (ATC) [2] 0001",
        "  9F34 Cardholder Verification Method (CVM) Results [3] 420302",
        "    - byte 1: CVM performed: 02 Enciphered PIN verified online",
        "    - byte 1 bit 7: Apply succeeding CV Rule if this CVM is unsuccessful",
        "    - byte 2: CVM condition: 03 If terminal supports the CVM",
        "    - byte 3: CVM result: 02 Successful",
        "  82 Application Interchange Profile [2] 1980",
        "    - byte 1 bit 5: Cardholder verification is supported",
        "    - byte 1 bit 4: Terminal risk management is to be performed",
        "    - byte 1 bit 1: CDA supported",
        "    - byte 2 bit 8: EMV mode is supported (C-2) / MSD is supported (C-3)",
    ])


def test_top_level_primitives_and_unknown_tags() -> None:
    nodes = [TLV(0x95, bytes.fromhex("8000048000")), TLV(0xDF7F, b"\x01"), TLV(0x5F50, b"")]
    assert format_tree(nodes) == "\n".join([
        "95 Terminal Verification Results [5] 8000048000",
        "  - byte 1 bit 8: Offline data authentication was not performed",
        "  - byte 3 bit 3: Online PIN entered",
        "  - byte 4 bit 8: Transaction exceeds floor limit",
        "DF7F Unknown tag [1] 01",
        '5F50 Issuer URL [0] ""',
    ])
    assert format_tree([]) == ""


def test_json_tree_shape() -> None:
    tree = to_json_tree(decode(PPSE_FCI))
    assert tree == [{
        "tag": "6F",
        "name": "File Control Information (FCI) Template",
        "length": 52,
        "children": [
            {"tag": "84", "name": "Dedicated File (DF) Name", "length": 14,
             "value": "325041592E5359532E4444463031"},
            {"tag": "A5", "name": "File Control Information (FCI) Proprietary Template", "length": 34,
             "children": [
                 {"tag": "BF0C", "name": "File Control Information (FCI) Issuer Discretionary Data",
                  "length": 31, "children": [
                      {"tag": "61", "name": "Application Template", "length": 29, "children": [
                          {"tag": "4F", "name": "Application Identifier (AID) - card", "length": 7,
                           "value": "A0000000031010"},
                          {"tag": "50", "name": "Application Label", "length": 11,
                           "value": "5649534120435245444954"},
                          {"tag": "87", "name": "Application Priority Indicator", "length": 1,
                           "value": "01"},
                          {"tag": "9F2A", "name": "Kernel Identifier", "length": 1, "value": "03"},
                      ]},
                  ]},
             ]},
        ],
    }]
    assert json.loads(json.dumps(tree)) == tree


def test_json_tree_masks_on_request() -> None:
    (record,) = to_json_tree(decode(RECORD))
    track2, pan, name = record["children"][:3]
    assert track2 == {"tag": "57", "name": "Track 2 Equivalent Data", "length": 19,
                      "masked": "<track 2: PAN 476173******0119, masked>"}
    assert pan == {"tag": "5A", "name": "Application Primary Account Number (PAN)", "length": 8,
                   "masked": "476173******0119"}
    assert name["value"] == "56495341204143515549524552202F"
    assert "4761739001010119" not in json.dumps(record)
    # Masked by default; reveal=True keeps every value.
    assert to_json_tree(decode(RECORD)) == [record]
    (raw,) = to_json_tree(decode(RECORD), reveal=True)
    assert raw["children"][1]["value"] == "4761739001010119"
