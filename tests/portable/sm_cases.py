# Portable test cases for the SM suite (firmware.crypto.sm3, sm4, sm2):
# plain functions named test_* using only `assert`, run by pytest on
# CPython (tests/test_portable.py) and by the tiny runner under the real
# MicroPython unix port (same file, same vectors).
#
# Published vectors are read from tests/vectors/crypto/sm*.rsp (provenance
# in tests/vectors/README.md). Every other expected value here is derived
# from those by the algorithms' definitions (e.g. CBC of P then C1 ^ P is
# C1 C1), never computed by the code under test. tests/test_sm.py
# cross-checks the same functions against independent implementations.

try:
    from emvkit.firmware.crypto import sm2, sm3, sm4
except ImportError:
    from firmware.crypto import sm2, sm3, sm4

from crypto_cases import _raises, load_rsp

_h = bytes.fromhex


def _hex_int(s: str) -> int:
    return int(s, 16)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes([a[i] ^ b[i] for i in range(len(a))])


# --- SM3 (GB/T 32905-2016) ---

def test_sm3_published() -> None:
    records = load_rsp("sm3_gbt32905.rsp")
    assert len(records) == 2
    for r in records:
        msg = _h(r["Msg"])
        assert len(msg) * 8 == int(r["Len"])
        md = _h(r["MD"])
        assert sm3.sm3(msg) == md, r["Len"]
        assert sm3.SM3(msg).hexdigest() == r["MD"].lower()


def test_sm3_incremental() -> None:
    # The published messages fed in pieces of every size from 1 to 65 bytes.
    for r in load_rsp("sm3_gbt32905.rsp"):
        msg = _h(r["Msg"])
        md = _h(r["MD"])
        for step in range(1, 66):
            h = sm3.SM3()
            for i in range(0, len(msg), step):
                h.update(msg[i:i + step])
            assert h.digest() == md, (r["Len"], step)


def test_sm3_digest_then_update() -> None:
    # digest() does not end the object: "ab", digest, then "c" is SM3("abc").
    abc = _h(load_rsp("sm3_gbt32905.rsp")[0]["MD"])
    h = sm3.SM3(b"ab")
    assert h.digest() != abc
    h.update(b"c")
    assert h.digest() == abc
    assert h.digest() == abc


# --- SM4 (GB/T 32907-2016) ---

def _sm4_example() -> tuple:
    r = next(x for x in load_rsp("sm4_gbt32907.rsp") if x["Repeat"] == "1")
    return _h(r["KEY"]), _h(r["PLAINTEXT"]), _h(r["CIPHERTEXT"])


def test_sm4_published_block() -> None:
    key, pt, ct = _sm4_example()
    cipher = sm4.SM4(key)
    assert cipher.encrypt_block(pt) == ct
    assert cipher.decrypt_block(ct) == pt
    assert sm4.encrypt_block(key, pt) == ct
    assert sm4.decrypt_block(key, ct) == pt
    assert cipher.encrypt_block(bytearray(pt)) == ct


def test_sm4_published_iterated_small() -> None:
    # The million-iteration example runs on CPython (tests/test_sm.py); here
    # a round trip of 100 encryptions then 100 decryptions of it.
    key, pt, _ = _sm4_example()
    cipher = sm4.SM4(key)
    x = pt
    for _ in range(100):
        x = cipher.encrypt_block(x)
    assert x != pt
    for _ in range(100):
        x = cipher.decrypt_block(x)
    assert x == pt


def test_sm4_ecb_cbc() -> None:
    key, pt, ct = _sm4_example()
    c = sm4.SM4(key)
    assert c.ecb_encrypt(pt + pt) == ct + ct
    assert c.ecb_decrypt(ct + ct) == pt + pt
    assert c.ecb_encrypt(b"") == b""
    # CBC, zero IV: P then (C1 ^ P) encrypts to C1 C1.
    second = _xor(ct, pt)
    assert c.cbc_encrypt(pt + second) == ct + ct
    assert c.cbc_decrypt(ct + ct) == pt + second
    # IV = P and a zero block: E(P) = C1.
    assert c.cbc_encrypt(bytes(16), pt) == ct
    assert c.cbc_decrypt(ct, pt) == bytes(16)


