"""The native crypto's C (firmware/native/: mont.c, des.c, sha1.c, sm2.c, sm3.c) compiled for the host, via ctypes.

Both limb widths: 32-bit limbs (the Armv7-M build) and 16-bit limbs (``EMVN_LIMB16``, what ARMv6-M builds get),
checked against CPython's ``pow()``, against the pure-Python DES, for SHA-1 against ``hashlib`` and the FIPS 180
examples, and SM2's scalar multiplication (sm2.c has one limb width) against ``gmssl`` (pure Python, PyPI) and the
portable firmware/crypto/sm2.py; SM3's compression, installed as a provider backend under sm3.py, against OpenSSL's
SM3 (through ``cryptography``). The module as MicroPython runs it is checked on the QEMU images
(tests/token/test_native.py); this is the quick check of the same C on every run.
"""

from __future__ import annotations

import ctypes
import hashlib
import random
import shutil
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes
from gmssl import sm2 as gm_sm2  # type: ignore[import-untyped]

from emvkit.firmware.crypto import des, provider, sm2, sm3
from tests.conftest import ROOT
from tests.native_keys import Key, be, keys, messages

sys.path.insert(0, str(ROOT / "tests" / "portable"))
import crypto_cases

NATIVE = ROOT / "firmware" / "native"
OK, EVEN_MODULUS, TOO_LARGE, INPUT_RANGE, NOT_ON_CURVE = 0, 1, 2, 3, 4
WORK = 64 * 1024  # bytes of workspace, more than EMVN_CRT_WORK of the largest key


@pytest.fixture(scope="module", params=[32, 16], ids=["limb32", "limb16"])
def lib(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on this host")
    out = tmp_path_factory.mktemp("native") / f"libemvn{request.param}.so"
    flags = ["-DEMVN_LIMB16"] if request.param == 16 else []
    sources = [str(NATIVE / name) for name in ("mont.c", "mont_armv6m.c", "des.c", "sha1.c", "sm2.c", "sm3.c")]
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", *flags, f"-I{NATIVE}", *sources,
                    "-o", str(out)], check=True)
    so = ctypes.CDLL(str(out))
    p, s = ctypes.c_char_p, ctypes.c_size_t
    so.emvn_powmod_public.argtypes = [p, p, s, p, s, p, s, ctypes.c_void_p]
    so.emvn_rsa_crt.argtypes = [p, s] + [p, s] * 6 + [ctypes.c_void_p]
    so.emvn_des_crypt.argtypes = [ctypes.c_void_p, s, p, p]
    so.emvn_des_round_keys.argtypes = [ctypes.c_void_p, p]
    so.emvn_limbs_for.argtypes = [p, s]
    so.emvn_limbs_for.restype = s
    so.emvn_sha1.argtypes = [p, p, s]
    so.emvn_sha1.restype = None
    so.emvn_sm2_mul.argtypes = [p, p, p]
    so.emvn_sm3_compress.argtypes = [ctypes.c_void_p, p, s]
    so.emvn_sm3_compress.restype = None
    return so


def crt(lib: ctypes.CDLL, k: Key, c: bytes, *, p: int | None = None) -> tuple[int, bytes]:
    out = ctypes.create_string_buffer(len(c))
    work = ctypes.create_string_buffer(WORK)
    args: list[bytes | int] = []
    for x in (c, be(k.p if p is None else p), be(k.q), be(k.dp), be(k.dq), be(k.qinv)):
        args += [x, len(x)]
    err = lib.emvn_rsa_crt(out, len(c), *args, work)
    return err, out.raw


def powmod(lib: ctypes.CDLL, x: bytes, e: bytes, n: bytes) -> tuple[int, bytes]:
    out = ctypes.create_string_buffer(len(n))
    work = ctypes.create_string_buffer(WORK)
    err = lib.emvn_powmod_public(out, x, len(x), e, len(e), n, len(n), work)
    return err, out.raw


@pytest.mark.parametrize("k", keys(), ids=lambda k: f"{k.n.bit_length()}b-e{k.e}-p{k.p.bit_length()}")
def test_rsa_crt_and_the_public_power_equal_pow(lib: ctypes.CDLL, k: Key) -> None:
    for c in messages(k, 6, seed=k.n % 1000):
        err, out = crt(lib, k, be(c, k.size))
        assert err == OK
        assert out == be(pow(c, k.d, k.n), k.size), hex(c)
        err, back = powmod(lib, out, be(k.e), be(k.n, k.size))
        assert err == OK
        assert back == be(c, k.size)


