# ISO/IEC 7816 on the card side: the status words, instruction bytes and
# names the card application answers and takes, and the contactless
# pseudo-ATR. Each is defined here once; the host side
# (emvkit.terminal.iso7816) imports them rather than defining its own.

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

# --- status words (ISO 7816-4 §5.1.3, EMV Book 3 §6.3.5) ---
SW_OK = const(0x9000)
SW_WRONG_LENGTH = const(0x6700)
SW_SECURITY_NOT_SATISFIED = const(0x6982)
SW_CONDITIONS_NOT_SATISFIED = const(0x6985)
SW_WRONG_DATA = const(0x6A80)
SW_FUNCTION_NOT_SUPPORTED = const(0x6A81)
SW_FILE_NOT_FOUND = const(0x6A82)
SW_RECORD_NOT_FOUND = const(0x6A83)
SW_WRONG_P1P2 = const(0x6A86)
SW_DATA_NOT_FOUND = const(0x6A88)
SW_INS_NOT_SUPPORTED = const(0x6D00)
SW_CLA_NOT_SUPPORTED = const(0x6E00)
SW_NO_PRECISE_DIAGNOSIS = const(0x6F00)  # the answer when the card fails (§5.6)

# --- instruction bytes (EMV Book 3 Table 13, ISO 7816-4 §5.4) ---
INS_SELECT = const(0xA4)
INS_GET_PROCESSING_OPTIONS = const(0xA8)
INS_READ_RECORD = const(0xB2)
INS_GENERATE_AC = const(0xAE)
INS_INTERNAL_AUTHENTICATE = const(0x88)
INS_GET_DATA = const(0xCA)
INS_GET_RESPONSE = const(0xC0)

# The name of the Proximity Payment System Environment (EMV Contactless
# Book B §3.3), selected first by every contactless terminal.
PPSE = b"2PAY.SYS.DDF01"

_MAX_HISTORICAL = const(15)  # the low nibble of T0


def sw_bytes(sw: int) -> bytes:
    # SW1 SW2 of a status word, as it ends an R-APDU.
    return bytes((sw >> 8, sw & 0xFF))


def pseudo_atr(historical: bytes = b"") -> bytes:
    # PC/SC Part 3 §3.1.3.2.3 pseudo-ATR of an ISO 14443-4 Type A card:
    # 3B 8n 80 01 <historical bytes> TCK (3B 80 80 01 01 without any). T0
    # announces TD1 and n historical bytes, TD1 = 80 announces TD2, TD2 = 01
    # says T=1, and TCK makes T0..TCK XOR to zero (ISO 7816-3 §8.2.5).
    n = len(historical)
    if n > _MAX_HISTORICAL:
        raise ValueError("%d historical bytes do not fit in an ATR (at most 15)" % n)
    body = bytes((0x80 | n, 0x80, 0x01)) + bytes(historical)
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))
