# EMV card-side symmetric cryptography: padding, the retail MAC, ICC
# master key and session key derivation, application cryptograms and
# ARPCs, and the scheme cryptogram versions the card application uses.
#
# References: EMV 4.3/4.4 Book 2 ("Security and Key Management") Annex A1
# and §8; ISO/IEC 9797-1:2011. Scheme methods are pinned to what pyemv
# 1.5.0 (pyemv.cvn) computes; tests/test_crypto.py cross-checks them.
#
# Portable: runs unchanged on CPython and MicroPython. Keys and data are
# bytes; every primitive goes through firmware.crypto.provider.

from . import provider
from .block import xor_block

_DIGITS = "0123456789"


def _check_len(name: str, value: bytes, *sizes: int) -> None:
    if len(value) not in sizes:
        raise ValueError("%s must be %s bytes, got %d" % (name, " or ".join([str(s) for s in sizes]),
                                                         len(value)))


# --- Padding (ISO/IEC 9797-1 §6.3) ---

def pad_method1(data: bytes) -> bytes:
    # Padding method 1: right-pad with as few (possibly no) zero bytes as
    # needed for a length that is a *positive* multiple of 8, so empty data
    # becomes one zero block and a full last block gets nothing.
    data = bytes(data)
    n = len(data)
    if n == 0:
        return bytes(8)
    return data + bytes((8 - n % 8) % 8)


def pad_method2(data: bytes) -> bytes:
    # Padding method 2: append one 0x80 byte, then method 1 (so there is
    # always at least one padding byte). Also EMV Book 2 Annex A1.2.1 and
    # ISO/IEC 7816-4 padding.
    return pad_method1(bytes(data) + b"\x80")


def _pad(data: bytes, padding: int) -> bytes:
    if padding == 1:
        return pad_method1(data)
    if padding == 2:
        return pad_method2(data)
    raise ValueError("padding must be 1 or 2 (ISO/IEC 9797-1 method)")


# --- MAC (EMV Book 2 Annex A1.2.1, ISO/IEC 9797-1 MAC algorithm 3) ---

def retail_mac(key16: bytes, data: bytes, padding: int = 1) -> bytes:
    # ISO/IEC 9797-1 MAC algorithm 3 with DES and a double-length key
    # K = K_L || K_R (the "retail MAC", ANSI X9.19): single-DES CBC under
    # K_L with a zero IV, then output transformation 3 on the last block,
    # H = E_KL(D_KR(H_q)). E_KL(D_KR(E_KL(x))) is TDEA with K, so the last
    # block is one TDEA encryption of H_{q-1} xor D_q. Returns 8 bytes.
    _check_len("MAC key", key16, 16)
    padded = _pad(data, padding)
    kl = bytes(key16[:8])
    head = len(padded) - 8
    chain = provider.des_cbc_encrypt(kl, padded[:head])[-8:] if head else bytes(8)
    return provider.des3_encrypt_block(key16, xor_block(chain, padded[head:]))


def application_cryptogram(key: bytes, data: bytes, padding: int) -> bytes:
    # ARQC / TC / AAC: the MAC of A1.2.1 over the transaction data under
    # the AC key (EMV Book 2 §8.1.2). Visa CVN 10 uses padding method 1,
    # the EMV default is method 2.
    return retail_mac(key, data, padding)


# --- Keys: parity, ICC master key, session keys (EMV Book 2 Annex A1.3, A1.4) ---

def adjust_parity(key: bytes) -> bytes:
    # Odd parity per byte (FIPS 46-3: the lsb of each key byte is a parity
    # bit set so the byte has an odd number of 1 bits).
    out = bytearray(key)
    for i in range(len(out)):
        b = out[i] & 0xFE
        x = b ^ (b >> 4)
        x ^= x >> 2
        x ^= x >> 1
        out[i] = b | (~x & 1)
    return bytes(out)


def _pan_digits(pan: "str | bytes") -> str:
    # PAN as a digit string: a str of digits, or the tag 5A value
    # (compressed numeric, padded on the right with F nibbles).
    if isinstance(pan, (bytes, bytearray)):
        pan = bytes(pan).hex()
    pan = pan.rstrip("Ff")
    if not pan or not all([c in _DIGITS for c in pan]):
        raise ValueError("PAN must be decimal digits")
    return pan


def _psn_digits(psn: "str | bytes | None") -> str:
    # PAN Sequence Number as 2 digits: "01", the 1-byte tag 5F34 value
    # (n2, BCD), or None for "00" (EMV Book 2 A1.4.1: absent PSN = '00').
    if psn is None:
        return "00"
    if isinstance(psn, (bytes, bytearray)):
        psn = bytes(psn).hex()
    if len(psn) != 2 or not all([c in _DIGITS for c in psn]):
        raise ValueError("PSN must be 2 decimal digits")
    return psn


