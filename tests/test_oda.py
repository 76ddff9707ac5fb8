"""Offline data authentication (terminal/kernel/oda.py) against certificates built here.

Keys come from `cryptography`; certificates and signatures are made by the small
signer below, written from EMV Book 2 Annex A2.1 independently of the card-side
code: the signed block is 6A || body || SHA-1(body || extra) || BC, raised to d.

Two key chains (`cryptography` makes no RSA key below 1024 bits):
- "remainder": CA 1152 bits, issuer 1024, ICC 1024 — both public keys overflow
  their certificate, so tags 92 and 9F48 carry remainders;
- "padded": CA 1984 bits, issuer 1408, ICC 1024 — N_I < N_CA − 36 and
  N_IC < N_I − 42, so the keys are BB-padded and there is no remainder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from emvkit.firmware.crypto.rsa import RSAPrivateKey
from emvkit.firmware.payapp import dda
from emvkit.terminal.kernel.capk import CapkStore, CaPublicKey, RevocationList
from emvkit.terminal.kernel.oda import (
    CdaData,
    DynamicData,
    IccPublicKey,
    IssuerPublicKey,
    OdaFailure,
    RecoveredCertificate,
    emv_date_expired,
    recover_icc_key,
    recover_issuer_key,
    static_data_to_authenticate,
    verify_cda,
    verify_dda,
    verify_fdda,
    verify_ssad,
)

RID = bytes.fromhex("A000000003")
CA_INDEX = 0x92
PAN = "4761739001010010"
TODAY = date(2025, 6, 15)
EXPIRY = bytes.fromhex("1230")  # December 2030
SERIAL = bytes.fromhex("00A1B2")
AIP = bytes.fromhex("3900")
STATIC = bytes.fromhex("5A0847617390010100105F24033012315F25032001019F0702FF00")
UN = bytes.fromhex("1A2B3C4D")
AMOUNT = bytes.fromhex("000000001000")
CURRENCY = bytes.fromhex("0978")


# --- the independent signer ---

@dataclass(frozen=True)
class Key:
    private: rsa.RSAPrivateKey
    n: int
    d: int
    modulus: bytes
    exponent: bytes


@cache
def make_key(bits: int, label: str) -> Key:
    """One RSA key (e = 3) per size and role for the whole session."""
    private = rsa.generate_private_key(public_exponent=3, key_size=bits)
    numbers = private.private_numbers()
    n = numbers.public_numbers.n
    return Key(private, n, numbers.d, n.to_bytes(bits // 8, "big"), b"\x03")


def sign(key: Key, body: bytes, extra: bytes, header: int = 0x6A, trailer: int = 0xBC,
         hashed: bytes | None = None) -> bytes:
    """ISO 9796-2 scheme 1 with SHA-1 (EMV Book 2 Annex A2.1.2); `hashed` overrides what is hashed."""
    digest = hashlib.sha1(body + extra if hashed is None else hashed).digest()
    block = bytes((header,)) + body + digest + bytes((trailer,))
    assert len(block) == len(key.modulus), (len(block), len(key.modulus))
    return pow(int.from_bytes(block, "big"), key.d, key.n).to_bytes(len(key.modulus), "big")


def split(modulus: bytes, room: int) -> tuple[bytes, bytes]:
    if len(modulus) <= room:
        return modulus + b"\xbb" * (room - len(modulus)), b""
    return modulus[:room], modulus[room:]


def issuer_cert(ca: Key, issuer: Key, *, identifier: str = "47617390", expiry: bytes = EXPIRY,
                serial: bytes = SERIAL, fmt: int = 0x02, hash_alg: int = 1, key_alg: int = 1,
                **kw: Any) -> tuple[bytes, bytes]:
    """(tag 90, tag 92) — Book 2 Table 6."""
    part, remainder = split(issuer.modulus, len(ca.modulus) - 36)
    body = (bytes((fmt,)) + bytes.fromhex(identifier) + expiry + serial
            + bytes((hash_alg, key_alg, len(issuer.modulus), len(issuer.exponent))) + part)
    return sign(ca, body, remainder + issuer.exponent, **kw), remainder


def icc_cert(issuer: Key, icc: Key, static: bytes = STATIC, *, pan: str = PAN, expiry: bytes = EXPIRY,
             fmt: int = 0x04, key_alg: int = 1) -> tuple[bytes, bytes]:
    """(tag 9F46, tag 9F48) — Book 2 Table 14."""
    part, remainder = split(icc.modulus, len(issuer.modulus) - 42)
    body = (bytes((fmt,)) + bytes.fromhex(pan.ljust(20, "F")) + expiry + SERIAL
            + bytes((1, key_alg, len(icc.modulus), len(icc.exponent))) + part)
    return sign(issuer, body, remainder + icc.exponent + static), remainder


def ssad(issuer: Key, dac: bytes = b"\xda\xc1", static: bytes = STATIC) -> bytes:
    """Tag 93 — Book 2 Table 7."""
    body = b"\x03\x01" + dac
    return sign(issuer, body + b"\xbb" * (len(issuer.modulus) - 22 - len(body)), static)


def sdad(icc: Key, dynamic: bytes, extra: bytes, ldd: int | None = None) -> bytes:
    """Tag 9F4B — Book 2 Table 17."""
    body = b"\x05\x01" + bytes((len(dynamic) if ldd is None else ldd,)) + dynamic
    return sign(icc, body + b"\xbb" * (len(icc.modulus) - 22 - len(body)), extra)


@dataclass(frozen=True)
class Chain:
    ca: Key
    issuer: Key
    icc: Key
    capk: CaPublicKey


@cache
def chain(name: str) -> Chain:
    bits = {"remainder": (1152, 1024, 1024), "padded": (1984, 1408, 1024)}[name]
    ca, issuer, icc = (make_key(b, f"{name}-{role}") for b, role in zip(bits, ("ca", "issuer", "icc"), strict=True))
    return Chain(ca, issuer, icc, CaPublicKey(RID, CA_INDEX, ca.modulus, ca.exponent))


def issuer_key(c: Chain) -> IssuerPublicKey:
    cert, rem = issuer_cert(c.ca, c.issuer)
    key = recover_issuer_key(c.capk, cert, rem or None, c.issuer.exponent, PAN, TODAY)
    assert isinstance(key, IssuerPublicKey), key
    return key


def icc_key(c: Chain) -> IccPublicKey:
    cert, rem = icc_cert(c.issuer, c.icc)
    key = recover_icc_key(issuer_key(c), cert, rem or None, c.icc.exponent, STATIC, PAN, TODAY)
    assert isinstance(key, IccPublicKey), key
    return key


def failed(result: object, code: str) -> OdaFailure:
    assert isinstance(result, OdaFailure), f"expected failure {code}, got {result!r}"
    assert result.code == code, result
    assert result.message
    return result


def flip(data: bytes, at: int = 40) -> bytes:
    return data[:at] + bytes((data[at] ^ 0x01,)) + data[at + 1:]


CHAINS = pytest.mark.parametrize("name", ["remainder", "padded"])


# --- happy paths ---

@CHAINS
def test_issuer_key_is_recovered(name: str) -> None:
    c = chain(name)
    cert, rem = issuer_cert(c.ca, c.issuer)
    assert bool(rem) == (name == "remainder")
    key = recover_issuer_key(c.capk, cert, rem or None, b"\x03", PAN, TODAY, RevocationList())
    assert key == IssuerPublicKey(c.issuer.modulus, b"\x03", "47617390", (12, 2030), SERIAL)


def test_issuer_identifier_may_be_padded_with_f() -> None:
    c = chain("padded")
    cert, _ = issuer_cert(c.ca, c.issuer, identifier="476173FF")
    key = recover_issuer_key(c.capk, cert, None, b"\x03", PAN + "F", TODAY)
    assert isinstance(key, IssuerPublicKey) and key.identifier == "476173"


@CHAINS
def test_icc_key_is_recovered(name: str) -> None:
    c = chain(name)
    cert, rem = icc_cert(c.issuer, c.icc)
    assert bool(rem) == (name == "remainder")
    key = recover_icc_key(issuer_key(c), cert, rem or None, b"\x03", STATIC, PAN, TODAY)
    assert key == IccPublicKey(c.icc.modulus, b"\x03", PAN, (12, 2030), SERIAL)


def test_odd_length_pan_with_f_padding() -> None:
    c = chain("padded")
    pan = "476173900101001"
    cert, _ = icc_cert(c.issuer, c.icc, pan=pan)
    key = recover_icc_key(issuer_key(c), cert, None, b"\x03", STATIC, pan + "F", TODAY)
    assert isinstance(key, IccPublicKey) and key.pan == pan


@CHAINS
def test_ssad_gives_the_data_authentication_code(name: str) -> None:
    c = chain(name)
    assert verify_ssad(issuer_key(c), ssad(c.issuer), STATIC) == b"\xda\xc1"


@CHAINS
def test_dda(name: str) -> None:
    c = chain(name)
    ddol_data = UN
    signature = sdad(c.icc, b"\x08" + bytes(range(8)), ddol_data)
    result = verify_dda(icc_key(c), signature, ddol_data)
    assert result == DynamicData(bytes(range(8)), b"\x08" + bytes(range(8)))


def test_fdda_version_00_signs_the_un_only() -> None:
    c = chain("remainder")
    icc = icc_key(c)
    signature = sdad(c.icc, b"\x04\x11\x22\x33\x44", UN)
    for cad in (None, bytes.fromhex("00A1B2C3D40000")):
        result = verify_fdda(icc, signature, UN, AMOUNT, CURRENCY, cad)
        assert result == DynamicData(b"\x11\x22\x33\x44", b"\x04\x11\x22\x33\x44")
    # the amount is not signed in version 00
    assert isinstance(verify_fdda(icc, signature, UN, bytes(6), CURRENCY, None), DynamicData)


def test_fdda_version_01_signs_un_amount_currency_and_9f69() -> None:
    c = chain("padded")
    cad = bytes.fromhex("01A1B2C3D48000")
    signature = sdad(c.icc, b"\x02\x12\x34", UN + AMOUNT + CURRENCY + cad)
    result = verify_fdda(icc_key(c), signature, UN, AMOUNT, CURRENCY, cad)
    assert result == DynamicData(b"\x12\x34", b"\x02\x12\x34")


def cda_parts(c: Chain, cid: int = 0x40, tx_data: bytes = b"pdol|cdol1|9F2701409F3602001C") -> bytes:
    ac = bytes.fromhex("1122334455667788")
    dynamic = b"\x08" + bytes(range(8)) + bytes((cid,)) + ac + hashlib.sha1(tx_data).digest()
    return sdad(c.icc, dynamic, UN)


@CHAINS
def test_cda(name: str) -> None:
    c = chain(name)
    tx_data = b"pdol|cdol1|9F2701409F3602001C"
    result = verify_cda(icc_key(c), cda_parts(c), UN, 0x40, tx_data)
    assert result == CdaData(bytes(range(8)), 0x40, bytes.fromhex("1122334455667788"),
                             hashlib.sha1(tx_data).digest())


def test_card_side_signatures_verify() -> None:
    """The card application's signer (firmware/payapp/dda.py) and this verifier agree."""
    c = chain("remainder")
    numbers = c.icc.private.private_numbers()
    card_key = RSAPrivateKey.from_dict({"p": numbers.p, "q": numbers.q, "e": 3, "d": numbers.d})
    icc = icc_key(c)
    cad = bytes.fromhex("01A1B2C3D48000")
    extra = dda.fdda_extra(1, UN, AMOUNT, CURRENCY, cad)
    signature = dda.sign_dynamic_data(card_key, dda.dda_dynamic_data(b"\x12\x34\x56\x78"), extra)
    assert verify_fdda(icc, signature, UN, AMOUNT, CURRENCY, cad) == DynamicData(
        b"\x12\x34\x56\x78", b"\x04\x12\x34\x56\x78")
    tx_hash = dda.transaction_data_hash(b"pdol", b"cdol1", b"", b"\x9f\x27\x01\x80")
    signature = dda.sign_dynamic_data(card_key, dda.cda_dynamic_data(b"\x12\x34", 0x80, bytes(8), tx_hash), UN)
    assert verify_cda(icc, signature, UN, 0x80, b"pdolcdol1\x9f\x27\x01\x80") == CdaData(
        b"\x12\x34", 0x80, bytes(8), tx_hash)


