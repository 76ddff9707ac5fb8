"""The EMV tag dictionary against EMV 4.3 Book 3 Annex A and Books C-2/C-3."""

from __future__ import annotations

import pytest

from emvkit.firmware.tlv import build_dol, tag_constructed
from emvkit.terminal.tags import FORMATS, TAGS, TagInfo, info, name_of

# Every tagged data element of EMV 4.3 Book 3 Annex A, Table 33.
BOOK3_TABLE33 = [
    0x42, 0x4F, 0x50, 0x57, 0x5A,
    0x5F20, 0x5F24, 0x5F25, 0x5F28, 0x5F2A, 0x5F2D, 0x5F30, 0x5F34, 0x5F36,
    0x5F50, 0x5F53, 0x5F54, 0x5F55, 0x5F56, 0x5F57,
    0x61, 0x6F, 0x70, 0x71, 0x72, 0x73, 0x77,
    0x80, 0x81, 0x82, 0x83, 0x84, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x8D, 0x8E, 0x8F,
    0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
    0x9F01, 0x9F02, 0x9F03, 0x9F04, 0x9F05, 0x9F06, 0x9F07, 0x9F08, 0x9F09, 0x9F0A,
    0x9F0B, 0x9F0C, 0x9F0D, 0x9F0E, 0x9F0F, 0x9F10, 0x9F11, 0x9F12, 0x9F13, 0x9F14,
    0x9F15, 0x9F16, 0x9F17, 0x9F18, 0x9F1A, 0x9F1B, 0x9F1C, 0x9F1D, 0x9F1E, 0x9F1F,
    0x9F20, 0x9F21, 0x9F22, 0x9F23, 0x9F26, 0x9F27, 0x9F2D, 0x9F2E, 0x9F2F, 0x9F32,
    0x9F33, 0x9F34, 0x9F35, 0x9F36, 0x9F37, 0x9F38, 0x9F39, 0x9F3A, 0x9F3B, 0x9F3C,
    0x9F3D, 0x9F40, 0x9F41, 0x9F42, 0x9F43, 0x9F44, 0x9F45, 0x9F46, 0x9F47, 0x9F48,
    0x9F49, 0x9F4A, 0x9F4B, 0x9F4C, 0x9F4D, 0x9F4E, 0x9F4F,
    0xA5, 0xBF0C,
]

# Contactless: Book B, C-2 and C-3 tags the kernels read or write.
CONTACTLESS = [
    0x56, 0x9F29, 0x9F2A, 0x9F50, 0x9F51, 0x9F53, 0x9F54, 0x9F5A, 0x9F5B, 0x9F5C, 0x9F5D,
    0x9F5E, 0x9F5F, 0x9F60, 0x9F61, 0x9F62, 0x9F63, 0x9F64, 0x9F65, 0x9F66, 0x9F67,
    0x9F69, 0x9F6A, 0x9F6B, 0x9F6C, 0x9F6D, 0x9F6E, 0x9F6F, 0x9F7C, 0x9F7D, 0x9F7E, 0x9F7F,
    0xDF4B, 0xDF60, 0xDF61, 0xDF62, 0xDF63,
    0xFF8101, 0xFF8102, 0xFF8103, 0xFF8104, 0xFF8105, 0xFF8106,
]

# Kernel 2 DF81xx from DF8101 to DF8137; C-2 assigns no DF8103, DF812E, DF812F.
KERNEL2_DF81 = [t for t in range(0xDF8101, 0xDF8138) if t not in (0xDF8103, 0xDF812E, 0xDF812F)]


@pytest.mark.parametrize("tag", BOOK3_TABLE33 + CONTACTLESS + KERNEL2_DF81, ids=lambda t: f"{t:X}")
def test_tag_is_in_the_dictionary(tag: int) -> None:
    entry = info(tag)
    assert entry is not None
    assert entry.tag == tag
    assert name_of(tag) == entry.name


