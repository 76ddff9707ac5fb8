"""Offline data authentication failures (EMV Book 2 §6.3, §6.4, §6.5/§6.6),
each with its TVR bit and the outcome the kernel owes it, at 12.34 EUR (an
amount the card would approve offline):

- kernels 3 and 7 (fDDA): "DDA failed"; the outcome follows the card's CTQ
  (Book C-3 §5.x): the built-in cards say "go online if ODA fails";
- kernel 2 (CDA): "CDA failed". A failure before GENERATE AC (the keys)
  goes through terminal action analysis: TAC-Online names "CDA failed", so
  the terminal asks for an ARQC without CDA. A bad signature on the
  cryptogram itself declines.

Cards with a particular certificate defect are personalised here, signed by
a test CA of our own under index E2 (the built-in cards use E1), whose public
key the scenario gives the terminal.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from emvkit.firmware import tlv
from emvkit.firmware.crypto.rsa import RSAPrivateKey
from emvkit.hil.dut import KERNEL_CARDS, Dut, pinned_random, replay
from emvkit.terminal.bitmaps import CTQ_BITS, TSI_BITS, is_set
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.capk import CapkStore, CaPublicKey
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.perso.builtin import load_builtin
from emvkit.terminal.perso.cards import ISSUER_BITS, BuiltCard, CardOptions, build_card, luhn_complete
from emvkit.terminal.perso.certificates import icc_certificate, issuer_certificate
from emvkit.terminal.perso.keys import CA_BITS_DEFAULT, generate_rsa
from emvkit.terminal.session import Tap
from emvkit.terminal.transport.scripted import Pattern

AMOUNT = 1234
OUR_CA_INDEX = 0xE2
SCHEME = {2: "mastercard", 3: "visa", 7: "unionpay"}
FDDA_CARDS = [p for p in KERNEL_CARDS if p.values[1] != 2]
# TVR byte 1: DDA failed (08) for fDDA, CDA failed (04) for CDA; nothing else at 12.34.
ODA_FAILED_TVR = {2: bytes.fromhex("0400000000"), 3: bytes.fromhex("0800000000"), 7: bytes.fromhex("0800000000")}


# --- Terminal configurations and personalised cards -------------------------------------------


@pytest.fixture(scope="session")
def our_ca() -> RSAPrivateKey:
    return generate_rsa(CA_BITS_DEFAULT)


def ca_key(built: BuiltCard) -> CaPublicKey:
    capk = built.capk
    return CaPublicKey(rid=bytes.fromhex(capk["rid"]), index=int(capk["index"], 16),
                       modulus=bytes.fromhex(capk["modulus"]), exponent=bytes.fromhex(capk["exponent"]),
                       checksum=bytes.fromhex(capk["checksum"]))


def config_trusting(built: BuiltCard) -> TerminalConfig:
    """The default terminal, with our CA's public key added."""
    config = load_config()
    config.capks.add(ca_key(built))
    return config


def personalise(kernel: int, our_ca: RSAPrivateKey, **options: Any) -> BuiltCard:
    return build_card(CardOptions(scheme=SCHEME[kernel], ca=our_ca, ca_index=OUR_CA_INDEX, **options))


def write_profile(profile: dict[str, Any], directory: Path, name: str) -> Path:
    path = directory / f"{name}.json"
    path.write_text(json.dumps(profile, indent=1))
    path.chmod(0o600)  # the profile holds the card's keys
    return path


def record_value(profile: dict[str, Any], tag: str) -> bytes:
    for record in profile["applications"][0]["records"]:
        for t, value in record["data"]:
            if t == tag:
                return bytes.fromhex(value)
    raise KeyError(tag)


def replace_in_records(profile: dict[str, Any], values: dict[str, bytes]) -> None:
    """Set data objects in every record holding them (an empty value removes the object)."""
    found = set()
    for app in profile["applications"]:
        for record in app["records"]:
            found |= {t for t, _ in record["data"] if t in values}
            record["data"] = [[t, values[t].hex().upper()] if t in values else [t, v]
                              for t, v in record["data"] if values.get(t, b"-")]
    assert found == {t for t, v in values.items() if v}, "the new certificate does not fit the card's layout"


def static_data(profile: dict[str, Any]) -> bytes:
    """Book 3 §10.3: the records signed for ODA (of SFI 1-10 the template's value, of SFI 11-30 the
    whole 70 template, tag and length included), then the AIP (SDA Tag List 82)."""
    app = profile["applications"][0]
    data = b""
    for record in app["records"]:
        if record.get("oda"):
            value = b"".join(tlv.encode_tlv(int(t, 16), bytes.fromhex(v)) for t, v in record["data"])
            data += value if record["sfi"] <= 10 else tlv.encode_tlv(0x70, value)
    return data + bytes.fromhex(app["aip"])


