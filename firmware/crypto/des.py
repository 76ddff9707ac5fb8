# Pure-Python DES and TDEA (triple DES), FIPS 46-3 and NIST SP 800-67.
#
# Portable: runs unchanged on CPython and MicroPython. This is the fallback
# the provider uses where no native DES exists (always on MicroPython), so
# it is table driven, and no value it computes reaches 2**30: on a 32-bit
# MicroPython port larger integers live on the heap (every operation on
# them allocates), and a 32-bit word layout made a TDEA block allocate
# 22 KB and cost three times the instructions (figures in git log).
#
# Internal layout: a 32-bit half R is kept expanded, as E(R) (FIPS 46-3,
# "The Cipher Function f") cut in two 24-bit words: X holds E's 6-bit
# groups 1 3 5 7, Y groups 2 4 6 8, the first at shift 18. A round key is
# cooked to the same two words, so a round is R's two words xor the key's,
# cut into the eight 6-bit S-box inputs. E is linear, so the S-boxes are
# merged at import with P and E into "SPE" tables: for each S-box an X and
# a Y table of 64 entries (E(P(S(x))) split the same way), and
# L ^= f(R, K) is eight look-ups into the X tables and eight into the Y
# tables. The initial and final permutations are bit-swap networks on the
# block's four 16-bit quarters. The key schedule (PC-1, the rotations, PC-2)
# works on the 28-bit C and D, with PC-2 as tables of their 4-bit chunks.

import struct

from .block import xor_block

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

# E, the expansion: bit numbers of R (1 = MSB) in E(R)'s 48 bits.
_E = (32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9,
      8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
      16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25,
      24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1)


def _expand(bits: list) -> tuple:
    # (X, Y) of a half given as 32 bits, bits[0] = bit 1 (setup only).
    x = y = 0
    for g in range(8):
        v = 0
        for k in range(6):
            v = (v << 1) | bits[_E[6 * g + k] - 1]
        if g & 1:
            y |= v << (18 - 6 * (g >> 1))
        else:
            x |= v << (18 - 6 * (g >> 1))
    return x, y


def _spe_tables() -> tuple:
    # X and Y tables of S-box 1, of S-box 2, ...: E(P(Si(x) placed at
    # S-box i's output nibble)).
    tables = []
    for i in range(8):
        box = _S[i]
        tx = []
        ty = []
        for x in range(64):
            s = box[(((x >> 4) & 2) | (x & 1)) * 16 + ((x >> 1) & 15)]
            bits = [0] * 32
            for j in range(32):
                src = _P[j] - 1 - 4 * i  # bit of the nibble, 0 = its msb
                if 0 <= src < 4:
                    bits[j] = (s >> (3 - src)) & 1
            ex, ey = _expand(bits)
            tx.append(ex)
            ty.append(ey)
        tables.append(tuple(tx))
        tables.append(tuple(ty))
    return tuple(tables)


(_X1, _Y1, _X2, _Y2, _X3, _Y3, _X4, _Y4,
 _X5, _Y5, _X6, _Y6, _X7, _Y7, _X8, _Y8) = _spe_tables()
del _spe_tables


