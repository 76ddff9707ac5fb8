# The XOR of two 8-byte blocks (DES/TDEA chaining, the retail MAC, ARPC
# method 1), for every crypto module. Its own module so that code which
# only chains blocks does not import the pure DES and its tables (7 KB of
# heap on a 32-bit port).
#
# Portable: runs unchanged on CPython and MicroPython.

import struct

_pack = struct.pack
_unpack = struct.unpack


def xor_block(a: bytes, b: bytes) -> bytes:
    # XOR of two 8-byte blocks, in 16-bit quarters (no heap integers on 32-bit ports).
    a0, a1, a2, a3 = _unpack(">HHHH", a)
    b0, b1, b2, b3 = _unpack(">HHHH", b)
    return _pack(">HHHH", a0 ^ b0, a1 ^ b1, a2 ^ b2, a3 ^ b3)