def recertify(built: BuiltCard, profile: dict[str, Any], pan: str) -> dict[str, Any]:
    """``profile`` (a changed copy of the card's) with a new issuer certificate under our CA and a
    new ICC certificate naming ``pan`` and signing the profile's static data as it now is."""
    assert isinstance(built.ca, RSAPrivateKey), "an RSA card"
    issuer = generate_rsa(ISSUER_BITS)
    icc = RSAPrivateKey.from_dict(profile["secrets"]["icc_rsa"])
    issuer_cert = issuer_certificate(built.ca, issuer, profile["secrets"]["pan"], "1231", b"\x00\x00\x01")
    icc_cert = icc_certificate(issuer, icc, pan, "1230", b"\x00\x00\x02", static_data(profile))
    replace_in_records(profile, {"90": issuer_cert.certificate, "92": issuer_cert.remainder,
                                 "9F32": issuer_cert.exponent, "9F46": icc_cert.certificate,
                                 "9F48": icc_cert.remainder, "9F47": icc_cert.exponent})
    return profile


def certify_other_pan(built: BuiltCard) -> dict[str, Any]:
    """The card with a valid certificate chain whose ICC certificate names another PAN of the same issuer."""
    profile = copy.deepcopy(built.profile)
    pan = profile["secrets"]["pan"]
    other = luhn_complete(pan[:-2] + str((int(pan[-2]) + 1) % 10))
    assert other != pan and other[:8] == pan[:8]
    return recertify(built, profile, other)


def with_sfi_11_record(built: BuiltCard, template: str) -> dict[str, Any]:
    """The card with one more record signed for ODA, in SFI 11 (its log moved to SFI 12): the Issuer
    URL (5F50), certified as a 70 template, then served in ``template`` (the profile's record
    option: a tag, or empty for the bare data object)."""
    profile = copy.deepcopy(built.profile)
    record: dict[str, Any] = {"sfi": 11, "record": 1, "oda": True,
                              "data": [["5F50", b"https://example.org".hex().upper()]]}
    for app in profile["applications"]:
        if "log" in app:
            app["log"]["sfi"] = 12
        app["records"].append(record)
    recertify(built, profile, profile["secrets"]["pan"])
    record["template"] = template
    return profile


def issuer_certificate_serial(built: BuiltCard) -> bytes:
    """The Certificate Serial Number in the card's issuer certificate, recovered with pow (Book 2 Table 13)."""
    key = ca_key(built)
    certificate = record_value(built.profile, "90")
    n, e = int.from_bytes(key.modulus, "big"), int.from_bytes(key.exponent, "big")
    block = pow(int.from_bytes(certificate, "big"), e, n).to_bytes(len(certificate), "big")
    assert (block[0], block[1], block[-1]) == (0x6A, 0x02, 0xBC), "not an issuer certificate under our CA"
    return block[8:11]


# --- The checks every ODA failure shares ---------------------------------------------------------


def assert_oda_failed(tap: Tap, kernel: int, code: str | set[str]) -> None:
    r = tap.result
    assert r.kernel == kernel
    assert r.oda == ("CDA" if kernel == 2 else "fDDA")
    assert r.oda_result in ({code} if isinstance(code, str) else code)
    assert r.tvr == ODA_FAILED_TVR[kernel]
    assert is_set(r.tsi, TSI_BITS, "ODA_PERFORMED")


def assert_failed_before_generate_ac(tap: Tap, kernel: int, code: str | set[str]) -> None:
    """The keys could not be recovered: the outcome kernel 2's action analysis or the CTQ gives."""
    assert_oda_failed(tap, kernel, code)
    r = tap.result
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST
    if kernel == 2:
        generate_ac = [e.command for e in tap.trace.exchanges if e.command[1] == 0xAE]
        assert [c[2] for c in generate_ac] == [0x80], "ARQC asked for, without CDA"
        assert r.cid == b"\x80"
    else:
        assert is_set(r.data[0x9F6C], CTQ_BITS, "GO_ONLINE_IF_ODA_FAILS")


