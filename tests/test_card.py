"""The card application, command by command, for every built-in scheme.

Cryptograms are checked against pyemv computed from the profile's issuer
master key; certificates and signatures with the independent recovery in
tests/cardutil.py.
"""

from __future__ import annotations

import hashlib

import pytest
from pyemv import ac as pyemv_ac
from pyemv import cvn as pyemv_cvn
from pyemv import kd as pyemv_kd

from emvkit.firmware import tlv
from emvkit.firmware.payapp.card import Card
from emvkit.firmware.payapp.profile import ProfileError
from tests.cardutil import (
    PPSE_SELECT,
    Exchange,
    capk,
    check_hash,
    flat,
    generate_ac,
    get_data,
    gpo,
    internal_authenticate,
    make_card,
    profile,
    read_record,
    rsa_recover,
    select,
    terminal_data,
)

VISA = bytes.fromhex("A0000000031010")
MASTERCARD = bytes.fromhex("A0000000041010")
UPI_DEBIT = bytes.fromhex("A000000333010101")
UPI_CREDIT = bytes.fromhex("A000000333010102")

PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403")
CDOL2 = bytes.fromhex("8A02910A95059F3704")
MC_AIP = bytes.fromhex("1D80")  # CVM, terminal risk management, issuer authentication, CDA; EMV mode


def reference(cls, secrets: dict):  # type: ignore[no-untyped-def]
    """pyemv's implementation of a cryptogram version, from the issuer master key."""
    imk = bytes.fromhex(secrets["imk_ac"])
    return cls(iss_mk_ac=imk, iss_mk_smi=imk, iss_mk_smc=imk, pan=secrets["pan"], psn=secrets["psn"])


def quick_gpo(x: Exchange, aid: bytes, **overrides: bytes) -> dict[int, bytes]:
    x.ok(select(aid))
    return flat(x.ok(gpo(tlv.build_dol(PDOL, terminal_data(**overrides)))))


def ac_inputs(t: dict[int, bytes]) -> dict[str, bytes]:
    return {
        "tag_9f02": t[0x9F02], "tag_9f03": t[0x9F03], "tag_9f1a": t[0x9F1A], "tag_95": t[0x95],
        "tag_5f2a": t[0x5F2A], "tag_9a": t[0x9A], "tag_9c": t[0x9C], "tag_9f37": t[0x9F37],
    }


# --- SELECT ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "entries"),
    [
        ("visa", [("A0000000031010", "VISA CREDIT", 1, 3)]),
        ("mastercard", [("A0000000041010", "MASTERCARD", 1, 2)]),
        ("unionpay", [("A000000333010101", "UnionPay Debit", 1, 7), ("A000000333010102", "UnionPay Credit", 2, 7)]),
        ("wearable", [("A0000000031010", "VISA TOKEN", 1, 3)]),
    ],
)
def test_ppse_directory_entries(name: str, entries: list[tuple[str, str, int, int]]) -> None:
    fci = tlv.decode(make_card(name).ok(PPSE_SELECT))
    assert tlv.find_path(fci, [0x6F, 0x84]).value == b"2PAY.SYS.DDF01"  # type: ignore[union-attr]
    found = [
        (tlv.find(e.children, 0x4F).value.hex().upper(), tlv.find(e.children, 0x50).value.decode(),  # type: ignore
         tlv.find(e.children, 0x87).value[0], tlv.find(e.children, 0x9F2A).value[0])  # type: ignore
        for e in tlv.find_all(fci, 0x61)
    ]
    assert found == entries


def test_select_aid_fci() -> None:
    fci = tlv.decode(make_card("visa").ok(select(VISA)))
    assert tlv.find_path(fci, [0x6F, 0x84]).value == VISA  # type: ignore[union-attr]
    a5 = tlv.find_path(fci, [0x6F, 0xA5])
    assert a5 is not None
    assert tlv.find_value(a5.children, 0x9F38) == PDOL
    assert tlv.find_value(a5.children, 0x50) == b"VISA CREDIT"
    assert tlv.find_value(a5.children, 0x5F2D) == b"en"
    assert tlv.find_value(a5.children, 0x9F4D) == bytes((11, 10))  # log entry: SFI 11, 10 records