def _decimalise_sha1(digest: bytes) -> str:
    # EMV Book 2 A1.4.2 step 3: the decimal digits of the hex digest, left to
    # right; if fewer than 16, continue with its hex letters a..f mapped to
    # 0..5, left to right.
    hexd = digest.hex()
    digits = [c for c in hexd if c in _DIGITS]
    if len(digits) < 16:
        letters = [_DIGITS["abcdef".index(c)] for c in hexd if c not in _DIGITS]
        digits.extend(letters[:16 - len(digits)])
    return "".join(digits[:16])


def derive_icc_mk(imk: bytes, pan: "str | bytes", psn: "str | bytes | None" = "00",
                  option: str = "A") -> bytes:
    # ICC Master Key from the Issuer Master Key (EMV Book 2 Annex A1.4).
    # Option A (A1.4.1): Y = the rightmost 16 digits of PAN || PSN (left
    # padded with zeros to 16), packed as 8 bytes BCD.
    # Option B (A1.4.2), for PANs longer than 16 digits: X = PAN || PSN
    # (one leading zero nibble if the length is odd), Y = 16 decimalised
    # digits of SHA-1(X); for PANs of 16 digits or fewer option B *is*
    # option A. Then Z_L = DES3(IMK)[Y], Z_R = DES3(IMK)[Y xor FF..FF],
    # MK = Z_L || Z_R with odd parity.
    _check_len("IMK", imk, 16)
    digits = _pan_digits(pan)
    seq = _psn_digits(psn)
    if option == "SM4":
        return derive_icc_mk_sm4(imk, digits + seq)
    if option == "B" and len(digits) > 16:
        x = digits + seq
        if len(x) % 2:
            x = "0" + x
        y = bytes.fromhex(_decimalise_sha1(provider.sha1(bytes.fromhex(x))))
    elif option in ("A", "B"):
        x = "0" * 16 + digits + seq
        y = bytes.fromhex(x[len(x) - 16:])
    else:
        raise ValueError("option must be 'A' or 'B'")
    zl = provider.des3_encrypt_block(imk, y)
    zr = provider.des3_encrypt_block(imk, xor_block(y, b"\xff" * 8))
    return adjust_parity(zl + zr)


def derive_session_key(mk: bytes, r: bytes) -> bytes:
    # EMV Common Session Key derivation (EMV Book 2 Annex A1.3.1) from an
    # 8-byte diversification value R: F1 = R0 R1 F0 R3..R7 and
    # F2 = R0 R1 0F R3..R7 (the third byte replaced), SK = DES3(MK)[F1] ||
    # DES3(MK)[F2]. Parity-adjusted like pyemv; DES ignores parity bits, so
    # cryptograms do not depend on it.
    _check_len("master key", mk, 16)
    _check_len("R", r, 8)
    r = bytes(r)
    f1 = r[:2] + b"\xf0" + r[3:]
    f2 = r[:2] + b"\x0f" + r[3:]
    return adjust_parity(provider.des3_encrypt_block(mk, f1) + provider.des3_encrypt_block(mk, f2))


def session_key_common(mk: bytes, atc: bytes) -> bytes:
    # AC session key, EMV CSK (A1.3.1) with R = ATC || 00 00 00 00 00 00.
    _check_len("ATC", atc, 2)
    return derive_session_key(mk, bytes(atc) + bytes(6))


def session_key_mc_skd(mk: bytes, atc: bytes, un: bytes) -> bytes:
    # Mastercard proprietary SKD (M/Chip CVN 16/17) as pyemv implements it:
    # A1.3.1 with R = ATC || 00 00 || UN, so F1 = ATC F0 00 UN and
    # F2 = ATC 0F 00 UN.
    _check_len("ATC", atc, 2)
    _check_len("UN", un, 4)
    return derive_session_key(mk, bytes(atc) + bytes(2) + bytes(un))


# --- Issuer authentication (EMV Book 2 §8.2) ---

def arpc_method1(key: bytes, arqc: bytes, arc: bytes) -> bytes:
    # ARPC method 1 (§8.2.1): DES3(SK)[ARQC xor (ARC || 00 00 00 00 00 00)],
    # 8 bytes; issuer authentication data = ARPC || ARC.
    _check_len("ARQC", arqc, 8)
    _check_len("ARC", arc, 2)
    return provider.des3_encrypt_block(key, xor_block(arqc, bytes(arc) + bytes(6)))