def test_sm4_cbc_mac() -> None:
    key, pt, ct = _sm4_example()
    c = sm4.SM4(key)
    second = _xor(ct, pt)
    assert c.cbc_mac(pt) == ct
    assert c.cbc_mac(pt + second) == ct
    _raises(ValueError, c.cbc_mac, b"")
    _raises(ValueError, c.cbc_mac, pt + b"\x00")


def test_sm4_pad_method2() -> None:
    assert sm4.pad_method2(b"") == b"\x80" + bytes(15)
    assert sm4.pad_method2(bytes(15)) == bytes(15) + b"\x80"
    assert sm4.pad_method2(bytes(16)) == bytes(16) + b"\x80" + bytes(15)
    assert len(sm4.pad_method2(bytes(17))) == 32


def test_sm4_bad_input() -> None:
    key, pt, _ = _sm4_example()
    _raises(ValueError, sm4.SM4, key[:15])
    _raises(ValueError, sm4.SM4, key + b"\x00")
    c = sm4.SM4(key)
    _raises(ValueError, c.encrypt_block, pt[:8])
    _raises(ValueError, c.ecb_encrypt, pt + b"\x00")
    _raises(ValueError, c.cbc_decrypt, pt[:15])
    _raises(ValueError, c.cbc_encrypt, pt, bytes(8))


# --- SM2 (GB/T 32918.2-2016, GB/T 32918.5-2017) ---

def _curves() -> dict:
    out = {"sm2p256v1": sm2.SM2P256V1}
    for r in load_rsp("sm2_sign.rsp"):
        if r["section"] == "CURVE":
            out[r["NAME"]] = sm2.Curve(r["NAME"], _hex_int(r["P"]), _hex_int(r["A"]), _hex_int(r["B"]),
                                       _hex_int(r["N"]), _hex_int(r["GX"]), _hex_int(r["GY"]))
    return out


def _sign_records() -> list:
    return [r for r in load_rsp("sm2_sign.rsp") if r["section"] == "SIGN"]


def test_sm2_published_signatures() -> None:
    curves = _curves()
    records = _sign_records()
    assert len(records) == 2
    for r in records:
        curve = curves[r["CURVE"]]
        uid = _h(r["ID"])
        msg = _h(r["MSG"])
        d = _hex_int(r["D"])
        k = _h(r["K"])
        rs = _h(r["R"]) + _h(r["S"])
        pub = sm2.public_key(d, curve)
        assert curve.contains(pub)
        if "PX" in r:
            assert pub == (_hex_int(r["PX"]), _hex_int(r["PY"])), r["CURVE"]
        if "ZA" in r:
            assert sm2.user_hash(pub, uid, curve) == _h(r["ZA"])
            assert sm2.message_digest(pub, msg, uid, curve) == _h(r["E"])
        assert sm2.sign(d, msg, uid, rng=lambda n, k=k: k, curve=curve) == rs, r["CURVE"]
        assert sm2.verify(pub, msg, rs, uid, curve), r["CURVE"]


def test_sm2_verify_rejects() -> None:
    curves = _curves()
    r = _sign_records()[1]
    curve = curves[r["CURVE"]]
    uid = _h(r["ID"])
    msg = _h(r["MSG"])
    pub = sm2.public_key(_hex_int(r["D"]), curve)
    rs = _h(r["R"]) + _h(r["S"])
    n = curve.n
    assert sm2.verify(pub, msg, rs, uid, curve)
    assert not sm2.verify(pub, msg + b"\x00", rs, uid, curve)
    assert not sm2.verify(pub, msg, rs, uid + b"!", curve)
    assert not sm2.verify(pub, msg, rs, sm2.DEFAULT_USER_ID, curve)
    other = sm2.public_key(2, curve)
    assert not sm2.verify(other, msg, rs, uid, curve)
    for i in (0, 31, 32, 63):
        bad = bytearray(rs)
        bad[i] ^= 1
        assert not sm2.verify(pub, msg, bytes(bad), uid, curve), i
    assert not sm2.verify(pub, msg, rs[:63], uid, curve)
    assert not sm2.verify(pub, msg, rs + b"\x00", uid, curve)
    s_part = rs[32:]
    assert not sm2.verify(pub, msg, bytes(32) + s_part, uid, curve)  # r = 0
    assert not sm2.verify(pub, msg, n.to_bytes(32, "big") + s_part, uid, curve)  # r = n
    assert not sm2.verify(pub, msg, rs[:32] + bytes(32), uid, curve)  # s = 0
    r_int = _hex_int(r["R"])
    assert not sm2.verify(pub, msg, rs[:32] + (n - r_int).to_bytes(32, "big"), uid, curve)  # r + s = n