# --- CA public key ------------------------------------------------------------------------------


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_terminal_without_the_ca_public_key(dut: Dut, card: str, kernel: int) -> None:
    config = load_config()
    config.capks = CapkStore()
    tap = dut.tap(AMOUNT, card=card, config=config)
    assert_failed_before_generate_ac(tap, kernel, "capk_missing")


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_card_signed_by_an_unknown_ca(dut: Dut, card: str, kernel: int, our_ca: RSAPrivateKey,
                                      profile_dir: Path) -> None:
    built = personalise(kernel, our_ca)
    tap = dut.tap(AMOUNT, card=write_profile(built.profile, profile_dir, "unknown-ca"))
    assert_failed_before_generate_ac(tap, kernel, "capk_missing")


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_our_ca_card_is_approved_when_the_terminal_has_the_key(dut: Dut, card: str, kernel: int,
                                                                 our_ca: RSAPrivateKey, profile_dir: Path) -> None:
    """The control for the personalised cards below: without a defect they pass ODA."""
    built = personalise(kernel, our_ca)
    tap = dut.tap(AMOUNT, card=write_profile(built.profile, profile_dir, "good"), config=config_trusting(built))
    assert tap.result.outcome.outcome is Outcome.APPROVED
    assert tap.result.oda_result == "successful" and tap.result.tvr == bytes(5)


# --- Certificates ----------------------------------------------------------------------------------


