"""The native arithmetic (firmware/native/, the module ``_emvnative``) in the QEMU images, both boards.

Each image is booted and a small line server runs on it: the host sends numbers and gets the device's results.
RSA through ``_emvnative.rsa_crt`` and ``powmod`` is checked against CPython's ``pow()`` on seeded random keys and
inputs (tests/native_keys.py) and against MicroPython's own ``pow()`` on the device; DES/TDEA through the provider
(which picks the native backend on these images) against the NIST vectors of tests/vectors/crypto/; SHA-1 through
``_emvnative.sha1`` and the provider against the FIPS 180 examples and ``hashlib`` on the host; SM2 scalar
multiplication through ``_emvnative.sm2_mul`` against ``gmssl``'s on the host and against the portable sm2.py on the
device (``provider.use_pure(True)``), SM2 signatures made on the device verified by ``gmssl``, and SM3 (sm3.py over
``_emvnative.sm3_compress``) against OpenSSL's on the host and the portable SM3 on the device.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from gmssl import sm2 as gm_sm2  # type: ignore[import-untyped]

from emvkit.firmware.crypto import sm2
from emvkit.terminal.token.qemu import QemuToken
from tests.conftest import ROOT
from tests.native_keys import Key, be, keys, messages

sys.path.insert(0, str(ROOT / "tests" / "portable"))
import crypto_cases

# The line server: "OP HEX HEX ..." in, "= HEX" or "! ExceptionName" out.
SERVER = """
import sys
import _emvnative as N
from firmware.crypto import provider, rsa, sm2, sm3
def _pow(x, e, n):
    return pow(int.from_bytes(x, 'big'), int.from_bytes(e, 'big'), int.from_bytes(n, 'big')).to_bytes(len(n), 'big')
def _private(mode, c, n, e, p, q):
    provider.use_pure(mode == b'pure')
    try:
        k = rsa.RSAPrivateKey.from_dict({'n': n.hex(), 'e': e.hex(), 'p': p.hex(), 'q': q.hex()})
        return k.private(c)
    finally:
        provider.use_pure(False)
def _point(b):
    return (int.from_bytes(b[:32], 'big'), int.from_bytes(b[32:], 'big'))
def _mul(mode, k, p):
    provider.use_pure(mode == b'pure')
    try:
        r = sm2.multiply(sm2.SM2P256V1, int.from_bytes(k, 'big'), _point(p) if p else sm2.SM2P256V1.g)
        return r[0].to_bytes(32, 'big') + r[1].to_bytes(32, 'big')
    finally:
        provider.use_pure(False)
def _sign(mode, d, e, k):
    provider.use_pure(mode == b'pure')
    try:
        return sm2.sign_digest(int.from_bytes(d, 'big'), e, lambda n: k)
    finally:
        provider.use_pure(False)
def _pub(mode, d):
    provider.use_pure(mode == b'pure')
    try:
        p = sm2.public_key(int.from_bytes(d, 'big'))
        return p[0].to_bytes(32, 'big') + p[1].to_bytes(32, 'big')
    finally:
        provider.use_pure(False)
def _sm3(mode, data):
    provider.use_pure(mode == b'pure')
    try:
        return sm3.sm3(data[1:])
    finally:
        provider.use_pure(False)
OPS = {
    'crt': N.rsa_crt, 'pow': N.powmod, 'pypow': _pow, 'private': _private,
    'e3': provider.des3_encrypt_block, 'd3': provider.des3_decrypt_block,
    'e1': provider.des_encrypt_block, 'd1': provider.des_decrypt_block, 'cbc': provider.des_cbc_encrypt,
    'sha1': lambda x: N.sha1(x[1:]), 'sha1ba': lambda x: N.sha1(bytearray(x[1:])),
    'sha1mv': lambda x: N.sha1(memoryview(x)[1:]), 'sha1int': lambda x: N.sha1(len(x)),
    'psha1': lambda x: provider.sha1(x[1:]),
    'sm2': N.sm2_mul, 'sm2g': lambda k: N.sm2_mul(k, None), 'sm2int': lambda k: N.sm2_mul(k, 5),
    'mul': lambda mode, k, p: _mul(mode, k, p), 'mulg': lambda mode, k: _mul(mode, k, b''),
    'sign': _sign, 'pub': _pub, 'sm3c': N.sm3_compress, 'sm3': _sm3,
}
print('READY', provider.backend(), provider.backend_powmod(), provider.backend_sha1(), provider.backend_sm2(),
      provider.backend_sm3(), N.LIMB_BITS)