def test_select_errors_and_partial_names() -> None:
    x = make_card("unionpay")
    assert x.send(select(bytes.fromhex("A0000000999999")))[1] == 0x6A82
    assert x.send(bytes.fromhex("00A4010007") + VISA + b"\x00")[1] == 0x6A86
    assert x.send(bytes.fromhex("00A4040C07") + VISA + b"\x00")[1] == 0x6A86
    partial = bytes.fromhex("A000000333")
    first = tlv.decode(x.ok(select(partial)))
    assert tlv.find_value(first, 0x84) == UPI_DEBIT
    second = tlv.decode(x.ok(select(partial, next_occurrence=True)))
    assert tlv.find_value(second, 0x84) == UPI_CREDIT
    assert x.send(select(partial, next_occurrence=True))[1] == 0x6A82


# --- command-level errors ---------------------------------------------------


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("90A404000E325041592E5359532E444446303100", 0x6E00),  # CLA not supported
        ("00A8000002830000", 0x6E00),  # GPO needs CLA 80
        ("80A404000E325041592E5359532E444446303100", 0x6E00),  # SELECT needs CLA 00
        ("0020008000", 0x6D00),  # VERIFY: not supported
        ("80E200000100", 0x6D00),
        ("00A404", 0x6700),  # too short
        ("00A404000E325041", 0x6700),  # Lc larger than the data
        ("00A40400000000", 0x6700),  # extended length
    ],
)
def test_command_errors(apdu: str, sw: int) -> None:
    assert make_card("visa").send(bytes.fromhex(apdu))[1] == sw


def test_gpo_errors() -> None:
    x = make_card("visa")
    pdol_data = tlv.build_dol(PDOL, terminal_data())
    assert x.send(gpo(pdol_data))[1] == 0x6985  # nothing selected
    x.ok(select(VISA))
    assert x.send(gpo(pdol_data[:-1]))[1] == 0x6700  # PDOL data too short
    assert x.send(bytes.fromhex("80A8000004") + tlv.encode_tlv(0x84, b"\x00\x00") + b"\x00")[1] == 0x6A80
    assert x.send(bytes.fromhex("80A801000283") + b"\x00\x00")[1] == 0x6A86
    x.ok(gpo(pdol_data))
    assert x.send(gpo(pdol_data))[1] == 0x6985  # one GPO per transaction


def test_read_record_errors() -> None:
    x = make_card("visa")
    assert x.send(read_record(1, 1))[1] == 0x6985  # nothing selected
    x.ok(select(VISA))
    assert x.send(read_record(1, 9))[1] == 0x6A83
    assert x.send(read_record(9, 1))[1] == 0x6A83
    assert x.send(bytes.fromhex("00B2010800"))[1] == 0x6A86  # P2 low bits must be 100
    assert x.send(bytes.fromhex("00B2000C00"))[1] == 0x6A86  # record 0
    assert x.send(bytes.fromhex("00B2010400"))[1] == 0x6A86  # SFI 0


def test_record_template_option() -> None:
    # A profile record may be served in another template, or none (test cards
    # breaking EMV Book 3 §10.3's tag-70 rule); 70 when the option is absent.
    doc = profile("visa")
    records = doc["applications"][0]["records"]
    records[0]["template"] = "77"
    records[1]["template"] = ""
    x = make_card(doc)
    x.ok(select(VISA))
    first, second, third = (x.ok(read_record(r["sfi"], r["record"])) for r in records[:3])
    content = [b"".join(tlv.encode_tlv(int(t, 16), bytes.fromhex(v)) for t, v in r["data"]) for r in records[:3]]
    assert first == b"\x77" + bytes((len(content[0]),)) + content[0]
    assert second == content[1]
    assert third[0] == 0x70 and third.endswith(content[2])


def test_afl_covers_every_record() -> None:
    x = make_card("visa")
    afl = quick_gpo(x, VISA)[0x94]
    assert len(afl) % 4 == 0 and afl
    count = 0
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        for number in range(first, last + 1):
            record = tlv.decode(x.ok(read_record(sfi, number)))
            assert record[0].tag == 0x70
            count += 1
    assert count == 4


# --- Visa qVSDC ---------------------------------------------------------------


