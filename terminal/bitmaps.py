"""What each bit of the EMV bit-mapped data elements means.

References: EMV 4.3 Book 3 Annex C (C1 AIP, C2 AUC, C3 CVM codes, C5 TVR,
C6 TSI) and §10.5 (CVM Results); EMV 4.3 Book 4 Annex A (A2 Terminal
Capabilities, A3 Additional Terminal Capabilities); EMV Contactless Book A
and Book C-3 Annex A (TTQ, CTQ); Book C-2 Annex A (the Kernel 2 bits of AIP
and TVR, and the 1-byte capability tags DF8117, DF8118, DF8119, DF811F).

Each data element has one table: a tuple of :class:`Bit` (0-based byte
index, one-bit mask, symbolic name, spec text). Everything else is derived
from the tables: the ``*_BITS`` name maps that the kernel uses to set and
test bits, :func:`explain` for people and :func:`set_bits` for programs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

RFU: Final = "RFU"


@dataclass(frozen=True)
class Bit:
    """One flag bit: ``value[byte] & mask`` set means ``meaning``."""

    byte: int  # 0-based
    mask: int  # exactly one bit
    name: str
    meaning: str

    @property
    def position(self) -> str:
        """The spec's way to say where the bit is: ``"byte 1 bit 8"``."""
        return f"byte {self.byte + 1} bit {self.mask.bit_length()}"


@dataclass(frozen=True)
class Finding:
    """One line of an explanation: where in the value, and what it means."""

    where: str
    meaning: str
    known: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.meaning}"


class Decoder(Protocol):
    """Turns the value of one data element into findings."""

    @property
    def length(self) -> int: ...

    def findings(self, value: bytes) -> list[Finding]: ...


@dataclass(frozen=True)
class BitTable:
    """A bit-mapped data element: its length and the meaning of its flag bits."""

    title: str
    length: int
    bits: tuple[Bit, ...]

    def findings(self, value: bytes) -> list[Finding]:
        # One finding per set bit, in byte then bit order; set bits the
        # table does not name are reported as RFU.
        known = {(b.byte, b.mask): b for b in self.bits}
        out: list[Finding] = []
        for index, byte in enumerate(value[: self.length]):
            for shift in range(7, -1, -1):
                mask = 1 << shift
                if not byte & mask:
                    continue
                bit = known.get((index, mask))
                if bit is None:
                    out.append(Finding(f"byte {index + 1} bit {shift + 1}", RFU, known=False))
                else:
                    out.append(Finding(bit.position, bit.meaning))
        return out

    def names(self) -> dict[str, tuple[int, int]]:
        return {b.name: (b.byte, b.mask) for b in self.bits}


def _bits(*rows: tuple[int, int, str, str]) -> tuple[Bit, ...]:
    # Rows as the spec prints them: (byte 1-based, bit 8..1, name, text).
    return tuple(Bit(byte - 1, 1 << (bit - 1), name, text) for byte, bit, name, text in rows)


# --- Application Interchange Profile, 82 (Book 3 C1; C-2, C-3 Annex A) ---
AIP: Final = BitTable("Application Interchange Profile", 2, _bits(
    (1, 7, "SDA_SUPPORTED", "SDA supported"),
    (1, 6, "DDA_SUPPORTED", "DDA supported"),
    (1, 5, "CARDHOLDER_VERIFICATION_SUPPORTED", "Cardholder verification is supported"),
    (1, 4, "TERMINAL_RISK_MANAGEMENT", "Terminal risk management is to be performed"),
    (1, 3, "ISSUER_AUTHENTICATION_SUPPORTED", "Issuer authentication is supported"),
    (1, 2, "ON_DEVICE_CVM_SUPPORTED", "On device cardholder verification is supported (C-2)"),
    (1, 1, "CDA_SUPPORTED", "CDA supported"),
    (2, 8, "EMV_MODE_SUPPORTED", "EMV mode is supported (C-2) / MSD is supported (C-3)"),
    (2, 1, "RELAY_RESISTANCE_SUPPORTED", "Relay resistance protocol is supported (C-2)"),
))