def test_the_public_power_on_random_moduli_and_exponents(lib: ctypes.CDLL) -> None:
    rnd = random.Random(5)
    for bits in (17, 31, 32, 33, 64, 100, 512, 1000, 1024, 2048):
        n = rnd.getrandbits(bits) | 1 | (1 << (bits - 1))
        size = (bits + 7) // 8
        for e in (0, 1, 2, 3, 65537, rnd.getrandbits(bits), rnd.getrandbits(300)):
            x = rnd.randrange(n)
            err, out = powmod(lib, be(x, size), be(e), be(n, size))
            assert (err, out) == (OK, be(pow(x, e, n), size)), (bits, e)
    # leading zero bytes in the modulus and the base are allowed
    err, out = powmod(lib, bytes(3) + b"\x05", b"\x03", bytes(2) + be(1009))
    assert (err, out) == (OK, be(pow(5, 3, 1009), 4))


def test_bad_inputs_are_errors(lib: ctypes.CDLL) -> None:
    assert powmod(lib, b"\x02", b"\x03", b"\x10")[0] == EVEN_MODULUS
    assert powmod(lib, b"\x02", b"\x03", b"\x01")[0] == EVEN_MODULUS
    assert powmod(lib, b"\x11", b"\x03", b"\x11")[0] == INPUT_RANGE  # base not below the modulus
    assert powmod(lib, b"\x02", b"\x03", b"\x01" + bytes(256))[0] == TOO_LARGE  # 2056 bits
    k = keys()[0]
    assert crt(lib, k, be(5, k.size), p=k.p + 1)[0] == EVEN_MODULUS
    assert crt(lib, k, bytes(k.size + 8) + b"\x01" * (2 * k.size))[0] == INPUT_RANGE  # c needs more limbs
    err, out = crt(lib, k, be(5, k.size - 1))  # the result does not fit the caller's length
    assert err == TOO_LARGE or out == be(pow(5, k.d, k.n), k.size - 1)


def test_limbs_for(lib: ctypes.CDLL, request: pytest.FixtureRequest) -> None:
    width = 4 if "limb32" in request.node.name else 2  # bytes a limb
    assert lib.emvn_limbs_for(bytes(5), 5) == 0
    assert lib.emvn_limbs_for(b"\x00\x01", 2) == 1
    assert lib.emvn_limbs_for(b"\x01" * width, width) == 1
    assert lib.emvn_limbs_for(b"\x00\x01" + bytes(width), width + 2) == 2


def test_des_key_schedule_and_blocks_equal_the_pure_des(lib: ctypes.CDLL) -> None:
    rnd = random.Random(9)
    for _ in range(64):
        key, block = rnd.randbytes(8), rnd.randbytes(8)
        ks = (ctypes.c_uint32 * 96)()
        lib.emvn_des_round_keys(ks, key)
        assert list(ks)[:32] == des._round_keys(key)
        out = ctypes.create_string_buffer(8)
        lib.emvn_des_crypt(ks, 32, block, out)
        assert out.raw == des.DES(key).encrypt_block(block)
        # three passes: the pure TDEA's cooked schedule through the C block function
        k3 = rnd.randbytes(24)
        enc = (ctypes.c_uint32 * 96)(*des.DES3(k3)._enc)
        lib.emvn_des_crypt(enc, 96, block, out)
        assert out.raw == des.DES3(k3).encrypt_block(block)


def sha1(lib: ctypes.CDLL, data: bytes) -> bytes:
    out = ctypes.create_string_buffer(20)
    lib.emvn_sha1(out, data, len(data))
    return out.raw


def test_sha1_equals_hashlib_on_every_length_to_300(lib: ctypes.CDLL) -> None:
    rnd = random.Random(180)
    for n in range(301):  # every padding case: 55/56 and 63/64 bytes, one to five blocks
        for _ in range(3):
            data = rnd.randbytes(n)
            assert sha1(lib, data) == hashlib.sha1(data).digest(), n
    for n in (1000, 4095, 4096, 65537):
        data = rnd.randbytes(n)
        assert sha1(lib, data) == hashlib.sha1(data).digest(), n