def visa_expected_ac(doc: dict, t: dict[int, bytes], aip: bytes, atc: bytes, iad: bytes) -> bytes:
    s = doc["secrets"]
    scheme = reference(pyemv_cvn.VisaCVN18, s)
    return scheme.generate_ac(**ac_inputs(t), tag_82=aip, tag_9f36=atc, tag_9f10=iad)


def test_visa_offline_approval_with_fdda() -> None:
    doc = profile("visa")
    x = make_card(doc)
    t = terminal_data()
    r = quick_gpo(x, VISA)
    assert r[0x9F27] == b"\x40"  # TC
    assert r[0x9F36] == b"\x00\x01"
    assert r[0x82] == bytes.fromhex("2000")
    assert r[0x9F10][:4] == bytes.fromhex("06011203")  # IAD: length, DKI, CVN 18, CVR length
    assert r[0x9F10][4] & 0x30 == 0x10  # CVR: TC returned
    assert r[0x9F26] == visa_expected_ac(doc, t, r[0x82], r[0x9F36], r[0x9F10])
    assert r[0x57].hex().upper().startswith(doc["secrets"]["pan"] + "D3012")
    # fDDA: the SDAD recovers with the ICC key from the ICC certificate.
    icc_n, icc_e = recover_icc_key(x, doc)
    record = flat(x.ok(read_record(3, 1)))
    card_auth = record[0x9F69]
    assert card_auth[0] == 0x01 and card_auth[5:] == r[0x9F6C]
    block = rsa_recover(r[0x9F4B], icc_n, icc_e)
    extra = t[0x9F37] + t[0x9F02] + t[0x5F2A] + card_auth
    message = check_hash(block, extra)
    assert message[:2] == b"\x05\x01"
    ldd = message[2]
    assert message[3] == ldd - 1 and len(message[4:3 + ldd]) == 8  # ICC dynamic number of 8 bytes


def recover_icc_key(x: Exchange, doc: dict) -> tuple[int, int]:
    """Issuer then ICC public key, recovered and checked independently."""
    ca_n, ca_e = capk({"mastercard": "A000000004", "unionpay": "A000000333"}.get(doc["id"], "A000000003"))
    app = doc["applications"][0]
    records = {(r["sfi"], r["record"]): dict((int(t, 16), bytes.fromhex(v)) for t, v in r["data"])
               for r in app["records"]}
    certs = next(r for r in records.values() if 0x90 in r)
    iss = rsa_recover(certs[0x90], ca_n, ca_e)
    assert iss[1] == 0x02
    check_hash(iss, certs.get(0x92, b"") + certs[0x9F32])
    n_i = iss[13]
    issuer_modulus = (iss[15:15 + (len(iss) - 36)] + certs.get(0x92, b""))[:n_i]
    assert len(issuer_modulus) == n_i
    iss_n, iss_e = int.from_bytes(issuer_modulus, "big"), int.from_bytes(certs[0x9F32], "big")
    static = b"".join(tlv.encode(tlv.decode(x.ok(read_record(r["sfi"], r["record"])))[0].children)
                      for r in app["records"] if r.get("oda")) + bytes.fromhex(app["aip"])
    icc_rec = next(r for r in records.values() if 0x9F46 in r)
    icc = rsa_recover(icc_rec[0x9F46], iss_n, iss_e)
    assert icc[1] == 0x04
    assert icc[2:12].hex().upper().rstrip("F") == doc["secrets"]["pan"]
    check_hash(icc, icc_rec.get(0x9F48, b"") + icc_rec[0x9F47] + static)
    n_ic = icc[19]
    icc_modulus = (icc[21:21 + (len(icc) - 42)] + icc_rec.get(0x9F48, b""))[:n_ic]
    return int.from_bytes(icc_modulus, "big"), int.from_bytes(icc_rec[0x9F47], "big")


def test_visa_online_request() -> None:
    doc = profile("visa")
    x = make_card(doc)
    ttq = bytes.fromhex("36804000")  # online cryptogram required
    r = quick_gpo(x, VISA, t9F66=ttq)
    assert r[0x9F27] == b"\x80"
    assert r[0x9F10][4] & 0x30 == 0x20  # CVR: ARQC returned
    assert 0x9F4B not in r  # reader does not ask for ODA for online
    t = terminal_data(t9F66=ttq)
    assert r[0x9F26] == visa_expected_ac(doc, t, r[0x82], r[0x9F36], r[0x9F10])
    x2 = make_card(doc)
    r2 = quick_gpo(x2, VISA, t9F66=bytes.fromhex("37804000"))  # ...and ODA for online authorisations
    assert r2[0x9F27] == b"\x80" and 0x9F4B in r2


