"""Bit meanings of AIP, AUC, TVR, TSI, TTQ, CTQ, CVM Results and terminal capabilities.

Expected lines are read off the spec tables (EMV 4.3 Book 3 Annex C, Book 4
Annex A, Contactless Books A, C-2, C-3) by hand.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emvkit.terminal.bitmaps import (
    ADDITIONAL_TERMINAL_CAPABILITIES,
    AIP,
    AIP_BITS,
    AUC,
    CTQ,
    CTQ_BITS,
    DECODERS,
    TERMINAL_CAPABILITIES,
    TSI,
    TSI_BITS,
    TTQ,
    TTQ_BITS,
    TVR,
    TVR_BITS,
    BitTable,
    clear_bit,
    cvm_condition_name,
    cvm_method_name,
    explain,
    is_set,
    set_bit,
    set_bits,
)

# --- TVR (Book 3 C5) ---


def test_tvr_oda_not_performed_online_pin_floor_limit() -> None:
    # 80: byte 1 = 1000 0000 -> b8; 00; 04: byte 3 = 0000 0100 -> b3;
    # 80: byte 4 b8; 00: byte 5 has nothing set (no issuer auth failure).
    assert explain(0x95, bytes.fromhex("8000048000")) == [
        "byte 1 bit 8: Offline data authentication was not performed",
        "byte 3 bit 3: Online PIN entered",
        "byte 4 bit 8: Transaction exceeds floor limit",
    ]


def test_tvr_every_defined_bit_of_bytes_2_and_5() -> None:
    # byte 2 = F8 (b8..b4), byte 5 = F0 (b8..b5)
    assert explain(0x95, bytes.fromhex("00F80000F0")) == [
        "byte 2 bit 8: ICC and terminal have different application versions",
        "byte 2 bit 7: Expired application",
        "byte 2 bit 6: Application not yet effective",
        "byte 2 bit 5: Requested service not allowed for card product",
        "byte 2 bit 4: New card",
        "byte 5 bit 8: Default TDOL used",
        "byte 5 bit 7: Issuer authentication failed",
        "byte 5 bit 6: Script processing failed before final GENERATE AC",
        "byte 5 bit 5: Script processing failed after final GENERATE AC",
    ]


def test_tvr_byte_1_and_3_texts() -> None:
    assert set_bits(0x95, bytes.fromhex("7E00FC0000")) == [
        "SDA failed",
        "ICC data missing",
        "Card appears on terminal exception file",
        "DDA failed",
        "CDA failed",
        "SDA selected",
        "Cardholder verification was not successful",
        "Unrecognised CVM",
        "PIN Try Limit exceeded",
        "PIN entry required and PIN pad not present or not working",
        "PIN entry required, PIN pad present, but PIN was not entered",
        "Online PIN entered",
    ]


def test_tvr_byte_4_texts() -> None:
    assert set_bits(0x95, bytes.fromhex("000000F800")) == [
        "Transaction exceeds floor limit",
        "Lower consecutive offline limit exceeded",
        "Upper consecutive offline limit exceeded",
        "Transaction selected randomly for online processing",
        "Merchant forced transaction online",
    ]


def test_tvr_relay_resistance_bits_of_kernel_2() -> None:
    # byte 5 = 0A: b4 threshold exceeded, b2-b1 = 10 "RRP performed".
    assert set_bits(0x95, bytes.fromhex("000000000A")) == [
        "Relay resistance threshold exceeded (C-2)",
        "Relay resistance protocol performed (C-2)",
    ]


def test_all_zero_means_nothing_to_say() -> None:
    assert explain(0x95, bytes(5)) == []
    assert set_bits(0x95, bytes(5)) == []


def test_action_codes_read_like_the_tvr() -> None:
    value = bytes.fromhex("0000000080")  # byte 5 b8
    for tag in (0x9F0D, 0x9F0E, 0x9F0F, 0xDF8120, 0xDF8121, 0xDF8122):
        assert explain(tag, value) == ["byte 5 bit 8: Default TDOL used"]


def test_tvr_symbolic_names() -> None:
    expected = {
        "ODA_NOT_PERFORMED": (0, 0x80),
        "SDA_FAILED": (0, 0x40),
        "ICC_DATA_MISSING": (0, 0x20),
        "EXCEPTION_FILE": (0, 0x10),
        "DDA_FAILED": (0, 0x08),
        "CDA_FAILED": (0, 0x04),
        "SDA_SELECTED": (0, 0x02),
        "ICC_AND_TERMINAL_VERSIONS_DIFFER": (1, 0x80),
        "EXPIRED_APPLICATION": (1, 0x40),
        "APPLICATION_NOT_YET_EFFECTIVE": (1, 0x20),
        "SERVICE_NOT_ALLOWED": (1, 0x10),
        "NEW_CARD": (1, 0x08),
        "CARDHOLDER_VERIFICATION_NOT_SUCCESSFUL": (2, 0x80),
        "UNRECOGNISED_CVM": (2, 0x40),
        "PIN_TRY_LIMIT_EXCEEDED": (2, 0x20),
        "PIN_PAD_NOT_PRESENT": (2, 0x10),
        "PIN_NOT_ENTERED": (2, 0x08),
        "ONLINE_PIN_ENTERED": (2, 0x04),
        "FLOOR_LIMIT_EXCEEDED": (3, 0x80),
        "LOWER_CONSECUTIVE_OFFLINE_LIMIT_EXCEEDED": (3, 0x40),
        "UPPER_CONSECUTIVE_OFFLINE_LIMIT_EXCEEDED": (3, 0x20),
        "RANDOMLY_SELECTED_ONLINE": (3, 0x10),
        "MERCHANT_FORCED_ONLINE": (3, 0x08),
        "DEFAULT_TDOL_USED": (4, 0x80),
        "ISSUER_AUTHENTICATION_FAILED": (4, 0x40),
        "SCRIPT_FAILED_BEFORE_FINAL_GENAC": (4, 0x20),
        "SCRIPT_FAILED_AFTER_FINAL_GENAC": (4, 0x10),
    }
    for name, where in expected.items():
        assert TVR_BITS[name] == where, name


# --- length handling and unknown tags ---


def test_wrong_length_is_reported_not_raised() -> None:
    assert explain(0x95, b"\x80") == [
        "expected 5 bytes, got 1",
        "byte 1 bit 8: Offline data authentication was not performed",
    ]
    assert explain(0x9B, b"") == ["expected 2 bytes, got 0"]
    # Bytes past the defined length are not explained.
    assert explain(0x82, bytes.fromhex("0000FF")) == ["expected 2 bytes, got 3"]


def test_unknown_tag_has_no_explanation() -> None:
    assert explain(0x9F02, bytes.fromhex("000000001000")) == []
    assert set_bits(0x5A, b"\x47") == []


def test_rfu_bits_are_named_as_such() -> None:
    assert explain(0x9B, bytes.fromhex("0380")) == [
        "byte 1 bit 2: RFU",
        "byte 1 bit 1: RFU",
        "byte 2 bit 8: RFU",
    ]
    assert set_bits(0x9B, bytes.fromhex("0380")) == []


@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=12))
def test_explain_never_raises(tag: int, value: bytes) -> None:
    lines = explain(tag, value)
    assert all(isinstance(line, str) and line for line in lines)
    assert len(set_bits(tag, value)) <= len(lines)


# --- TSI (Book 3 C6) ---


def test_tsi_after_a_full_contact_transaction() -> None:
    # E8 = 1110 1000: ODA, CV, card risk management, terminal risk management.
    assert explain(0x9B, bytes.fromhex("E800")) == [
        "byte 1 bit 8: Offline data authentication was performed",
        "byte 1 bit 7: Cardholder verification was performed",
        "byte 1 bit 6: Card risk management was performed",
        "byte 1 bit 4: Terminal risk management was performed",
    ]
    assert set_bits(0x9B, bytes.fromhex("1400")) == [
        "Issuer authentication was performed",
        "Script processing was performed",
    ]
    assert TSI_BITS["ODA_PERFORMED"] == (0, 0x80)
    assert TSI_BITS["SCRIPT_PROCESSING_PERFORMED"] == (0, 0x04)


# --- AIP (Book 3 C1, C-2, C-3) ---


def test_aip_of_a_mastercard_with_cda() -> None:
    # 19 = 0001 1001: b5, b4, b1; 80: byte 2 b8 (EMV mode, C-2).
    assert explain(0x82, bytes.fromhex("1980")) == [
        "byte 1 bit 5: Cardholder verification is supported",
        "byte 1 bit 4: Terminal risk management is to be performed",
        "byte 1 bit 1: CDA supported",
        "byte 2 bit 8: EMV mode is supported (C-2) / MSD is supported (C-3)",
    ]


def test_aip_other_bits() -> None:
    # 66 = 0110 0110: b7 SDA, b6 DDA, b3 issuer auth, b2 on-device CVM; 01: RRP.
    assert set_bits(0x82, bytes.fromhex("6601")) == [
        "SDA supported",
        "DDA supported",
        "Issuer authentication is supported",
        "On device cardholder verification is supported (C-2)",
        "Relay resistance protocol is supported (C-2)",
    ]
    assert AIP_BITS["CDA_SUPPORTED"] == (0, 0x01)
    assert AIP_BITS["DDA_SUPPORTED"] == (0, 0x20)
    assert AIP_BITS["EMV_MODE_SUPPORTED"] == AIP_BITS["MSD_SUPPORTED"] == (1, 0x80)


# --- AUC (Book 3 C2) ---


def test_auc() -> None:
    # AB = 1010 1011: b8, b6, b4, b2, b1; 80: domestic cashback.
    assert set_bits(0x9F07, bytes.fromhex("AB80")) == [
        "Valid for domestic cash transactions",
        "Valid for domestic goods",
        "Valid for domestic services",
        "Valid at ATMs",
        "Valid at terminals other than ATMs",
        "Domestic cashback allowed",
    ]
    assert set_bits(0x9F07, bytes.fromhex("5440")) == [
        "Valid for international cash transactions",
        "Valid for international goods",
        "Valid for international services",
        "International cashback allowed",
    ]


# --- TTQ (Book A, C-3) ---


def test_ttq_of_a_typical_online_reader() -> None:
    # 36 = 0011 0110: b6 EMV mode, b5 contact chip, b3 online PIN, b2 signature
    # 00; 40 = byte 3 b7 CDCVM; 00.
    assert explain(0x9F66, bytes.fromhex("36004000")) == [
        "byte 1 bit 6: EMV mode supported",
        "byte 1 bit 5: EMV contact chip supported",
        "byte 1 bit 3: Online PIN supported",
        "byte 1 bit 2: Signature supported",
        "byte 3 bit 7: Consumer Device CVM supported",
    ]


def test_ttq_other_bits() -> None:
    # 89 = 1000 1001: b8, b4, b1; E0 = byte 2 b8 b7 b6; 80 = byte 3 b8.
    assert set_bits(0x9F66, bytes.fromhex("89E08000")) == [
        "Mag-stripe mode supported",
        "Offline-only reader",
        "Offline Data Authentication for Online Authorizations supported",
        "Online cryptogram required",
        "CVM required",
        "(Contact Chip) Offline PIN supported",
        "Issuer Update Processing supported",
    ]
    assert TTQ_BITS["ONLINE_CRYPTOGRAM_REQUIRED"] == (1, 0x80)
    assert TTQ_BITS["CVM_REQUIRED"] == (1, 0x40)
    assert TTQ_BITS["CONSUMER_DEVICE_CVM_SUPPORTED"] == (2, 0x40)


# --- CTQ (C-3) ---


def test_ctq() -> None:
    assert explain(0x9F6C, bytes.fromhex("8080")) == [
        "byte 1 bit 8: Online PIN Required",
        "byte 2 bit 8: Consumer Device CVM Performed",
    ]
    # 7E = 0111 1110: b7..b2; 40: byte 2 b7.
    assert set_bits(0x9F6C, bytes.fromhex("7E40")) == [
        "Signature Required",
        "Go Online if Offline Data Authentication Fails and Reader is online capable",
        "Switch Interface if Offline Data Authentication fails and Reader supports contact chip",
        "Go Online if Application Expired",
        "Switch Interface for Cash Transactions",
        "Switch Interface for Cashback Transactions",
        "Card supports Issuer Update Processing at the POS",
    ]
    assert CTQ_BITS["ONLINE_PIN_REQUIRED"] == (0, 0x80)
    assert CTQ_BITS["CONSUMER_DEVICE_CVM_PERFORMED"] == (1, 0x80)


# --- CVM Results (Book 3 §10.5, C3) ---


def test_cvm_results_signature_successful_would_be_unknown() -> None:
    # 1E: signature (paper); 03: if terminal supports the CVM; 00: unknown.
    assert explain(0x9F34, bytes.fromhex("1E0300")) == [
        "byte 1: CVM performed: 1E Signature (paper)",
        "byte 2: CVM condition: 03 If terminal supports the CVM",
        "byte 3: CVM result: 00 Unknown",
    ]


def test_cvm_results_online_pin_with_apply_succeeding() -> None:
    # 42 = 0100 0010: b7 set, code 000010 online PIN; 00 always; 00 unknown.
    assert explain(0x9F34, bytes.fromhex("420000")) == [
        "byte 1: CVM performed: 02 Enciphered PIN verified online",
        "byte 1 bit 7: Apply succeeding CV Rule if this CVM is unsuccessful",
        "byte 2: CVM condition: 00 Always",
        "byte 3: CVM result: 00 Unknown",
    ]


def test_cvm_results_no_cvm_performed_and_failed() -> None:
    assert explain(0x9F34, bytes.fromhex("3F0001")) == [
        "byte 1: CVM performed: 3F No CVM performed",
        "byte 2: CVM condition: 00 Always",
        "byte 3: CVM result: 01 Failed",
    ]
    assert explain(0x9F34, bytes.fromhex("1F0002")) == [
        "byte 1: CVM performed: 1F No CVM required",
        "byte 2: CVM condition: 00 Always",
        "byte 3: CVM result: 02 Successful",
    ]


def test_cvm_results_short_value() -> None:
    assert explain(0x9F34, bytes.fromhex("01")) == [
        "expected 3 bytes, got 1",
        "byte 1: CVM performed: 01 Plaintext PIN verification performed by ICC",
    ]


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x00, "Fail CVM processing"),
        (0x03, "Plaintext PIN verification performed by ICC and signature (paper)"),
        (0x04, "Enciphered PIN verification performed by ICC"),
        (0x05, "Enciphered PIN verification performed by ICC and signature (paper)"),
        (0x06, "RFU"),
        (0x1D, "RFU"),
        (0x20, "Reserved for use by the individual payment systems"),
        (0x2F, "Reserved for use by the individual payment systems"),
        (0x30, "Reserved for use by the issuer"),
        (0x3E, "Reserved for use by the issuer"),
        (0x5E, "Signature (paper)"),  # b7 is not part of the code
    ],
)
def test_cvm_method_names(code: int, name: str) -> None:
    assert cvm_method_name(code) == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x01, "If unattended cash"),
        (0x02, "If not unattended cash and not manual cash and not purchase with cashback"),
        (0x04, "If manual cash"),
        (0x05, "If purchase with cashback"),
        (0x06, "If transaction is in the application currency and is under X value"),
        (0x09, "If transaction is in the application currency and is over Y value"),
        (0x0A, "RFU"),
        (0x80, "Reserved for use by the individual payment systems"),
    ],
)
def test_cvm_condition_names(code: int, name: str) -> None:
    assert cvm_condition_name(code) == name


# --- Terminal Capabilities (Book 4 A2) and the Kernel 2 one-byte views ---


def test_terminal_capabilities() -> None:
    # E0: manual, mag stripe, IC; F8: all five CVMs; C8: SDA, DDA, CDA.
    assert set_bits(0x9F33, bytes.fromhex("E0F8C8")) == [
        "Card Data Input Capability: Manual key entry",
        "Card Data Input Capability: Magnetic stripe",
        "Card Data Input Capability: IC with contacts",
        "CVM Capability: Plaintext PIN for ICC verification",
        "CVM Capability: Enciphered PIN for online verification",
        "CVM Capability: Signature (paper)",
        "CVM Capability: Enciphered PIN for offline verification",
        "CVM Capability: No CVM required",
        "Security Capability: SDA",
        "Security Capability: DDA",
        "Security Capability: CDA",
    ]
    assert explain(0x9F33, bytes.fromhex("000020")) == ["byte 3 bit 6: Security Capability: Card capture"]


def test_kernel_2_capability_bytes() -> None:
    # DF8118 = 60: b7 enciphered PIN online, b6 signature.
    assert explain(0xDF8118, bytes.fromhex("60")) == [
        "byte 1 bit 7: CVM Capability: Enciphered PIN for online verification",
        "byte 1 bit 6: CVM Capability: Signature (paper)",
    ]
    assert set_bits(0xDF8119, bytes.fromhex("08")) == ["CVM Capability: No CVM required"]
    assert set_bits(0xDF8117, bytes.fromhex("00")) == []
    assert set_bits(0xDF811F, bytes.fromhex("08")) == ["Security Capability: CDA"]


# --- Additional Terminal Capabilities (Book 4 A3) ---


def test_additional_terminal_capabilities() -> None:
    # F0: cash, goods, services, cashback; 80: cash deposit; F0: four key
    # kinds; A0: print attendant, display attendant; 01: code table 1.
    assert set_bits(0x9F40, bytes.fromhex("F080F0A001")) == [
        "Transaction Type Capability: Cash",
        "Transaction Type Capability: Goods",
        "Transaction Type Capability: Services",
        "Transaction Type Capability: Cashback",
        "Transaction Type Capability: Cash Deposit",
        "Terminal Data Input Capability: Numeric keys",
        "Terminal Data Input Capability: Alphabetic and special characters keys",
        "Terminal Data Input Capability: Command keys",
        "Terminal Data Input Capability: Function keys",
        "Terminal Data Output Capability: Print, attendant",
        "Terminal Data Output Capability: Display, attendant",
        "Terminal Data Output Capability: Code table 1",
    ]
    assert explain(0x9F40, bytes.fromhex("0F00005380")) == [
        "byte 1 bit 4: Transaction Type Capability: Inquiry",
        "byte 1 bit 3: Transaction Type Capability: Transfer",
        "byte 1 bit 2: Transaction Type Capability: Payment",
        "byte 1 bit 1: Transaction Type Capability: Administrative",
        "byte 4 bit 7: Terminal Data Output Capability: Print, cardholder",
        "byte 4 bit 5: Terminal Data Output Capability: Display, cardholder",
        "byte 4 bit 2: Terminal Data Output Capability: Code table 10",
        "byte 4 bit 1: Terminal Data Output Capability: Code table 9",
        "byte 5 bit 8: Terminal Data Output Capability: Code table 8",
    ]


# --- tables and helpers ---


@pytest.mark.parametrize(
    "table", [AIP, AUC, TVR, TSI, TTQ, CTQ, TERMINAL_CAPABILITIES, ADDITIONAL_TERMINAL_CAPABILITIES],
    ids=lambda t: t.title,
)
def test_tables_are_consistent(table: BitTable) -> None:
    positions = [(b.byte, b.mask) for b in table.bits]
    assert len(set(positions)) == len(positions)
    assert len({b.name for b in table.bits}) == len(table.bits)
    for bit in table.bits:
        assert 0 <= bit.byte < table.length
        assert bin(bit.mask).count("1") == 1 and bit.mask <= 0x80
        assert bit.meaning and bit.meaning != "RFU"


def test_set_clear_and_test_a_bit() -> None:
    tvr = bytearray(5)
    set_bit(tvr, TVR_BITS, "FLOOR_LIMIT_EXCEEDED")
    set_bit(tvr, TVR_BITS, "ODA_NOT_PERFORMED")
    set_bit(tvr, TVR_BITS, "ISSUER_AUTHENTICATION_FAILED")
    assert bytes(tvr) == bytes.fromhex("8000008040")
    assert is_set(tvr, TVR_BITS, "FLOOR_LIMIT_EXCEEDED")
    assert not is_set(tvr, TVR_BITS, "SDA_FAILED")
    clear_bit(tvr, TVR_BITS, "ODA_NOT_PERFORMED")
    assert bytes(tvr) == bytes.fromhex("0000008040")
    assert not is_set(b"", TVR_BITS, "ODA_NOT_PERFORMED")  # too short: not set
    with pytest.raises(KeyError):
        set_bit(tvr, TVR_BITS, "NO_SUCH_BIT")


def test_ttq_built_bit_by_bit() -> None:
    ttq = bytearray(4)
    for name in ("EMV_MODE_SUPPORTED", "ONLINE_PIN_SUPPORTED", "SIGNATURE_SUPPORTED",
                 "CONSUMER_DEVICE_CVM_SUPPORTED"):
        set_bit(ttq, TTQ_BITS, name)
    assert bytes(ttq) == bytes.fromhex("26004000")