# --- Application Usage Control, 9F07 (Book 3 C2) ---
AUC: Final = BitTable("Application Usage Control", 2, _bits(
    (1, 8, "DOMESTIC_CASH", "Valid for domestic cash transactions"),
    (1, 7, "INTERNATIONAL_CASH", "Valid for international cash transactions"),
    (1, 6, "DOMESTIC_GOODS", "Valid for domestic goods"),
    (1, 5, "INTERNATIONAL_GOODS", "Valid for international goods"),
    (1, 4, "DOMESTIC_SERVICES", "Valid for domestic services"),
    (1, 3, "INTERNATIONAL_SERVICES", "Valid for international services"),
    (1, 2, "ATMS", "Valid at ATMs"),
    (1, 1, "NON_ATM_TERMINALS", "Valid at terminals other than ATMs"),
    (2, 8, "DOMESTIC_CASHBACK", "Domestic cashback allowed"),
    (2, 7, "INTERNATIONAL_CASHBACK", "International cashback allowed"),
))

# --- Terminal Verification Results, 95 (Book 3 C5; byte 5 b4..b1: C-2) ---
# The same layout serves the Issuer and Terminal Action Codes.
TVR: Final = BitTable("Terminal Verification Results", 5, _bits(
    (1, 8, "ODA_NOT_PERFORMED", "Offline data authentication was not performed"),
    (1, 7, "SDA_FAILED", "SDA failed"),
    (1, 6, "ICC_DATA_MISSING", "ICC data missing"),
    (1, 5, "EXCEPTION_FILE", "Card appears on terminal exception file"),
    (1, 4, "DDA_FAILED", "DDA failed"),
    (1, 3, "CDA_FAILED", "CDA failed"),
    (1, 2, "SDA_SELECTED", "SDA selected"),
    (2, 8, "ICC_AND_TERMINAL_VERSIONS_DIFFER", "ICC and terminal have different application versions"),
    (2, 7, "EXPIRED_APPLICATION", "Expired application"),
    (2, 6, "APPLICATION_NOT_YET_EFFECTIVE", "Application not yet effective"),
    (2, 5, "SERVICE_NOT_ALLOWED", "Requested service not allowed for card product"),
    (2, 4, "NEW_CARD", "New card"),
    (3, 8, "CARDHOLDER_VERIFICATION_NOT_SUCCESSFUL", "Cardholder verification was not successful"),
    (3, 7, "UNRECOGNISED_CVM", "Unrecognised CVM"),
    (3, 6, "PIN_TRY_LIMIT_EXCEEDED", "PIN Try Limit exceeded"),
    (3, 5, "PIN_PAD_NOT_PRESENT", "PIN entry required and PIN pad not present or not working"),
    (3, 4, "PIN_NOT_ENTERED", "PIN entry required, PIN pad present, but PIN was not entered"),
    (3, 3, "ONLINE_PIN_ENTERED", "Online PIN entered"),
    (4, 8, "FLOOR_LIMIT_EXCEEDED", "Transaction exceeds floor limit"),
    (4, 7, "LOWER_CONSECUTIVE_OFFLINE_LIMIT_EXCEEDED", "Lower consecutive offline limit exceeded"),
    (4, 6, "UPPER_CONSECUTIVE_OFFLINE_LIMIT_EXCEEDED", "Upper consecutive offline limit exceeded"),
    (4, 5, "RANDOMLY_SELECTED_ONLINE", "Transaction selected randomly for online processing"),
    (4, 4, "MERCHANT_FORCED_ONLINE", "Merchant forced transaction online"),
    (5, 8, "DEFAULT_TDOL_USED", "Default TDOL used"),
    (5, 7, "ISSUER_AUTHENTICATION_FAILED", "Issuer authentication failed"),
    (5, 6, "SCRIPT_FAILED_BEFORE_FINAL_GENAC", "Script processing failed before final GENERATE AC"),
    (5, 5, "SCRIPT_FAILED_AFTER_FINAL_GENAC", "Script processing failed after final GENERATE AC"),
    (5, 4, "RELAY_RESISTANCE_THRESHOLD_EXCEEDED", "Relay resistance threshold exceeded (C-2)"),
    (5, 3, "RELAY_RESISTANCE_TIME_LIMITS_EXCEEDED", "Relay resistance time limits exceeded (C-2)"),
    # C-2 codes b2-b1 as one field: 00 RRP not supported, 01 not performed,
    # 10 performed, 11 RFU. Each defined value has exactly one bit set.
    (5, 2, "RELAY_RESISTANCE_PERFORMED", "Relay resistance protocol performed (C-2)"),
    (5, 1, "RELAY_RESISTANCE_NOT_PERFORMED", "Relay resistance protocol not performed (C-2)"),
))