def test_visa_offline_only_reader_over_limit_declines() -> None:
    x = make_card("visa")
    r = quick_gpo(x, VISA, t9F66=bytes.fromhex("28004000"), t9F02=bytes.fromhex("000000009000"))
    assert r[0x9F27] == b"\x00"  # AAC
    assert r[0x9F10][4] & 0x01  # CVR: unable to go online


def test_visa_lower_consecutive_offline_limit_sends_online() -> None:
    doc = profile("visa")
    lcol = doc["applications"][0]["risk"]["lower_consecutive_offline_limit"]
    x = make_card(doc)
    cids = []
    for _ in range(lcol + 1):
        cids.append(quick_gpo(x, VISA)[0x9F27])
    assert cids == [b"\x40"] * lcol + [b"\x80"]
    assert x.card.store.load().consecutive_offline == lcol


def test_visa_cvn10_matches_pyemv() -> None:
    doc = profile("visa")
    app = doc["applications"][0]
    app["cryptogram_version"], app["cvn"] = "visa_cvn10", 0x0A
    s = doc["secrets"]
    imk = bytes.fromhex(s["imk_ac"])
    s["icc_mk_ac"] = pyemv_kd.derive_icc_mk_a(imk, s["pan"], s["psn"]).hex()
    x = make_card(doc)
    r = quick_gpo(x, VISA)
    scheme = reference(pyemv_cvn.VisaCVN10, s)
    expected = scheme.generate_ac(**ac_inputs(terminal_data()), tag_82=r[0x82], tag_9f36=r[0x9F36],
                                  cvr=r[0x9F10][3:7])
    assert r[0x9F10][2] == 0x0A
    assert r[0x9F26] == expected


# --- wearable: consumer device CVM ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("age", "performed"), [(None, False), (10.0, True), (300.0, True), (301.0, False)])
def test_wearable_cdcvm_window(age: float | None, performed: bool) -> None:
    clock = Clock()
    x = make_card("wearable", clock=clock)
    if age is not None:
        x.card.verify_cdcvm(clock.now - age)
    r = quick_gpo(x, VISA, t9F66=bytes.fromhex("36404000"))  # CVM required, CDCVM supported
    assert bool(r[0x9F6C][1] & 0x80) == performed
    assert bool(r[0x9F10][6] & 0x01) == performed  # CVR: CDCVM performed


def test_cdcvm_not_reported_when_reader_cannot_take_it() -> None:
    clock = Clock()
    x = make_card("wearable", clock=clock)
    x.card.verify_cdcvm()
    r = quick_gpo(x, VISA, t9F66=bytes.fromhex("36400000"))  # reader without CDCVM support
    assert not r[0x9F6C][1] & 0x80


def test_plain_card_never_reports_cdcvm() -> None:
    x = make_card("visa", clock=Clock())
    x.card.verify_cdcvm()
    assert not quick_gpo(x, VISA, t9F66=bytes.fromhex("36404000"))[0x9F6C][1] & 0x80


# --- Mastercard: GENERATE AC and CDA ------------------------------------------


def mc_start(doc: dict) -> Exchange:
    x = make_card(doc)
    x.ok(select(MASTERCARD))
    r = flat(x.ok(gpo(b"")))
    assert r[0x82] == MC_AIP and len(r[0x94]) % 4 == 0
    return x


def mc_expected_ac(doc: dict, t: dict[int, bytes], atc: bytes, cvr: bytes) -> bytes:
    s = doc["secrets"]
    scheme = reference(pyemv_cvn.MasterCardCVN16, s)
    return scheme.generate_ac(**ac_inputs(t), tag_82=MC_AIP, tag_9f36=atc, cvr=cvr)


