# Pure-Python DES and TDEA (triple DES), FIPS 46-3 and NIST SP 800-67.
#
# Portable: runs unchanged on CPython and MicroPython. This is the fallback
# the provider uses where no native DES exists (always on MicroPython), so
# it is table driven: the eight S-boxes are merged with the P permutation
# into eight 64-entry "SP" tables at import, and each key object expands
# its 16 round keys once, already cut into the 6-bit groups the tables
# take. A block then costs the IP/FP bit-swap networks plus 16 rounds of
# eight table look-ups (48 rounds for TDEA; the FP/IP pairs between the
# three passes cancel and are skipped).
#
# Internal word layout: both halves are kept rotated left by one bit, so
# the expansion E needs no bit shuffling. Odd S-box inputs (1, 3, 5, 7) are
# then the 6-bit fields at shifts 24, 16, 8, 0 of ror(R', 4), even ones
# (2, 4, 6, 8) the fields at the same shifts of R' itself. Words are 32
# bits; on a 32-bit MicroPython port values of 2**30 and up are heap
# integers, which stays correct but is slower.

import struct

# FIPS 46-3 tables, bit 1 = most significant bit.
_PC1 = (57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
        10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
        63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
        14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4)

_PC2 = (14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
        23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
        41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
        44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32)

_SHIFTS = (1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1)

_P = (16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25)

# S1..S8, each 4 rows of 16 entries (FIPS 46-3, "Primitive functions").
_S = (
    b"\x0e\x04\x0d\x01\x02\x0f\x0b\x08\x03\x0a\x06\x0c\x05\x09\x00\x07"
    b"\x00\x0f\x07\x04\x0e\x02\x0d\x01\x0a\x06\x0c\x0b\x09\x05\x03\x08"
    b"\x04\x01\x0e\x08\x0d\x06\x02\x0b\x0f\x0c\x09\x07\x03\x0a\x05\x00"
    b"\x0f\x0c\x08\x02\x04\x09\x01\x07\x05\x0b\x03\x0e\x0a\x00\x06\x0d",
    b"\x0f\x01\x08\x0e\x06\x0b\x03\x04\x09\x07\x02\x0d\x0c\x00\x05\x0a"
    b"\x03\x0d\x04\x07\x0f\x02\x08\x0e\x0c\x00\x01\x0a\x06\x09\x0b\x05"
    b"\x00\x0e\x07\x0b\x0a\x04\x0d\x01\x05\x08\x0c\x06\x09\x03\x02\x0f"
    b"\x0d\x08\x0a\x01\x03\x0f\x04\x02\x0b\x06\x07\x0c\x00\x05\x0e\x09",
    b"\x0a\x00\x09\x0e\x06\x03\x0f\x05\x01\x0d\x0c\x07\x0b\x04\x02\x08"
    b"\x0d\x07\x00\x09\x03\x04\x06\x0a\x02\x08\x05\x0e\x0c\x0b\x0f\x01"
    b"\x0d\x06\x04\x09\x08\x0f\x03\x00\x0b\x01\x02\x0c\x05\x0a\x0e\x07"
    b"\x01\x0a\x0d\x00\x06\x09\x08\x07\x04\x0f\x0e\x03\x0b\x05\x02\x0c",
    b"\x07\x0d\x0e\x03\x00\x06\x09\x0a\x01\x02\x08\x05\x0b\x0c\x04\x0f"
    b"\x0d\x08\x0b\x05\x06\x0f\x00\x03\x04\x07\x02\x0c\x01\x0a\x0e\x09"
    b"\x0a\x06\x09\x00\x0c\x0b\x07\x0d\x0f\x01\x03\x0e\x05\x02\x08\x04"
    b"\x03\x0f\x00\x06\x0a\x01\x0d\x08\x09\x04\x05\x0b\x0c\x07\x02\x0e",
    b"\x02\x0c\x04\x01\x07\x0a\x0b\x06\x08\x05\x03\x0f\x0d\x00\x0e\x09"
    b"\x0e\x0b\x02\x0c\x04\x07\x0d\x01\x05\x00\x0f\x0a\x03\x09\x08\x06"
    b"\x04\x02\x01\x0b\x0a\x0d\x07\x08\x0f\x09\x0c\x05\x06\x03\x00\x0e"
    b"\x0b\x08\x0c\x07\x01\x0e\x02\x0d\x06\x0f\x00\x09\x0a\x04\x05\x03",
    b"\x0c\x01\x0a\x0f\x09\x02\x06\x08\x00\x0d\x03\x04\x0e\x07\x05\x0b"
    b"\x0a\x0f\x04\x02\x07\x0c\x09\x05\x06\x01\x0d\x0e\x00\x0b\x03\x08"
    b"\x09\x0e\x0f\x05\x02\x08\x0c\x03\x07\x00\x04\x0a\x01\x0d\x0b\x06"
    b"\x04\x03\x02\x0c\x09\x05\x0f\x0a\x0b\x0e\x01\x07\x06\x00\x08\x0d",
    b"\x04\x0b\x02\x0e\x0f\x00\x08\x0d\x03\x0c\x09\x07\x05\x0a\x06\x01"
    b"\x0d\x00\x0b\x07\x04\x09\x01\x0a\x0e\x03\x05\x0c\x02\x0f\x08\x06"
    b"\x01\x04\x0b\x0d\x0c\x03\x07\x0e\x0a\x0f\x06\x08\x00\x05\x09\x02"
    b"\x06\x0b\x0d\x08\x01\x04\x0a\x07\x09\x05\x00\x0f\x0e\x02\x03\x0c",
    b"\x0d\x02\x08\x04\x06\x0f\x0b\x01\x0a\x09\x03\x0e\x05\x00\x0c\x07"
    b"\x01\x0f\x0d\x08\x0a\x03\x07\x04\x0c\x05\x06\x0b\x00\x0e\x09\x02"
    b"\x07\x0b\x04\x01\x09\x0c\x0e\x02\x00\x06\x0a\x0d\x0f\x03\x05\x08"
    b"\x02\x01\x0e\x07\x04\x0a\x08\x0d\x0f\x0c\x09\x00\x03\x05\x06\x0b",
)

