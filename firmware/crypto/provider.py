# The one crypto provider the card code uses (DES/TDEA blocks, SHA-1,
# SHA-256, the RSA arithmetic, SM2 scalar multiplication, SM3's compression
# function, random bytes).
#
# Portable: runs unchanged on CPython and MicroPython.
# - CPython: DES/TDEA from `cryptography` (OpenSSL) with one reusable ECB
#   context per key, hashes from hashlib, modular exponentiation from gmpy2.
# - MicroPython with the native backend (the user C module _emvnative of
#   firmware/native/, built into the token images): DES/TDEA, SHA-1, the
#   RSA private operation (CRT), the public-exponent check, SM2 scalar
#   multiplication on sm2p256v1 and SM3's compression function in C.
# - MicroPython without it (the unix port, a port built without the
#   module): hashlib where the port has the algorithm, the pure SHA-1
#   otherwise; the pure DES; the builtin pow(); sm2.py's and sm3.py's own
#   arithmetic.
# use_pure(True) forces the pure DES and SHA-1, the builtin pow() and
# sm2.py's and sm3.py's arithmetic everywhere, so tests can check pure == native. SHA-256
# always comes from hashlib.
#
# The native backend is a seam: use_backend(obj) installs any object with
# _emvnative's functions (rsa_crt, powmod, des_keys, des_ecb, des_cbc and,
# optionally, sha1, sm2_mul and sm3_compress; see docs/firmware.md), e.g. a
# port's module over an RSA accelerator. SHA-1: the backend's sha1 where it
# has one, else hashlib.sha1, else the pure one. SM2 and SM3: the backend's
# sm2_mul and sm3_compress where it has them, else sm2.py's and sm3.py's
# arithmetic.
#
# The pure DES is imported the first time it is used (its tables take 7 KB
# of heap on a 32-bit port, which an image with a native DES never needs).
#
# Keys: 8 bytes = single DES, 16 = double-length TDEA (K1 K2 K1, the EMV
# key size), 24 = three-key TDEA. Cached contexts hold key material in
# memory; clear_cache() drops them.

import os
import sys

from . import sha1 as _sha1
from .block import xor_block


def _import_hashlib():
    # The port's hashlib, or None on a MicroPython port built without it.
    try:
        import hashlib

        return hashlib
    except ImportError:
        return None


def _import_tdea():
    # (Cipher, ECB, TripleDES) from cryptography where CPython has it, else None.
    if sys.implementation.name == "micropython":
        return None
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher
        from cryptography.hazmat.primitives.ciphers.modes import ECB

        try:
            from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
        except ImportError:  # cryptography < 43
            from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    except ImportError:
        return None
    return Cipher, ECB, TripleDES


def _import_powmod():
    # Big-number modular exponentiation: GMP through gmpy2 where CPython has
    # it (about 9x faster for the card's RSA private operation), else None and
    # the builtin pow() is used.
    if sys.implementation.name == "micropython":
        return None
    try:
        from gmpy2 import powmod
    except ImportError:
        return None
    return powmod


def _import_native():
    # The image's native backend (firmware/native/, the module _emvnative),
    # or None: CPython, the unix port, an image built without it.
    try:
        import _emvnative  # type: ignore[import-not-found]
    except ImportError:
        return None
    return _emvnative


_hashlib = _import_hashlib()
_tdea = _import_tdea()
_gmp_powmod = _import_powmod()
_native = _import_native()

_HAVE_NATIVE_DES = _tdea is not None or _native is not None
_native_sha1 = getattr(_native, "sha1", None)
_native_sm2 = getattr(_native, "sm2_mul", None)
_native_sm3 = getattr(_native, "sm3_compress", None)
_HAVE_SHA1 = _hashlib is not None and hasattr(_hashlib, "sha1")
_HAVE_SHA256 = _hashlib is not None and hasattr(_hashlib, "sha256")

_CACHE_MAX = 32
# A native schedule costs microseconds to make but stays on the heap: on a small
# device, the cache of one session (the master key, a session key) only, not of 32.
_NATIVE_CACHE_MAX = 2
_cache: dict = {}
_forced = False
_pure_des = not _HAVE_NATIVE_DES


def use_pure(flag: bool = True) -> None:
    # Force (True) or release (False) the pure-Python DES and SHA-1, the
    # builtin pow() and sm2.py's and sm3.py's arithmetic.
    global _forced, _pure_des
    _forced = bool(flag)
    _pure_des = _forced or not _HAVE_NATIVE_DES
    _cache.clear()