# --- issuer public key failures (Book 2 §6.3) ---

def test_unknown_capk_index() -> None:
    c = chain("remainder")
    store = CapkStore([c.capk])
    cert, rem = issuer_cert(c.ca, c.issuer)
    assert store.get(RID, 0x99) is None
    failed(recover_issuer_key(store.get(RID, 0x99), cert, rem, b"\x03", PAN, TODAY), "capk_missing")


def test_missing_issuer_data() -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer)
    assert failed(recover_issuer_key(c.capk, None, rem, b"\x03", PAN, TODAY), "icc_data_missing").data_missing
    failed(recover_issuer_key(c.capk, cert, rem, None, PAN, TODAY), "icc_data_missing")
    failed(recover_issuer_key(c.capk, cert, rem, b"\x03", "", TODAY), "icc_data_missing")


def test_issuer_certificate_of_the_wrong_length() -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer)
    failed(recover_issuer_key(c.capk, cert[1:], rem, b"\x03", PAN, TODAY), "issuer_certificate_length")


def test_corrupted_issuer_certificate() -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer)
    result = recover_issuer_key(c.capk, flip(cert), rem, b"\x03", PAN, TODAY)
    assert isinstance(result, OdaFailure)
    assert result.code in {"issuer_certificate_trailer", "issuer_certificate_header",
                           "issuer_certificate_format", "issuer_certificate_hash"}
    failed(recover_issuer_key(c.capk, b"\xff" * len(cert), rem, b"\x03", PAN, TODAY),
           "issuer_certificate_trailer")
    # a flipped remainder byte is caught by the hash
    failed(recover_issuer_key(c.capk, cert, flip(rem, 3), b"\x03", PAN, TODAY), "issuer_certificate_hash")


