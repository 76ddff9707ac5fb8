# CRC-32 (ISO-HDLC: the CRC of zlib and binascii.crc32): the check of the
# store's records (store.py) and of a whole personalisation sent over the
# link (link.py). Reflected polynomial 0xEDB88320, init and final XOR
# 0xFFFFFFFF; the check value of b"123456789" is 0xCBF43926.
# binascii.crc32 where the port has it (CPython, most MicroPython ports),
# else a 256-entry table built on first use.

import binascii

_crc32_native = getattr(binascii, "crc32", None)
_TABLE = []  # type: list


def crc32_portable(data, crc: int = 0) -> int:
    table = _TABLE
    if not table:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            table.append(c)
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32(data, crc: int = 0) -> int:
    # CRC-32 of `data` (bytes-like); `crc` continues a running CRC.
    if _crc32_native is not None:
        return _crc32_native(data, crc) & 0xFFFFFFFF
    return crc32_portable(data, crc)
