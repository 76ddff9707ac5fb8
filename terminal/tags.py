"""The EMV data element dictionary (EMV 4.3 Book 3 Annex A; EMV Contactless Book C-2, C-3).

Name, format, source and length of every tag the terminal meets.

References: EMV 4.3 Book 3 Annex A (Table 33, the data elements dictionary);
EMV 4.3 Book 4 Annex A (terminal data); EMV Contactless Book B (Entry
Point), Book C-2 (Kernel 2, Mastercard), Book C-3 (Kernel 3, Visa), Book C-4
(Kernel 4, American Express); EMV Payment Tokenisation (9F19, 9F24, 9F25).

Formats (Book 3 §4.3): ``n`` numeric BCD, right justified with leading zeros;
``cn`` compressed numeric, left justified and padded with trailing ``F``;
``an`` alphanumeric; ``ans`` alphanumeric and special characters; ``b``
binary, also used here for constructed templates and for the spec's
``var.`` format. The spec's ``a`` (alphabetic, 5F55/5F56) is kept as ``an``.

Lengths are in bytes; ``None`` means "variable" (or "not fixed by the spec").

Some tags in the 9F50..9F7F range mean different things in different
contactless kernels. Their name gives the most widely used meaning first and
then the others with the kernel that defines them (``"...; C-2: ..."``), and
their format is ``b`` (the hex of a BCD value reads as its digits anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Format = Literal["n", "cn", "an", "ans", "b"]
Source = Literal["card", "terminal", "issuer"]

VALID_FORMATS: Final = frozenset({"n", "cn", "an", "ans", "b"})
VALID_SOURCES: Final = frozenset({"card", "terminal", "issuer"})

UNKNOWN_NAME: Final = "Unknown tag"


@dataclass(frozen=True)
class TagInfo:
    """One data element of the dictionary."""

    tag: int
    name: str
    fmt: str
    source: str
    min_len: int | None = None
    max_len: int | None = None


# (tag, name, fmt, source, min_len, max_len), grouped by the spec that
# defines them, each group in tag order.
_Row = tuple[int, str, Format, Source, int | None, int | None]

# --- EMV 4.3 Book 3 Annex A, Table 33 (and the tags added by bulletins) ---
_BOOK3: Final[tuple[_Row, ...]] = (
    (0x42, "Issuer Identification Number (IIN)", "n", "card", 3, 3),
    (0x4F, "Application Identifier (AID) - card", "b", "card", 5, 16),
    (0x50, "Application Label", "ans", "card", 1, 16),
    (0x57, "Track 2 Equivalent Data", "b", "card", None, 19),
    (0x5A, "Application Primary Account Number (PAN)", "cn", "card", None, 10),
    (0x5F20, "Cardholder Name", "ans", "card", 2, 26),
    (0x5F24, "Application Expiration Date", "n", "card", 3, 3),
    (0x5F25, "Application Effective Date", "n", "card", 3, 3),
    (0x5F28, "Issuer Country Code", "n", "card", 2, 2),
    (0x5F2A, "Transaction Currency Code", "n", "terminal", 2, 2),
    (0x5F2D, "Language Preference", "an", "card", 2, 8),
    (0x5F30, "Service Code", "n", "card", 2, 2),
    (0x5F34, "Application Primary Account Number (PAN) Sequence Number", "n", "card", 1, 1),
    (0x5F36, "Transaction Currency Exponent", "n", "terminal", 1, 1),
    (0x5F50, "Issuer URL", "ans", "card", None, None),
    (0x5F53, "International Bank Account Number (IBAN)", "an", "card", None, 34),
    (0x5F54, "Bank Identifier Code (BIC)", "an", "card", 8, 11),
    (0x5F55, "Issuer Country Code (alpha2 format)", "an", "card", 2, 2),
    (0x5F56, "Issuer Country Code (alpha3 format)", "an", "card", 3, 3),
    (0x5F57, "Account Type", "n", "terminal", 1, 1),
    (0x61, "Application Template", "b", "card", None, 252),
    (0x6F, "File Control Information (FCI) Template", "b", "card", None, 252),
    (0x70, "READ RECORD Response Message Template", "b", "card", None, 252),
    (0x71, "Issuer Script Template 1", "b", "issuer", None, None),
    (0x72, "Issuer Script Template 2", "b", "issuer", None, None),
    (0x73, "Directory Discretionary Template", "b", "card", None, 252),
    (0x77, "Response Message Template Format 2", "b", "card", None, None),
    (0x80, "Response Message Template Format 1", "b", "card", None, None),
    (0x81, "Amount, Authorised (Binary)", "b", "terminal", 4, 4),
    (0x82, "Application Interchange Profile", "b", "card", 2, 2),
    (0x83, "Command Template", "b", "terminal", None, None),
    (0x84, "Dedicated File (DF) Name", "b", "card", 5, 16),
    (0x86, "Issuer Script Command", "b", "issuer", None, 261),
    (0x87, "Application Priority Indicator", "b", "card", 1, 1),
    (0x88, "Short File Identifier (SFI)", "b", "card", 1, 1),
    # Book 3 leaves the format of 89 to the payment systems; M/Chip and
    # VCPS both use ans 6.
    (0x89, "Authorisation Code", "ans", "issuer", 6, 6),
    (0x8A, "Authorisation Response Code", "an", "issuer", 2, 2),
    (0x8C, "Card Risk Management Data Object List 1 (CDOL1)", "b", "card", None, 252),
    (0x8D, "Card Risk Management Data Object List 2 (CDOL2)", "b", "card", None, 252),
    (0x8E, "Cardholder Verification Method (CVM) List", "b", "card", 10, 252),
    (0x8F, "Certification Authority Public Key Index (card)", "b", "card", 1, 1),
    (0x90, "Issuer Public Key Certificate", "b", "card", None, None),
    (0x91, "Issuer Authentication Data", "b", "issuer", 8, 16),
    (0x92, "Issuer Public Key Remainder", "b", "card", None, None),
    (0x93, "Signed Static Application Data", "b", "card", None, None),
    (0x94, "Application File Locator (AFL)", "b", "card", None, 252),
    (0x95, "Terminal Verification Results", "b", "terminal", 5, 5),
    (0x97, "Transaction Certificate Data Object List (TDOL)", "b", "card", None, 252),
    (0x98, "Transaction Certificate (TC) Hash Value", "b", "terminal", 20, 20),
    (0x99, "Transaction Personal Identification Number (PIN) Data", "b", "terminal", None, None),
    (0x9A, "Transaction Date", "n", "terminal", 3, 3),
    (0x9B, "Transaction Status Information", "b", "terminal", 2, 2),
    (0x9C, "Transaction Type", "n", "terminal", 1, 1),
    (0x9D, "Directory Definition File (DDF) Name", "b", "card", 5, 16),
    (0x9F01, "Acquirer Identifier", "n", "terminal", 6, 6),
    (0x9F02, "Amount, Authorised (Numeric)", "n", "terminal", 6, 6),
    (0x9F03, "Amount, Other (Numeric)", "n", "terminal", 6, 6),
    (0x9F04, "Amount, Other (Binary)", "b", "terminal", 4, 4),
    (0x9F05, "Application Discretionary Data", "b", "card", 1, 32),
    (0x9F06, "Application Identifier (AID) - terminal", "b", "terminal", 5, 16),
    (0x9F07, "Application Usage Control", "b", "card", 2, 2),
    (0x9F08, "Application Version Number (card)", "b", "card", 2, 2),
    (0x9F09, "Application Version Number (terminal)", "b", "terminal", 2, 2),
    (0x9F0A, "Application Selection Registered Proprietary Data (ASRPD)", "b", "card", None, None),
    (0x9F0B, "Cardholder Name Extended", "ans", "card", 27, 45),
    (0x9F0C, "Issuer Identification Number Extended (IINE)", "n", "card", 3, 4),
    (0x9F0D, "Issuer Action Code - Default", "b", "card", 5, 5),
    (0x9F0E, "Issuer Action Code - Denial", "b", "card", 5, 5),
    (0x9F0F, "Issuer Action Code - Online", "b", "card", 5, 5),
    (0x9F10, "Issuer Application Data", "b", "card", None, 32),
    (0x9F11, "Issuer Code Table Index", "n", "card", 1, 1),
    (0x9F12, "Application Preferred Name", "ans", "card", 1, 16),
    (0x9F13, "Last Online Application Transaction Counter (ATC) Register", "b", "card", 2, 2),
    (0x9F14, "Lower Consecutive Offline Limit", "b", "card", 1, 1),
    (0x9F15, "Merchant Category Code", "n", "terminal", 2, 2),
    (0x9F16, "Merchant Identifier", "ans", "terminal", 15, 15),
    (0x9F17, "Personal Identification Number (PIN) Try Counter", "b", "card", 1, 1),
    (0x9F18, "Issuer Script Identifier", "b", "issuer", 4, 4),
    (0x9F1A, "Terminal Country Code", "n", "terminal", 2, 2),
    (0x9F1B, "Terminal Floor Limit", "b", "terminal", 4, 4),
    (0x9F1C, "Terminal Identification", "an", "terminal", 8, 8),
    (0x9F1D, "Terminal Risk Management Data", "b", "terminal", 1, 8),
    (0x9F1E, "Interface Device (IFD) Serial Number", "an", "terminal", 8, 8),
    (0x9F1F, "Track 1 Discretionary Data", "ans", "card", None, None),
    (0x9F20, "Track 2 Discretionary Data", "cn", "card", None, None),
    (0x9F21, "Transaction Time", "n", "terminal", 3, 3),
    (0x9F22, "Certification Authority Public Key Index (terminal)", "b", "terminal", 1, 1),
    (0x9F23, "Upper Consecutive Offline Limit", "b", "card", 1, 1),
    (0x9F26, "Application Cryptogram", "b", "card", 8, 8),
    (0x9F27, "Cryptogram Information Data", "b", "card", 1, 1),
    (0x9F2D, "ICC PIN Encipherment Public Key Certificate", "b", "card", None, None),
    (0x9F2E, "ICC PIN Encipherment Public Key Exponent", "b", "card", 1, 3),
    (0x9F2F, "ICC PIN Encipherment Public Key Remainder", "b", "card", None, None),
    (0x9F32, "Issuer Public Key Exponent", "b", "card", 1, 3),
    (0x9F33, "Terminal Capabilities", "b", "terminal", 3, 3),
    (0x9F34, "Cardholder Verification Method (CVM) Results", "b", "terminal", 3, 3),
    (0x9F35, "Terminal Type", "n", "terminal", 1, 1),
    (0x9F36, "Application Transaction Counter (ATC)", "b", "card", 2, 2),
    (0x9F37, "Unpredictable Number", "b", "terminal", 4, 4),
    (0x9F38, "Processing Options Data Object List (PDOL)", "b", "card", None, None),
    (0x9F39, "Point-of-Service (POS) Entry Mode", "n", "terminal", 1, 1),
    (0x9F3A, "Amount, Reference Currency", "b", "terminal", 4, 4),
    (0x9F3B, "Application Reference Currency", "n", "card", 2, 8),
    (0x9F3C, "Transaction Reference Currency Code", "n", "terminal", 2, 2),
    (0x9F3D, "Transaction Reference Currency Exponent", "n", "terminal", 1, 1),
    (0x9F40, "Additional Terminal Capabilities", "b", "terminal", 5, 5),
    (0x9F41, "Transaction Sequence Counter", "n", "terminal", 2, 4),
    (0x9F42, "Application Currency Code", "n", "card", 2, 2),
    (0x9F43, "Application Reference Currency Exponent", "n", "card", 1, 4),
    (0x9F44, "Application Currency Exponent", "n", "card", 1, 1),
    (0x9F45, "Data Authentication Code", "b", "card", 2, 2),
    (0x9F46, "ICC Public Key Certificate", "b", "card", None, None),
    (0x9F47, "ICC Public Key Exponent", "b", "card", 1, 3),
    (0x9F48, "ICC Public Key Remainder", "b", "card", None, None),
    (0x9F49, "Dynamic Data Authentication Data Object List (DDOL)", "b", "card", None, 252),
    (0x9F4A, "Static Data Authentication Tag List", "b", "card", None, None),
    (0x9F4B, "Signed Dynamic Application Data", "b", "card", None, None),
    (0x9F4C, "ICC Dynamic Number", "b", "card", 2, 8),
    (0x9F4D, "Log Entry", "b", "card", 2, 2),
    (0x9F4E, "Merchant Name and Location", "ans", "terminal", None, None),
    (0x9F4F, "Log Format", "b", "card", None, None),
    (0xA5, "File Control Information (FCI) Proprietary Template", "b", "card", None, None),
    (0xBF0C, "File Control Information (FCI) Issuer Discretionary Data", "b", "card", None, 222),
)

# --- EMV Payment Tokenisation data objects ---
_TOKENISATION: Final[tuple[_Row, ...]] = (
    (0x9F19, "Token Requestor ID", "n", "card", 6, 6),
    (0x9F24, "Payment Account Reference (PAR)", "an", "card", 29, 29),
    (0x9F25, "Last 4 Digits of PAN", "n", "card", 2, 2),
)

# --- EMV Contactless Book B (Entry Point) ---
_BOOK_B: Final[tuple[_Row, ...]] = (
    (0x9F29, "Extended Selection", "b", "card", None, None),
    (0x9F2A, "Kernel Identifier", "b", "card", 1, 8),
)

# --- Contactless kernels, 9F50..9F7F and the other short tags ---
# Where kernels disagree, the name lists each meaning with its kernel.
_CONTACTLESS: Final[tuple[_Row, ...]] = (
    (0x56, "Track 1 Data", "ans", "card", None, 76),
    (0x9F50, "Offline Accumulator Balance", "n", "card", 6, 6),
    (0x9F51, "DRDOL", "b", "card", None, None),
    (0x9F53, "Transaction Category Code", "an", "terminal", 1, 1),
    (0x9F54, "DS ODS Card", "b", "card", None, 160),
    (0x9F5A, "Application Program Identifier (Program ID)", "b", "card", 1, 16),
    (0x9F5B, "Issuer Script Results (C-3); C-2: DSDOL", "b", "card", None, None),
    (0x9F5C, "DS Requested Operator ID", "b", "terminal", 8, 8),
    (0x9F5D, "Available Offline Spending Amount (AOSA) (C-3); C-2: Application Capabilities Information",
     "b", "card", 3, 6),
    (0x9F5E, "DS ID", "b", "card", 8, 11),
    (0x9F5F, "DS Slot Availability", "b", "card", 1, 1),
    (0x9F60, "CVC3 (Track1)", "b", "card", 2, 2),
    (0x9F61, "CVC3 (Track2)", "b", "card", 2, 2),
    (0x9F62, "Track 1 Bit Map for CVC3 (PCVC3(Track1))", "b", "card", 6, 6),
    (0x9F63, "Track 1 Bit Map for UN and ATC (PUNATC(Track1))", "b", "card", 6, 6),
    (0x9F64, "Track 1 Number of ATC Digits (NATC(Track1))", "b", "card", 1, 1),
    (0x9F65, "Track 2 Bit Map for CVC3 (PCVC3(Track2))", "b", "card", 2, 2),
    (0x9F66, "Terminal Transaction Qualifiers (TTQ); C-2: Track 2 Bit Map for UN and ATC (PUNATC(Track2))",
     "b", "terminal", 2, 4),
    (0x9F67, "Track 2 Number of ATC Digits (NATC(Track2))", "b", "card", 1, 1),
    (0x9F69, "Card Authentication Related Data (C-3); C-2: UDOL", "b", "card", None, None),
    (0x9F6A, "Unpredictable Number (Numeric)", "n", "terminal", 4, 4),
    (0x9F6B, "Track 2 Data", "b", "card", None, 19),
    (0x9F6C, "Card Transaction Qualifiers (CTQ) (C-3); C-2: Mag-stripe Application Version Number (Card)",
     "b", "card", 2, 2),
    (0x9F6D, "Mag-stripe Application Version Number (Reader) (C-2); C-4: Contactless Reader Capabilities",
     "b", "terminal", 1, 2),
    (0x9F6E, "Form Factor Indicator (FFI) (C-3); C-2: Third Party Data; "
     "C-4: Enhanced Contactless Reader Capabilities", "b", "card", 4, 32),
    (0x9F6F, "DS Slot Management Control", "b", "card", 1, 1),
    (0x9F70, "Protected Data Envelope 1", "b", "card", None, None),
    (0x9F71, "Protected Data Envelope 2", "b", "card", None, None),
    (0x9F72, "Protected Data Envelope 3", "b", "card", None, None),
    (0x9F73, "Protected Data Envelope 4", "b", "card", None, None),
    (0x9F74, "Protected Data Envelope 5", "b", "card", None, None),
    (0x9F75, "Unprotected Data Envelope 1", "b", "card", None, None),
    (0x9F76, "Unprotected Data Envelope 2", "b", "card", None, None),
    (0x9F77, "Unprotected Data Envelope 3", "b", "card", None, None),
    (0x9F78, "Unprotected Data Envelope 4", "b", "card", None, None),
    (0x9F79, "Unprotected Data Envelope 5", "b", "card", None, None),
    (0x9F7C, "Customer Exclusive Data (CED) (C-3); C-2: Merchant Custom Data", "b", "card", None, 32),
    (0x9F7D, "DS Summary 1", "b", "card", 8, 16),
    (0x9F7E, "Mobile Support Indicator", "b", "terminal", 1, 1),
    (0x9F7F, "DS Unpredictable Number", "b", "terminal", 4, 4),
)

# --- EMV Contactless Book C-2 (Kernel 2): DFxx, DF81xx, DF83xx, FF81xx ---
_KERNEL2: Final[tuple[_Row, ...]] = (
    (0xDF4B, "POS Cardholder Interaction Information", "b", "card", 3, 3),
    (0xDF60, "DS Input (Card)", "b", "terminal", 8, 8),
    (0xDF61, "DS Digest H", "b", "terminal", 8, 8),
    (0xDF62, "DS ODS Info", "b", "terminal", 1, 1),
    (0xDF63, "DS ODS Term", "b", "terminal", None, 160),
    (0xDF8101, "DS Summary 2", "b", "card", 8, 16),
    (0xDF8102, "DS Summary 3", "b", "card", 8, 16),
    (0xDF8104, "Balance Read Before Gen AC", "n", "terminal", 6, 6),
    (0xDF8105, "Balance Read After Gen AC", "n", "terminal", 6, 6),
    (0xDF8106, "Data Needed", "b", "terminal", None, None),
    (0xDF8107, "CDOL1 Related Data", "b", "terminal", None, None),
    (0xDF8108, "DS AC Type", "b", "terminal", 1, 1),
    (0xDF8109, "DS Input (Term)", "b", "terminal", 8, 8),
    (0xDF810A, "DS ODS Info For Reader", "b", "terminal", 1, 1),
    (0xDF810B, "DS Summary Status", "b", "terminal", 1, 1),
    (0xDF810C, "Kernel ID", "b", "terminal", 1, 1),
    (0xDF810D, "DSVN Term", "b", "terminal", None, None),
    (0xDF810E, "Post-Gen AC Put Data Status", "b", "terminal", 1, 1),
    (0xDF810F, "Pre-Gen AC Put Data Status", "b", "terminal", 1, 1),
    (0xDF8110, "Proceed To First Write Flag", "b", "terminal", 1, 1),
    (0xDF8111, "PDOL Related Data", "b", "terminal", None, None),
    (0xDF8112, "Tags To Read", "b", "terminal", None, None),
    (0xDF8113, "DRDOL Related Data", "b", "terminal", None, None),
    (0xDF8114, "Reference Control Parameter", "b", "terminal", 1, 1),
    (0xDF8115, "Error Indication", "b", "terminal", 6, 6),
    (0xDF8116, "User Interface Request Data", "b", "terminal", 22, 22),
    (0xDF8117, "Card Data Input Capability", "b", "terminal", 1, 1),
    (0xDF8118, "CVM Capability - CVM Required", "b", "terminal", 1, 1),
    (0xDF8119, "CVM Capability - No CVM Required", "b", "terminal", 1, 1),
    (0xDF811A, "Default UDOL", "b", "terminal", 3, 3),
    (0xDF811B, "Kernel Configuration", "b", "terminal", 1, 1),
    (0xDF811C, "Max Lifetime of Torn Transaction Log Record", "b", "terminal", 2, 2),
    (0xDF811D, "Max Number of Torn Transaction Log Records", "b", "terminal", 1, 1),
    (0xDF811E, "Mag-stripe CVM Capability - CVM Required", "b", "terminal", 1, 1),
    (0xDF811F, "Security Capability", "b", "terminal", 1, 1),
    (0xDF8120, "Terminal Action Code - Default", "b", "terminal", 5, 5),
    (0xDF8121, "Terminal Action Code - Denial", "b", "terminal", 5, 5),
    (0xDF8122, "Terminal Action Code - Online", "b", "terminal", 5, 5),
    (0xDF8123, "Reader Contactless Floor Limit", "n", "terminal", 6, 6),
    (0xDF8124, "Reader Contactless Transaction Limit (No On-device CVM)", "n", "terminal", 6, 6),
    (0xDF8125, "Reader Contactless Transaction Limit (On-device CVM)", "n", "terminal", 6, 6),
    (0xDF8126, "Reader CVM Required Limit", "n", "terminal", 6, 6),
    (0xDF8127, "Time Out Value", "b", "terminal", 2, 2),
    (0xDF8128, "IDS Status", "b", "terminal", 1, 1),
    (0xDF8129, "Outcome Parameter Set", "b", "terminal", 8, 8),
    (0xDF812A, "DD Card (Track1)", "ans", "terminal", None, 56),
    (0xDF812B, "DD Card (Track2)", "b", "terminal", None, 8),
    (0xDF812C, "Mag-stripe CVM Capability - No CVM Required", "b", "terminal", 1, 1),
    (0xDF812D, "Message Hold Time", "n", "terminal", 3, 3),
    (0xDF8130, "Hold Time Value", "b", "terminal", 1, 1),
    (0xDF8131, "Phone Message Table", "b", "terminal", None, None),
    (0xDF8132, "Minimum Relay Resistance Grace Period", "b", "terminal", 2, 2),
    (0xDF8133, "Maximum Relay Resistance Grace Period", "b", "terminal", 2, 2),
    (0xDF8134, "Terminal Expected Transmission Time For Relay Resistance C-APDU", "b", "terminal", 2, 2),
    (0xDF8135, "Terminal Expected Transmission Time For Relay Resistance R-APDU", "b", "terminal", 2, 2),
    (0xDF8136, "Relay Resistance Accuracy Threshold", "b", "terminal", 2, 2),
    (0xDF8137, "Relay Resistance Transmission Time Mismatch Threshold", "b", "terminal", 1, 1),
    (0xDF8301, "Terminal Relay Resistance Entropy", "b", "terminal", 4, 4),
    (0xDF8302, "Device Relay Resistance Entropy", "b", "card", 4, 4),
    (0xDF8303, "Min Time For Processing Relay Resistance APDU", "b", "card", 2, 2),
    (0xDF8304, "Max Time For Processing Relay Resistance APDU", "b", "card", 2, 2),
    (0xDF8305, "Device Estimated Transmission Time For Relay Resistance R-APDU", "b", "card", 2, 2),
    (0xDF8306, "Measured Relay Resistance Processing Time", "b", "terminal", 2, 2),
    (0xDF8307, "RRP Counter", "b", "terminal", 1, 1),
    (0xFF8101, "Torn Record", "b", "terminal", None, None),
    (0xFF8102, "Tags To Write Before Gen AC", "b", "terminal", None, None),
    (0xFF8103, "Tags To Write After Gen AC", "b", "terminal", None, None),
    (0xFF8104, "Data To Send", "b", "terminal", None, None),
    (0xFF8105, "Data Record", "b", "terminal", None, None),
    (0xFF8106, "Discretionary Data", "b", "terminal", None, None),
)


def _build(*groups: tuple[_Row, ...]) -> dict[int, TagInfo]:
    table: dict[int, TagInfo] = {}
    for group in groups:
        for tag, name, fmt, source, min_len, max_len in group:
            if tag in table:
                raise ValueError(f"tag {tag:X} defined twice")
            table[tag] = TagInfo(tag, name, fmt, source, min_len, max_len)
    return dict(sorted(table.items()))


TAGS: Final[dict[int, TagInfo]] = _build(_BOOK3, _TOKENISATION, _BOOK_B, _CONTACTLESS, _KERNEL2)

# tag -> format, for emvkit.firmware.tlv.build_dol(..., formats=FORMATS).
FORMATS: Final[dict[int, str]] = {tag: entry.fmt for tag, entry in TAGS.items()}


def info(tag: int) -> TagInfo | None:
    """The dictionary entry for ``tag``, or None when it is not known."""
    return TAGS.get(tag)


def name_of(tag: int) -> str:
    """The spec name of ``tag``, or ``"Unknown tag"``."""
    entry = TAGS.get(tag)
    return UNKNOWN_NAME if entry is None else entry.name