def _pc2_tables() -> tuple:
    # PC-2 per 4-bit chunk of C (the first seven tables) and of D (the last
    # seven). C gives E groups 1-4 of the round key, D groups 5-8; an entry
    # holds the odd groups in its upper 12 bits and the even ones in the
    # lower 12 (g1 g3 g2 g4 from C, g5 g7 g6 g8 from D).
    tables = []
    for half in range(2):
        for chunk in range(7):
            t = []
            for v in range(16):
                out = 0
                for p in range(24):
                    src = _PC2[24 * half + p] - 1 - 28 * half - 4 * chunk
                    if 0 <= src < 4 and (v >> (3 - src)) & 1:
                        out |= 1 << (5 - p % 6 + (18, 6, 12, 0)[p // 6])
                t.append(out)
            tables.append(tuple(t))
    return tuple(tables)


_PC2_TABLES = _pc2_tables()
del _pc2_tables


def _schedule(key8: bytes) -> list:
    # FIPS 46-3 key schedule, cooked: each 48-bit round key becomes the two
    # words X = (g1 g3 g5 g7) and Y = (g2 g4 g6 g8) of 6-bit groups.
    # Parity bits (the lsb of each key byte) are ignored, as the standard says.
    key8 = bytes(key8)
    c = d = 0
    for i in range(28):
        src = _PC1[i] - 1
        c = (c << 1) | ((key8[src >> 3] >> (7 - (src & 7))) & 1)
        src = _PC1[i + 28] - 1
        d = (d << 1) | ((key8[src >> 3] >> (7 - (src & 7))) & 1)
    c0, c1, c2, c3, c4, c5, c6, d0, d1, d2, d3, d4, d5, d6 = _PC2_TABLES
    out = []
    for s in _SHIFTS:
        # 28-bit rotations: c << 2 stays below 2**30.
        c = ((c << s) | (c >> (28 - s))) & 0x0FFFFFFF
        d = ((d << s) | (d >> (28 - s))) & 0x0FFFFFFF
        vc = (c0[c >> 24] | c1[(c >> 20) & 15] | c2[(c >> 16) & 15] | c3[(c >> 12) & 15]
              | c4[(c >> 8) & 15] | c5[(c >> 4) & 15] | c6[c & 15])
        vd = (d0[d >> 24] | d1[(d >> 20) & 15] | d2[(d >> 16) & 15] | d3[(d >> 12) & 15]
              | d4[(d >> 8) & 15] | d5[(d >> 4) & 15] | d6[d & 15])
        out.append(((vc >> 12) << 12) | (vd >> 12))
        out.append(((vc & 4095) << 12) | (vd & 4095))
    return out


def _words(ks) -> list:
    # The cooked schedule in firmware/native/des.c's layout: per round key,
    # (g1 g3 g5 g7) and (g2 g4 g6 g8) one group a byte, as 32-bit words.
    # For cross-checks on a host; the pure DES does not use it.
    return [((k >> 18) << 24) | (((k >> 12) & 63) << 16) | (((k >> 6) & 63) << 8) | (k & 63) for k in ks]


def _round_keys(key8: bytes) -> list:
    # The key schedule in the native layout (see _words).
    return _words(_schedule(key8))


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
    # L = lh || ll, R = rh || rl.
    lh, ll, rh, rl = _unpack(">HHHH", block)
    # Initial permutation as a bit-swap network on the quarters; leaves
    # both halves rotated left by one bit.
    w = ((lh >> 4) ^ rh) & 0x0F0F
    rh ^= w
    lh ^= w << 4
    w = ((ll >> 4) ^ rl) & 0x0F0F
    rl ^= w
    ll ^= w << 4
    lh, rl = rl, lh
    w = ((rh >> 2) ^ lh) & 0x3333
    lh ^= w
    rh ^= w << 2
    w = ((rl >> 2) ^ ll) & 0x3333
    ll ^= w
    rl ^= w << 2
    w = ((rh >> 8) ^ lh) & 0x00FF
    lh ^= w
    rh ^= w << 8
    w = ((rl >> 8) ^ ll) & 0x00FF
    ll ^= w
    rl ^= w << 8
    rh, rl = ((rh << 1) | (rl >> 15)) & 0xFFFF, ((rl << 1) | (rh >> 15)) & 0xFFFF
    w = (lh ^ rh) & 0xAAAA
    lh ^= w
    rh ^= w
    w = (ll ^ rl) & 0xAAAA
    ll ^= w
    rl ^= w
    lh, ll = ((lh << 1) | (ll >> 15)) & 0xFFFF, ((ll << 1) | (lh >> 15)) & 0xFFFF

    # Expand: of a rotated half h || l, E's even groups are the 6-bit
    # fields at shifts 8 and 0 of h and of l, the odd ones the same fields
    # of the half rotated right by 4 more bits.
    w = (lh >> 4) | (ll << 12)
    a = (ll >> 4) | (lh << 12)
    lx = (((w >> 8) & 63) << 18) | ((w & 63) << 12) | (((a >> 8) & 63) << 6) | (a & 63)
    ly = (((lh >> 8) & 63) << 18) | ((lh & 63) << 12) | (((ll >> 8) & 63) << 6) | (ll & 63)
    w = (rh >> 4) | (rl << 12)
    a = (rl >> 4) | (rh << 12)
    rx = (((w >> 8) & 63) << 18) | ((w & 63) << 12) | (((a >> 8) & 63) << 6) | (a & 63)
    ry = (((rh >> 8) & 63) << 18) | ((rh & 63) << 12) | (((rl >> 8) & 63) << 6) | (rl & 63)

    x1 = _X1
    x2 = _X2
    x3 = _X3
    x4 = _X4
    x5 = _X5
    x6 = _X6
    x7 = _X7
    x8 = _X8
    y1 = _Y1
    y2 = _Y2
    y3 = _Y3
    y4 = _Y4
    y5 = _Y5
    y6 = _Y6
    y7 = _Y7
    y8 = _Y8
    i = 0
    n = len(ks)
    while i < n:
        end = i + 32
        while i < end:
            w = rx ^ ks[i]
            a = w >> 18
            b = (w >> 12) & 63
            c = (w >> 6) & 63
            d = w & 63
            w = ry ^ ks[i + 1]
            e = w >> 18
            f = (w >> 12) & 63
            g = (w >> 6) & 63
            h = w & 63
            lx ^= x1[a] | x3[b] | x5[c] | x7[d] | x2[e] | x4[f] | x6[g] | x8[h]
            ly ^= y1[a] | y3[b] | y5[c] | y7[d] | y2[e] | y4[f] | y6[g] | y8[h]
            w = lx ^ ks[i + 2]
            a = w >> 18
            b = (w >> 12) & 63
            c = (w >> 6) & 63
            d = w & 63
            w = ly ^ ks[i + 3]
            e = w >> 18
            f = (w >> 12) & 63
            g = (w >> 6) & 63
            h = w & 63
            rx ^= x1[a] | x3[b] | x5[c] | x7[d] | x2[e] | x4[f] | x6[g] | x8[h]
            ry ^= y1[a] | y3[b] | y5[c] | y7[d] | y2[e] | y4[f] | y6[g] | y8[h]
            i += 4
        if i < n:
            # Between passes: the pre-output block R16 || L16 is the next
            # pass's input, as IP(FP(x)) = x.
            lx, rx = rx, lx
            ly, ry = ry, ly

    # Back to rotated halves: Y has all bits but 6, 7, 14, 15 of each
    # quarter, which are bits 2, 3 of X's groups.
    lh = ((ly >> 18) << 8) | ((ly >> 12) & 63) | (((lx >> 12) & 12) << 4) | (((lx >> 18) & 12) << 12)
    ll = (((ly >> 6) & 63) << 8) | (ly & 63) | ((lx & 12) << 4) | (((lx >> 6) & 12) << 12)
    rh = ((ry >> 18) << 8) | ((ry >> 12) & 63) | (((rx >> 12) & 12) << 4) | (((rx >> 18) & 12) << 12)
    rl = (((ry >> 6) & 63) << 8) | (ry & 63) | ((rx & 12) << 4) | (((rx >> 6) & 12) << 12)

    # Final permutation (IP^-1) of R16 || L16: the network above run
    # backwards, with the halves' roles exchanged.
    rh, rl = (rh >> 1) | ((rl & 1) << 15), (rl >> 1) | ((rh & 1) << 15)
    w = (lh ^ rh) & 0xAAAA
    lh ^= w
    rh ^= w
    w = (ll ^ rl) & 0xAAAA
    ll ^= w
    rl ^= w
    lh, ll = (lh >> 1) | ((ll & 1) << 15), (ll >> 1) | ((lh & 1) << 15)
    w = ((lh >> 8) ^ rh) & 0x00FF
    rh ^= w
    lh ^= w << 8
    w = ((ll >> 8) ^ rl) & 0x00FF
    rl ^= w
    ll ^= w << 8
    w = ((lh >> 2) ^ rh) & 0x3333
    rh ^= w
    lh ^= w << 2
    w = ((ll >> 2) ^ rl) & 0x3333
    rl ^= w
    ll ^= w << 2
    rh, ll = ll, rh
    w = ((rh >> 4) ^ lh) & 0x0F0F
    lh ^= w
    rh ^= w << 4
    w = ((rl >> 4) ^ ll) & 0x0F0F
    ll ^= w
    rl ^= w << 4
    return _pack(">HHHH", rh, rl, lh, ll)


class _BlockCipher:
    # Shared ECB/CBC plumbing; subclasses set the cooked key tuples _ek
    # (encryption) and _dk (decryption).
    _ek: tuple = ()
    _dk: tuple = ()

    @property
    def _enc(self) -> tuple:
        # The encryption schedule in firmware/native/des.c's layout.
        return tuple(_words(self._ek))

    @property
    def _dec(self) -> tuple:
        return tuple(_words(self._dk))

    def encrypt_block(self, block: bytes) -> bytes:
        return _crypt(self._ek, block)

    def decrypt_block(self, block: bytes) -> bytes:
        return _crypt(self._dk, block)

    def encrypt_cbc(self, data: bytes, iv: bytes = bytes(8)) -> bytes:
        # CBC over whole blocks (FIPS 81 / SP 800-38A); the zero IV is the
        # EMV default (EMV Book 2 Annex A1.1).
        if len(data) % 8:
            raise ValueError("CBC data must be a multiple of 8 bytes")
        ks = self._ek
        out = []
        chain = bytes(iv)
        for i in range(0, len(data), 8):
            chain = _crypt(ks, xor_block(chain, data[i:i + 8]))
            out.append(chain)
        return b"".join(out)

    def decrypt_cbc(self, data: bytes, iv: bytes = bytes(8)) -> bytes:
        if len(data) % 8:
            raise ValueError("CBC data must be a multiple of 8 bytes")
        ks = self._dk
        out = []
        chain = bytes(iv)
        for i in range(0, len(data), 8):
            block = bytes(data[i:i + 8])
            out.append(xor_block(chain, _crypt(ks, block)))
            chain = block
        return b"".join(out)


class DES(_BlockCipher):
    # Single DES with an 8-byte key (parity bits ignored).
    def __init__(self, key: bytes) -> None:
        if len(key) != 8:
            raise ValueError("DES key must be 8 bytes")
        ks = _schedule(key)
        self._ek = tuple(ks)
        self._dk = tuple(_reverse(ks))


class DES3(_BlockCipher):
    # TDEA encrypt-decrypt-encrypt (SP 800-67 §3.1): 24 bytes = K1 K2 K3
    # (keying option 1), 16 bytes = K1 K2 with K3 = K1 (option 2, the EMV
    # double-length key), 8 bytes = single DES (K1 = K2 = K3).
    def __init__(self, key: bytes) -> None:
        n = len(key)
        if n == 8:
            ks = _schedule(key)
            self._ek = tuple(ks)
            self._dk = tuple(_reverse(ks))
            return
        if n == 16:
            k1 = k3 = _schedule(key[:8])
            k2 = _schedule(key[8:])
        elif n == 24:
            k1 = _schedule(key[:8])
            k2 = _schedule(key[8:16])
            k3 = _schedule(key[16:])
        else:
            raise ValueError("TDEA key must be 8, 16 or 24 bytes")
        self._ek = tuple(k1 + _reverse(k2) + k3)
        self._dk = tuple(_reverse(k3) + k2 + _reverse(k1))