# --- Transaction Status Information, 9B (Book 3 C6) ---
TSI: Final = BitTable("Transaction Status Information", 2, _bits(
    (1, 8, "ODA_PERFORMED", "Offline data authentication was performed"),
    (1, 7, "CARDHOLDER_VERIFICATION_PERFORMED", "Cardholder verification was performed"),
    (1, 6, "CARD_RISK_MANAGEMENT_PERFORMED", "Card risk management was performed"),
    (1, 5, "ISSUER_AUTHENTICATION_PERFORMED", "Issuer authentication was performed"),
    (1, 4, "TERMINAL_RISK_MANAGEMENT_PERFORMED", "Terminal risk management was performed"),
    (1, 3, "SCRIPT_PROCESSING_PERFORMED", "Script processing was performed"),
))

# --- Terminal Transaction Qualifiers, 9F66 (Book A; C-3 Annex A) ---
TTQ: Final = BitTable("Terminal Transaction Qualifiers", 4, _bits(
    (1, 8, "MAG_STRIPE_MODE_SUPPORTED", "Mag-stripe mode supported"),
    (1, 6, "EMV_MODE_SUPPORTED", "EMV mode supported"),
    (1, 5, "EMV_CONTACT_CHIP_SUPPORTED", "EMV contact chip supported"),
    (1, 4, "OFFLINE_ONLY_READER", "Offline-only reader"),
    (1, 3, "ONLINE_PIN_SUPPORTED", "Online PIN supported"),
    (1, 2, "SIGNATURE_SUPPORTED", "Signature supported"),
    (1, 1, "ODA_FOR_ONLINE_AUTHORISATIONS_SUPPORTED",
     "Offline Data Authentication for Online Authorizations supported"),
    (2, 8, "ONLINE_CRYPTOGRAM_REQUIRED", "Online cryptogram required"),
    (2, 7, "CVM_REQUIRED", "CVM required"),
    (2, 6, "CONTACT_CHIP_OFFLINE_PIN_SUPPORTED", "(Contact Chip) Offline PIN supported"),
    (3, 8, "ISSUER_UPDATE_PROCESSING_SUPPORTED", "Issuer Update Processing supported"),
    (3, 7, "CONSUMER_DEVICE_CVM_SUPPORTED", "Consumer Device CVM supported"),
))

# --- Card Transaction Qualifiers, 9F6C (C-3 Annex A) ---
CTQ: Final = BitTable("Card Transaction Qualifiers", 2, _bits(
    (1, 8, "ONLINE_PIN_REQUIRED", "Online PIN Required"),
    (1, 7, "SIGNATURE_REQUIRED", "Signature Required"),
    (1, 6, "GO_ONLINE_IF_ODA_FAILS",
     "Go Online if Offline Data Authentication Fails and Reader is online capable"),
    (1, 5, "SWITCH_INTERFACE_IF_ODA_FAILS",
     "Switch Interface if Offline Data Authentication fails and Reader supports contact chip"),
    (1, 4, "GO_ONLINE_IF_APPLICATION_EXPIRED", "Go Online if Application Expired"),
    (1, 3, "SWITCH_INTERFACE_FOR_CASH", "Switch Interface for Cash Transactions"),
    (1, 2, "SWITCH_INTERFACE_FOR_CASHBACK", "Switch Interface for Cashback Transactions"),
    (1, 1, "NOT_VALID_FOR_CONTACTLESS_ATM", "Not valid for contactless ATM transactions"),
    (2, 8, "CONSUMER_DEVICE_CVM_PERFORMED", "Consumer Device CVM Performed"),
    (2, 7, "ISSUER_UPDATE_PROCESSING_SUPPORTED", "Card supports Issuer Update Processing at the POS"),
))

