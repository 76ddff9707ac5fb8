# SM3 cryptographic hash (GB/T 32905-2016, GM/T 0004-2012): 512-bit
# blocks, 256-bit digest, Merkle-Damgard with SHA-2 style padding. PBOC 3.0
# (JR/T 0025) uses it where EMV uses SHA-1 when the SM suite is chosen,
# and SM2 signatures hash with it (GB/T 32918.2 §6.1).
#
# Portable: runs unchanged on CPython and MicroPython. Words are 32-bit, so
# on a 32-bit MicroPython port (small ints hold 30 bits) most intermediate
# values live on the heap. Where the provider has a native backend with
# sm3_compress (the token images: firmware/native/sm3.c), the compression
# runs there and only the buffering and padding stay here.

import struct

from . import provider

_M32 = 0xFFFFFFFF
# Initial value IV (GB/T 32905 §4.1).
_IV = (0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600, 0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E)


def _rol(x: int, n: int) -> int:
    n &= 31
    return ((x << n) | (x >> (32 - n))) & _M32


# T_j <<< (j mod 32) for j = 0..63 (§4.2, §5.3.3): T_j = 79CC4519 for
# j < 16, 7A879D8A after.
_TJ = tuple([_rol(0x79CC4519 if j < 16 else 0x7A879D8A, j) for j in range(64)])


def _compress(v: list, block: bytes) -> None:
    # CF(V, B) (§5.3.3) with the message expansion of §5.3.2; v updated in place.
    w = list(struct.unpack(">16I", block))
    for j in range(16, 68):
        x = w[j - 16] ^ w[j - 9] ^ _rol(w[j - 3], 15)
        w.append(x ^ _rol(x, 15) ^ _rol(x, 23) ^ _rol(w[j - 13], 7) ^ w[j - 6])  # P1(x) ^ ...
    a, b, c, d, e, f, g, h = v
    for j in range(64):
        a12 = ((a << 12) | (a >> 20)) & _M32
        ss1 = (a12 + e + _TJ[j]) & _M32
        ss1 = ((ss1 << 7) | (ss1 >> 25)) & _M32
        ss2 = ss1 ^ a12
        if j < 16:
            ff = a ^ b ^ c
            gg = e ^ f ^ g
        else:
            ff = (a & b) | (a & c) | (b & c)
            gg = (e & f) | (~e & g)
        tt1 = (ff + d + ss2 + (w[j] ^ w[j + 4])) & _M32  # W'_j = W_j ^ W_{j+4}
        tt2 = (gg + h + ss1 + w[j]) & _M32
        d = c
        c = ((b << 9) | (b >> 23)) & _M32
        b = a
        a = tt1
        h = g
        g = ((f << 19) | (f >> 13)) & _M32
        f = e
        e = tt2 ^ ((tt2 << 9) | (tt2 >> 23)) & _M32 ^ ((tt2 << 17) | (tt2 >> 15)) & _M32  # P0
    v[0] ^= a
    v[1] ^= b
    v[2] ^= c
    v[3] ^= d
    v[4] ^= e
    v[5] ^= f
    v[6] ^= g
    v[7] ^= h


def _compress_blocks(v: list, data: bytes) -> None:
    # CF over every whole 64-byte block of data, v updated in place: the
    # native backend's where the provider has one, else _compress.
    if provider.native_sm3():
        w = struct.unpack(">8I", provider.sm3_compress(struct.pack(">8I", v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                                                                   v[7]), data))
        for i in range(8):
            v[i] = w[i]
        return
    for i in range(0, len(data), 64):
        _compress(v, data[i:i + 64])


class SM3:
    # hashlib-like object: update() any number of times, then digest()
    # (which leaves the object usable for more updates).
    digest_size = 32
    block_size = 64

    def __init__(self, data: bytes = b"") -> None:
        self._v = list(_IV)
        self._buf = b""
        self._len = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        data = bytes(data)
        self._len += len(data)
        buf = self._buf + data
        end = len(buf) - len(buf) % 64
        if end:
            _compress_blocks(self._v, buf[:end])
        self._buf = buf[end:]

    def digest(self) -> bytes:
        # Padding (§5.2): a 1 bit, zeros, the 64-bit big-endian bit length.
        v = list(self._v)
        n = self._len
        tail = self._buf + b"\x80" + bytes((55 - n) % 64) + struct.pack(">Q", n * 8)
        _compress_blocks(v, tail)
        return struct.pack(">8I", v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])

    def hexdigest(self) -> str:
        return "".join(["%02x" % b for b in self.digest()])


def sm3(data: bytes) -> bytes:
    # SM3 digest (32 bytes) of data.
    return SM3(data).digest()