@pytest.mark.parametrize(("kw", "code"), [
    ({"trailer": 0xBD}, "issuer_certificate_trailer"),
    ({"header": 0x6B}, "issuer_certificate_header"),
    ({"fmt": 0x04}, "issuer_certificate_format"),
    ({"hash_alg": 0x02}, "issuer_certificate_hash_algorithm"),
    ({"hashed": b"something else"}, "issuer_certificate_hash"),
    ({"identifier": "54133300"}, "issuer_identifier_mismatch"),
    ({"identifier": "47FFFFFF"}, "issuer_identifier_mismatch"),  # fewer than 3 digits
    ({"identifier": "47F173FF"}, "issuer_identifier_mismatch"),  # F inside the digits
    ({"expiry": bytes.fromhex("0525")}, "issuer_certificate_expired"),
    ({"expiry": bytes.fromhex("1325")}, "issuer_certificate_expired"),  # not a month
    ({"key_alg": 0x02}, "issuer_key_algorithm"),
])
def test_issuer_certificate_checks(kw: dict[str, Any], code: str) -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer, **kw)
    failed(recover_issuer_key(c.capk, cert, rem, b"\x03", PAN, TODAY), code)


def test_issuer_certificate_valid_through_the_last_day_of_its_month() -> None:
    c = chain("padded")
    cert, _ = issuer_cert(c.ca, c.issuer, expiry=bytes.fromhex("0625"))
    assert isinstance(recover_issuer_key(c.capk, cert, None, b"\x03", PAN, date(2025, 6, 30)), IssuerPublicKey)
    failed(recover_issuer_key(c.capk, cert, None, b"\x03", PAN, date(2025, 7, 1)), "issuer_certificate_expired")