@pytest.mark.faults("corrupt=90")
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_corrupted_issuer_certificate(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(AMOUNT, card=card)
    codes = {f"issuer_certificate_{step}" for step in ("trailer", "header", "format", "hash")}
    assert_failed_before_generate_ac(tap, kernel, codes)


@pytest.mark.faults("corrupt=9F46")
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_corrupted_icc_certificate(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(AMOUNT, card=card)
    codes = {f"icc_certificate_{step}" for step in ("trailer", "header", "format", "hash")}
    assert_failed_before_generate_ac(tap, kernel, codes)


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_expired_issuer_certificate(dut: Dut, card: str, kernel: int, our_ca: RSAPrivateKey,
                                    profile_dir: Path) -> None:
    built = personalise(kernel, our_ca, issuer_cert_expiry="0120")
    tap = dut.tap(AMOUNT, card=write_profile(built.profile, profile_dir, "issuer-expired"),
                  config=config_trusting(built))
    assert_failed_before_generate_ac(tap, kernel, "issuer_certificate_expired")


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_expired_icc_certificate(dut: Dut, card: str, kernel: int, our_ca: RSAPrivateKey, profile_dir: Path) -> None:
    built = personalise(kernel, our_ca, icc_cert_expiry="0120")
    tap = dut.tap(AMOUNT, card=write_profile(built.profile, profile_dir, "icc-expired"), config=config_trusting(built))
    assert_failed_before_generate_ac(tap, kernel, "icc_certificate_expired")


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_icc_certificate_for_another_pan(dut: Dut, card: str, kernel: int, our_ca: RSAPrivateKey,
                                         profile_dir: Path) -> None:
    built = personalise(kernel, our_ca)
    tap = dut.tap(AMOUNT, card=write_profile(certify_other_pan(built), profile_dir, "pan-mismatch"),
                  config=config_trusting(built))
    assert_failed_before_generate_ac(tap, kernel, "pan_mismatch")


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_revoked_issuer_certificate(dut: Dut, card: str, kernel: int, our_ca: RSAPrivateKey,
                                    profile_dir: Path) -> None:
    built = personalise(kernel, our_ca)
    config = config_trusting(built)
    key = ca_key(built)
    config.revocations.add(key.rid, key.index, issuer_certificate_serial(built))
    tap = dut.tap(AMOUNT, card=write_profile(built.profile, profile_dir, "revoked"), config=config)
    assert_failed_before_generate_ac(tap, kernel, "issuer_certificate_revoked")


# --- Records read for ODA (Book 3 §10.3) -------------------------------------------------------------


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_oda_record_in_sfi_11_in_a_70_template_is_authenticated(dut: Dut, card: str, kernel: int,
                                                                   our_ca: RSAPrivateKey, profile_dir: Path) -> None:
    """The control for the next scenario: an SFI 11 record signed with its tag 70 and length passes ODA."""
    built = personalise(kernel, our_ca)
    tap = dut.tap(AMOUNT, card=write_profile(with_sfi_11_record(built, "70"), profile_dir, "sfi11"),
                  config=config_trusting(built))
    reads = [e.command for e in tap.trace.exchanges if e.command[1] == 0xB2]
    assert bytes.fromhex("00B2015C") in [c[:4] for c in reads]  # READ RECORD 1 of SFI 11
    assert tap.result.outcome.outcome is Outcome.APPROVED
    assert tap.result.oda_result == "successful" and tap.result.tvr == bytes(5)


@pytest.mark.parametrize("template", ["77", ""], ids=["template-77", "no-template"])
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_oda_record_in_sfi_11_not_a_70_template(dut: Dut, card: str, kernel: int, template: str,
                                                 our_ca: RSAPrivateKey, profile_dir: Path) -> None:
    """EMV 4.4 Book 3 §10.3: a record read for ODA not coded with tag 70, in SFI 11-30 as in
    SFI 1-10, makes ODA performed and failed: its own code and the failed method's TVR bit."""
    built = personalise(kernel, our_ca)
    tap = dut.tap(AMOUNT, card=write_profile(with_sfi_11_record(built, template), profile_dir, "not-70"),
                  config=config_trusting(built))
    assert_failed_before_generate_ac(tap, kernel, "oda_record_not_template")
    failure = tap.result.oda_failure
    assert failure is not None and "SFI 11" in failure.message
    assert tap.result.oda_certificates == ()  # failed before any certificate was opened


# --- The dynamic signature ---------------------------------------------------------------------------


@pytest.mark.faults("corrupt=9F4B")
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_bad_signed_dynamic_application_data(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(AMOUNT, card=card)
    codes = {f"sdad_{step}" for step in ("trailer", "header", "format", "hash")}
    assert_oda_failed(tap, kernel, codes)
    r = tap.result
    if kernel == 2:
        assert r.outcome.outcome is Outcome.DECLINED  # Book 2 §6.6.2: the cryptogram cannot be trusted
        assert r.error == "CDA failed"
    else:
        assert r.outcome.outcome is Outcome.ONLINE_REQUEST
        assert is_set(r.data[0x9F6C], CTQ_BITS, "GO_ONLINE_IF_ODA_FAILS")


@pytest.mark.parametrize(("ctq", "outcome"), [
    ("A000", Outcome.ONLINE_REQUEST),  # online PIN required; go online if ODA fails (the built-in cards)
    ("9000", Outcome.TRY_ANOTHER_INTERFACE),  # online PIN required; switch interface if ODA fails
    ("8000", Outcome.DECLINED),  # online PIN required; nothing said about ODA
], ids=["go-online", "switch-interface", "neither"])
@pytest.mark.parametrize(("card", "kernel"), FDDA_CARDS)
def test_fdda_failure_outcome_follows_the_ctq(dut: Dut, card: str, kernel: int, ctq: str, outcome: Outcome,
                                              profile_dir: Path) -> None:
    """The built-in card with another CTQ (9F6C is personalised data, not signed static data)."""
    profile = copy.deepcopy(load_builtin(card))
    for app in profile["applications"]:
        app["data"] = [[t, ctq if t == "9F6C" else v] for t, v in app["data"]]
    config = load_config()
    config.capks = CapkStore()
    tap = dut.tap(AMOUNT, card=write_profile(profile, profile_dir, f"ctq-{ctq}"), config=config)
    assert_oda_failed(tap, kernel, "capk_missing")
    assert tap.result.data[0x9F6C] == bytes.fromhex(ctq)
    assert tap.result.outcome.outcome is outcome


@pytest.mark.parametrize(("card", "kernel"), FDDA_CARDS)
def test_replayed_fdda_signature_is_not_approved(dut: Dut, card: str, kernel: int) -> None:
    """A card replays a recorded transaction and adds the recorded Unpredictable Number to an
    unsigned record. The terminal's own UN (Book 3 Annex A: 9F37 is terminal-sourced) must be
    the one fDDA checks, so the replayed signature fails."""
    script = dut.record(card, AMOUNT)
    recorded_un = pinned_random(4)
    gpo = script.command(2).hex().upper()
    assert gpo.count(recorded_un.hex().upper()) == 1
    steps = list(script.steps)
    steps[2] = (Pattern(gpo.replace(recorded_un.hex().upper(), "????????")), steps[2][1])
    last = len(steps) - 1
    record = tlv.decode(script.response_data(last))[0]
    assert record.tag == 0x70 and tlv.find(record.children or [], 0x9F69) is not None  # unsigned, changes per tap
    steps[last] = (steps[last][0], tlv.encode_tlv(0x70, record.value + tlv.encode_tlv(0x9F37, recorded_un))
                   + b"\x90\x00")
    fresh_un = bytes.fromhex("A5A5A5A5")
    tap, scripted = replay(steps, AMOUNT, random=lambda n: (fresh_un * n)[:n])
    assert scripted.finished
    r = tap.result
    assert r.outcome.outcome is not Outcome.APPROVED, "a replayed offline approval was accepted"
    assert r.oda_result != "successful"
    assert r.data[0x9F37] == fresh_un, "the data record carries the card's UN, not the terminal's"