_M32 = 0xFFFFFFFF


def _permute(value: int, table: tuple, width: int) -> int:
    # Generic bit permutation (setup only): output bit i (1 = MSB) is input
    # bit table[i-1] of a `width`-bit value.
    out = 0
    for src in table:
        out = (out << 1) | ((value >> (width - src)) & 1)
    return out


def _sp_tables() -> tuple:
    # SPi[x] = rol1(P(Si(x) placed at S-box i's output nibble)).
    tables = []
    for i in range(8):
        box = _S[i]
        t = []
        for x in range(64):
            s = box[(((x >> 4) & 2) | (x & 1)) * 16 + ((x >> 1) & 15)]
            f = _permute(s << (28 - 4 * i), _P, 32)
            t.append(((f << 1) | (f >> 31)) & _M32)
        tables.append(tuple(t))
    return tuple(tables)


_SP1, _SP2, _SP3, _SP4, _SP5, _SP6, _SP7, _SP8 = _sp_tables()
del _sp_tables


def _round_keys(key8: bytes) -> list:
    # FIPS 46-3 key schedule, cooked: each 48-bit round key becomes two
    # words, (g1 g3 g5 g7) and (g2 g4 g6 g8), one 6-bit group per byte.
    # Parity bits (the lsb of each key byte) are ignored, as the standard says.
    cd = _permute(int.from_bytes(bytes(key8), "big"), _PC1, 64)
    c = cd >> 28
    d = cd & 0x0FFFFFFF
    out = []
    for s in _SHIFTS:
        c = ((c << s) | (c >> (28 - s))) & 0x0FFFFFFF
        d = ((d << s) | (d >> (28 - s))) & 0x0FFFFFFF
        k = _permute((c << 28) | d, _PC2, 56)
        g = [(k >> (42 - 6 * j)) & 63 for j in range(8)]
        out.append((g[0] << 24) | (g[2] << 16) | (g[4] << 8) | g[6])
        out.append((g[1] << 24) | (g[3] << 16) | (g[5] << 8) | g[7])
    return out


def _reverse(keys: list) -> list:
    # Decryption uses the round keys in reverse order (pairs stay together).
    out = []
    for i in range(len(keys) - 2, -1, -2):
        out.append(keys[i])
        out.append(keys[i + 1])
    return out


_pack = struct.pack
_unpack = struct.unpack


