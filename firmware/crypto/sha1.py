# Pure-Python SHA-1 (FIPS 180-4 §6.1), the fallback for ports whose
# hashlib has no sha1. EMV still uses SHA-1 for ICC Master Key option B
# (EMV Book 2 Annex A1.4.2) and for signatures with message recovery
# (Annex A2.1, Annex B3.1).
#
# Portable: runs unchanged on CPython and MicroPython.

import struct

_M32 = 0xFFFFFFFF
_H0 = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)


def _compress(h: list, block: bytes) -> None:
    # One 64-byte block (FIPS 180-4 §6.1.2), h updated in place.
    w = list(struct.unpack(">16I", block))
    for t in range(16, 80):
        x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]
        w.append(((x << 1) | (x >> 31)) & _M32)
    a, b, c, d, e = h
    for t in range(80):
        if t < 20:
            f = (b & c) | (~b & d)
            k = 0x5A827999
        elif t < 40:
            f = b ^ c ^ d
            k = 0x6ED9EBA1
        elif t < 60:
            f = (b & c) | (b & d) | (c & d)
            k = 0x8F1BBCDC
        else:
            f = b ^ c ^ d
            k = 0xCA62C1D6
        tmp = (((a << 5) | (a >> 27)) + f + e + k + w[t]) & _M32
        e = d
        d = c
        c = ((b << 30) | (b >> 2)) & _M32
        b = a
        a = tmp
    h[0] = (h[0] + a) & _M32
    h[1] = (h[1] + b) & _M32
    h[2] = (h[2] + c) & _M32
    h[3] = (h[3] + d) & _M32
    h[4] = (h[4] + e) & _M32


class SHA1:
    # hashlib-like object: update() any number of times, then digest().
    digest_size = 20
    block_size = 64

    def __init__(self, data: bytes = b"") -> None:
        self._h = list(_H0)
        self._buf = b""
        self._len = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        data = bytes(data)
        self._len += len(data)
        buf = self._buf + data
        end = len(buf) - len(buf) % 64
        for i in range(0, end, 64):
            _compress(self._h, buf[i:i + 64])
        self._buf = buf[end:]

    def digest(self) -> bytes:
        # Padding (§5.1.1): 0x80, zeros, 64-bit big-endian bit length.
        h = list(self._h)
        n = self._len
        tail = self._buf + b"\x80" + bytes((55 - n) % 64) + struct.pack(">Q", n * 8)
        for i in range(0, len(tail), 64):
            _compress(h, tail[i:i + 64])
        return struct.pack(">5I", h[0], h[1], h[2], h[3], h[4])

    def hexdigest(self) -> str:
        return "".join(["%02x" % b for b in self.digest()])


def sha1(data: bytes) -> bytes:
    # SHA-1 digest (20 bytes) of data.
    return SHA1(data).digest()