def arpc_method2(key: bytes, arqc: bytes, csu: bytes, prop: bytes = b"") -> bytes:
    # ARPC method 2 (§8.2.2): the A1.2.1 MAC (padding method 2) over
    # ARQC || CSU || Proprietary Authentication Data (0..8 bytes), leftmost
    # 4 bytes; issuer authentication data = ARPC || CSU || prop.
    _check_len("ARQC", arqc, 8)
    _check_len("CSU", csu, 4)
    if len(prop) > 8:
        raise ValueError("Proprietary Authentication Data is at most 8 bytes")
    return retail_mac(key, bytes(arqc) + bytes(csu) + bytes(prop), 2)[:4]


# --- Scheme cryptogram versions ---
#
# Every generate_ac_* takes (icc_mk_ac, atc, data, un) and returns the
# 8-byte AC; every generate_arpc_* takes (icc_mk_ac, atc, arqc, response,
# un) where response is the ARC (2 bytes, ARPC method 1) or CSU || optional
# proprietary authentication data (4..12 bytes, method 2). icc_mk_ac is
# the card's ICC master key for AC (derive_icc_mk of the issuer key), atc
# the 2-byte ATC (9F36), un the 4-byte terminal Unpredictable Number
# (9F37; only Mastercard SKD needs it). `data` is the cryptogram input,
# concatenated in the order the scheme defines (all tags are the values
# only, without tag and length):
#
#   Visa CVN 10:  9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 CVR
#                 (CVR = the 4 bytes at 9F10[3:7])
#   Visa CVN 18:  9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 9F10 (all of IAD)
#   MC CVN 16:    9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 CVR (6 bytes)
#   MC CVN 17:    the CVN 16 data || counters (8 or 16 bytes from IAD)
#   UnionPay:     9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 9F10 (as CDOL1
#                 data plus the card's AIP, ATC and IAD)
#
# How each differs (pyemv 1.5.0 pyemv/cvn.py):
#   visa_cvn10  key = ICC MK AC itself (no session key), padding method 1;
#               ARPC method 1 under the ICC MK.                (VisaCVN10)
#   visa_cvn18  key = EMV CSK(ATC), padding method 2; ARPC method 2 under
#               the same session key.                          (VisaCVN18)
#   mc_cvn16    key = Mastercard SKD(ATC, UN), padding method 2; ARPC
#               method 1 under the ICC MK AC (no session key). (MasterCardCVN16)
#   mc_cvn17    as mc_cvn16: the algorithm is the same, the only difference
#               is that the AC data also carries the counters.  (MasterCardCVN17)
#   upi         key = EMV CSK(ATC), padding method 2; ARPC method 1 under
#               the same session key. pyemv has no UnionPay class; this is
#               the EMV Book 2 default (A1.3.1 session key, A1.2.1 MAC with
#               padding method 2, §8.2.1 ARPC) and the same algorithm as
#               pyemv's MasterCardCVN20, which the tests check it against.
#               UICS (UnionPay IC card spec) builds on EMV Book 2, and PBOC
#               MACs use 80-padding; older PBOC 2.0 cards have their own
#               session key derivation, which is not implemented here.


def _need_un(un: "bytes | None") -> bytes:
    if un is None:
        raise ValueError("this cryptogram version needs the Unpredictable Number")
    _check_len("UN", un, 4)
    return bytes(un)


def _split_response(response: bytes) -> tuple:
    if len(response) < 4 or len(response) > 12:
        raise ValueError("method 2 response must be CSU (4 bytes) plus 0..8 bytes")
    return bytes(response[:4]), bytes(response[4:])


def generate_ac_visa_cvn10(icc_mk_ac: bytes, atc: bytes, data: bytes, un: "bytes | None" = None) -> bytes:
    return application_cryptogram(icc_mk_ac, data, 1)


def generate_arpc_visa_cvn10(icc_mk_ac: bytes, atc: bytes, arqc: bytes, response: bytes,
                             un: "bytes | None" = None) -> bytes:
    return arpc_method1(icc_mk_ac, arqc, response)


def generate_ac_visa_cvn18(icc_mk_ac: bytes, atc: bytes, data: bytes, un: "bytes | None" = None) -> bytes:
    return application_cryptogram(session_key_common(icc_mk_ac, atc), data, 2)


def generate_arpc_visa_cvn18(icc_mk_ac: bytes, atc: bytes, arqc: bytes, response: bytes,
                             un: "bytes | None" = None) -> bytes:
    csu, prop = _split_response(response)
    return arpc_method2(session_key_common(icc_mk_ac, atc), arqc, csu, prop)


def generate_ac_mc_cvn16(icc_mk_ac: bytes, atc: bytes, data: bytes, un: "bytes | None" = None) -> bytes:
    return application_cryptogram(session_key_mc_skd(icc_mk_ac, atc, _need_un(un)), data, 2)