def test_mastercard_offline_tc_with_cda() -> None:
    doc = profile("mastercard")
    x = mc_start(doc)
    icc_n, icc_e = recover_icc_key(x, doc)
    t = terminal_data()
    cdol1_data = tlv.build_dol(CDOL1, t)
    response = x.ok(generate_ac(0x50, cdol1_data))  # TC, CDA requested
    nodes = tlv.decode(response)[0].children
    r = tlv.flatten(nodes)
    assert r[0x9F27] == b"\x40" and r[0x9F36] == b"\x00\x01" and 0x9F26 not in r
    block = rsa_recover(r[0x9F4B], icc_n, icc_e)
    message = check_hash(block, t[0x9F37])
    assert message[:2] == b"\x05\x01"
    ldn = message[3]
    dynamic = message[4:4 + ldn]
    cid, cryptogram = message[4 + ldn], message[5 + ldn:13 + ldn]
    tx_hash = message[13 + ldn:33 + ldn]
    assert len(dynamic) == 8 and cid == 0x40
    iad = r[0x9F10]
    assert iad[:2] == bytes.fromhex("0110")  # DKI 01, CVN 16
    assert cryptogram == mc_expected_ac(doc, t, r[0x9F36], iad[2:8])
    others = b"".join(n.encode() for n in nodes if n.tag != 0x9F4B)
    assert tx_hash == hashlib.sha1(b"" + cdol1_data + others).digest()


def test_mastercard_online_then_issuer_authentication() -> None:
    doc = profile("mastercard")
    s = doc["secrets"]
    x = mc_start(doc)
    t = terminal_data()
    r = flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t))))
    assert r[0x9F27] == b"\x80"
    arqc = r[0x9F26]
    assert arqc == mc_expected_ac(doc, t, r[0x9F36], r[0x9F10][2:8])
    scheme = reference(pyemv_cvn.MasterCardCVN16, s)
    arpc = scheme.generate_arpc(arqc, b"00")
    cdol2 = tlv.build_dol(CDOL2, {0x8A: b"00", 0x91: arpc + b"00", 0x95: bytes(5), 0x9F37: t[0x9F37]})
    second = flat(x.ok(generate_ac(0x40, cdol2)))
    assert second[0x9F27] == b"\x40"
    assert second[0x9F36] == r[0x9F36]  # no new ATC for the second GENERATE AC
    assert second[0x9F10][3] & 0x10  # CVR: issuer authentication performed
    assert not second[0x9F10][6] & 0x04
    assert x.ok(get_data(0x9F13)) == tlv.encode_tlv(0x9F13, r[0x9F36])  # last online ATC
    assert x.send(generate_ac(0x40, cdol2))[1] == 0x6985  # no third GENERATE AC


def test_mastercard_wrong_arpc_declines() -> None:
    x = mc_start(profile("mastercard"))
    t = terminal_data()
    r = flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t))))
    assert r[0x9F27] == b"\x80"
    cdol2 = tlv.build_dol(CDOL2, {0x8A: b"00", 0x91: bytes(range(1, 9)) + b"00", 0x9F37: t[0x9F37]})
    second = flat(x.ok(generate_ac(0x40, cdol2)))
    assert second[0x9F27] == b"\x00"  # AAC
    assert second[0x9F10][6] & 0x04  # CVR: issuer authentication failed
    assert x.card.store.load().last_online_atc == 0


def test_mastercard_declined_by_issuer() -> None:
    doc = profile("mastercard")
    s = doc["secrets"]
    imk = bytes.fromhex(s["imk_ac"])
    x = mc_start(doc)
    t = terminal_data()
    r = flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t))))
    arpc = pyemv_ac.generate_arpc_1(pyemv_kd.derive_icc_mk_a(imk, s["pan"], s["psn"]), r[0x9F26], b"05")
    cdol2 = tlv.build_dol(CDOL2, {0x8A: b"05", 0x91: arpc + b"05", 0x9F37: t[0x9F37]})
    assert flat(x.ok(generate_ac(0x40, cdol2)))[0x9F27] == b"\x00"


def test_mastercard_mc_cvn17_matches_pyemv() -> None:
    doc = profile("mastercard")
    doc["applications"][0]["cryptogram_version"], doc["applications"][0]["cvn"] = "mc_cvn17", 0x11
    s = doc["secrets"]
    x = mc_start(doc)
    t = terminal_data()
    r = flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t))))
    scheme = reference(pyemv_cvn.MasterCardCVN17, s)
    iad = r[0x9F10]
    expected = scheme.generate_ac(**ac_inputs(t), tag_82=MC_AIP, tag_9f36=r[0x9F36],
                                  cvr=iad[2:8], counters=iad[10:18])
    assert r[0x9F26] == expected


