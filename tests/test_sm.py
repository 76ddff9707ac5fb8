"""The SM suite (emvkit.firmware.crypto.sm3, sm4, sm2) against independent implementations, on CPython.

- SM3 and SM4 against OpenSSL (through `cryptography`) and against `gmssl` (pure Python, PyPI), on
  random inputs;
- SM2 signatures both ways with `gmssl`: ours verified by gmssl, gmssl's verified by ours, the same
  signature from both for a pinned k (which also checks the Z_A computation with the default user ID);
- the GB/T 32907 million-iteration SM4 example (slow: about 20 s of pure Python).

The published vectors themselves run in tests/portable/sm_cases.py, here and under MicroPython.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import func as gm_func  # type: ignore[import-untyped]
from gmssl import sm2 as gm_sm2
from gmssl import sm3 as gm_sm3
from gmssl import sm4 as gm_sm4
from hypothesis import given, settings
from hypothesis import strategies as st

from emvkit.firmware.crypto import provider, sm2, sm3, sm4
from emvkit.terminal.config_files import load_config
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport.emu import EmulatorTransport

sys.path.insert(0, str(Path(__file__).resolve().parent / "portable"))
from crypto_cases import load_rsp

N = sm2.SM2P256V1.n


def _openssl_sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def _openssl_sm4(key: bytes, mode: modes.Mode, data: bytes, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.SM4(key), mode)
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


# --- SM3 ---

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=70))
def test_sm3_matches_openssl_and_gmssl(data: bytes, step: int) -> None:
    h = sm3.SM3()
    for i in range(0, len(data), step):
        h.update(data[i : i + step])
    ours = h.digest()
    assert ours == _openssl_sm3(data)
    assert ours.hex() == gm_sm3.sm3_hash(gm_func.bytes_to_list(data))
    assert sm3.sm3(data) == ours


# --- SM4 ---

@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_sm4_block_matches_openssl_and_gmssl(key: bytes, block: bytes) -> None:
    c = sm4.SM4(key)
    ct = c.encrypt_block(block)
    assert ct == _openssl_sm4(key, modes.ECB(), block)
    gm = gm_sm4.CryptSM4()
    gm.set_key(key, gm_sm4.SM4_ENCRYPT)
    assert bytes(gm.one_round(gm.sk, list(block))) == ct
    assert c.decrypt_block(ct) == block


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
       st.integers(min_value=0, max_value=6).map(lambda n: n * 16).flatmap(lambda n: st.binary(min_size=n,
                                                                                              max_size=n)))
def test_sm4_modes_match_openssl(key: bytes, iv: bytes, data: bytes) -> None:
    c = sm4.SM4(key)
    ecb = c.ecb_encrypt(data)
    cbc = c.cbc_encrypt(data, iv)
    assert ecb == _openssl_sm4(key, modes.ECB(), data)
    assert cbc == _openssl_sm4(key, modes.CBC(iv), data)
    assert c.ecb_decrypt(ecb) == data
    assert c.cbc_decrypt(cbc, iv) == data
    # gmssl's CBC always adds PKCS#7 padding: its first blocks are the unpadded CBC.
    gm = gm_sm4.CryptSM4()
    gm.set_key(key, gm_sm4.SM4_ENCRYPT)
    assert gm.crypt_cbc(iv, data)[: len(data)] == cbc
    if data:
        assert c.cbc_mac(data) == _openssl_sm4(key, modes.CBC(bytes(16)), data)[-16:]


@pytest.mark.slow
def test_sm4_published_million_iterations() -> None:
    # GB/T 32907 Appendix A.2: the example block encrypted 1,000,000 times under the example key.
    (record,) = [r for r in load_rsp("sm4_gbt32907.rsp") if r["Repeat"] == "1000000"]
    c = sm4.SM4(bytes.fromhex(record["KEY"]))
    x = bytes.fromhex(record["PLAINTEXT"])
    for _ in range(1_000_000):
        x = c.encrypt_block(x)
    assert x.hex() == record["CIPHERTEXT"]


# --- SM2 ---

def _gmssl(d: int, public: tuple[int, int]) -> gm_sm2.CryptSM2:
    # gmssl takes the public key as x || y hex without the 04 prefix (it strips a leading "04" with
    # lstrip, so a key whose x starts with hex 04 is skipped by the callers).
    return gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key=f"{public[0]:064x}{public[1]:064x}")


def _keys(seed: int, count: int) -> list[tuple[int, tuple[int, int]]]:
    rng = random.Random(seed)
    out: list[tuple[int, tuple[int, int]]] = []
    while len(out) < count:
        d = rng.randrange(1, N - 1)
        pub = sm2.public_key(d)
        if not f"{pub[0]:064x}".startswith("04"):
            out.append((d, pub))
    return out


def test_sm2_public_key_matches_gmssl() -> None:
    for d, pub in _keys(1, 10):
        gm = _gmssl(d, pub)
        assert gm._kg(d, gm.ecc_table["g"]) == f"{pub[0]:064x}{pub[1]:064x}"


def test_sm2_same_signature_as_gmssl_for_a_pinned_k() -> None:
    # gmssl's sign_with_sm3 computes Z_A with the default ID 1234567812345678 and e = SM3(Z_A || M).
    rng = random.Random(2)
    for d, pub in _keys(2, 8):
        message = rng.randbytes(rng.randrange(0, 200))
        k = rng.randrange(1, N)
        ours = sm2.sign(d, message, rng=lambda n, k=k: k.to_bytes(n, "big"))
        theirs = _gmssl(d, pub).sign_with_sm3(message, f"{k:064x}")
        assert theirs is not None
        assert ours.hex() == theirs


def test_sm2_signatures_verify_both_ways() -> None:
    rng = random.Random(3)
    for d, pub in _keys(3, 8):
        gm = _gmssl(d, pub)
        message = rng.randbytes(rng.randrange(1, 300))
        ours = sm2.sign(d, message)
        assert gm.verify_with_sm3(ours.hex(), message)
        theirs = gm.sign_with_sm3(message)
        assert sm2.verify(pub, message, bytes.fromhex(theirs))
        # and a flipped message is refused by both
        assert not gm.verify_with_sm3(ours.hex(), message + b"\x00")
        assert not sm2.verify(pub, message + b"\x00", bytes.fromhex(theirs))


def test_sm2_digest_signatures_match_gmssl() -> None:
    # The bare scheme over a given e (no Z_A): gmssl's sign(e, k) and ours agree.
    rng = random.Random(4)
    for d, pub in _keys(4, 6):
        e = rng.randbytes(32)
        k = rng.randrange(1, N)
        ours = sm2.sign_digest(d, e, rng=lambda n, k=k: k.to_bytes(n, "big"))
        assert ours.hex() == _gmssl(d, pub).sign(e, f"{k:064x}")
        assert sm2.verify_digest(pub, e, ours)
        assert _gmssl(d, pub).verify(ours.hex(), e)


@pytest.mark.parametrize("stuck", [b"\x00", b"\xff"], ids=["zeros", "ones"])
def test_sm2_signing_with_a_stuck_random_source_fails_instead_of_looping(stuck: bytes) -> None:
    with pytest.raises(sm2.SM2Error, match="no usable k in 16 draws"):
        sm2.sign(7, b"message", rng=lambda n: stuck * n)


def test_the_sm_card_with_a_stuck_random_source_answers_6f00_and_the_tap_ends() -> None:
    card = open_card("unionpay-sm", rng=lambda n: bytes(n))
    with EmulatorTransport(card, url="emu:unionpay-sm") as transport:
        tap = run_transaction(transport, load_config(), TransactionRequest(amount=1000))
    gpo = next(e for e in tap.trace.exchanges if e.command[1] == 0xA8)
    assert gpo.response == b"\x6f\x00"  # fDDA needs k: no signature, no answer but "no precise diagnosis"
    assert tap.result.outcome.outcome is not Outcome.APPROVED


def test_sm2_multiply_goes_through_a_backends_sm2_mul_and_use_pure_bypasses_it() -> None:
    # The provider's seam: a backend with sm2_mul (here gmssl's scalar multiplication, standing in for
    # _emvnative's) takes sm2.multiply on sm2p256v1, so sign_digest and public_key too, and its powmod
    # sign_digest's inverse of 1 + d; use_pure(True) goes back to the portable arithmetic; the same results.
    calls: list[tuple[bytes, bytes | None]] = []
    powers: list[bytes] = []
    g_hex = f"{sm2.SM2P256V1.gx:064x}{sm2.SM2P256V1.gy:064x}"

    class Backend:
        @staticmethod
        def sm2_mul(k: bytes, point: bytes | None) -> bytes:
            calls.append((k, point))
            kv = int.from_bytes(k, "big")
            if len(k) != 32 or not 1 <= kv < sm2.SM2P256V1.n:
                raise ValueError("input out of range")
            gm = gm_sm2.CryptSM2(private_key="01", public_key=g_hex)
            return bytes.fromhex(gm._kg(kv, g_hex if point is None else point.hex()))

        @staticmethod
        def powmod(x: bytes, e: bytes, n: bytes) -> bytes:  # sign_digest's inverse mod n goes here
            powers.append(e)
            value = pow(int.from_bytes(x, "big"), int.from_bytes(e, "big"), int.from_bytes(n, "big"))
            return value.to_bytes(len(n), "big")

    class Refusing:
        @staticmethod
        def sm2_mul(k: bytes, point: bytes | None) -> bytes:
            raise ValueError("point not on the curve")

    d, pub = _keys(2026, 1)[0]
    e = bytes(range(32))
    k = 0x1234567890ABCDEF

    def pinned(n: int) -> bytes:
        return k.to_bytes(n, "big")

    portable = sm2.sign_digest(d, e, pinned)
    q = sm2.multiply(sm2.SM2P256V1, 5, pub)
    assert provider.backend_sm2() == "pure" and not calls
    try:
        provider.use_backend(Backend())
        assert provider.backend_sm2() == "native"
        assert sm2.public_key(d) == pub
        assert sm2.sign_digest(d, e, pinned) == portable
        assert sm2.multiply(sm2.SM2P256V1, 5, pub) == q
        assert [c[1] for c in calls] == [None, None, pub[0].to_bytes(32, "big") + pub[1].to_bytes(32, "big")]
        assert calls[1][0] == k.to_bytes(32, "big")
        assert powers == [(sm2.SM2P256V1.n - 2).to_bytes(32, "big")]
        other = sm2.Curve("example", sm2.SM2P256V1.p, sm2.SM2P256V1.a, sm2.SM2P256V1.b, sm2.SM2P256V1.n,
                          sm2.SM2P256V1.gx, sm2.SM2P256V1.gy)
        assert sm2.multiply(other, 5, pub) == q and len(calls) == 3  # another Curve object: the portable code
        provider.use_backend(Refusing())
        with pytest.raises(sm2.SM2Error, match="point not on the curve"):  # the backend's ValueError
            sm2.multiply(sm2.SM2P256V1, 5, (1, 2))
        provider.use_backend(Backend())
        provider.use_pure(True)
        assert provider.backend_sm2() == "pure"
        before = len(calls)
        assert sm2.sign_digest(d, e, pinned) == portable
        assert len(calls) == before and len(powers) == 1
    finally:
        provider.use_pure(False)
        provider.use_backend(None)
    assert provider.backend_sm2() == "pure"