def _crypt(ks: tuple, block: bytes) -> bytes:
    # One block through 16 rounds per 32 cooked key words (1 or 3 passes).
    if len(block) != 8:
        raise ValueError("DES block must be 8 bytes")
    left, right = _unpack(">II", block)
    # Initial permutation as a bit-swap network; leaves both halves
    # rotated left by one bit (the internal layout).
    w = ((left >> 4) ^ right) & 0x0F0F0F0F
    right ^= w
    left ^= w << 4
    w = ((left >> 16) ^ right) & 0x0000FFFF
    right ^= w
    left ^= w << 16
    w = ((right >> 2) ^ left) & 0x33333333
    left ^= w
    right ^= (w << 2) & _M32
    w = ((right >> 8) ^ left) & 0x00FF00FF
    left ^= w
    right ^= (w << 8) & _M32
    right = ((right << 1) | (right >> 31)) & _M32
    w = (left ^ right) & 0xAAAAAAAA
    left ^= w
    right ^= w
    left = ((left << 1) | (left >> 31)) & _M32

    sp1 = _SP1
    sp2 = _SP2
    sp3 = _SP3
    sp4 = _SP4
    sp5 = _SP5
    sp6 = _SP6
    sp7 = _SP7
    sp8 = _SP8
    i = 0
    n = len(ks)
    while i < n:
        end = i + 32
        while i < end:
            # Bits above 32 of the rotation are never looked at.
            w = ((right >> 4) | (right << 28)) ^ ks[i]
            f = sp7[w & 63] | sp5[(w >> 8) & 63] | sp3[(w >> 16) & 63] | sp1[(w >> 24) & 63]
            w = right ^ ks[i + 1]
            left ^= f | sp8[w & 63] | sp6[(w >> 8) & 63] | sp4[(w >> 16) & 63] | sp2[(w >> 24) & 63]
            w = ((left >> 4) | (left << 28)) ^ ks[i + 2]
            f = sp7[w & 63] | sp5[(w >> 8) & 63] | sp3[(w >> 16) & 63] | sp1[(w >> 24) & 63]
            w = left ^ ks[i + 3]
            right ^= f | sp8[w & 63] | sp6[(w >> 8) & 63] | sp4[(w >> 16) & 63] | sp2[(w >> 24) & 63]
            i += 4
        if i < n:
            # Between passes: the pre-output block R16 || L16 is the next
            # pass's input, as IP(FP(x)) = x.
            left, right = right, left

    # Final permutation (IP^-1) of R16 || L16: the network above run
    # backwards, with the halves' roles exchanged.
    right = ((right << 31) | (right >> 1)) & _M32
    w = (left ^ right) & 0xAAAAAAAA
    left ^= w
    right ^= w
    left = ((left << 31) | (left >> 1)) & _M32
    w = ((left >> 8) ^ right) & 0x00FF00FF
    right ^= w
    left ^= (w << 8) & _M32
    w = ((left >> 2) ^ right) & 0x33333333
    right ^= w
    left ^= (w << 2) & _M32
    w = ((right >> 16) ^ left) & 0x0000FFFF
    left ^= w
    right ^= (w << 16) & _M32
    w = ((right >> 4) ^ left) & 0x0F0F0F0F
    left ^= w
    right ^= (w << 4) & _M32
    return _pack(">II", right, left)


def _xor8(a: bytes, b: bytes) -> bytes:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return x.to_bytes(8, "big")


class _BlockCipher:
    # Shared ECB/CBC plumbing; subclasses set _enc and _dec key tuples.
    _enc: tuple = ()
    _dec: tuple = ()

    def encrypt_block(self, block: bytes) -> bytes:
        return _crypt(self._enc, block)

    def decrypt_block(self, block: bytes) -> bytes:
        return _crypt(self._dec, block)

    def encrypt_cbc(self, data: bytes, iv: bytes = bytes(8)) -> bytes:
        # CBC over whole blocks (FIPS 81 / SP 800-38A); the zero IV is the
        # EMV default (EMV Book 2 Annex A1.1).
        if len(data) % 8:
            raise ValueError("CBC data must be a multiple of 8 bytes")
        ks = self._enc
        out = []
        chain = bytes(iv)
        for i in range(0, len(data), 8):
            chain = _crypt(ks, _xor8(chain, data[i:i + 8]))
            out.append(chain)
        return b"".join(out)

    def decrypt_cbc(self, data: bytes, iv: bytes = bytes(8)) -> bytes:
        if len(data) % 8:
            raise ValueError("CBC data must be a multiple of 8 bytes")
        ks = self._dec
        out = []
        chain = bytes(iv)
        for i in range(0, len(data), 8):
            block = bytes(data[i:i + 8])
            out.append(_xor8(chain, _crypt(ks, block)))
            chain = block
        return b"".join(out)


class DES(_BlockCipher):
    # Single DES with an 8-byte key (parity bits ignored).
    def __init__(self, key: bytes) -> None:
        if len(key) != 8:
            raise ValueError("DES key must be 8 bytes")
        ks = _round_keys(key)
        self._enc = tuple(ks)
        self._dec = tuple(_reverse(ks))


class DES3(_BlockCipher):
    # TDEA encrypt-decrypt-encrypt (SP 800-67 §3.1): 24 bytes = K1 K2 K3
    # (keying option 1), 16 bytes = K1 K2 with K3 = K1 (option 2, the EMV
    # double-length key), 8 bytes = single DES (K1 = K2 = K3).
    def __init__(self, key: bytes) -> None:
        n = len(key)
        if n == 8:
            ks = _round_keys(key)
            self._enc = tuple(ks)
            self._dec = tuple(_reverse(ks))
            return
        if n == 16:
            k1 = k3 = _round_keys(key[:8])
            k2 = _round_keys(key[8:])
        elif n == 24:
            k1 = _round_keys(key[:8])
            k2 = _round_keys(key[8:16])
            k3 = _round_keys(key[16:])
        else:
            raise ValueError("TDEA key must be 8, 16 or 24 bytes")
        self._enc = tuple(k1 + _reverse(k2) + k3)
        self._dec = tuple(_reverse(k3) + k2 + _reverse(k1))