def test_generate_ac_errors() -> None:
    x = make_card("mastercard")
    x.ok(select(MASTERCARD))
    cdol1_data = tlv.build_dol(CDOL1, terminal_data())
    assert x.send(generate_ac(0x80, cdol1_data))[1] == 0x6985  # before GPO
    x.ok(gpo(b""))
    assert x.send(generate_ac(0xC0, cdol1_data))[1] == 0x6A86  # RFU cryptogram type
    assert x.send(generate_ac(0x81, cdol1_data))[1] == 0x6A86
    assert x.send(generate_ac(0x80, cdol1_data[:-1]))[1] == 0x6700
    assert flat(x.ok(generate_ac(0x00, cdol1_data)))[0x9F27] == b"\x00"  # AAC asked, AAC given
    assert x.send(generate_ac(0x40, cdol1_data))[1] == 0x6985  # transaction over


def test_quick_card_refuses_generate_ac_after_cryptogram() -> None:
    x = make_card("visa")
    quick_gpo(x, VISA)
    assert x.send(generate_ac(0x80, tlv.build_dol(CDOL1, terminal_data())))[1] == 0x6985


def test_visa_legacy_reader_gets_aip_afl_then_generate_ac() -> None:
    doc = profile("visa")
    x = make_card(doc)
    x.ok(select(VISA))
    t = terminal_data(t9F66=bytes.fromhex("80004000"))  # mag-stripe only: no EMV mode bit
    r = flat(x.ok(gpo(tlv.build_dol(PDOL, t))))
    assert set(r) == {0x82, 0x94}
    g = flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t))))
    assert g[0x9F27] == b"\x80"
    assert g[0x9F26] == visa_expected_ac(doc, t, r[0x82], g[0x9F36], g[0x9F10])


# --- UnionPay qPBOC -------------------------------------------------------------


def test_unionpay_qpboc_fdda_v01_and_cryptogram() -> None:
    doc = profile("unionpay")
    s = doc["secrets"]
    x = make_card(doc)
    t = terminal_data()
    r = quick_gpo(x, UPI_DEBIT)
    assert r[0x9F27] == b"\x40"
    iad = r[0x9F10]
    assert iad[:4] == bytes.fromhex("07010103") and iad[-1] == 0x01
    mk = pyemv_kd.derive_icc_mk_a(bytes.fromhex(s["imk_ac"]), s["pan"], s["psn"])
    sk = pyemv_kd.derive_common_sk(mk, r[0x9F36] + bytes(6))
    data = b"".join(ac_inputs(t).values()) + r[0x82] + r[0x9F36] + iad
    assert r[0x9F26] == pyemv_ac.generate_ac(sk, data, pyemv_ac.PaddingType.EMV)
    icc_n, icc_e = recover_icc_key(x, doc)
    card_auth = flat(x.ok(read_record(3, 1)))[0x9F69]
    assert card_auth[0] == 0x01  # fDDA version 01
    check_hash(rsa_recover(r[0x9F4B], icc_n, icc_e), t[0x9F37] + t[0x9F02] + t[0x5F2A] + card_auth)


# --- INTERNAL AUTHENTICATE, GET DATA, the log ------------------------------------


def test_internal_authenticate_dda() -> None:
    doc = profile("visa")
    x = make_card(doc)
    x.ok(select(VISA))
    icc_n, icc_e = recover_icc_key(x, doc)
    ddol_data = bytes.fromhex("CAFEBABE")
    response = tlv.decode(x.ok(internal_authenticate(ddol_data)))[0]
    assert response.tag == 0x80
    message = check_hash(rsa_recover(response.value, icc_n, icc_e), ddol_data)
    assert message[:2] == b"\x05\x01"
    assert x.send(bytes.fromhex("0088010004CAFEBABE00"))[1] == 0x6A86


def test_internal_authenticate_refused_without_dda() -> None:
    x = make_card("mastercard")  # AIP 1D80: CDA and issuer authentication, no DDA
    assert x.send(internal_authenticate(b"\x01\x02\x03\x04"))[1] == 0x6985
    x.ok(select(MASTERCARD))
    assert x.send(internal_authenticate(b"\x01\x02\x03\x04"))[1] == 0x6985