def generate_arpc_mc_cvn16(icc_mk_ac: bytes, atc: bytes, arqc: bytes, response: bytes,
                           un: "bytes | None" = None) -> bytes:
    return arpc_method1(icc_mk_ac, arqc, response)


# CVN 17 = CVN 16 plus counters in the data, which the caller concatenates.
generate_ac_mc_cvn17 = generate_ac_mc_cvn16
generate_arpc_mc_cvn17 = generate_arpc_mc_cvn16


def generate_ac_upi(icc_mk_ac: bytes, atc: bytes, data: bytes, un: "bytes | None" = None) -> bytes:
    return application_cryptogram(session_key_common(icc_mk_ac, atc), data, 2)


def generate_arpc_upi(icc_mk_ac: bytes, atc: bytes, arqc: bytes, response: bytes,
                      un: "bytes | None" = None) -> bytes:
    return arpc_method1(session_key_common(icc_mk_ac, atc), arqc, response)


# --- SM4 (PBOC 3.0 / JR/T 0025 SM suite; docs/card-application.md "SM
# suite" says what of this is checked against a public source and what is
# not) ---
#
# The methods are EMV Book 2 Annex A1 written for a 16-byte block cipher
# (the way Book 2 states them for AES) with SM4 as the cipher:
#   ICC MK  (A1.4.1): Y = X || (X xor FF..FF), X = the rightmost 16 digits
#           of PAN || PSN as 8 bytes BCD; MK = SM4(IMK)[Y].
#   SK      (A1.3.1): R = ATC || 00 x 14, F = R0 R1 F0 R3..R15;
#           SK = SM4(MK)[F].
#   AC      (A1.2.1): padding method 2 to 16-byte blocks, SM4 CBC-MAC,
#           the leftmost 8 bytes.
#   ARPC    (§8.2.1 method 1): SM4(SK)[(ARQC xor (ARC || 00 x 6)) || 00 x 8],
#           the leftmost 8 bytes.
# SM4 is imported on first use: a card without the SM suite never pays
# for its tables on the heap.


def _sm4():
    from . import sm4
    return sm4


def derive_icc_mk_sm4(imk: bytes, digits: str) -> bytes:
    # digits: PAN || PSN as decimal digits (option A's rightmost 16).
    _check_len("IMK", imk, 16)
    x = bytes.fromhex(("0" * 16 + digits)[-16:])
    return _sm4().encrypt_block(imk, x + xor_block(x, b"\xff" * 8))


def session_key_sm4(mk: bytes, atc: bytes) -> bytes:
    _check_len("master key", mk, 16)
    _check_len("ATC", atc, 2)
    return _sm4().encrypt_block(mk, bytes(atc) + b"\xf0" + bytes(13))


def sm4_mac8(key: bytes, data: bytes) -> bytes:
    # The 8-byte MAC of data: padding method 2, SM4 CBC-MAC, leftmost 8.
    sm4 = _sm4()
    return sm4.SM4(key).cbc_mac(sm4.pad_method2(data))[:8]


def arpc_method1_sm4(key: bytes, arqc: bytes, arc: bytes) -> bytes:
    _check_len("ARQC", arqc, 8)
    _check_len("ARC", arc, 2)
    return _sm4().encrypt_block(key, xor_block(arqc, bytes(arc) + bytes(6)) + bytes(8))[:8]


def generate_ac_upi_sm4(icc_mk_ac: bytes, atc: bytes, data: bytes, un: "bytes | None" = None) -> bytes:
    return sm4_mac8(session_key_sm4(icc_mk_ac, atc), data)


def generate_arpc_upi_sm4(icc_mk_ac: bytes, atc: bytes, arqc: bytes, response: bytes,
                          un: "bytes | None" = None) -> bytes:
    return arpc_method1_sm4(session_key_sm4(icc_mk_ac, atc), arqc, response)


# Cryptogram version name (as a card profile names it) ->
# (generate_ac, generate_arpc, ICC MK derivation option).
CRYPTOGRAM_VERSIONS = {
    "visa_cvn10": (generate_ac_visa_cvn10, generate_arpc_visa_cvn10, "A"),
    "visa_cvn18": (generate_ac_visa_cvn18, generate_arpc_visa_cvn18, "B"),
    "mc_cvn16": (generate_ac_mc_cvn16, generate_arpc_mc_cvn16, "A"),
    "mc_cvn17": (generate_ac_mc_cvn17, generate_arpc_mc_cvn17, "A"),
    "upi": (generate_ac_upi, generate_arpc_upi, "A"),
    "upi_sm4": (generate_ac_upi_sm4, generate_arpc_upi_sm4, "SM4"),
}