def test_revoked_issuer_certificate() -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer)
    crl = RevocationList([(RID, CA_INDEX, SERIAL)])
    failed(recover_issuer_key(c.capk, cert, rem, b"\x03", PAN, TODAY, crl), "issuer_certificate_revoked")
    other = RevocationList([(RID, 0x95, SERIAL), (RID, CA_INDEX, b"\x00\x00\x01")])
    assert isinstance(recover_issuer_key(c.capk, cert, rem, b"\x03", PAN, TODAY, other), IssuerPublicKey)


def test_wrong_issuer_exponent() -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer)
    failed(recover_issuer_key(c.capk, cert, rem, b"\x01\x00\x01", PAN, TODAY), "issuer_certificate_hash")


def test_missing_or_short_issuer_remainder() -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer)
    assert failed(recover_issuer_key(c.capk, cert, None, b"\x03", PAN, TODAY),
                  "issuer_remainder_missing").data_missing
    failed(recover_issuer_key(c.capk, cert, rem[:-1], b"\x03", PAN, TODAY), "issuer_remainder_length")


def test_unneeded_remainder_is_hashed_as_present() -> None:
    # Book 2 §6.3 step 5 hashes the remainder "if present"; the CA did not sign one.
    c = chain("padded")
    cert, _ = issuer_cert(c.ca, c.issuer)
    failed(recover_issuer_key(c.capk, cert, b"\x01\x02", b"\x03", PAN, TODAY), "issuer_certificate_hash")