def test_get_data_and_log() -> None:
    doc = profile("visa")
    x = make_card(doc)
    x.ok(select(VISA))
    assert x.ok(get_data(0x9F36)) == bytes.fromhex("9F36020000")
    assert x.ok(get_data(0x9F17)) == bytes.fromhex("9F170103")
    log_format = bytes.fromhex(doc["applications"][0]["log"]["format"])
    assert x.ok(get_data(0x9F4F)) == tlv.encode_tlv(0x9F4F, log_format)
    assert x.send(get_data(0x5A))[1] == 0x6A88
    assert x.send(read_record(11, 1))[1] == 0x6A83  # empty log
    quick_gpo(x, VISA, t9F02=bytes.fromhex("000000000777"))
    assert x.ok(get_data(0x9F36)) == bytes.fromhex("9F36020001")
    entry = tlv.split_dol(log_format, x.ok(read_record(11, 1)))
    assert entry[0x9F02] == bytes.fromhex("000000000777")
    assert entry[0x9F27] == b"\x40" and entry[0x9F36] == b"\x00\x01"
    assert entry[0x9A] == bytes.fromhex("261127")
    assert x.send(read_record(11, 2))[1] == 0x6A83


def test_log_keeps_newest_records_only() -> None:
    doc = profile("visa")
    doc["applications"][0]["log"]["records"] = 2
    doc["applications"][0]["risk"] = {}
    x = make_card(doc)
    for cents in (1, 2, 3):
        quick_gpo(x, VISA, t9F02=bytes.fromhex(f"{cents:012d}"))
    log_format = bytes.fromhex(doc["applications"][0]["log"]["format"])
    amounts = [tlv.split_dol(log_format, x.ok(read_record(11, n)))[0x9F02][-1] for n in (1, 2)]
    assert amounts == [3, 2]
    assert x.send(read_record(11, 3))[1] == 0x6A83


def test_atc_persists_through_the_store_and_is_saved_before_the_cryptogram() -> None:
    x = make_card("mastercard")
    x.ok(select(MASTERCARD))
    x.ok(gpo(b""))
    store = x.card.store
    saves = store.saves  # type: ignore[attr-defined]
    x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, terminal_data())))
    assert store.load().atc == 1
    assert store.saves >= saves + 2  # type: ignore[attr-defined]
    card2 = Card(profile("mastercard"), store=store)
    x2 = Exchange(card2)
    x2.ok(select(MASTERCARD))
    x2.ok(gpo(b""))
    assert flat(x2.ok(generate_ac(0x80, tlv.build_dol(CDOL1, terminal_data()))))[0x9F36] == b"\x00\x02"


def test_atc_exhausted_blocks_cryptograms() -> None:
    doc = profile("visa")
    doc["state"] = {"atc": 0xFFFF}
    x = make_card(doc)
    x.ok(select(VISA))
    assert x.send(gpo(tlv.build_dol(PDOL, terminal_data())))[1] == 0x6985


# --- profiles -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("secrets"), "no secrets"),
        (lambda d: d.update(format="other"), "not an emvkit-card"),
        (lambda d: d["applications"][0].update(aid="A0"), "AID is 5 to 16 bytes"),
        (lambda d: d["applications"][0].update(scheme="amex"), "scheme"),
        (lambda d: d["applications"][0].update(pdol="9F66"), "pdol"),
        (lambda d: d["applications"][0]["records"][0].update(sfi=31), "SFI 1..30"),
        (lambda d: d["applications"][0]["records"][0].update(template="7070"), "template: one byte"),
        (lambda d: d["applications"][0]["records"][0].update(template="7G"), "template: not hex"),
        (lambda d: d["secrets"].update(icc_mk_ac="00"), "16 bytes"),
        (lambda d: d["applications"][0]["records"][0]["data"].append(["9F", "zz"]), "not hex"),
    ],
)
def test_bad_profiles_are_typed_errors(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = profile("visa")
    mutate(doc)
    with pytest.raises(ProfileError, match=message):
        Card(doc)


def test_visa_cvn18_second_generate_ac_checks_arpc_method_2() -> None:
    doc = profile("visa")
    x = make_card(doc)
    x.ok(select(VISA))
    t = terminal_data(t9F66=bytes.fromhex("80004000"))  # no EMV mode: AIP/AFL, then GENERATE AC
    x.ok(gpo(tlv.build_dol(PDOL, t)))
    first = flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t))))
    assert first[0x9F27] == b"\x80"
    csu, prop = bytes.fromhex("00820000"), bytes.fromhex("0000")
    arpc = reference(pyemv_cvn.VisaCVN18, doc["secrets"]).generate_arpc(first[0x9F26], first[0x9F36], csu, prop)
    assert len(arpc) == 4
    cdol2 = tlv.build_dol(CDOL2, {0x8A: b"00", 0x91: arpc + csu + prop, 0x9F37: t[0x9F37]})
    assert flat(x.ok(generate_ac(0x40, cdol2)))[0x9F27] == b"\x40"
    assert x.card.store.load().last_online_atc == 1


