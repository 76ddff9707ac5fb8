# Portable test cases for firmware.crypto: plain functions named test_*
# using only `assert`, run by pytest on CPython (tests/test_crypto.py, with
# both provider backends) and by a tiny runner under the real MicroPython
# unix port (same file, same vectors).
#
# Published vectors are read from tests/vectors/crypto/ (provenance in
# tests/vectors/README.md). Values marked "pyemv 1.5.0" were computed in
# advance by pyemv 1.5.0 on CPython (an independent implementation) and
# pasted here as hex literals; tests/test_crypto.py re-checks the same
# functions against pyemv on random inputs.

# CPython imports the installed package; MicroPython the firmware folder on MICROPYPATH.
try:
    from emvkit.firmware.crypto import des, emv, provider, rsa, sha1
except ImportError:
    from firmware.crypto import des, emv, provider, rsa, sha1

_h = bytes.fromhex

_HERE = __file__.replace("\\", "/")
_VECTORS = (_HERE.rsplit("/", 1)[0] if "/" in _HERE else ".") + "/../vectors/crypto/"


def load_rsp(name: str) -> list:
    # NIST CAVP .rsp style: records of "NAME = value" lines separated by
    # blank lines; "[SECTION]" lines set the section for the records that
    # follow ("section" key); "#" lines are comments.
    records = []
    section = ""
    current: dict = {}
    with open(_VECTORS + name) as f:
        lines = f.read().split("\n")
    lines.append("")  # closes the last record
    for line in lines:
        line = line.strip()
        if line.startswith("#"):
            continue
        if not line:
            if current:
                current["section"] = section
                records.append(current)
                current = {}
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        name_, _, value = line.partition("=")
        current[name_.strip()] = value.strip()
    return records


def _raises(exc: type, fn, *args) -> None:  # fn: any callable
    try:
        fn(*args)
    except exc:
        return
    raise AssertionError("%s not raised by %r" % (exc.__name__, fn))


# --- DES / TDEA: published vectors ---

_KAT_FILES = ("TECBvartext.rsp", "TECBinvperm.rsp", "TECBvarkey.rsp", "TECBpermop.rsp", "TECBsubtab.rsp")


def test_des_nist_kat() -> None:
    # NIST CAVP TDES KAT (SP 800-20 values), K1 = K2 = K3: single DES, and
    # the same through 2-key and 3-key TDEA objects and the provider.
    count = 0
    for name in _KAT_FILES:
        for r in load_rsp(name):
            key = _h(r["KEYs"])
            pt = _h(r["PLAINTEXT"])
            ct = _h(r["CIPHERTEXT"])
            d = des.DES(key)
            assert d.encrypt_block(pt) == ct, (name, r["COUNT"])
            assert d.decrypt_block(ct) == pt, (name, r["COUNT"])
            count += 1
    assert count == 64 + 64 + 56 + 32 + 19
    for r in load_rsp("TECBsubtab.rsp"):
        key = _h(r["KEYs"])
        pt = _h(r["PLAINTEXT"])
        ct = _h(r["CIPHERTEXT"])
        assert des.DES3(key + key).encrypt_block(pt) == ct
        assert des.DES3(key * 3).decrypt_block(ct) == pt
        assert provider.des_encrypt_block(key, pt) == ct
        assert provider.des_decrypt_block(key, ct) == pt
        assert provider.des3_encrypt_block(key + key, pt) == ct
        assert provider.des3_decrypt_block(key * 3, ct) == pt


def test_des_published_examples() -> None:
    # Grabbe's worked example, FIPS 81 ECB and CBC, SP 800-67 3-key TDEA.
    for r in load_rsp("des_examples.rsp"):
        key = _h(r["KEY"])
        pt = _h(r["PLAINTEXT"])
        ct = _h(r["CIPHERTEXT"])
        c = des.DES(key) if len(key) == 8 else des.DES3(key)
        if "IV" in r:
            iv = _h(r["IV"])
            assert c.encrypt_cbc(pt, iv) == ct
            assert c.decrypt_cbc(ct, iv) == pt
            assert provider.des_cbc_encrypt(key, pt, iv) == ct
        else:
            out = b"".join([c.encrypt_block(pt[i:i + 8]) for i in range(0, len(pt), 8)])
            assert out == ct
            back = b"".join([c.decrypt_block(ct[i:i + 8]) for i in range(0, len(ct), 8)])
            assert back == pt