# --- Terminal Capabilities, 9F33 (Book 4 A2) ---
TERMINAL_CAPABILITIES: Final = BitTable("Terminal Capabilities", 3, _bits(
    (1, 8, "MANUAL_KEY_ENTRY", "Card Data Input Capability: Manual key entry"),
    (1, 7, "MAGNETIC_STRIPE", "Card Data Input Capability: Magnetic stripe"),
    (1, 6, "IC_WITH_CONTACTS", "Card Data Input Capability: IC with contacts"),
    (2, 8, "PLAINTEXT_PIN_FOR_ICC", "CVM Capability: Plaintext PIN for ICC verification"),
    (2, 7, "ENCIPHERED_PIN_ONLINE", "CVM Capability: Enciphered PIN for online verification"),
    (2, 6, "SIGNATURE", "CVM Capability: Signature (paper)"),
    (2, 5, "ENCIPHERED_PIN_OFFLINE", "CVM Capability: Enciphered PIN for offline verification"),
    (2, 4, "NO_CVM_REQUIRED", "CVM Capability: No CVM required"),
    (3, 8, "SDA", "Security Capability: SDA"),
    (3, 7, "DDA", "Security Capability: DDA"),
    (3, 6, "CARD_CAPTURE", "Security Capability: Card capture"),
    (3, 4, "CDA", "Security Capability: CDA"),
))

# --- Additional Terminal Capabilities, 9F40 (Book 4 A3) ---
ADDITIONAL_TERMINAL_CAPABILITIES: Final = BitTable("Additional Terminal Capabilities", 5, _bits(
    (1, 8, "CASH", "Transaction Type Capability: Cash"),
    (1, 7, "GOODS", "Transaction Type Capability: Goods"),
    (1, 6, "SERVICES", "Transaction Type Capability: Services"),
    (1, 5, "CASHBACK", "Transaction Type Capability: Cashback"),
    (1, 4, "INQUIRY", "Transaction Type Capability: Inquiry"),
    (1, 3, "TRANSFER", "Transaction Type Capability: Transfer"),
    (1, 2, "PAYMENT", "Transaction Type Capability: Payment"),
    (1, 1, "ADMINISTRATIVE", "Transaction Type Capability: Administrative"),
    (2, 8, "CASH_DEPOSIT", "Transaction Type Capability: Cash Deposit"),
    (3, 8, "NUMERIC_KEYS", "Terminal Data Input Capability: Numeric keys"),
    (3, 7, "ALPHABETIC_AND_SPECIAL_KEYS",
     "Terminal Data Input Capability: Alphabetic and special characters keys"),
    (3, 6, "COMMAND_KEYS", "Terminal Data Input Capability: Command keys"),
    (3, 5, "FUNCTION_KEYS", "Terminal Data Input Capability: Function keys"),
    (4, 8, "PRINT_ATTENDANT", "Terminal Data Output Capability: Print, attendant"),
    (4, 7, "PRINT_CARDHOLDER", "Terminal Data Output Capability: Print, cardholder"),
    (4, 6, "DISPLAY_ATTENDANT", "Terminal Data Output Capability: Display, attendant"),
    (4, 5, "DISPLAY_CARDHOLDER", "Terminal Data Output Capability: Display, cardholder"),
    (4, 2, "CODE_TABLE_10", "Terminal Data Output Capability: Code table 10"),
    (4, 1, "CODE_TABLE_9", "Terminal Data Output Capability: Code table 9"),
    *((5, n, f"CODE_TABLE_{n}", f"Terminal Data Output Capability: Code table {n}") for n in range(8, 0, -1)),
))