def test_visa_cvn18_wrong_arpc_declines() -> None:
    x = make_card("visa")
    x.ok(select(VISA))
    t = terminal_data(t9F66=bytes.fromhex("80004000"))
    x.ok(gpo(tlv.build_dol(PDOL, t)))
    assert flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t))))[0x9F27] == b"\x80"
    cdol2 = tlv.build_dol(CDOL2, {0x8A: b"00", 0x91: bytes.fromhex("0102030400820000" "0000"), 0x9F37: t[0x9F37]})
    assert flat(x.ok(generate_ac(0x40, cdol2)))[0x9F27] == b"\x00"


def test_reader_requiring_cvm_sends_online_pin_card_online() -> None:
    x = make_card("visa")  # CTQ: online PIN required
    r = quick_gpo(x, VISA, t9F66=bytes.fromhex("36404000"), t9F02=bytes.fromhex("000000001000"))
    assert r[0x9F27] == b"\x80"


def test_unknown_cryptogram_version_is_refused_at_load() -> None:
    doc = profile("visa")
    doc["applications"][0]["cryptogram_version"] = "visa_cvn99"
    with pytest.raises(ProfileError, match="cryptogram_version"):
        Card(doc)


# --- the state table ------------------------------------------------------------------------


def test_state_walk_and_the_commands_each_state_refuses() -> None:
    """IDLE -> SELECTED -> INITIATED -> ONLINE -> DONE; every command outside a state's row is 6985,
    and a wrong P1/P2 is 6A86 whatever the state (the parameters are checked first)."""
    from emvkit.firmware.payapp import card as card_module

    x = make_card("mastercard")
    cdol1_data = tlv.build_dol(CDOL1, terminal_data())
    commands = {
        0xA8: (gpo(b""), bytes.fromhex("80A8010002830000")),
        0xB2: (read_record(1, 1), bytes.fromhex("00B2010000")),
        0x88: (internal_authenticate(bytes(4)), bytes.fromhex("00880100040000000000")),
        0xAE: (generate_ac(0x80, cdol1_data), generate_ac(0xC0, cdol1_data)),
    }

    def refuses_all_but(state: int, allowed: set[int]) -> None:
        assert x.card.state == state
        for ins, (valid, wrong_p1p2) in commands.items():
            if ins not in allowed:
                assert x.send(valid)[1] == 0x6985, f"{ins:02X} in state {state}"
            assert x.send(wrong_p1p2)[1] == 0x6A86, f"{ins:02X} in state {state}"
            assert x.card.state == state  # a refused command changes nothing

    refuses_all_but(card_module.IDLE, set())
    x.ok(select(MASTERCARD))
    refuses_all_but(card_module.SELECTED, {0xA8, 0xB2, 0x88})
    x.ok(gpo(b""))
    refuses_all_but(card_module.INITIATED, {0xB2, 0x88, 0xAE})
    assert flat(x.ok(generate_ac(0x80, cdol1_data)))[0x9F27] == b"\x80"
    refuses_all_but(card_module.ONLINE, {0xB2, 0x88, 0xAE})
    x.ok(generate_ac(0x00, tlv.build_dol(CDOL2, {0x8A: b"Z3"})))
    refuses_all_but(card_module.DONE, {0xB2, 0x88})
    x.ok(PPSE_SELECT)
    refuses_all_but(card_module.IDLE, set())