def use_backend(native) -> None:
    # Install a native backend (an object with _emvnative's functions), or
    # None to use the portable code; drops the cached key schedules.
    global _native, _native_sha1, _native_sm2, _native_sm3, _HAVE_NATIVE_DES, _pure_des
    _native = native
    _native_sha1 = getattr(native, "sha1", None)
    _native_sm2 = getattr(native, "sm2_mul", None)
    _native_sm3 = getattr(native, "sm3_compress", None)
    _HAVE_NATIVE_DES = _tdea is not None or _native is not None
    _pure_des = _forced or not _HAVE_NATIVE_DES
    _cache.clear()


def backend() -> str:
    # Which DES/TDEA implementation is in use: "native" (the native
    # backend), "cryptography" or "pure".
    if _pure_des:
        return "pure"
    return "native" if _native is not None else "cryptography"


def clear_cache() -> None:
    # Drop the cached per-key cipher contexts (and the keys they hold).
    _cache.clear()


class _NativeTDEA:
    # One ECB encryptor and decryptor per key; ECB contexts are stateless
    # between whole blocks, so update() can be called again and again
    # (7x faster than a new context per block). Each update() runs under
    # the GIL, so sharing a context between threads is safe on CPython.
    def __init__(self, key: bytes) -> None:
        if len(key) == 8:
            key = key * 3
        elif len(key) == 16:
            key = key + key[:8]  # keying option 2 as a 24-byte key
        elif len(key) != 24:
            raise ValueError("TDEA key must be 8, 16 or 24 bytes")
        cipher_class, ecb, tdes = _tdea
        cipher = cipher_class(tdes(key), ecb())
        self._enc = cipher.encryptor()
        self._dec = cipher.decryptor()

    def encrypt_block(self, block: bytes) -> bytes:
        if len(block) != 8:
            raise ValueError("DES block must be 8 bytes")
        return self._enc.update(block)

    def decrypt_block(self, block: bytes) -> bytes:
        if len(block) != 8:
            raise ValueError("DES block must be 8 bytes")
        return self._dec.update(block)


class _BackendDES:
    # The native backend's DES/TDEA: the key schedules computed once per key
    # (opaque bytes), each block one call.
    __slots__ = ("_enc", "_dec")

    def __init__(self, key: bytes) -> None:
        self._enc, self._dec = _native.des_keys(key)

    def encrypt_block(self, block: bytes) -> bytes:
        if len(block) != 8:
            raise ValueError("DES block must be 8 bytes")
        return _native.des_ecb(self._enc, block)

    def decrypt_block(self, block: bytes) -> bytes:
        if len(block) != 8:
            raise ValueError("DES block must be 8 bytes")
        return _native.des_ecb(self._dec, block)

    def encrypt_cbc(self, data: bytes, iv: bytes) -> bytes:
        return _native.des_cbc(self._enc, data, iv)


def _cipher(key: bytes):  # -> object with encrypt_block / decrypt_block
    key = bytes(key)
    c = _cache.get(key)
    if c is None:
        if len(key) not in (8, 16, 24):
            raise ValueError("DES/TDEA key must be 8, 16 or 24 bytes")
        if _pure_des:
            from . import des  # the pure DES, on first use

            c = des.DES3(key)
        elif _native is not None:
            c = _BackendDES(key)
        else:
            c = _NativeTDEA(key)
        if len(_cache) >= (_NATIVE_CACHE_MAX if isinstance(c, _BackendDES) else _CACHE_MAX):
            _cache.clear()
        _cache[key] = c
    return c


def des3_encrypt_block(key: bytes, block: bytes) -> bytes:
    # TDEA (SP 800-67) ECB encryption of one 8-byte block; 16 or 24-byte key.
    if len(key) not in (16, 24):
        raise ValueError("TDEA key must be 16 or 24 bytes")
    return _cipher(key).encrypt_block(block)


def des3_decrypt_block(key: bytes, block: bytes) -> bytes:
    if len(key) not in (16, 24):
        raise ValueError("TDEA key must be 16 or 24 bytes")
    return _cipher(key).decrypt_block(block)


def des_encrypt_block(key8: bytes, block: bytes) -> bytes:
    # Single DES (FIPS 46-3) ECB encryption of one block, 8-byte key.
    if len(key8) != 8:
        raise ValueError("DES key must be 8 bytes")
    return _cipher(key8).encrypt_block(block)


def des_decrypt_block(key8: bytes, block: bytes) -> bytes:
    if len(key8) != 8:
        raise ValueError("DES key must be 8 bytes")
    return _cipher(key8).decrypt_block(block)


def des_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    # CBC encryption over whole blocks with DES (8-byte key) or TDEA (16 or
    # 24), zero IV by default (EMV Book 2 Annex A1.1).
    if len(data) % 8:
        raise ValueError("CBC data must be a multiple of 8 bytes")
    c = _cipher(key)
    if isinstance(c, _BackendDES):
        return c.encrypt_cbc(bytes(data), bytes(iv))
    chain = bytes(iv)
    out = []
    for i in range(0, len(data), 8):
        chain = c.encrypt_block(xor_block(chain, data[i:i + 8]))
        out.append(chain)
    return b"".join(out)