# --- ICC public key failures (Book 2 §6.4) ---

def test_icc_certificate_checks() -> None:
    c = chain("remainder")
    issuer = issuer_key(c)
    cert, rem = icc_cert(c.issuer, c.icc)
    failed(recover_icc_key(issuer, None, rem, b"\x03", STATIC, PAN, TODAY), "icc_data_missing")
    failed(recover_icc_key(issuer, cert, rem, None, STATIC, PAN, TODAY), "icc_data_missing")
    failed(recover_icc_key(issuer, cert[:-1], rem, b"\x03", STATIC, PAN, TODAY), "icc_certificate_length")
    failed(recover_icc_key(issuer, cert, rem, b"\x03", STATIC + b"\x00", PAN, TODAY), "icc_certificate_hash")
    failed(recover_icc_key(issuer, cert, rem, b"\x01\x00\x01", STATIC, PAN, TODAY), "icc_certificate_hash")
    assert failed(recover_icc_key(issuer, cert, None, b"\x03", STATIC, PAN, TODAY),
                  "icc_remainder_missing").data_missing
    failed(recover_icc_key(issuer, cert, rem + b"\x00", b"\x03", STATIC, PAN, TODAY), "icc_remainder_length")
    result = recover_icc_key(issuer, flip(cert), rem, b"\x03", STATIC, PAN, TODAY)
    assert isinstance(result, OdaFailure) and result.code.startswith("icc_certificate_")


def test_pan_mismatch() -> None:
    c = chain("remainder")
    cert, rem = icc_cert(c.issuer, c.icc, pan="4761739001010028")
    failed(recover_icc_key(issuer_key(c), cert, rem, b"\x03", STATIC, PAN, TODAY), "pan_mismatch")
    cert, rem = icc_cert(c.issuer, c.icc)
    failed(recover_icc_key(issuer_key(c), cert, rem, b"\x03", STATIC, PAN[:-1], TODAY), "pan_mismatch")


@pytest.mark.parametrize(("kw", "code"), [
    ({"expiry": bytes.fromhex("0525")}, "icc_certificate_expired"),
    ({"fmt": 0x02}, "icc_certificate_format"),
    ({"key_alg": 0x03}, "icc_key_algorithm"),
])
def test_icc_certificate_fields(kw: dict[str, Any], code: str) -> None:
    c = chain("padded")
    cert, _ = icc_cert(c.issuer, c.icc, **kw)
    failed(recover_icc_key(issuer_key(c), cert, None, b"\x03", STATIC, PAN, TODAY), code)


# --- SSAD and SDAD failures (Book 2 §5.4, §6.5.2, §6.6.2; Book C-3) ---

