# Portable tests of the card application with UnionPay's SM suite (PBOC 3.0:
# SM2/SM3 fDDA, SM4 cryptograms), run on CPython and under MicroPython with
# the built-in unionpay-sm card. Expected values come from the SM primitives
# (checked against the published vectors in sm_cases.py) composed here by
# the rules docs/card-application.md states, not from the card's own
# cryptogram code; tests/test_unionpay_sm.py checks the same card with gmssl.
try:
    from emvkit.firmware import tlv
    from emvkit.firmware.crypto import sm2, sm4
    from emvkit.firmware.payapp.card import Card
except ImportError:
    from firmware import tlv
    from firmware.crypto import sm2, sm4
    from firmware.payapp.card import Card

import json

_HERE = __file__.replace("\\", "/")
_PROFILES = (_HERE.rsplit("/", 1)[0] if "/" in _HERE else ".") + "/../../terminal/perso/profiles/"
_AID = bytes.fromhex("A000000333010101")
_UN = bytes.fromhex("A1B2C3D4")
_AMOUNT = bytes.fromhex("000000001000")
_CURRENCY = bytes.fromhex("0978")


def _doc():
    with open(_PROFILES + "unionpay-sm.json") as f:
        return json.load(f)


def _pdol_data(ttq, df69):
    # The SM card's PDOL: 9F66 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 DF69.
    return (ttq + _AMOUNT + bytes(6) + bytes.fromhex("0250") + bytes(5) + _CURRENCY + bytes.fromhex("260101")
            + b"\x00" + _UN + df69)


def _sw(response):
    return response[-2] << 8 | response[-1]


def _tap(card, ttq, df69):
    card.process(bytes((0x00, 0xA4, 0x04, 0x00, len(_AID))) + _AID + b"\x00")
    body = _pdol_data(ttq, df69)
    body = bytes((0x83, len(body))) + body
    return card.process(bytes((0x80, 0xA8, 0x00, 0x00, len(body))) + body + b"\x00")


def _objects(response):
    return dict([(n.tag, n.value) for n in tlv.decode(response[:-2])[0].children])


def _public(hex_xy):
    return sm2.decode_point(b"\x04" + bytes.fromhex(hex_xy))


def test_terminal_without_sm_gets_6985():
    card = Card(_doc(), rng=lambda n: bytes(n))
    assert _sw(_tap(card, bytes.fromhex("36004000"), b"\x00")) == 0x6985


def test_offline_tc_carries_an_sm2_fdda_signature_over_sm3():
    doc = _doc()
    card = Card(doc, rng=lambda n: bytes(range(1, n + 1)))
    response = _tap(card, bytes.fromhex("36004000"), b"\x01")
    assert _sw(response) == 0x9000
    objects = _objects(response)
    assert objects[0x9F27] == b"\x40"  # TC
    sdad = objects[0x9F4B]
    assert sdad[0] == 0x15 and len(sdad) == 2 + sdad[1] + 64
    # 9F69 as the card returns it in record SFI 3: fDDA version, card UN (from rng), CTQ
    card_auth = bytes((1,)) + bytes(range(1, 5)) + objects[0x9F6C]
    signed = sdad[:2 + sdad[1]] + _UN + _AMOUNT + _CURRENCY + card_auth
    public = _public(doc["secrets"]["icc_sm2"]["public"])
    assert sm2.verify(public, signed, sdad[-64:])
    assert not sm2.verify(public, signed[:-1] + b"\x00", sdad[-64:])


def test_issuer_application_data_names_sm4_and_the_ac_is_the_sm4_mac():
    doc = _doc()
    card = Card(doc, rng=lambda n: bytes(n))
    response = _tap(card, bytes.fromhex("36804000"), b"\x01")  # online cryptogram required
    objects = _objects(response)
    assert objects[0x9F27] == b"\x80"
    iad = objects[0x9F10]
    assert iad[0] == 0x07 and iad[7] == 0x04  # algorithm indicator: SM4
    atc = objects[0x9F36]
    mk = bytes.fromhex(doc["secrets"]["icc_mk_ac"])
    session = sm4.SM4(mk).encrypt_block(atc + b"\xf0" + bytes(13))
    pdol = _pdol_data(bytes.fromhex("36804000"), b"\x01")
    # 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37, then AIP, ATC, IAD
    data = pdol[4:33] + bytes.fromhex(doc["applications"][0]["aip"]) + atc + iad
    padded = data + b"\x80" + bytes((15 - len(data) % 16) % 16)
    chain = bytes(16)
    cipher = sm4.SM4(session)
    for i in range(0, len(padded), 16):
        block = padded[i:i + 16]
        chain = cipher.encrypt_block(bytes([chain[j] ^ block[j] for j in range(16)]))
    assert objects[0x9F26] == chain[:8]


def test_issuer_certificate_verifies_under_the_builtin_sm2_ca():
    doc = _doc()
    with open(_PROFILES + "capk.json") as f:
        ca = next(k for k in json.load(f) if k.get("algorithm") == "sm2")
    records = doc["applications"][0]["records"]
    issuer = next(dict(r["data"]) for r in records if r["sfi"] == 2 and r["record"] == 1)
    assert issuer["8F"] == ca["index"]
    cert = bytes.fromhex(issuer["90"])
    assert cert[0] == 0x12 and cert[10:14] == b"\x04\x04\x00\x40" and len(cert) == 14 + 64 + 64
    assert sm2.verify(_public(ca["public_key"]), cert[:-64], cert[-64:])


def test_compressed_public_key_decodes_to_the_profiles_point():
    xy = bytes.fromhex(_doc()["secrets"]["icc_sm2"]["public"])
    x, y = int.from_bytes(xy[:32], "big"), int.from_bytes(xy[32:], "big")
    assert sm2.decode_point(bytes((2 + (y & 1),)) + xy[:32]) == (x, y)
    # the other parity is the other root, p - y
    assert sm2.decode_point(bytes((3 - (y & 1),)) + xy[:32]) == (x, sm2.SM2P256V1.p - y)
    try:
        sm2.decode_point(b"\x05" + xy[:32])
        raise AssertionError("05 || x decoded")
    except sm2.SM2Error:
        pass