def test_sm2_sign_retries_k_out_of_range() -> None:
    # k = 0 and k = n are drawn again; then the pinned k gives the published signature.
    curves = _curves()
    r = _sign_records()[0]
    curve = curves[r["CURVE"]]
    draws = [bytes(32), curve.n.to_bytes(32, "big"), _h(r["K"])]
    seen = []

    def rng(n: int) -> bytes:
        seen.append(n)
        return draws[len(seen) - 1]

    rs = sm2.sign(_hex_int(r["D"]), _h(r["MSG"]), _h(r["ID"]), rng=rng, curve=curve)
    assert rs == _h(r["R"]) + _h(r["S"])
    assert seen == [32, 32, 32]


def test_sm2_sign_verify_default_rng() -> None:
    d = 0x1234567890ABCDEF
    pub = sm2.public_key(d)
    sig1 = sm2.sign(d, b"emvkit")
    sig2 = sm2.sign(d, b"emvkit")
    assert len(sig1) == 64
    assert sig1 != sig2  # fresh k each time
    assert sm2.verify(pub, b"emvkit", sig1)
    assert sm2.verify(pub, b"emvkit", sig2)
    assert not sm2.verify(pub, b"emvkiT", sig1)


def test_sm2_curve_points() -> None:
    c = sm2.SM2P256V1
    assert c.size == 32
    assert c.contains(c.g)
    assert not c.contains((c.gx, c.gy + 1))
    assert not c.contains(None)
    # [n-1]G = -G = (xG, p - yG); [1]G = G; [0]G and [n]G are infinity.
    assert sm2.multiply(c, c.n - 1, c.g) == (c.gx, c.p - c.gy)
    assert sm2.multiply(c, 1, c.g) == c.g
    assert sm2.multiply(c, 0, c.g) is None
    assert sm2.multiply(c, c.n, c.g) is None
    # [2]G + [n-2]G = infinity, [3]G through multiply_add and multiply agree with 2G + G.
    g2 = sm2.multiply(c, 2, c.g)
    assert sm2.multiply_add(c, 1, g2, c.n - 2, c.g) is None
    assert sm2.multiply_add(c, 1, c.g, 1, c.g) == g2
    assert sm2.multiply_add(c, 1, g2, 1, c.g) == sm2.multiply(c, 3, c.g)


def test_sm2_point_encoding() -> None:
    curves = _curves()
    r = _sign_records()[0]
    curve = curves[r["CURVE"]]
    encoded = _h("04" + r["PX"] + r["PY"])
    point = sm2.decode_point(encoded, curve)
    assert point == (_hex_int(r["PX"]), _hex_int(r["PY"]))
    assert sm2.encode_point(point, curve) == encoded
    _raises(sm2.SM2Error, sm2.decode_point, encoded[:-1], curve)
    _raises(sm2.SM2Error, sm2.decode_point, b"\x02" + encoded[1:], curve)
    _raises(sm2.SM2Error, sm2.decode_point, encoded[:-1] + bytes([encoded[-1] ^ 1]), curve)
    _raises(sm2.SM2Error, sm2.decode_point, encoded, sm2.SM2P256V1)  # another curve's point
    _raises(sm2.SM2Error, sm2.decode_point, b"", curve)
    _raises(sm2.SM2Error, sm2.encode_point, None, curve)
    assert isinstance(sm2.SM2Error("x"), ValueError)


def test_sm2_private_key_range() -> None:
    c = sm2.SM2P256V1
    _raises(sm2.SM2Error, sm2.public_key, 0)
    _raises(sm2.SM2Error, sm2.public_key, c.n - 1)
    _raises(sm2.SM2Error, sm2.sign_digest, c.n - 1, bytes(32))
    assert c.contains(sm2.public_key(c.n - 2))