def test_sha1_fips180_examples(lib: ctypes.CDLL) -> None:
    records = crypto_cases.load_rsp("sha1_fips180.rsp")
    assert len(records) == 5  # "", "abc", 448 bits, 896 bits, a million 'a'
    for r in records:
        msg = bytes.fromhex(r["Msg"]) * int(r.get("Repeat", "1"))
        msg = msg[:int(r["Len"]) // 8]
        assert sha1(lib, msg) == bytes.fromhex(r["MD"]), r["Len"]


# --- SM2 (sm2.c) ---

CURVE = sm2.SM2P256V1
G_HEX = f"{CURVE.gx:064x}{CURVE.gy:064x}"


def sm2_mul(lib: ctypes.CDLL, k: int | bytes, point: bytes | None = None) -> tuple[int, bytes]:
    out = ctypes.create_string_buffer(64)
    kb = k if isinstance(k, bytes) else k.to_bytes(32, "big")
    return lib.emvn_sm2_mul(out, kb, point), out.raw


def gmssl_mul(k: int, point_hex: str) -> bytes:
    # gmssl's own scalar multiplication (CryptSM2._kg: k and x || y in hex), an independent implementation.
    gm = gm_sm2.CryptSM2(private_key="01", public_key=G_HEX)
    return bytes.fromhex(gm._kg(k, point_hex))


def edge_scalars() -> list[int]:
    n = CURVE.n
    return [1, 2, 3, 15, 16, 17, 255, 256, n - 1, n - 2, n - 15, n - 16, n - 17, n // 2, 2**255,
            *[2**e for e in range(1, 256, 9)], 2**255 - 1, 0xFFFFFFFE << 224]


def test_sm2_base_point_multiplication_equals_gmssl(lib: ctypes.CDLL) -> None:
    rnd = random.Random(32918)
    scalars = [*edge_scalars(), *[rnd.randrange(1, CURVE.n) for _ in range(40)]]
    for k in scalars:
        err, out = sm2_mul(lib, k)
        assert err == OK, hex(k)
        assert out == gmssl_mul(k, G_HEX), hex(k)
    err, out = sm2_mul(lib, 7, bytes.fromhex(G_HEX))  # the generator passed as a point
    assert (err, out) == (OK, gmssl_mul(7, G_HEX))


def test_sm2_any_point_multiplication_equals_gmssl_and_the_portable_code(lib: ctypes.CDLL) -> None:
    rnd = random.Random(5)
    for _ in range(6):
        q = sm2.multiply(CURVE, rnd.randrange(1, CURVE.n), CURVE.g)
        assert q is not None
        q_bytes = q[0].to_bytes(32, "big") + q[1].to_bytes(32, "big")
        for k in [1, 2, CURVE.n - 1, *[rnd.randrange(1, CURVE.n) for _ in range(5)]]:
            err, out = sm2_mul(lib, k, q_bytes)
            assert err == OK
            assert out == gmssl_mul(k, q_bytes.hex()), hex(k)
            r = sm2.multiply(CURVE, k, q)
            assert r is not None
            assert out == r[0].to_bytes(32, "big") + r[1].to_bytes(32, "big")


def test_sm2_bad_scalars_and_points_are_errors(lib: ctypes.CDLL) -> None:
    n, p = CURVE.n, CURVE.p
    for k in (0, n, n + 1, 2**256 - 1):
        assert sm2_mul(lib, k)[0] == INPUT_RANGE, hex(k)
    g = bytes.fromhex(G_HEX)
    off_curve = g[:63] + bytes([g[63] ^ 1])
    # coordinates p and p + 1 would be 0 and 1 if reduced: refused, not reduced
    for point in (off_curve, bytes(64), p.to_bytes(32, "big") + g[32:], g[:32] + p.to_bytes(32, "big"),
                  (p + 1).to_bytes(32, "big") + g[32:]):
        assert sm2_mul(lib, 5, point)[0] == NOT_ON_CURVE, point.hex()
    # (x, -y) is on the curve: [k](x, -y) = -[k](x, y)
    neg = g[:32] + (p - CURVE.gy).to_bytes(32, "big")
    err, out = sm2_mul(lib, 9, neg)
    want = gmssl_mul(9, G_HEX)
    assert err == OK and out == want[:32] + (p - int.from_bytes(want[32:], "big")).to_bytes(32, "big")


# --- SM3 (sm3.c) ---


def test_sm3_through_the_c_compression_equals_openssl(lib: ctypes.CDLL) -> None:
    # sm3.c's compression as the provider's backend: sm3.py keeps the buffering and padding and calls it.
    calls: list[int] = []

    class Backend:
        @staticmethod
        def sm3_compress(state: bytes, blocks: bytes) -> bytes:
            assert len(state) == 32 and len(blocks) % 64 == 0
            calls.append(len(blocks))
            out = ctypes.create_string_buffer(bytes(state), 32)
            lib.emvn_sm3_compress(out, bytes(blocks), len(blocks) // 64)
            return out.raw

    def openssl(data: bytes) -> bytes:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()

    rnd = random.Random(32905)
    try:
        provider.use_backend(Backend())
        assert provider.backend_sm3() == "native"
        abc = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"  # GB/T 32905 Appendix A.1
        assert sm3.sm3(b"abc").hex() == abc
        for n in (*range(0, 200), 1000, 4096):
            data = rnd.randbytes(n)
            assert sm3.sm3(data) == openssl(data), n
        h = sm3.SM3(b"x" * 70)
        h.update(b"y" * 100)
        assert h.digest() == openssl(b"x" * 70 + b"y" * 100)
        assert calls
        provider.use_pure(True)
        count = len(calls)
        assert sm3.sm3(b"abc").hex().startswith("66c7f0f4") and len(calls) == count
    finally:
        provider.use_pure(False)
        provider.use_backend(None)
    assert provider.backend_sm3() == "pure"