def test_size_covers_table_33_and_the_contactless_books() -> None:
    assert len(TAGS) >= len(set(BOOK3_TABLE33 + CONTACTLESS + KERNEL2_DF81))


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        (0x9F01, "Acquirer Identifier"),
        (0x9F02, "Amount, Authorised (Numeric)"),
        (0x9F03, "Amount, Other (Numeric)"),
        (0x81, "Amount, Authorised (Binary)"),
        (0x9F04, "Amount, Other (Binary)"),
        (0x5A, "Application Primary Account Number (PAN)"),
        (0x5F34, "Application Primary Account Number (PAN) Sequence Number"),
        (0x57, "Track 2 Equivalent Data"),
        (0x56, "Track 1 Data"),
        (0x9F6B, "Track 2 Data"),
        (0x6F, "File Control Information (FCI) Template"),
        (0xA5, "File Control Information (FCI) Proprietary Template"),
        (0xBF0C, "File Control Information (FCI) Issuer Discretionary Data"),
        (0x70, "READ RECORD Response Message Template"),
        (0x77, "Response Message Template Format 2"),
        (0x80, "Response Message Template Format 1"),
        (0x8C, "Card Risk Management Data Object List 1 (CDOL1)"),
        (0x8E, "Cardholder Verification Method (CVM) List"),
        (0x95, "Terminal Verification Results"),
        (0x9B, "Transaction Status Information"),
        (0x9F27, "Cryptogram Information Data"),
        (0x9F34, "Cardholder Verification Method (CVM) Results"),
        (0x9F37, "Unpredictable Number"),
        (0x9F4B, "Signed Dynamic Application Data"),
        (0x9F4D, "Log Entry"),
        (0x9F4F, "Log Format"),
        (0x9F29, "Extended Selection"),
        (0x9F2A, "Kernel Identifier"),
        (0x9F6A, "Unpredictable Number (Numeric)"),
        (0x9F5A, "Application Program Identifier (Program ID)"),
        (0xDF8115, "Error Indication"),
        (0xDF8116, "User Interface Request Data"),
        (0xDF8117, "Card Data Input Capability"),
        (0xDF8118, "CVM Capability - CVM Required"),
        (0xDF8119, "CVM Capability - No CVM Required"),
        (0xDF811A, "Default UDOL"),
        (0xDF811B, "Kernel Configuration"),
        (0xDF811C, "Max Lifetime of Torn Transaction Log Record"),
        (0xDF811D, "Max Number of Torn Transaction Log Records"),
        (0xDF811E, "Mag-stripe CVM Capability - CVM Required"),
        (0xDF811F, "Security Capability"),
        (0xDF8120, "Terminal Action Code - Default"),
        (0xDF8121, "Terminal Action Code - Denial"),
        (0xDF8122, "Terminal Action Code - Online"),
        (0xDF8123, "Reader Contactless Floor Limit"),
        (0xDF8124, "Reader Contactless Transaction Limit (No On-device CVM)"),
        (0xDF8125, "Reader Contactless Transaction Limit (On-device CVM)"),
        (0xDF8126, "Reader CVM Required Limit"),
        (0xDF8129, "Outcome Parameter Set"),
        (0xDF812C, "Mag-stripe CVM Capability - No CVM Required"),
        (0xDF8130, "Hold Time Value"),
        (0xDF8131, "Phone Message Table"),
    ],
)
def test_names_as_the_specs_spell_them(tag: int, name: str) -> None:
    assert name_of(tag) == name


@pytest.mark.parametrize(
    ("tag", "meanings"),
    [
        (0x9F66, ["Terminal Transaction Qualifiers", "PUNATC(Track2)"]),
        (0x9F69, ["Card Authentication Related Data", "UDOL"]),
        (0x9F6C, ["Card Transaction Qualifiers", "Mag-stripe Application Version Number (Card)"]),
        (0x9F6E, ["Form Factor Indicator", "Third Party Data"]),
        (0x9F5D, ["Available Offline Spending Amount", "Application Capabilities Information"]),
        (0x9F7C, ["Customer Exclusive Data", "Merchant Custom Data"]),
    ],
)
def test_tags_the_kernels_define_differently_name_each_meaning(tag: int, meanings: list[str]) -> None:
    for meaning in meanings:
        assert meaning in name_of(tag)


def test_unknown_tag() -> None:
    assert name_of(0xDF7F) == "Unknown tag"
    assert info(0xDF7F) is None