def test_tdea_cbc_nist_mmt() -> None:
    # NIST CAVP TCBCMMT3 (three-key TDEA CBC, 1..10 blocks).
    records = load_rsp("TCBCMMT3.rsp")
    assert len(records) == 20
    for r in records:
        key = _h(r["KEY1"] + r["KEY2"] + r["KEY3"])
        iv = _h(r["IV"])
        pt = _h(r["PLAINTEXT"])
        ct = _h(r["CIPHERTEXT"])
        c = des.DES3(key)
        if r["section"] == "ENCRYPT":
            assert c.encrypt_cbc(pt, iv) == ct, r["COUNT"]
            assert provider.des_cbc_encrypt(key, pt, iv) == ct, r["COUNT"]
        else:
            assert c.decrypt_cbc(ct, iv) == pt, r["COUNT"]


def test_des_rejects_bad_sizes() -> None:
    _raises(ValueError, des.DES, bytes(16))
    _raises(ValueError, des.DES3, bytes(12))
    _raises(ValueError, des.DES(bytes(8)).encrypt_block, bytes(7))
    _raises(ValueError, des.DES3(bytes(16)).encrypt_cbc, bytes(9))
    _raises(ValueError, provider.des3_encrypt_block, bytes(8), bytes(8))
    _raises(ValueError, provider.des_encrypt_block, bytes(16), bytes(8))


# --- SHA-1 ---