def test_ssad_failures() -> None:
    c = chain("remainder")
    issuer = issuer_key(c)
    signature = ssad(c.issuer)
    failed(verify_ssad(issuer, None, STATIC), "icc_data_missing")
    failed(verify_ssad(issuer, signature[:-1], STATIC), "ssad_length")
    failed(verify_ssad(issuer, signature, STATIC[:-1]), "ssad_hash")
    result = verify_ssad(issuer, flip(signature), STATIC)
    assert isinstance(result, OdaFailure) and result.code.startswith("ssad_")
    # an ICC certificate is not an SSAD
    cert, _ = icc_cert(c.issuer, c.icc)
    failed(verify_ssad(issuer, cert, STATIC), "ssad_format")


def test_bad_dda_signature() -> None:
    c = chain("remainder")
    icc = icc_key(c)
    signature = sdad(c.icc, b"\x02\x12\x34", UN)
    failed(verify_dda(icc, None, UN), "icc_data_missing")
    failed(verify_dda(icc, signature + b"\x00", UN), "sdad_length")
    failed(verify_dda(icc, signature, b"\x00" + UN[1:]), "sdad_hash")
    result = verify_dda(icc, flip(signature), UN)
    assert isinstance(result, OdaFailure) and result.code.startswith("sdad_")
    failed(verify_dda(icc, sdad(c.icc, b"\x02\x12\x34", UN, ldd=0xF0), UN), "sdad_dynamic_data")
    failed(verify_dda(icc, sdad(c.icc, b"\x05\x12\x34", UN), UN), "sdad_dynamic_data")


def test_fdda_failures() -> None:
    c = chain("padded")
    icc = icc_key(c)
    cad = bytes.fromhex("01A1B2C3D48000")
    signature = sdad(c.icc, b"\x02\x12\x34", UN + AMOUNT + CURRENCY + cad)
    failed(verify_fdda(icc, signature, bytes(4), AMOUNT, CURRENCY, cad), "sdad_hash")  # wrong UN
    failed(verify_fdda(icc, signature, UN, bytes.fromhex("000000001001"), CURRENCY, cad), "sdad_hash")
    failed(verify_fdda(icc, signature, UN, AMOUNT, bytes.fromhex("0840"), cad), "sdad_hash")
    failed(verify_fdda(icc, signature, UN, AMOUNT, CURRENCY, None), "sdad_hash")  # treated as version 00
    failed(verify_fdda(icc, signature, UN, AMOUNT, CURRENCY, b"\x02" + cad[1:]), "fdda_version")
    failed(verify_fdda(icc, None, UN, AMOUNT, CURRENCY, cad), "icc_data_missing")
    v00 = sdad(c.icc, b"\x02\x12\x34", UN)
    failed(verify_fdda(icc, v00, UN[::-1], AMOUNT, CURRENCY, None), "sdad_hash")
    with pytest.raises(ValueError):
        verify_fdda(icc, v00, UN, AMOUNT[1:], CURRENCY, None)


def test_cda_failures() -> None:
    c = chain("remainder")
    icc = icc_key(c)
    tx_data = b"pdol|cdol1|9F2701409F3602001C"
    signature = cda_parts(c, 0x40, tx_data)
    failed(verify_cda(icc, signature, UN, 0x80, tx_data), "cda_cid_mismatch")
    failed(verify_cda(icc, signature, UN, 0x40, tx_data + b"\x00"), "cda_transaction_hash")
    failed(verify_cda(icc, signature, bytes(4), 0x40, tx_data), "sdad_hash")
    failed(verify_cda(icc, None, UN, 0x40, tx_data), "icc_data_missing")
    short = sdad(c.icc, b"\x02\x12\x34\x40" + bytes(8), UN)
    failed(verify_cda(icc, short, UN, 0x40, tx_data), "sdad_dynamic_data")


def test_failures_are_values_with_a_sentence() -> None:
    c = chain("remainder")
    result = recover_issuer_key(c.capk, b"\x00", None, b"\x03", PAN, TODAY)
    assert isinstance(result, OdaFailure)
    assert "144" in result.message and not result.data_missing


# --- recovered certificate fields, on success and on failure ---