while True:
    w = sys.stdin.readline().split()
    if not w or w[0] == 'quit':
        break
    try:
        print('=', OPS[w[0]](*[bytes.fromhex(x) for x in w[1:]]).hex())
    except Exception as exc:
        print('!', type(exc).__name__)
"""


class Device:
    def __init__(self, token: QemuToken) -> None:
        self.token = token
        self.buffer = b""

    def line(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line from the device: {self.buffer[-200:]!r}")
            self.buffer += self.token.read(left)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def call(self, op: str, *args: bytes) -> bytes:
        self.token.write(" ".join([op, *(a.hex() or "" for a in args)]).encode() + b"\n")
        while True:
            line = self.line()
            if line.startswith("= "):
                return bytes.fromhex(line[2:])
            if line == "=":
                return b""
            if line.startswith("! "):
                raise DeviceError(line[2:])

    def quit(self) -> None:
        self.token.write(b"quit\n")


class DeviceError(Exception):
    pass


@pytest.fixture(scope="module", params=["qemu_m3", "qemu_m0plus"])
def device(request: pytest.FixtureRequest, images: dict[str, Path]) -> Iterator[tuple[str, Device, str]]:
    board = request.param
    with QemuToken(images[board], board) as token:
        token.boot(SERVER)
        dev = Device(token)
        ready = ""
        while not ready.startswith("READY"):
            ready = dev.line()
        yield board, dev, ready
        dev.quit()


def test_the_images_pick_the_native_backend(device: tuple[str, Device, str]) -> None:
    board, _dev, ready = device
    limb = 16 if board == "qemu_m0plus" else 32
    assert ready == f"READY native native native native native {limb}"


@pytest.mark.parametrize("k", keys(), ids=lambda k: f"{k.n.bit_length()}b-e{k.e}-p{k.p.bit_length()}")
def test_rsa_crt_on_the_device_equals_pow(device: tuple[str, Device, str], k: Key) -> None:
    _board, dev, _ready = device
    for c in messages(k, 3, seed=k.e + k.n % 997):
        out = dev.call("crt", be(c, k.size), be(k.p), be(k.q), be(k.dp), be(k.dq), be(k.qinv))
        assert out == be(pow(c, k.d, k.n), k.size), hex(c)
        assert dev.call("pow", out, be(k.e), be(k.n, k.size)) == be(c, k.size)


def test_many_rsa_crt_operations_on_the_device_equal_pow(device: tuple[str, Device, str]) -> None:
    # The card's key size (two 512-bit halves): on ARMv6-M the products run the Thumb-1 loop of
    # mont_armv6m.c, which the host's compiled C (tests/test_native_c.py) cannot run. Keys with
    # limbs all ones run every carry to its end; the edges are 0, 1, n - 1, p, q, all ones.
    _board, dev, _ready = device
    card_size = [k for k in keys() if k.n.bit_length() == 1024]
    assert len(card_size) == 4
    count = 0
    for k in card_size:
        for c in [*messages(k, 12, seed=k.n % 1009), k.n - 2, k.p - 1, k.q + 1, 2]:
            out = dev.call("crt", be(c, k.size), be(k.p), be(k.q), be(k.dp), be(k.dq), be(k.qinv))
            assert out == be(pow(c, k.d, k.n), k.size), hex(c)
            count += 1
    assert count == 4 * 22


def test_native_results_equal_micropythons_pow_on_the_device(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    k = keys()[0]  # 512 bits: MicroPython's pow() of a full private exponent is slow on a 1024-bit modulus
    for c in messages(k, 2, seed=3):
        x = be(c, k.size)
        assert dev.call("crt", x, be(k.p), be(k.q), be(k.dp), be(k.dq), be(k.qinv)) == dev.call(
            "pypow", x, be(k.d, k.size), be(k.n, k.size))
        assert dev.call("pow", x, be(k.e), be(k.n, k.size)) == dev.call("pypow", x, be(k.e), be(k.n, k.size))


def test_rsa_private_key_native_equals_pure_on_the_device(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    for k in keys()[1:3]:
        c = be(messages(k, 1, seed=11)[-1], k.size)
        args = (c, be(k.n, k.size), be(k.e), be(k.p), be(k.q))
        native = dev.call("private", b"native", *args)
        assert native == dev.call("private", b"pure", *args) == be(pow(int.from_bytes(c, "big"), k.d, k.n), k.size)
        with pytest.raises(DeviceError, match="ValueError"):  # not below the modulus
            dev.call("private", b"native", be(k.n, k.size), *args[1:])


def test_bad_inputs_raise_value_error_on_the_device(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    k = keys()[0]
    for args in ((b"\x02", b"\x03", b"\x10"), (b"\x11", b"\x03", b"\x11"), (b"\x02", b"\x03", b"\x01" + bytes(256))):
        with pytest.raises(DeviceError, match="ValueError"):
            dev.call("pow", *args)
    with pytest.raises(DeviceError, match="ValueError"):  # even p
        dev.call("crt", be(5, k.size), be(k.p + 1), be(k.q), be(k.dp), be(k.dq), be(k.qinv))
    for op, key, data in (("e3", bytes(8), bytes(8)), ("e1", bytes(16), bytes(8)), ("e3", bytes(16), bytes(7)),
                          ("cbc", bytes(16), bytes(9))):
        with pytest.raises(DeviceError, match="ValueError"):
            dev.call(op, key, data)


def test_des_nist_vectors_through_the_provider_on_the_device(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    h = bytes.fromhex
    count = 0
    for name in crypto_cases._KAT_FILES:
        for r in crypto_cases.load_rsp(name):
            key, pt, ct = h(r["KEYs"]), h(r["PLAINTEXT"]), h(r["CIPHERTEXT"])
            assert dev.call("e1", key, pt) == ct, (name, r["COUNT"])
            assert dev.call("d1", key, ct) == pt, (name, r["COUNT"])
            count += 1
    assert count == 64 + 64 + 56 + 32 + 19
    for r in crypto_cases.load_rsp("TECBsubtab.rsp"):
        key, pt, ct = h(r["KEYs"]), h(r["PLAINTEXT"]), h(r["CIPHERTEXT"])
        assert dev.call("e3", key + key, pt) == ct
        assert dev.call("d3", key * 3, ct) == pt
    mmt = crypto_cases.load_rsp("TCBCMMT3.rsp")
    assert len(mmt) == 20
    for r in mmt:
        key, iv = h(r["KEY1"] + r["KEY2"] + r["KEY3"]), h(r["IV"])
        pt, ct = h(r["PLAINTEXT"]), h(r["CIPHERTEXT"])
        if r["section"] == "ENCRYPT":
            assert dev.call("cbc", key, pt, iv) == ct, r["COUNT"]
        else:  # ECB decryption block by block, then the chaining on the host
            blocks = [dev.call("d3", key, ct[i:i + 8]) for i in range(0, len(ct), 8)]
            chain = [iv] + [ct[i:i + 8] for i in range(0, len(ct) - 8, 8)]
            assert b"".join(bytes(a ^ b for a, b in zip(x, y, strict=True)) for x, y in zip(blocks, chain,
                                                                                              strict=True)) == pt
    for r in crypto_cases.load_rsp("des_examples.rsp"):
        key, pt, ct = h(r["KEY"]), h(r["PLAINTEXT"]), h(r["CIPHERTEXT"])
        if "IV" in r:
            assert dev.call("cbc", key, pt, h(r["IV"])) == ct
        elif len(key) == 8:
            assert b"".join(dev.call("e1", key, pt[i:i + 8]) for i in range(0, len(pt), 8)) == ct
        else:
            assert b"".join(dev.call("e3", key, pt[i:i + 8]) for i in range(0, len(pt), 8)) == ct


def test_sha1_fips180_examples_and_hashlib_on_the_device(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    # the sha1 ops drop the first byte of their argument, so the empty message has an argument too
    checked = 0
    for r in crypto_cases.load_rsp("sha1_fips180.rsp"):
        if "Repeat" in r:  # a million 'a': more than the device's heap; tests/test_native_c.py has it
            continue
        msg, md = bytes.fromhex(r["Msg"])[:int(r["Len"]) // 8], bytes.fromhex(r["MD"])
        assert dev.call("sha1", b"-" + msg) == md, r["Len"]
        assert dev.call("psha1", b"-" + msg) == md, r["Len"]
        checked += 1
    assert checked == 4
    rnd = random.Random(180)
    for n in (*range(0, 130, 3), 55, 56, 63, 64, 119, 120, 127, 128, 300, 1000):
        data = rnd.randbytes(n)
        assert dev.call("sha1", b"-" + data) == hashlib.sha1(data).digest(), n
    data = rnd.randbytes(77)
    assert dev.call("sha1ba", b"-" + data) == hashlib.sha1(data).digest()  # any buffer: bytearray, memoryview
    assert dev.call("sha1mv", b"-" + data) == hashlib.sha1(data).digest()
    with pytest.raises(DeviceError, match="TypeError"):
        dev.call("sha1int", data)  # an int is no buffer


# --- SM2 ---

CURVE = sm2.SM2P256V1
G_BYTES = CURVE.gx.to_bytes(32, "big") + CURVE.gy.to_bytes(32, "big")


def b32(x: int) -> bytes:
    return x.to_bytes(32, "big")


def gmssl_mul(k: int, point: bytes) -> bytes:
    # gmssl's own scalar multiplication (CryptSM2._kg), an implementation independent of ours.
    gm = gm_sm2.CryptSM2(private_key="01", public_key=G_BYTES.hex())
    return bytes.fromhex(gm._kg(k, point.hex()))


def sm2_scalars(seed: int, count: int) -> list[int]:
    n = CURVE.n
    rnd = random.Random(seed)
    edges = [1, 2, 3, 15, 16, 17, n - 1, n - 2, n - 16, 2**255 - 1, 0xFFFFFFFE << 224,
             *[2**e for e in (1, 4, 31, 32, 64, 128, 200, 255)]]
    return [*edges, *[rnd.randrange(1, n) for _ in range(count)]]


def test_sm2_mul_on_the_device_equals_gmssl(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    for k in sm2_scalars(32918, 24):
        assert dev.call("sm2g", b32(k)) == gmssl_mul(k, G_BYTES), hex(k)
    rnd = random.Random(7)
    for _ in range(3):
        q = gmssl_mul(rnd.randrange(1, CURVE.n), G_BYTES)
        for k in (1, CURVE.n - 1, rnd.randrange(1, CURVE.n), rnd.randrange(1, CURVE.n)):
            assert dev.call("sm2", b32(k), q) == gmssl_mul(k, q), hex(k)


def test_sm2_native_equals_the_portable_code_on_the_device(device: tuple[str, Device, str]) -> None:
    # sm2.multiply through the provider, native and with use_pure(True): the same points, the base point and another.
    _board, dev, _ready = device
    rnd = random.Random(11)
    q = gmssl_mul(rnd.randrange(1, CURVE.n), G_BYTES)
    for k in (1, CURVE.n - 1, 2**128, rnd.randrange(1, CURVE.n)):
        native = dev.call("mulg", b"native", b32(k))
        assert native == dev.call("mulg", b"pure", b32(k)) == gmssl_mul(k, G_BYTES), hex(k)
    k = rnd.randrange(1, CURVE.n)
    assert dev.call("mul", b"native", b32(k), q) == dev.call("mul", b"pure", b32(k), q) == gmssl_mul(k, q)
    d = rnd.randrange(1, CURVE.n - 1)
    assert dev.call("pub", b"native", b32(d)) == dev.call("pub", b"pure", b32(d)) == gmssl_mul(d, G_BYTES)


def test_sm2_signatures_made_on_the_device_verify_with_gmssl(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    rnd = random.Random(3291)
    for i in range(4):
        d = rnd.randrange(1, CURVE.n - 1)
        public = gmssl_mul(d, G_BYTES)
        gm = gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key=public.hex())
        e = rnd.randbytes(32)
        k = b32(rnd.randrange(1, CURVE.n))
        signature = dev.call("sign", b"native", b32(d), e, k)
        assert len(signature) == 64
        assert gm.verify(signature.hex(), e), i
        assert signature.hex() == gm.sign(e, k.hex())  # the same k gives gmssl's signature
        if i == 0:  # the portable signature on the device: the same bytes
            assert dev.call("sign", b"pure", b32(d), e, k) == signature
        bad = bytes([e[0] ^ 1]) + e[1:]
        assert not gm.verify(signature.hex(), bad)


def test_sm2_bad_inputs_raise_value_error_on_the_device(device: tuple[str, Device, str]) -> None:
    _board, dev, _ready = device
    n, p = CURVE.n, CURVE.p
    for k in (bytes(32), b32(n), b32(n + 1), b"\xff" * 32, b"\x01" * 31, bytes(32) + b"\x01"):
        with pytest.raises(DeviceError, match="ValueError"):
            dev.call("sm2g", k)
    for q in (G_BYTES[:63] + bytes([G_BYTES[63] ^ 1]), bytes(64), b32(p) + G_BYTES[32:], G_BYTES[:32] + b32(p),
              G_BYTES[:63], G_BYTES + b"\x00"):
        with pytest.raises(DeviceError, match="ValueError"):
            dev.call("sm2", b32(5), q)
    with pytest.raises(DeviceError, match="TypeError"):
        dev.call("sm2int", b32(5))  # an int is no buffer
    with pytest.raises(DeviceError, match="SM2Error"):  # through sm2.py: its ValueError subclass
        dev.call("mul", b"native", b32(5), bytes(64))


# --- SM3 ---


def openssl_sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def test_sm3_on_the_device_equals_openssl_and_the_portable_code(device: tuple[str, Device, str]) -> None:
    # the sm3 op drops the first byte of its argument, so the empty message has an argument too
    _board, dev, _ready = device
    rnd = random.Random(32905)
    for n in (0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 128, 200, 1000):
        data = rnd.randbytes(n)
        assert dev.call("sm3", b"native", b"-" + data) == openssl_sm3(data), n
    data = rnd.randbytes(100)
    assert dev.call("sm3", b"pure", b"-" + data) == dev.call("sm3", b"native", b"-" + data) == openssl_sm3(data)
    iv = bytes.fromhex("7380166f4914b2b9172442d7da8a0600a96f30bc163138aae38dee4db0fb0e4e")
    padded = b"abc" + b"\x80" + bytes(52) + (24).to_bytes(8, "big")  # "abc" padded: one block (GB/T 32905 A.1)
    assert dev.call("sm3c", iv, padded) == openssl_sm3(b"abc")
    for state, blocks in ((iv[:31], padded), (iv, padded[:63]), (iv + b"\x00", padded)):
        with pytest.raises(DeviceError, match="ValueError"):
            dev.call("sm3c", state, blocks)