def powmod(base: int, exponent: int, modulus: int) -> int:
    # base ** exponent mod modulus (RSA, EMV Book 2 Annex B2.1).
    if _gmp_powmod is not None and not _forced:
        return int(_gmp_powmod(base, exponent, modulus))
    return pow(base, exponent, modulus)


def backend_powmod() -> str:
    # How the card's RSA exponentiations are done: "native" (the native
    # backend's rsa_crt and powmod, through native_rsa()), "gmpy2" or "pow".
    if native_rsa():
        return "native"
    return "gmpy2" if _gmp_powmod is not None and not _forced else "pow"


def native_rsa() -> bool:
    # Whether rsa_crt() is available (RSAPrivateKey.private then uses it).
    return _native is not None and not _forced


def rsa_crt(c: bytes, p: bytes, q: bytes, dp: bytes, dq: bytes, qinv: bytes) -> bytes:
    # The RSA private operation c^d mod pq by the CRT in the native backend,
    # every number big-endian bytes, c (the modulus length) below pq; the
    # result has len(c) bytes. NotImplementedError without the backend.
    if not native_rsa():
        raise NotImplementedError("no native RSA backend")
    return _native.rsa_crt(c, p, q, dp, dq, qinv)


def rsa_public(x: bytes, e: bytes, n: bytes) -> bytes:
    # x^e mod n (big-endian bytes, x below the odd modulus n; len(n) bytes
    # out): the native backend when there is one (variable time in e: public
    # exponents only), else the builtin pow().
    if native_rsa():
        return _native.powmod(x, e, n)
    k = len(n)
    return pow(int.from_bytes(x, "big"), int.from_bytes(e, "big"), int.from_bytes(n, "big")).to_bytes(k, "big")


def sha1(data: bytes) -> bytes:
    # SHA-1 (FIPS 180-4), 20 bytes: the native backend's, hashlib's or the
    # pure one, in that order.
    if not _forced:
        if _native_sha1 is not None:
            return _native_sha1(data)
        if _HAVE_SHA1:
            return _hashlib.sha1(data).digest()
    return _sha1.sha1(data)


def backend_sha1() -> str:
    # Which SHA-1 is in use: "native", "hashlib" or "pure".
    if _forced:
        return "pure"
    if _native_sha1 is not None:
        return "native"
    return "hashlib" if _HAVE_SHA1 else "pure"


def native_sm2() -> bool:
    # Whether sm2_mul() is available (sm2.multiply on sm2p256v1 then uses it).
    return _native_sm2 is not None and not _forced


def sm2_mul(k: bytes, point: "bytes | None" = None) -> bytes:
    # [k]P on sm2p256v1 (GB/T 32918.5) in the native backend: k 32 bytes
    # big-endian, 1 <= k < n; point x || y (64 bytes, checked to be on the
    # curve) or None for the base point G; x || y (64 bytes) out. ValueError
    # for a bad scalar or point; NotImplementedError without the backend.
    mul = _native_sm2
    if mul is None or _forced:
        raise NotImplementedError("no native SM2 backend")
    return mul(k, point)


def backend_sm2() -> str:
    # How SM2 scalar multiplications on sm2p256v1 are done: "native" or
    # "pure" (sm2.py's arithmetic on Python integers).
    return "native" if native_sm2() else "pure"


def native_sm3() -> bool:
    # Whether sm3_compress() is available (sm3.py's SM3 then uses it).
    return _native_sm3 is not None and not _forced


def sm3_compress(state: bytes, blocks: bytes) -> bytes:
    # SM3's compression function CF (GB/T 32905 §5.3) in the native backend,
    # over whole 64-byte blocks from the 32-byte chaining value (eight
    # big-endian words); the new chaining value. NotImplementedError without
    # the backend.
    compress = _native_sm3
    if compress is None or _forced:
        raise NotImplementedError("no native SM3 backend")
    return compress(state, blocks)


def backend_sm3() -> str:
    # Which SM3 compression is in use: "native" or "pure" (sm3.py's).
    return "native" if native_sm3() else "pure"


def sha256(data: bytes) -> bytes:
    # SHA-256 (FIPS 180-4), 32 bytes; hashlib only (every MicroPython
    # port with hashlib has it).
    if not _HAVE_SHA256:
        raise NotImplementedError("this port has no hashlib.sha256")
    return _hashlib.sha256(data).digest()


def random_bytes(n: int) -> bytes:
    # Default random source (os.urandom on both ports). The card takes an
    # injectable source; this is only what it uses when given none.
    return os.urandom(n)