def test_recovered_key_carries_its_certificate_fields() -> None:
    c = chain("remainder")
    fields = issuer_key(c).certificate
    assert isinstance(fields, RecoveredCertificate)
    assert (fields.owner, fields.format, fields.identifier, fields.expiry, fields.serial) == (
        "issuer", 0x02, "47617390", EXPIRY, SERIAL)
    assert (fields.hash_algorithm, fields.key_algorithm, fields.key_length, fields.exponent_length) == (1, 1, 128, 1)
    assert fields.hash_matched is True and len(fields.hash_result) == 20
    icc = icc_key(c)
    assert icc.certificate is not None
    assert (icc.certificate.owner, icc.certificate.format, icc.certificate.identifier) == ("icc", 0x04, PAN)
    assert (icc.certificate.key_length, icc.certificate.exponent_length) == (128, 1)


def test_hash_result_is_the_one_signed() -> None:
    # The signer hashes body || remainder || exponent; the recovered hash result is that digest.
    c = chain("padded")
    cert, _ = issuer_cert(c.ca, c.issuer)
    key = recover_issuer_key(c.capk, cert, None, b"\x03", PAN, TODAY)
    assert isinstance(key, IssuerPublicKey) and key.certificate is not None
    part = c.issuer.modulus + b"\xbb" * (len(c.ca.modulus) - 36 - len(c.issuer.modulus))
    body = (b"\x02" + bytes.fromhex("47617390") + EXPIRY + SERIAL + bytes((1, 1, len(c.issuer.modulus), 1)) + part)
    assert key.certificate.hash_result == hashlib.sha1(body + b"\x03").digest()


@pytest.mark.parametrize(("kw", "code", "matched"), [
    ({"hashed": b"something else"}, "issuer_certificate_hash", False),
    ({"hash_alg": 0x02}, "issuer_certificate_hash_algorithm", None),
    ({"identifier": "54133300"}, "issuer_identifier_mismatch", True),
    ({"expiry": bytes.fromhex("0525")}, "issuer_certificate_expired", True),
    ({"key_alg": 0x02}, "issuer_key_algorithm", True),
    ({"fmt": 0x04}, "issuer_certificate_format", None),
])
def test_issuer_failure_keeps_the_recovered_fields(kw: dict[str, Any], code: str, matched: bool | None) -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer, **kw)
    fields = failed(recover_issuer_key(c.capk, cert, rem, b"\x03", PAN, TODAY), code).certificate
    assert fields is not None and fields.owner == "issuer"
    assert fields.hash_matched is matched
    assert fields.identifier == kw.get("identifier", "47617390")
    assert fields.expiry == kw.get("expiry", EXPIRY)
    assert (fields.format, fields.hash_algorithm, fields.key_algorithm) == (
        kw.get("fmt", 2), kw.get("hash_alg", 1), kw.get("key_alg", 1))
    assert fields.serial == SERIAL and fields.key_length == 128 and fields.exponent_length == 1


def test_icc_failure_keeps_the_recovered_fields() -> None:
    c = chain("remainder")
    cert, rem = icc_cert(c.issuer, c.icc, pan="4761739001010028")
    fields = failed(recover_icc_key(issuer_key(c), cert, rem, b"\x03", STATIC, PAN, TODAY),
                    "pan_mismatch").certificate
    assert fields is not None and fields.identifier == "4761739001010028" and fields.hash_matched is True
    cert, rem = icc_cert(c.issuer, c.icc)
    fields = failed(recover_icc_key(issuer_key(c), cert, rem, b"\x03", STATIC + b"\x00", PAN, TODAY),
                    "icc_certificate_hash").certificate
    assert fields is not None and fields.hash_matched is False and fields.identifier == PAN


def test_no_fields_before_the_certificate_opens() -> None:
    c = chain("remainder")
    cert, rem = issuer_cert(c.ca, c.issuer, trailer=0xBD)
    assert failed(recover_issuer_key(c.capk, cert, rem, b"\x03", PAN, TODAY),
                  "issuer_certificate_trailer").certificate is None


