"""UnionPay's SM suite (PBOC 3.0) end to end: the built-in ``unionpay-sm`` card
tapped offline (SM2/SM3 fDDA) and online (the host verifies the SM4 ARQC),
what the card signs checked with gmssl (an independent SM2/SM3/SM4), the
SM4 cryptogram and ARPC recomputed with gmssl's SM4, tampered and refused
cases, ``emvkit perso --scheme unionpay --algorithms sm`` and SM2 CA keys in the store.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pytest
from gmssl import sm2 as gm_sm2  # type: ignore[import-untyped]
from gmssl import sm4 as gm_sm4

from emvkit.firmware import tlv
from emvkit.firmware.crypto.sm2 import SM2PrivateKey
from emvkit.terminal.config_files import load_config
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.kernel import oda
from emvkit.terminal.kernel.authorisation import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.kernel.capk import CapkStore, CaPublicKey
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.perso.builtin import capk_path, load_builtin
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from tests.conftest import ROOT, venv_tool

CARD = load_builtin("unionpay-sm")
SM2_CA = next(k for k in json.loads(capk_path().read_text()) if k.get("algorithm") == "sm2")


def _gm_verify(public_xy: bytes, signature: bytes, message: bytes) -> bool:
    """gmssl's SM2 verification with SM3 and the default user ID (its
    constructor strips a leading 04 from the key, so the key is set after)."""
    gm = gm_sm2.CryptSM2(private_key="00", public_key="00")
    gm.public_key = public_xy.hex()
    return bool(gm.verify_with_sm3(signature.hex(), message))


def _gm_sm4_encrypt(key: bytes, data: bytes) -> bytes:
    crypt = gm_sm4.CryptSM4(padding_mode=gm_sm4.ZERO)
    crypt.set_key(key, gm_sm4.SM4_ENCRYPT)
    return bytes(crypt.crypt_ecb(data))[:len(data)]


def _gm_sm4_mac8(key: bytes, data: bytes) -> bytes:
    padded = data + b"\x80" + bytes((15 - len(data) % 16) % 16)
    chain = bytes(16)
    for i in range(0, len(padded), 16):
        chain = _gm_sm4_encrypt(key, bytes(a ^ b for a, b in zip(chain, padded[i:i + 16], strict=True)))
    return chain[:8]


def _record(sfi: int, number: int) -> dict[str, bytes]:
    rec = next(r for r in CARD["applications"][0]["records"] if (r["sfi"], r["record"]) == (sfi, number))
    return {tag: bytes.fromhex(value) for tag, value in rec["data"]}


@dataclass
class Recorder:
    host: IssuerHost
    change: object = None
    requests: list[AuthorisationRequest] = field(default_factory=list)
    responses: list[AuthorisationResponse] = field(default_factory=list)

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        if callable(self.change):
            request = self.change(request)
        response = self.host.authorise(request)
        self.requests.append(request)
        self.responses.append(response)
        return response


class TamperSdad:
    """The emulated card with the last byte of its GPO response's data (the end
    of the SM2 signature in 9F4B, the last object) flipped."""

    def __init__(self, url: str) -> None:
        self.inner = open_transport(url)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def transmit(self, apdu: bytes) -> bytes:
        response = self.inner.transmit(apdu)
        if apdu[1] == 0xA8 and response[-2:] == b"\x90\x00":
            assert response[-5:-3] != b"\x9f\x4b"  # 9F4B's value ends the data
            response = response[:-3] + bytes((response[-3] ^ 0x01,)) + response[-2:]
        return response


# --- the card's signatures, checked by gmssl -----------------------------------------------------


def test_certificates_verify_with_gmssl() -> None:
    issuer_cert = _record(2, 1)["90"]
    assert issuer_cert[0] == 0x12 and issuer_cert[10:14] == bytes.fromhex("04040040")
    assert _gm_verify(bytes.fromhex(SM2_CA["public_key"]), issuer_cert[-64:], issuer_cert[:-64])
    issuer_key = issuer_cert[14:78]
    icc_cert = _record(2, 2)["9F46"]
    assert icc_cert[0] == 0x14 and icc_cert[16:20] == bytes.fromhex("04040040")
    static = b"".join(tlv.encode_tlv(int(t, 16), bytes.fromhex(v)) for t, v in
                      CARD["applications"][0]["records"][0]["data"]) + bytes.fromhex(CARD["applications"][0]["aip"])
    assert _gm_verify(issuer_key, icc_cert[-64:], icc_cert[:-64] + static)
    assert not _gm_verify(issuer_key, icc_cert[-64:], icc_cert[:-64] + static[:-1])
    assert icc_cert[20:84] == bytes.fromhex(CARD["secrets"]["icc_sm2"]["public"])


def test_fdda_signature_of_a_tap_verifies_with_gmssl() -> None:
    tap = run_transaction(open_transport("emu:unionpay-sm"), load_config(), TransactionRequest(amount=1000))
    assert tap.result.outcome.outcome is Outcome.APPROVED
    gpo = next(e for e in tap.trace.exchanges if e.command[1] == 0xA8)
    assert gpo.response is not None
    objects = {n.tag: n.value for n in tlv.decode(gpo.response[:-2])[0].children}
    card_auth = next(e for e in tap.trace.exchanges if e.command[1] == 0xB2 and e.command[3] == 0x1C)
    assert card_auth.response is not None
    card_auth_data = tlv.decode(card_auth.response[:-2])[0].children[0].value
    sdad = objects[0x9F4B]
    assert sdad[0] == 0x15 and len(sdad) == 2 + sdad[1] + 64
    data = tap.result.data
    signed = sdad[:2 + sdad[1]] + data[0x9F37] + data[0x9F02] + data[0x5F2A] + card_auth_data
    public = bytes.fromhex(CARD["secrets"]["icc_sm2"]["public"])
    assert _gm_verify(public, sdad[-64:], signed)


# --- taps ----------------------------------------------------------------------------------------


def test_offline_tap_is_approved_with_sm2_fdda() -> None:
    tap = run_transaction(open_transport("emu:unionpay-sm"), load_config(), TransactionRequest(amount=1000))
    result = tap.result
    assert result.outcome.outcome is Outcome.APPROVED
    assert (result.oda, result.oda_result) == ("fDDA", "successful")
    assert [(c.owner, c.format, c.hash_algorithm, c.key_algorithm, c.key_length, c.hash_matched)
            for c in result.oda_certificates] == [("issuer", 0x12, 4, 4, 64, True), ("icc", 0x14, 4, 4, 64, True)]
    assert result.tvr == bytes(5)
    gpo = next(e for e in tap.trace.exchanges if e.command[1] == 0xA8)
    assert gpo.command[5 + 2:-1].endswith(b"\x01")  # DF69 01 ends the PDOL data


def test_cli_tap_on_the_builtin_name_is_approved_with_sm2_fdda() -> None:
    # The built-in card's name as the CLI takes it: emu:unionpay-sm.
    run = subprocess.run([venv_tool("emvkit"), "tap", "--reader", "emu:unionpay-sm", "--amount", "10.00", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert (shown["outcome"], shown["kernel"], shown["cid"]) == ("Approved", 7, "40")
    assert (shown["oda"], shown["oda_result"]) == ("fDDA", "successful")


def test_tampered_sdad_fails_oda() -> None:
    tap = run_transaction(TamperSdad("emu:unionpay-sm"), load_config(), TransactionRequest(amount=1000))  # type: ignore[arg-type]
    result = tap.result
    assert (result.oda, result.oda_result) == ("fDDA", "sdad_signature")
    assert result.tvr[0] & 0x08  # DDA failed (fDDA is a DDA)
    # CTQ A040 of the built-in card: "go online if ODA fails", and the terminal is online capable.
    assert result.outcome.outcome is Outcome.ONLINE_REQUEST


def test_terminal_without_sm_is_refused_by_the_sm_card() -> None:
    config = replace(load_config(), sm_algorithms=False)
    tap = run_transaction(open_transport("emu:unionpay-sm"), config, TransactionRequest(amount=1000))
    gpos = [e for e in tap.trace.exchanges if e.command[1] == 0xA8]
    assert gpos and all(e.response is not None and e.response[-2:] == b"\x69\x85" for e in gpos)
    assert all(e.command[5 + 2:-1].endswith(b"\x00") for e in gpos)  # DF69 00
    assert tap.result.outcome.outcome is not Outcome.APPROVED


def test_online_tap_the_host_verifies_the_sm4_arqc() -> None:
    recorder = Recorder(IssuerHost.builtin())
    tap = run_transaction(open_transport("emu:unionpay-sm"), load_config(), TransactionRequest(amount=6000),
                          authoriser=recorder)
    assert tap.result.outcome.outcome is Outcome.APPROVED
    (request,), (response,) = recorder.requests, recorder.responses
    icc = request.icc_data
    iad = icc[0x9F10]
    assert iad[7] == 0x04  # IAD algorithm indicator: SM4
    # The ICC master key, session key and AC recomputed with gmssl's SM4.
    secrets = CARD["secrets"]
    digits = (secrets["pan"] + secrets["psn"])[-16:]
    x = bytes.fromhex(digits)
    mk = _gm_sm4_encrypt(bytes.fromhex(secrets["imk_ac"]), x + bytes(b ^ 0xFF for b in x))
    assert mk == bytes.fromhex(secrets["icc_mk_ac"])
    atc = icc[0x9F36]
    sk = _gm_sm4_encrypt(mk, atc + b"\xf0" + bytes(13))
    data = b"".join(icc[t] for t in (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)) + icc[0x82] + atc + iad
    assert icc[0x9F26] == _gm_sm4_mac8(sk, data)
    assert response.approved
    arc = b"00"
    arpc = _gm_sm4_encrypt(sk, bytes(a ^ b for a, b in zip(icc[0x9F26], arc + bytes(6), strict=True)) + bytes(8))[:8]
    assert response.issuer_authentication_data == arpc + arc


def test_online_tap_with_a_wrong_arqc_is_declined_by_the_host() -> None:
    def flip(request: AuthorisationRequest) -> AuthorisationRequest:
        icc = dict(request.icc_data)
        icc[0x9F26] = bytes((icc[0x9F26][0] ^ 0x80,)) + icc[0x9F26][1:]
        return replace(request, icc_data=icc)

    recorder = Recorder(IssuerHost.builtin(), change=flip)
    tap = run_transaction(open_transport("emu:unionpay-sm"), load_config(), TransactionRequest(amount=6000),
                          authoriser=recorder)
    assert not recorder.responses[0].approved
    assert tap.result.outcome.outcome is not Outcome.APPROVED


# --- perso and the CA key store -------------------------------------------------------------------


def test_perso_sm_card_taps_with_its_capk_file(tmp_path: Path) -> None:
    out = tmp_path / "card.json"
    run = subprocess.run([venv_tool("emvkit"), "perso", "--scheme", "unionpay", "--algorithms", "sm",
                          "--out", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "card.ca.json").st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "card.ca.json").read_text())["algorithm"] == "sm2"
    capk = json.loads((tmp_path / "card.capk.json").read_text())
    assert capk[0]["algorithm"] == "sm2" and len(bytes.fromhex(capk[0]["public_key"])) == 64
    config = load_config()
    for key in CapkStore.from_json(capk):
        config.capks.add(key)
    tap = run_transaction(open_transport(f"emu:{out}"), config, TransactionRequest(amount=1000))
    assert (tap.result.outcome.outcome, tap.result.oda_result) == (Outcome.APPROVED, "successful")
    # A second card under the same SM2 CA; an RSA card cannot use it.
    again = subprocess.run([venv_tool("emvkit"), "perso", "--scheme", "unionpay", "--ca",
                            str(tmp_path / "card.ca.json"), "--out", str(tmp_path / "rsa.json")],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "SM2 CA" in again.stderr
    wrong = subprocess.run([venv_tool("emvkit"), "perso", "--scheme", "visa", "--algorithms", "sm", "--out",
                            str(tmp_path / "v.json")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr and "unionpay" in wrong.stderr


def test_sm2_capk_entries_are_checked() -> None:
    good = dict(SM2_CA)
    assert CapkStore.from_json([good]).get(bytes.fromhex(good["rid"]), int(good["index"], 16)) is not None
    with pytest.raises(ConfigError, match="checksum"):
        CapkStore.from_json([dict(good, checksum="00" * 20)])
    off_curve = bytes.fromhex(good["public_key"])
    off_curve = off_curve[:-1] + bytes((off_curve[-1] ^ 1,))
    with pytest.raises(ConfigError, match="public_key"):
        CapkStore.from_json([{k: v for k, v in dict(good, public_key=off_curve.hex()).items() if k != "checksum"}])
    with pytest.raises(ConfigError, match="modulus"):
        CapkStore.from_json([dict(good, modulus="00")])
    with pytest.raises(ConfigError, match="algorithm"):
        CapkStore.from_json([dict(good, algorithm="ecdsa")])


def test_mpy_card_tap_is_approved_with_sm2_fdda() -> None:
    # The same card application under the MicroPython unix port.
    tap = run_transaction(open_transport("mpy:unionpay-sm"), load_config(), TransactionRequest(amount=1000))
    assert (tap.result.outcome.outcome, tap.result.oda, tap.result.oda_result) == (
        Outcome.APPROVED, "fDDA", "successful")


@pytest.mark.parametrize(("change", "message"), [
    (lambda doc: doc["secrets"]["icc_sm2"].update(public="00" * 64), "secrets.icc_sm2"),
    (lambda doc: doc["applications"][0].update(pdol=doc["applications"][0]["pdol"][:-6]), "DF69"),
    (lambda doc: doc["applications"][0].update(scheme="visa"), "UnionPay"),
])
def test_bad_sm_profiles_are_one_line_errors(tmp_path: Path, change: object, message: str) -> None:
    doc = json.loads(json.dumps(CARD))
    change(doc)  # type: ignore[operator]
    path = tmp_path / "card.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    run = subprocess.run([venv_tool("emvkit"), "tap", "--reader", f"emu:{path}"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and message in run.stderr, run.stderr


# --- SM ODA failures, one check at a time (oda.py) ---------------------------------------------

TODAY = date(2026, 1, 15)
PAN = CARD["secrets"]["pan"]


def _sm2_capk() -> CaPublicKey:
    return CaPublicKey(rid=bytes.fromhex(SM2_CA["rid"]), index=int(SM2_CA["index"], 16),
                       modulus=bytes.fromhex(SM2_CA["public_key"]), exponent=b"", algorithm="sm2")


def _resigned(cert: bytes, change: int, value: int, signer: SM2PrivateKey) -> bytes:
    body = bytearray(cert[:-64])
    body[change] = value
    return bytes(body) + signer.sign(bytes(body))


@pytest.mark.parametrize(("cert", "code"), [
    (lambda c: b"\x02" + c[1:], "issuer_certificate_format"),
    (lambda c: c[:10] + b"\x01" + c[11:], "issuer_certificate_hash_algorithm"),
    (lambda c: c[:-1], "issuer_certificate_length"),
    (lambda c: c[:-1] + bytes((c[-1] ^ 1,)), "issuer_certificate_signature"),
    (lambda c: c[:20] + bytes((c[20] ^ 1,)) + c[21:], "issuer_certificate_signature"),
])
def test_issuer_certificate_failures(cert: object, code: str) -> None:
    good = _record(2, 1)["90"]
    result = oda.recover_issuer_key(_sm2_capk(), cert(good), None, None, PAN, TODAY)  # type: ignore[operator]
    assert isinstance(result, oda.OdaFailure) and result.code == code, result


def test_issuer_certificate_recovers_and_checks_pan_expiry_and_key() -> None:
    issuer = oda.recover_issuer_key(_sm2_capk(), _record(2, 1)["90"], None, None, PAN, TODAY)
    assert isinstance(issuer, oda.IssuerPublicKey) and issuer.algorithm == "sm2"
    assert issuer.modulus == _record(2, 1)["90"][14:78] and issuer.identifier == PAN[:8]
    wrong_pan = oda.recover_issuer_key(_sm2_capk(), _record(2, 1)["90"], None, None, "4" + PAN[1:], TODAY)
    assert isinstance(wrong_pan, oda.OdaFailure) and wrong_pan.code == "issuer_identifier_mismatch"
    late = oda.recover_issuer_key(_sm2_capk(), _record(2, 1)["90"], None, None, PAN, date(2032, 1, 1))
    assert isinstance(late, oda.OdaFailure) and late.code == "issuer_certificate_expired"
    icc = oda.recover_icc_key(issuer, _record(2, 2)["9F46"], None, None, b"wrong static data", PAN, TODAY)
    assert isinstance(icc, oda.OdaFailure) and icc.code == "icc_certificate_signature"
    assert icc.certificate is not None and icc.certificate.hash_matched is False


def test_compressed_and_bad_certified_keys() -> None:
    # A certificate carrying its key compressed (02/03 || x), as one public sample does.
    ca, issuer = SM2PrivateKey(0x1234567), SM2PrivateKey(0x7654321)
    capk = CaPublicKey(rid=bytes.fromhex("A000000333"), index=0xE9, modulus=ca.public_bytes(), exponent=b"",
                       algorithm="sm2")
    x, y = issuer.public
    compressed = bytes((2 + (y & 1),)) + x.to_bytes(32, "big")
    body = bytes.fromhex("12" "62123456" "1231" "000001" "04040021") + compressed
    recovered = oda.recover_issuer_key(capk, body + ca.sign(body), None, None, PAN, TODAY)
    assert isinstance(recovered, oda.IssuerPublicKey) and recovered.modulus == issuer.public_bytes()
    off = body[:-33] + b"\x05" + body[-32:]  # neither 02 nor 03
    bad = oda.recover_issuer_key(capk, off + ca.sign(off), None, None, PAN, TODAY)
    assert isinstance(bad, oda.OdaFailure) and bad.code == "issuer_public_key"
    assert bad.certificate is not None and bad.certificate.hash_matched is True  # the signature itself was good
    rsa_alg = bytes.fromhex("12" "62123456" "1231" "000001" "04010040") + issuer.public_bytes()
    wrong = oda.recover_issuer_key(capk, rsa_alg + ca.sign(rsa_alg), None, None, PAN, TODAY)
    assert isinstance(wrong, oda.OdaFailure) and wrong.code == "issuer_key_algorithm"


def test_capk_import_keeps_an_sm2_key(tmp_path: Path) -> None:
    source = tmp_path / "sm2.json"
    source.write_text(json.dumps([SM2_CA]))
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    imported = subprocess.run([venv_tool("emvkit"), "capk", "import", str(source)], capture_output=True, text=True,
                              timeout=120, cwd=ROOT, env=env)
    assert imported.returncode == 0, imported.stderr
    assert f"{SM2_CA['rid']}/{SM2_CA['index']}: imported, SM2, 256 bits" in imported.stdout
    saved = json.loads((tmp_path / "data" / "emvkit" / "capk.json").read_text())
    assert [(k["algorithm"], k["public_key"], k["checksum"]) for k in saved] == [
        ("sm2", SM2_CA["public_key"], SM2_CA["checksum"])]
    listed = subprocess.run([venv_tool("emvkit"), "capk", "list", "--json"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=env)
    row = next(r for r in json.loads(listed.stdout) if r["key"] == f"{SM2_CA['rid']}/{SM2_CA['index']}")
    assert (row["algorithm"], row["bits"], row["source"]) == ("sm2", 256, "imported")