# --- Cardholder Verification Method codes (Book 3 C3 and §10.5) ---

CVM_CODES: Final[Mapping[int, str]] = {
    0x00: "Fail CVM processing",
    0x01: "Plaintext PIN verification performed by ICC",
    0x02: "Enciphered PIN verified online",
    0x03: "Plaintext PIN verification performed by ICC and signature (paper)",
    0x04: "Enciphered PIN verification performed by ICC",
    0x05: "Enciphered PIN verification performed by ICC and signature (paper)",
    0x1E: "Signature (paper)",
    0x1F: "No CVM required",
}

CVM_CONDITIONS: Final[Mapping[int, str]] = {
    0x00: "Always",
    0x01: "If unattended cash",
    0x02: "If not unattended cash and not manual cash and not purchase with cashback",
    0x03: "If terminal supports the CVM",
    0x04: "If manual cash",
    0x05: "If purchase with cashback",
    0x06: "If transaction is in the application currency and is under X value",
    0x07: "If transaction is in the application currency and is over X value",
    0x08: "If transaction is in the application currency and is under Y value",
    0x09: "If transaction is in the application currency and is over Y value",
}

CVM_RESULTS: Final[Mapping[int, str]] = {
    0x00: "Unknown",
    0x01: "Failed",
    0x02: "Successful",
}

# CVM byte b7 (Book 3 C3): move on to the next rule when this CVM fails.
CVM_APPLY_SUCCEEDING: Final = 0x40
CVM_CODE_MASK: Final = 0x3F
# CVM Results byte 1 when no CVM was performed (Book 3 §10.5).
CVM_NONE_PERFORMED: Final = 0x3F


def cvm_method_name(code: int) -> str:
    """The name of a 6-bit CVM code (``code & 0x3F``) per Book 3 Table 39."""
    code &= CVM_CODE_MASK
    if code in CVM_CODES:
        return CVM_CODES[code]
    if code <= 0x1D:
        return "RFU"
    if code <= 0x2F:
        return "Reserved for use by the individual payment systems"
    if code <= 0x3E:
        return "Reserved for use by the issuer"
    return "Not available for use"


def cvm_condition_name(code: int) -> str:
    """The name of a CVM condition code per Book 3 Table 40."""
    if code in CVM_CONDITIONS:
        return CVM_CONDITIONS[code]
    if code <= 0x7F:
        return "RFU"
    return "Reserved for use by the individual payment systems"