# --- static data to be authenticated (Book 3 §10.3) ---

def test_static_data_sfi_1_to_10_drops_the_template() -> None:
    short = bytes.fromhex("70065A0847617390")
    long_value = bytes.fromhex("9F4681") + bytes((0x90,)) + bytes(0x90)
    long = b"\x70\x81" + bytes((len(long_value),)) + long_value
    assert static_data_to_authenticate([(2, short), (3, long)], None, AIP) == short[2:] + long_value


def test_static_data_sfi_11_to_30_keeps_the_whole_record() -> None:
    record = bytes.fromhex("70035F2A01")
    other = bytes.fromhex("7081035F2A01")  # a two-byte length: still one 70 template
    assert static_data_to_authenticate([(1, record), (11, record), (30, other)], None, AIP) == (
        bytes.fromhex("5F2A01" "70035F2A01" "7081035F2A01"))


@pytest.mark.parametrize("sfi", [11, 20, 30])
def test_static_data_sfi_11_to_30_record_not_coded_with_tag_70(sfi: int) -> None:
    # EMV 4.4 Book 3 §10.3: a record read for ODA that is not coded with tag 70
    # makes ODA performed and failed, whatever the SFI.
    proprietary = bytes.fromhex("DF0102AABB")
    result = failed(static_data_to_authenticate([(1, bytes.fromhex("70035F2A01")), (sfi, proprietary)], None, AIP),
                    "oda_record_not_template")
    assert f"SFI {sfi}" in result.message and not result.data_missing


@pytest.mark.parametrize("record", [
    bytes.fromhex("77035F2A01"),  # another template
    bytes.fromhex("70045F2A01"),  # truncated
    bytes.fromhex("70035F2A0100"),  # trailing byte
    bytes.fromhex("70"),
    bytes.fromhex("7083000003"),  # unsupported length form
])
@pytest.mark.parametrize("sfi", [1, 11])
def test_static_data_record_not_a_template(record: bytes, sfi: int) -> None:
    failed(static_data_to_authenticate([(sfi, record)], None, AIP), "oda_record_not_template")


def test_sda_tag_list() -> None:
    record = bytes.fromhex("70035F2A01")
    assert static_data_to_authenticate([(1, record)], b"\x82", AIP) == record[2:] + AIP
    assert static_data_to_authenticate([(1, record)], b"", AIP) == record[2:]
    failed(static_data_to_authenticate([(1, record)], bytes.fromhex("9F37"), AIP), "sda_tag_list_invalid")
    failed(static_data_to_authenticate([(1, record)], bytes.fromhex("825F2A"), AIP), "sda_tag_list_invalid")
    failed(static_data_to_authenticate([(1, record)], b"\x82", b""), "icc_data_missing")
    with pytest.raises(ValueError):
        static_data_to_authenticate([(31, record)], None, AIP)


def test_static_data_feeds_the_icc_certificate() -> None:
    c = chain("padded")
    records = [(1, b"\x70" + bytes((len(STATIC),)) + STATIC)]
    static = static_data_to_authenticate(records, b"\x82", AIP)
    assert isinstance(static, bytes)
    cert, _ = icc_cert(c.issuer, c.icc, static)
    assert isinstance(recover_icc_key(issuer_key(c), cert, None, b"\x03", static, PAN, TODAY), IccPublicKey)


# --- dates ---

@pytest.mark.parametrize(("mmyy", "today", "expired"), [
    ("0625", date(2025, 6, 30), False),
    ("0625", date(2025, 7, 1), True),
    ("1224", date(2025, 1, 1), True),
    ("0149", date(2049, 1, 31), False),  # YY 00-49 is 20YY
    ("1299", date(2000, 1, 1), True),  # YY 50-99 is 19YY
    ("0025", date(2000, 1, 1), True),  # month 00
    ("1A25", date(2000, 1, 1), True),  # not BCD
])
def test_emv_date_expired(mmyy: str, today: date, expired: bool) -> None:
    assert emv_date_expired(bytes.fromhex(mmyy), today) is expired
    assert emv_date_expired(b"\x12", today) is True
