# Secure messaging for integrity: the MAC of an issuer script command
# (EMV 4.4 Book 2 §9.2) and the MAC session key each scheme derives for it.
#
# The MAC (Book 2 §9.2.3, Annex A1.2.1: ISO/IEC 9797-1 MAC algorithm 3,
# padding method 2, 8 bytes) covers the command header CLA INS P1 P2 Lc
# (Lc counting the MAC itself), then the ATC and the Application Cryptogram
# (the ARQC) of the transaction the script arrives in, then the command's
# plain data; the ATC and ARQC are in the MAC but not in the command.
#
# Session keys, from the card's ICC master key for secure messaging
# integrity (MK-SMI, derived from the issuer's IMK-SMI as the AC master key
# is, Book 2 Annex A1.4):
#   "emv"   EMV Common Session Key derivation (Annex A1.3.1) with R = the
#           ARQC: Mastercard M/Chip and UnionPay (the EMV default).
#   "visa"  Visa's: SK_L = MK_L xor (00..00 || ATC), SK_R = MK_R xor
#           (00..00 || ATC xor FFFF) (VIS CVN 10 and 18).
# Portable: runs on CPython and MicroPython.

from .emv import adjust_parity, derive_session_key, retail_mac

MAC_LENGTH = 8

# Cryptogram version -> the secure-messaging session key method.
SESSION_KEY_METHODS = {
    "visa_cvn10": "visa",
    "visa_cvn18": "visa",
    "mc_cvn16": "emv",
    "mc_cvn17": "emv",
    "upi": "emv",
}


def session_key_visa(mk_smi: bytes, atc: bytes) -> bytes:
    if len(mk_smi) != 16 or len(atc) != 2:
        raise ValueError("MK-SMI must be 16 bytes and the ATC 2 bytes")
    inv = bytes((atc[0] ^ 0xFF, atc[1] ^ 0xFF))
    left = bytes(mk_smi[:6]) + bytes((mk_smi[6] ^ atc[0], mk_smi[7] ^ atc[1]))
    right = bytes(mk_smi[8:14]) + bytes((mk_smi[14] ^ inv[0], mk_smi[15] ^ inv[1]))
    return adjust_parity(left + right)


def mac_session_key(version: str, mk_smi: bytes, atc: bytes, arqc: bytes) -> bytes:
    # The MAC session key of the transaction with this ATC and ARQC.
    method = SESSION_KEY_METHODS.get(version)
    if method == "visa":
        return session_key_visa(mk_smi, atc)
    if method == "emv":
        if len(arqc) != 8:
            raise ValueError("the ARQC must be 8 bytes")
        return derive_session_key(mk_smi, arqc)
    raise ValueError("no secure messaging for cryptogram version %r" % (version,))


def command_mac(session_key: bytes, header: bytes, atc: bytes, arqc: bytes, data: bytes = b"") -> bytes:
    # header: CLA INS P1 P2 Lc of the command as sent (Lc includes the MAC).
    if len(header) != 5:
        raise ValueError("the command header is CLA INS P1 P2 Lc (5 bytes)")
    return retail_mac(session_key, bytes(header) + bytes(atc) + bytes(arqc) + bytes(data), 2)


def script_command(session_key: bytes, cla: int, ins: int, p1: int, p2: int, atc: bytes, arqc: bytes,
                   data: bytes = b"") -> bytes:
    # The whole C-APDU of a script command: header, data, MAC (case 3).
    lc = len(data) + MAC_LENGTH
    if lc > 255:
        raise ValueError("script command data too long")
    header = bytes((cla, ins, p1, p2, lc))
    return header + bytes(data) + command_mac(session_key, header, atc, arqc, data)