def test_sha1_fips180() -> None:
    # FIPS 180 examples; the one-million-'a' message is left to the CPython
    # test (tests/test_crypto.py) to keep the MicroPython run short.
    checked = 0
    for r in load_rsp("sha1_fips180.rsp"):
        repeat = int(r.get("Repeat", "1"))
        if repeat > 1000:
            continue
        msg = (_h(r["Msg"]) * repeat)[:int(r["Len"]) // 8]
        md = _h(r["MD"])
        assert sha1.sha1(msg) == md, r["Len"]
        assert provider.sha1(msg) == md, r["Len"]
        h = sha1.SHA1()
        for i in range(0, len(msg), 7):
            h.update(msg[i:i + 7])
        assert h.digest() == md
        checked += 1
    assert checked == 4


def test_sha1_block_boundaries() -> None:
    # Lengths around the 55/56/64-byte padding boundaries: pure == provider.
    for n in (55, 56, 57, 63, 64, 65, 119, 120, 128):
        msg = bytes([(i * 7) & 0xFF for i in range(n)])
        assert sha1.sha1(msg) == provider.sha1(msg), n


def test_sha256_abc() -> None:
    # FIPS 180-2 Appendix B.1.
    assert provider.sha256(b"abc") == _h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


# --- EMV: padding, MAC, keys (values from pyemv 1.5.0 unless noted) ---

_K = _h("0123456789ABCDEFFEDCBA9876543210")


def test_padding_iso9797_1() -> None:
    assert emv.pad_method1(b"") == bytes(8)
    assert emv.pad_method1(b"\x01") == b"\x01" + bytes(7)
    assert emv.pad_method1(bytes(range(8))) == bytes(range(8))
    assert emv.pad_method1(bytes(range(9))) == bytes(range(9)) + bytes(7)
    assert emv.pad_method2(b"") == b"\x80" + bytes(7)
    assert emv.pad_method2(bytes(range(7))) == bytes(range(7)) + b"\x80"
    assert emv.pad_method2(bytes(range(8))) == bytes(range(8)) + b"\x80" + bytes(7)


def test_retail_mac() -> None:
    # pyemv 1.5.0: mac.mac_iso9797_3(K[:8], K[8:], data, padding).
    cases = (
        (0, 1, "08D7B4FB629D0885"), (0, 2, "F1FBCF2A56D19BA7"),
        (7, 1, "1ED65436E99FDD4F"), (7, 2, "73B4F4611FB63BDD"),
        (8, 1, "52C5C0705D9089E1"), (8, 2, "9506A7627D1E3D46"),
        (40, 1, "317CC83A72AD718F"), (40, 2, "427B31DB50493345"),
    )
    for n, padding, expected in cases:
        assert emv.retail_mac(_K, bytes(range(n)), padding) == _h(expected), (n, padding)
    _raises(ValueError, emv.retail_mac, _K, b"", 3)
    _raises(ValueError, emv.retail_mac, _K[:8], b"", 1)


def test_application_cryptogram_pyemv_doc() -> None:
    # pyemv 1.5.0 ac.generate_ac docstring example (EMV padding).
    data = _h("000000002000" "000000000000" "0124" "0000008000" "0124" "110309" "00" "3804823E" "5800" "0001")
    sk = _h("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    assert emv.application_cryptogram(sk, data, 2) == _h("3B76CF10FECD8789")


def test_adjust_parity() -> None:
    # pyemv 1.5.0 tools.adjust_key_parity docstring example.
    key = _h("1A2B3C4D5F0A1B2C4D5F6A7B8C9D0F1A")
    assert emv.adjust_parity(key) == _h("1A2A3D4C5E0B1A2C4C5E6B7A8C9D0E1A")


def test_derive_icc_mk() -> None:
    # Option A and B; the first two are pyemv 1.5.0 docstring examples.
    assert emv.derive_icc_mk(_K, "99012345678901234", "45") == _h("67F8292358083E5EA7AB7FDA58D53B6B")
    assert emv.derive_icc_mk(_K, "12345678901234567", "01", "B") == _h("AD406D7F6D7570916D75E5DCAB8CF737")
    mk16 = _h("F2BFDA75971A310EA27C9145A2F15715")
    assert emv.derive_icc_mk(_K, "5413330089010608", "01") == mk16
    assert emv.derive_icc_mk(_K, "5413330089010608", "01", "B") == mk16  # <= 16 digits: B is A
    assert emv.derive_icc_mk(_K, _h("5413330089010608"), b"\x01") == mk16  # tag 5A / 5F34 values
    assert emv.derive_icc_mk(_K, "6212345678901234567", "00") == _h("8357F1866492A1C8D657132AABF25789")
    mk19b = _h("F85BB507BA6E9E910DFD85B5ECDCEFA8")
    assert emv.derive_icc_mk(_K, _h("6212345678901234567F"), None, "B") == mk19b
    # SHA-1 of this PAN || PSN has only 14 decimal digits: exercises the
    # hex-letter decimalisation of A1.4.2.
    assert emv.derive_icc_mk(_K, "6200000000000001461", "00", "B") == _h("F14C462A9E0B45BFCBDC75B5EC04235E")
    _raises(ValueError, emv.derive_icc_mk, _K, "5413A", "00")
    _raises(ValueError, emv.derive_icc_mk, _K, "5413330089010608", "1")
    _raises(ValueError, emv.derive_icc_mk, _K, "5413330089010608", "00", "C")


def test_session_keys() -> None:
    # pyemv 1.5.0: kd.derive_common_sk (docstring example for ATC 001C) and
    # the same with R = ATC || 0000 || UN (Mastercard SKD).
    assert emv.session_key_common(_K, _h("001C")) == _h("E9FB384AF807B940FEDCEA613461B0C4")
    assert emv.derive_session_key(_K, _h("001C000000000000")) == _h("E9FB384AF807B940FEDCEA613461B0C4")
    assert emv.session_key_mc_skd(_K, _h("001C"), _h("52BF4585")) == _h("7FDC1C0794E97C5BD061FD49C1A283F4")
    _raises(ValueError, emv.session_key_common, _K, _h("1C"))
    _raises(ValueError, emv.session_key_mc_skd, _K, _h("001C"), _h("52BF45"))


def test_arpc() -> None:
    # pyemv 1.5.0 ac.generate_arpc_1 / generate_arpc_2 docstring examples.
    sk = _h("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    arqc = _h("1234567890ABCDEF")
    assert emv.arpc_method1(sk, arqc, _h("0000")) == _h("F5E6F44147E2F1B0")
    assert emv.arpc_method2(sk, arqc, _h("00000000")) == _h("9308BEBC")
    _raises(ValueError, emv.arpc_method1, sk, arqc, _h("00"))
    _raises(ValueError, emv.arpc_method2, sk, arqc, _h("00000000"), bytes(9))


# --- Scheme cryptogram versions (pyemv 1.5.0 pyemv.cvn classes) ---

_ISS_MK_AC = _h("AA" * 16)
_TXN = _h("000000009999" "000000000000" "0840" "8000048000" "0840" "991231" "01" "52BF4585" "1800" "0FFF")
_ATC = _h("0FFF")
_UN = _h("52BF4585")


def test_visa_cvn10() -> None:
    # VisaCVN10(AA.., BB.., CC.., "4761739001010010", "01"), CVR 03A0B800.
    mk = emv.derive_icc_mk(_ISS_MK_AC, "4761739001010010", "01", "A")
    assert mk == _h("04F2E5DC7CADB62F087F94258FC7F28A")
    arqc = emv.generate_ac_visa_cvn10(mk, _ATC, _TXN + _h("03A0B800"))
    assert arqc == _h("2813460A6D1EB327")
    assert emv.generate_arpc_visa_cvn10(mk, _ATC, arqc, _h("3030")) == _h("F835EBE2B7594590")


def test_visa_cvn18() -> None:
    # The pyemv.cvn module docstring example (VisaCVN18, IAD 06011203A0B800).
    mk = emv.derive_icc_mk(_ISS_MK_AC, "1234567890123456", "00", "B")
    assert mk == _h("2A92983429409197E59194151398C22C")
    arqc = emv.generate_ac_visa_cvn18(mk, _ATC, _TXN + _h("06011203A0B800"))
    assert arqc == _h("769577B5ABE9FE62")
    assert emv.generate_arpc_visa_cvn18(mk, _ATC, arqc, _h("00000000")) == _h("76503F48")
    assert emv.generate_arpc_visa_cvn18(mk, _ATC, arqc, _h("00820000" "1122")) == _h("B802EBE2")


def test_mastercard_cvn16_cvn17() -> None:
    # MasterCardCVN16/17(AA.., BB.., CC.., "5413330089010608", "01").
    mk = emv.derive_icc_mk(_ISS_MK_AC, "5413330089010608", "01", "A")
    assert mk == _h("79737AB57FBAF751A2F1733251800D7F")
    cvr = _h("A00003220000")
    arqc = emv.generate_ac_mc_cvn16(mk, _ATC, _TXN + cvr, _UN)
    assert arqc == _h("C14FCA96B3E20EF4")
    assert emv.generate_arpc_mc_cvn16(mk, _ATC, arqc, _h("0010")) == _h("9B7038189C91685F")
    counters = _h("00000000100005FF")
    assert emv.generate_ac_mc_cvn17(mk, _ATC, _TXN + cvr + counters, _UN) == _h("891A356EABE95958")
    _raises(ValueError, emv.generate_ac_mc_cvn16, mk, _ATC, _TXN + cvr)


def test_unionpay() -> None:
    # EMV CSK + padding 2 + ARPC method 1: pyemv's MasterCardCVN20 runs the
    # same algorithm (PAN "6212345678901234567", PSN "00").
    mk = emv.derive_icc_mk(_ISS_MK_AC, "6212345678901234567", "00", "A")
    assert mk == _h("AD0725FE3B890B6D62E5CE16CD2CA704")
    iad = _h("07010103A0A000010A010000000000")
    arqc = emv.generate_ac_upi(mk, _ATC, _TXN + iad)
    assert arqc == _h("28E68D03CAC46E4E")
    assert emv.generate_arpc_upi(mk, _ATC, arqc, _h("3030")) == _h("CB19EC4246433334")


def test_cryptogram_version_table() -> None:
    for name in ("visa_cvn10", "visa_cvn18", "mc_cvn16", "mc_cvn17", "upi"):
        ac_fn, arpc_fn, option = emv.CRYPTOGRAM_VERSIONS[name]
        assert option in ("A", "B")
        arqc = ac_fn(_K, _ATC, _TXN, _UN)
        assert len(arqc) == 8
        response = _h("00000000") if name == "visa_cvn18" else _h("3030")
        assert len(arpc_fn(_K, _ATC, arqc, response, _UN)) in (4, 8)


# --- RSA (fixed 1024-bit key, e = 3, generated once by `cryptography`) ---

_P = ("F8C37475DC2C6B4FF27B1BC2C7F9F72D27A1E431C64A77C04CD5AB770218DB7D"
      "CA7F261310FAE32A9A37FA08AD198F32D59D1871ABB357E05CAE1BCA44F979B5")
_Q = ("C80EE4033F5631CD7606D4009FC4890AC2D90FC93A7B02E498A4D396F2CCEC79"
      "09DB69CF800CDEC2E9C2EB71FBBF99EC60C7B2F3F3FC56C972487FD53ED4D955")
_N = ("C2672B3DAE03EF74A92E57713CA2A0C455D76CDCBDBF826799701DA2978FFB4C"
      "52EC7679B8C689A83546F083FB33B16816559D61848129B76A713A67C0DD3BED"
      "9243E9166DA1B20394B0BC32D936CA1E206055B417311199B45B47AB38102FBA"
      "48072462131881F5FCF523E62C95E5BD5988F6FB187899F5576E474BFEE3D619")
_D = ("819A1CD3C957F4F870C98FA0D31715D8393A4893292A56EFBBA013C1BA5FFCDD"
      "8C9DA45125D9B11ACE2F4B02A777CB9AB98E68EBADAB7124F1A0D19A80937D47"
      "E0F66068E16A0DEEC81F32F4F650314423EE41260EF264A33495DB13821C452C"
      "F7C862FFAC0B2AB050A6D447AD287DBEC2181D0E5085F2325AFA7272FCB9020B")


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.RSAPrivateKey.from_dict({"p": _P, "q": _Q, "e": "3"})


def test_rsa_key_dict() -> None:
    key = _rsa_key()
    assert key.n == int(_N, 16)
    assert key.size == 128
    assert key.modulus() == _h(_N)
    d = key.to_dict()
    assert d["n"] == _N and d["e"] == "3"
    again = rsa.RSAPrivateKey.from_dict(d)
    assert again.to_dict() == d
    # From d instead of e-derived CRT exponents: the same key.
    assert rsa.RSAPrivateKey.from_dict({"p": _P, "q": _Q, "e": "3", "d": _D}).to_dict() == d
    _raises(ValueError, rsa.RSAPrivateKey.from_dict, {"p": _P, "e": "3"})


def test_rsa_crt_equals_plain_pow() -> None:
    key = _rsa_key()
    n = key.n
    x = bytes([0x5A]) + bytes(range(127))
    out = rsa.rsa_private_crt(x, key.p, key.q, key.dp, key.dq, key.qinv)
    assert out == pow(int.from_bytes(x, "big"), int(_D, 16), n).to_bytes(128, "big")
    assert rsa.rsa_public(out, 3, key.modulus()) == x
    _raises(ValueError, rsa.rsa_public, x[:-1], 3, key.modulus())
    _raises(ValueError, rsa.rsa_public, b"\xff" * 128, 3, key.modulus())


def test_rsa_sign_recover() -> None:
    # EMV Book 2 A2.1: 6A || MSG1 || SHA-1(MSG1 || MSG2) || BC.
    key = _rsa_key()
    msg1 = bytes([(i * 37) & 0xFF for i in range(128 - 22)])
    msg2 = _h("12345678")
    sig = rsa.sign_recoverable(key, msg1, msg2)
    assert len(sig) == 128
    block = rsa.recover(sig, key.e, key.modulus())
    assert block[0] == 0x6A and block[-1] == 0xBC
    assert block[1:-21] == msg1
    assert block[-21:-1] == sha1.sha1(msg1 + msg2)
    _raises(ValueError, rsa.sign_recoverable, key, msg1[:-1], msg2)
    _raises(ValueError, rsa.sign_recoverable, key, msg1 + b"\x00", msg2)