@pytest.mark.parametrize("entry", list(TAGS.values()), ids=lambda e: f"{e.tag:X}")
def test_every_entry_is_well_formed(entry: TagInfo) -> None:
    assert entry.fmt in {"n", "cn", "an", "ans", "b"}
    assert entry.source in {"card", "terminal", "issuer"}
    assert TAGS[entry.tag] is entry
    assert entry.name and entry.name.strip() == entry.name
    if entry.min_len is not None and entry.max_len is not None:
        assert 0 < entry.min_len <= entry.max_len
    if tag_constructed(entry.tag):
        assert entry.fmt == "b"


def test_no_two_tags_share_a_name() -> None:
    seen: dict[str, int] = {}
    for entry in TAGS.values():
        assert entry.name not in seen, f"{entry.tag:X} and {seen[entry.name]:X}"
        seen[entry.name] = entry.tag


def test_card_and_terminal_twins_are_told_apart() -> None:
    # Table 33 names these pairs alike; only the source tells them apart.
    assert name_of(0x9F08) != name_of(0x9F09)
    assert info(0x9F08) == TagInfo(0x9F08, "Application Version Number (card)", "b", "card", 2, 2)
    assert info(0x9F09) == TagInfo(0x9F09, "Application Version Number (terminal)", "b", "terminal", 2, 2)
    assert TAGS[0x8F].source == "card"
    assert TAGS[0x9F22].source == "terminal"
    assert name_of(0x8F) != name_of(0x9F22)


@pytest.mark.parametrize(
    ("tag", "fmt"),
    [
        (0x9F02, "n"), (0x9F03, "n"), (0x9A, "n"), (0x9C, "n"), (0x5F2A, "n"), (0x9F1A, "n"),
        (0x9F21, "n"), (0x5F24, "n"), (0x9F6A, "n"), (0xDF8123, "n"),
        (0x5A, "cn"), (0x9F20, "cn"),
        (0x50, "ans"), (0x5F20, "ans"), (0x9F4E, "ans"), (0x9F16, "ans"), (0x56, "ans"),
        (0x9F1C, "an"), (0x8A, "an"), (0x5F2D, "an"),
        (0x57, "b"), (0x82, "b"), (0x95, "b"), (0x9F37, "b"), (0x81, "b"), (0x6F, "b"), (0x9F66, "b"),
    ],
)
def test_formats(tag: int, fmt: str) -> None:
    assert FORMATS[tag] == fmt
    assert TAGS[tag].fmt == fmt


@pytest.mark.parametrize(
    ("tag", "source", "min_len", "max_len"),
    [
        (0x9F02, "terminal", 6, 6),
        (0x95, "terminal", 5, 5),
        (0x82, "card", 2, 2),
        (0x4F, "card", 5, 16),
        (0x5A, "card", None, 10),
        (0x5F20, "card", 2, 26),
        (0x91, "issuer", 8, 16),
        (0x8A, "issuer", 2, 2),
        (0x9F26, "card", 8, 8),
        (0x9F37, "terminal", 4, 4),
        (0x9F6A, "terminal", 4, 4),
        (0xDF8129, "terminal", 8, 8),
    ],
)
def test_sources_and_lengths(tag: int, source: str, min_len: int | None, max_len: int | None) -> None:
    entry = TAGS[tag]
    assert (entry.source, entry.min_len, entry.max_len) == (source, min_len, max_len)


def test_formats_drive_dol_padding() -> None:
    # Book 3 §5.4: n is right justified with leading zeros (and cut on the
    # left), cn padded with trailing FF, an padded with trailing 00.
    source = {
        0x9F02: bytes.fromhex("000000001000"),
        0x5A: bytes.fromhex("4761739001010119"),
        0x9F1C: b"TERM0001",
    }
    dol = [(0x9F02, 4), (0x9F02, 8), (0x5A, 10), (0x9F1C, 10)]
    assert build_dol(dol, source, FORMATS) == bytes.fromhex(
        "00001000"
        "0000000000001000"
        "4761739001010119FFFF"
        "5445524D303030310000"
    )