@dataclass(frozen=True)
class CvmResultsDecoder:
    """CVM Results, 9F34: method performed, condition, result (Book 3 §10.5)."""

    length: int = 3

    def findings(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        if len(value) >= 1:
            method = value[0]
            code = method & CVM_CODE_MASK
            if code == CVM_NONE_PERFORMED:
                out.append(Finding("byte 1", "CVM performed: 3F No CVM performed"))
            else:
                out.append(Finding("byte 1", f"CVM performed: {code:02X} {cvm_method_name(code)}"))
            if method & CVM_APPLY_SUCCEEDING:
                out.append(Finding("byte 1 bit 7", "Apply succeeding CV Rule if this CVM is unsuccessful"))
            if method & 0x80:
                out.append(Finding("byte 1 bit 8", RFU, known=False))
        if len(value) >= 2:
            cond = value[1]
            out.append(Finding("byte 2", f"CVM condition: {cond:02X} {cvm_condition_name(cond)}"))
        if len(value) >= 3:
            result = value[2]
            out.append(Finding("byte 3", f"CVM result: {result:02X} {CVM_RESULTS.get(result, RFU)}"))
        return out


CVM_RESULTS_DECODER: Final = CvmResultsDecoder()


def _slice(title: str, table: BitTable, byte: int) -> BitTable:
    # One byte of a larger table as a 1-byte element (C-2 splits Terminal
    # Capabilities into DF8117, DF8118/DF8119 and DF811F).
    bits = tuple(Bit(0, b.mask, b.name, b.meaning) for b in table.bits if b.byte == byte)
    return BitTable(title, 1, bits)


DECODERS: Final[dict[int, Decoder]] = {
    0x82: AIP,
    0x95: TVR,
    0x9B: TSI,
    0x9F07: AUC,
    0x9F0D: TVR,  # Issuer Action Code - Default
    0x9F0E: TVR,  # Issuer Action Code - Denial
    0x9F0F: TVR,  # Issuer Action Code - Online
    0x9F33: TERMINAL_CAPABILITIES,
    0x9F34: CVM_RESULTS_DECODER,
    0x9F40: ADDITIONAL_TERMINAL_CAPABILITIES,
    0x9F66: TTQ,
    0x9F6C: CTQ,
    0xDF8117: _slice("Card Data Input Capability", TERMINAL_CAPABILITIES, 0),
    0xDF8118: _slice("CVM Capability - CVM Required", TERMINAL_CAPABILITIES, 1),
    0xDF8119: _slice("CVM Capability - No CVM Required", TERMINAL_CAPABILITIES, 1),
    0xDF811F: _slice("Security Capability", TERMINAL_CAPABILITIES, 2),
    0xDF8120: TVR,  # Terminal Action Code - Default
    0xDF8121: TVR,  # Terminal Action Code - Denial
    0xDF8122: TVR,  # Terminal Action Code - Online
}


def explain(tag: int, value: bytes) -> list[str]:
    """One line per set bit (or field) of ``value``, for a person.

    Lines read ``"byte 1 bit 8: Offline data authentication was not
    performed"``; set bits the spec leaves RFU say so. A value of the wrong
    length gets a first line ``"expected N bytes, got M"`` and the bytes
    present are still explained. Tags without a table give ``[]``.
    """
    decoder = DECODERS.get(tag)
    if decoder is None:
        return []
    lines: list[str] = []
    if len(value) != decoder.length:
        lines.append(f"expected {decoder.length} bytes, got {len(value)}")
    lines.extend(str(f) for f in decoder.findings(bytes(value)))
    return lines


def set_bits(tag: int, value: bytes) -> list[str]:
    """The meanings of the set bits of ``value``, without positions or RFU bits."""
    decoder = DECODERS.get(tag)
    if decoder is None:
        return []
    return [f.meaning for f in decoder.findings(bytes(value)) if f.known]


# --- Symbolic names for the kernel: name -> (0-based byte, mask) ---

BitNames = Mapping[str, tuple[int, int]]

AIP_BITS: Final[BitNames] = {**AIP.names(), "MSD_SUPPORTED": (1, 0x80)}
AUC_BITS: Final[BitNames] = AUC.names()
TVR_BITS: Final[BitNames] = TVR.names()
TSI_BITS: Final[BitNames] = TSI.names()
TTQ_BITS: Final[BitNames] = TTQ.names()
CTQ_BITS: Final[BitNames] = CTQ.names()
TERMINAL_CAPABILITIES_BITS: Final[BitNames] = TERMINAL_CAPABILITIES.names()
ADDITIONAL_TERMINAL_CAPABILITIES_BITS: Final[BitNames] = ADDITIONAL_TERMINAL_CAPABILITIES.names()


def set_bit(buf: bytearray, bits_table: BitNames, name: str) -> None:
    """Set the bit called ``name`` in ``buf`` (KeyError for an unknown name)."""
    byte, mask = bits_table[name]
    buf[byte] |= mask


def clear_bit(buf: bytearray, bits_table: BitNames, name: str) -> None:
    """Clear the bit called ``name`` in ``buf`` (KeyError for an unknown name)."""
    byte, mask = bits_table[name]
    buf[byte] &= ~mask & 0xFF


def is_set(value: bytes | bytearray, bits_table: BitNames, name: str) -> bool:
    """True when the bit called ``name`` is set; False when ``value`` is too short."""
    byte, mask = bits_table[name]
    return byte < len(value) and bool(value[byte] & mask)
