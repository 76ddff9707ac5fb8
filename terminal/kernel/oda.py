"""Offline data authentication: SDA, DDA, fDDA and CDA (EMV 4.3 Book 2 §5–§6, Book 3 §10.3, Books C-2/C-3).

Pure functions of card and terminal data: no I/O, no state kept between calls.
The kernel calls them in this order::

    static = static_data_to_authenticate(records, tag_9F4A, aip)            # Book 3 §10.3
    issuer = recover_issuer_key(capks.get(rid, tag_8F), tag_90, tag_92, tag_9F32, pan, today, crl)
    SDA:     verify_ssad(issuer, tag_93, static)                             # Book 2 §5.4
    others:  icc = recover_icc_key(issuer, tag_9F46, tag_9F48, tag_9F47, static, pan, today)
             verify_dda(icc, tag_9F4B, ddol_data)                           # Book 2 §6.5.2
             verify_fdda(icc, tag_9F4B, un, amount, currency, tag_9F69)     # Book C-3
             verify_cda(icc, tag_9F4B, un, cid, transaction_data)           # Book 2 §6.6.2

Everything the card gets wrong comes back as an :class:`OdaFailure` value whose
``code`` names the check that failed (exceptions are for programming errors
only). The kernel sets the TVR bit of the method it ran (SDA, DDA or CDA
failed) for every code, and also "ICC data missing" when
:attr:`OdaFailure.data_missing` is true (Book 3 §10.3). The codes (steps of
Book 2 §5.3/§6.3 for the issuer certificate, §6.4 for the ICC certificate)::

    capk_missing                        no CA public key for the RID and index 8F (§5.2, §6.2)
    icc_data_missing                    a data object ODA needs is absent (Book 3 §10.3)
    issuer_certificate_length           step 1: 90 is not N_CA bytes long
    issuer_certificate_trailer          step 2: trailer not BC (or 90 not below the modulus)
    issuer_certificate_header           step 3: header not 6A
    issuer_certificate_format           step 4: format not 02
    issuer_remainder_missing            N_I > N_CA - 36 and no 92 (a data-missing code)
    issuer_remainder_length             92 is not N_I - (N_CA - 36) bytes
    issuer_certificate_hash_algorithm   step 6: Hash Algorithm Indicator not 01 (SHA-1)
    issuer_certificate_hash             step 7: hash result differs
    issuer_identifier_mismatch          step 8: not the PAN's leading 3-8 digits
    issuer_certificate_expired          step 9 (or the date is not a valid MMYY)
    issuer_certificate_revoked          step 10: (RID, index, serial) is revoked
    issuer_key_algorithm                step 11: Public Key Algorithm Indicator not 01 (RSA)
    icc_certificate_{length,trailer,header,format,hash_algorithm,hash}   §6.4 steps 1-7 (format 04)
    icc_remainder_{missing,length}      as for the issuer, with 9F48 and N_I - 42
    pan_mismatch                        §6.4 step 8: certificate PAN is not 5A
    icc_certificate_expired             §6.4 step 9
    icc_key_algorithm                   §6.4 step 10
    ssad_{length,trailer,header,format,hash_algorithm,hash}   §5.4 steps 1-7 (format 03)
    sdad_{length,trailer,header,format,hash_algorithm,hash}   §6.5.2, §6.6.2 (format 05)
    sdad_dynamic_data                   ICC Dynamic Data does not fit Table 17 / 18 / 19
    fdda_version                        9F69 names an fDDA version other than 00 and 01
    cda_cid_mismatch                    §6.6.2 step 6: CID in the SDAD is not the 9F27 returned
    cda_transaction_hash                §6.6.2 step 12: Transaction Data Hash Code differs
    oda_record_not_template             Book 3 §10.3: a record read for ODA (any SFI) is not one 70 template
    {issuer,icc}_certificate_signature  SM suite: the SM2 signature of the certificate does not verify
    {issuer,icc}_public_key             SM suite: the certified key is not an sm2p256v1 point (x || y or compressed)
    sdad_signature                      SM suite: the SM2 signature of the SDAD does not verify
    sda_tag_list_invalid                Book 3 §10.3: 9F4A lists a tag other than 82

The SM suite of UnionPay's PBOC 3.0 (JR/T 0025): when the CA public key the
card names (8F) is an SM2 key, :func:`recover_issuer_key` reads a format 12
issuer certificate, :func:`recover_icc_key` a format 14 ICC certificate and
:func:`verify_fdda` a format 15 SDAD; none is recovered from its signature,
each is data followed by an SM2 signature r || s over SM3 (with the signer's
Z_A, default user ID). The layouts are in
``emvkit/terminal/perso/certificates.py`` and ``docs/kernel.md`` (with what
was and was not checked against a public source). The RSA codes keep their
meaning: ``*_format`` (not 12/14/15), ``*_length`` (not header, key and
signature), ``*_hash_algorithm`` (signature algorithm not 04: SM2 with SM3),
``*_key_algorithm`` (not 04: SM2); the recovered fields carry the hash result
empty and ``hash_matched`` as the signature's verdict.

One deliberate ordering choice: a needed but absent remainder (92, 9F48) is
reported before the hash check it would otherwise fail, so the kernel can set
"ICC data missing" as Book 3 §10.3 asks.

Recovered certificate fields: once a certificate has been opened (steps 1-3:
length, trailer BC, header 6A), what it says is kept as a
:class:`RecoveredCertificate` (format, issuer identifier or application PAN,
expiry, serial, hash and public key algorithm indicators, key and exponent
lengths, the hash result and whether it matched), whether or not a later
check passes. A recovered key carries it as ``certificate``; an
:class:`OdaFailure` from step 4 onwards carries it too, so a caller can show
why a real card's ODA failed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import date

from emvkit.firmware.crypto import sm2
from emvkit.firmware.crypto.rsa import recover
from emvkit.terminal.kernel.capk import CaPublicKey, RevocationList

__all__ = [
    "DATA_MISSING_CODES",
    "CdaData",
    "DynamicData",
    "IccPublicKey",
    "IssuerPublicKey",
    "OdaFailure",
    "RecoveredCertificate",
    "emv_date_expired",
    "recover_icc_key",
    "recover_issuer_key",
    "static_data_to_authenticate",
    "verify_cda",
    "verify_dda",
    "verify_fdda",
    "verify_ssad",
]

DATA_MISSING_CODES = frozenset({"icc_data_missing", "issuer_remainder_missing", "icc_remainder_missing"})

_HASH_SHA1 = 0x01  # Book 2 Annex B3.1
_KEY_RSA = 0x01  # Book 2 Annex B2.1
# PBOC 3.0 SM suite (see the module docstring).
_SM_SIGNATURE = 0x04  # SM2 signature over SM3
_KEY_SM2 = 0x04
_KEY_NAMES = {_KEY_RSA: "RSA", _KEY_SM2: "SM2"}
_SM_SIGNATURE_LENGTH = 64  # r || s
_SM_KEY_LENGTH = 64  # x || y
_NAMES = {
    "issuer_certificate": "the Issuer Public Key Certificate (90)",
    "icc_certificate": "the ICC Public Key Certificate (9F46)",
    "ssad": "the Signed Static Application Data (93)",
    "sdad": "the Signed Dynamic Application Data (9F4B)",
}


@dataclass(frozen=True)
class RecoveredCertificate:
    """What an issuer (Book 2 Table 13) or ICC (Table 14) public key certificate
    recovers to, kept whether or not the checks after its opening pass."""

    owner: str  # "issuer" or "icc"
    format: int  # Certificate Format: 02 issuer, 04 ICC
    identifier: str  # issuer: Issuer Identifier digits; icc: Application PAN digits (F padding dropped)
    expiry: bytes  # Certificate Expiration Date, MMYY as recorded
    serial: bytes  # Certificate Serial Number, 3 bytes
    hash_algorithm: int  # Hash Algorithm Indicator (01: SHA-1)
    key_algorithm: int  # Public Key Algorithm Indicator (01: RSA)
    key_length: int  # public key length in bytes
    exponent_length: int  # public key exponent length in bytes
    hash_result: bytes  # the Hash Result recovered from the certificate
    hash_matched: bool | None  # None: not compared (unknown algorithm, or a check before it failed)


@dataclass(frozen=True)
class OdaFailure:
    """A failed ODA check: a stable machine-readable ``code`` and a sentence for
    people; ``certificate`` holds what the certificate recovered to when the
    failure came after it was opened (None otherwise)."""

    code: str
    message: str
    certificate: RecoveredCertificate | None = None

    @property
    def data_missing(self) -> bool:
        """True when the kernel should also set TVR "ICC data missing" (Book 3 §10.3)."""
        return self.code in DATA_MISSING_CODES


@dataclass(frozen=True)
class IssuerPublicKey:
    """The issuer public key recovered from tag 90 (Book 2 §6.3, Table 13)."""

    modulus: bytes
    exponent: bytes
    identifier: str  # the 3–8 leading PAN digits, without F padding
    expiry: tuple[int, int]  # (month, year)
    serial: bytes  # Certificate Serial Number, 3 bytes
    certificate: RecoveredCertificate | None = field(default=None, compare=False)  # every field of tag 90
    algorithm: str = "rsa"  # "sm2": modulus holds the SM2 public key x || y, exponent is empty


@dataclass(frozen=True)
class IccPublicKey:
    """The ICC public key recovered from tag 9F46 (Book 2 §6.4, Table 14)."""

    modulus: bytes
    exponent: bytes
    pan: str  # without F padding
    expiry: tuple[int, int]  # (month, year)
    serial: bytes
    certificate: RecoveredCertificate | None = field(default=None, compare=False)  # every field of tag 9F46
    algorithm: str = "rsa"  # "sm2": modulus holds the SM2 public key x || y, exponent is empty


@dataclass(frozen=True)
class DynamicData:
    """What a verified DDA or fDDA signature carries (Book 2 Table 18)."""

    icc_dynamic_number: bytes  # tag 9F4C
    raw: bytes  # the whole ICC Dynamic Data


@dataclass(frozen=True)
class CdaData:
    """What a verified CDA signature carries (Book 2 Table 19)."""

    icc_dynamic_number: bytes
    cid: int
    cryptogram: bytes  # the Application Cryptogram (9F26), 8 bytes
    transaction_data_hash: bytes  # 20 bytes


# --- Dates (certificate expiration dates are MMYY, n4) ---

def _mmyy(value: bytes) -> tuple[int, int] | None:
    """(month, year) of an MMYY date, or None if it is not one. YY 00–49 is 20YY,
    50–99 is 19YY (EMV's two-digit year convention, as for the expiry date 5F24)."""
    if len(value) != 2:
        return None
    digits = value.hex()
    if not digits.isdigit():
        return None
    month, yy = int(digits[:2]), int(digits[2:])
    if not 1 <= month <= 12:
        return None
    return month, (2000 + yy if yy < 50 else 1900 + yy)


def _expired(expiry: tuple[int, int], today: date) -> bool:
    month, year = expiry
    return (year, month) < (today.year, today.month)


def emv_date_expired(mmyy: bytes, today: date) -> bool:
    """True if a certificate expiration date MMYY lies before ``today``.

    A certificate is valid through the *last day* of the month it names
    (Book 2 §5.3 step 9, §6.3 step 9, §6.4 step 9): "1225" is still good on
    31 December 2025 and expired on 1 January 2026. A malformed date counts
    as expired.
    """
    expiry = _mmyy(mmyy)
    return expiry is None or _expired(expiry, today)


# --- Shared steps of every recovery (Book 2 Annex A2.1.3) ---

def _missing(what: str) -> OdaFailure:
    return OdaFailure("icc_data_missing", f"{what} is missing")


def _recover(prefix: str, fmt: int | None, signed: bytes, modulus: bytes, exponent: bytes) -> bytes | OdaFailure:
    """Steps 1–4 of §5.3, §5.4, §6.3, §6.4, §6.5.2 and §6.6.2: length equals the key
    modulus, recover (signature^e mod n), trailer BC, header 6A, format (unless
    ``fmt`` is None: the caller checks it)."""
    name = _NAMES[prefix]
    if len(signed) != len(modulus):
        return OdaFailure(f"{prefix}_length",
                          f"{name} is {len(signed)} bytes; the key modulus is {len(modulus)}")
    try:
        block = recover(signed, int.from_bytes(exponent, "big"), modulus)
    except ValueError:
        return OdaFailure(f"{prefix}_trailer", f"{name} is not less than the key modulus: nothing to recover")
    if block[-1] != 0xBC:
        return OdaFailure(f"{prefix}_trailer", f"{name} recovers with trailer {block[-1]:02X}, not BC")
    if block[0] != 0x6A:
        return OdaFailure(f"{prefix}_header", f"{name} recovers with header {block[0]:02X}, not 6A")
    if fmt is not None and block[1] != fmt:
        return OdaFailure(f"{prefix}_format", f"{name} has format {block[1]:02X}, not {fmt:02X}")
    return block


def _check_hash(prefix: str, block: bytes, algorithm: int, *extra: bytes) -> OdaFailure | None:
    """Hash steps: SHA-1 over the recovered data between header and hash result,
    then the data not recovered (``extra``), compared with the recovered hash."""
    name = _NAMES[prefix]
    if algorithm != _HASH_SHA1:
        return OdaFailure(f"{prefix}_hash_algorithm",
                          f"{name} names hash algorithm {algorithm:02X}; only 01 (SHA-1) is defined")
    h = hashlib.sha1(memoryview(block)[1:-21])
    for part in extra:
        h.update(part)
    if h.digest() != block[-21:-1]:
        return OdaFailure(f"{prefix}_hash", f"the hash result in {name} does not match the data it signs")
    return None


def _certificate_fields(owner: str, owner_len: int, block: bytes,
                        hash_matched: bool | None) -> RecoveredCertificate:
    """The fields of an opened certificate block (Book 2 Table 13 or 14)."""
    base = 2 + owner_len  # expiry, serial, hash alg, key alg, key length, exponent length, key
    return RecoveredCertificate(
        owner=owner, format=block[1], identifier=_digits(block[2:base]), expiry=block[base:base + 2],
        serial=block[base + 2:base + 5], hash_algorithm=block[base + 5], key_algorithm=block[base + 6],
        key_length=block[base + 7], exponent_length=block[base + 8], hash_result=block[-21:-1],
        hash_matched=hash_matched)


def _open_certificate(owner: str, fmt: int, owner_len: int, certificate: bytes, signer_modulus: bytes,
                      signer_exponent: bytes, remainder: bytes | None, exponent: bytes,
                      static_data: bytes) -> tuple[bytes, bytes, RecoveredCertificate] | OdaFailure:
    """Steps 1–7 of §6.3 (owner "issuer") or §6.4 (owner "icc"), and the key modulus
    of the last step: (recovered block, public key modulus, its fields). A failure
    from step 4 on carries the fields."""
    prefix = f"{owner}_certificate"
    block = _recover(prefix, None, certificate, signer_modulus, signer_exponent)
    if isinstance(block, OdaFailure):
        return block

    def failing(failure: OdaFailure, hash_matched: bool | None = None) -> OdaFailure:
        return replace(failure, certificate=_certificate_fields(owner, owner_len, block, hash_matched))

    if block[1] != fmt:
        return failing(OdaFailure(f"{prefix}_format", f"{_NAMES[prefix]} has format {block[1]:02X}, not {fmt:02X}"))
    base = 2 + owner_len
    key_length = block[base + 7]
    room = len(block) - base - 30  # N_CA − 36 (issuer) or N_I − 42 (ICC)
    rest = remainder or b""
    tag, who = ("92", "issuer") if owner == "issuer" else ("9F48", "ICC")
    if key_length > room:
        if not rest:
            return failing(OdaFailure(f"{owner}_remainder_missing",
                                      f"the {who} public key is {key_length} bytes, "
                                      f"{key_length - room} of them in the remainder ({tag}), which is missing"))
        if len(rest) != key_length - room:
            return failing(OdaFailure(f"{owner}_remainder_length",
                                      f"the public key remainder ({tag}) is {len(rest)} bytes; "
                                      f"the certificate needs {key_length - room}"))
        modulus = block[base + 9:-21] + rest
    else:
        modulus = block[base + 9:base + 9 + key_length]  # drop the BB padding
    failed = _check_hash(prefix, block, block[base + 5], rest, exponent, static_data)
    if failed is not None:
        return failing(failed, None if failed.code.endswith("_algorithm") else False)
    return block, modulus, _certificate_fields(owner, owner_len, block, True)


def _digits(cn: bytes | str) -> str:
    """Digits of a cn value (or its hex) without the trailing F padding."""
    text = cn.hex() if isinstance(cn, bytes) else cn
    return text.upper().rstrip("F")


def _check_expiry(code: str, what: str, value: bytes, today: date) -> tuple[int, int] | OdaFailure:
    expiry = _mmyy(value)
    if expiry is None:
        return OdaFailure(code, f"{what} expiration date {value.hex().upper()} is not a valid MMYY date")
    if _expired(expiry, today):
        return OdaFailure(code, f"{what} expired at the end of {expiry[0]:02d}/{expiry[1]}")
    return expiry


# --- Public key retrieval (Book 2 §5.3, §6.3, §6.4) ---

def recover_issuer_key(capk: CaPublicKey | None, certificate: bytes | None, remainder: bytes | None,
                       exponent: bytes | None, pan: str, today: date,
                       revocations: RevocationList | None = None) -> IssuerPublicKey | OdaFailure:
    """Retrieve the issuer public key: EMV Book 2 §5.3 (SDA) and §6.3 (DDA, CDA), steps 1–12.

    ``capk`` is the key the terminal holds for the card's RID and index (8F),
    or None; ``certificate``, ``remainder``, ``exponent`` are tags 90, 92 and
    9F32; ``pan`` the digits of 5A (trailing F allowed). Step 10 (revocation)
    is checked when ``revocations`` is given.
    """
    if capk is None:
        return OdaFailure("capk_missing",
                          "the terminal has no CA public key for this RID and CA Public Key Index (8F)")
    if not certificate:
        return _missing("the Issuer Public Key Certificate (90)")
    if capk.algorithm == "sm2":
        if not pan:
            return _missing("the Application PAN (5A)")
        return _recover_issuer_key_sm(capk, certificate, pan, today, revocations)
    if not exponent:
        return _missing("the Issuer Public Key Exponent (9F32)")
    if not pan:
        return _missing("the Application PAN (5A)")
    opened = _open_certificate("issuer", 0x02, 4, certificate, capk.modulus, capk.exponent,
                               remainder, exponent, b"")
    if isinstance(opened, OdaFailure):
        return opened
    block, modulus, fields = opened
    expiry = _check_issuer_fields(fields, block[2:6], pan, capk, today, revocations, _KEY_RSA)
    if isinstance(expiry, OdaFailure):
        return expiry
    return IssuerPublicKey(modulus, bytes(exponent), fields.identifier, expiry, fields.serial, fields)


def _check_issuer_fields(fields: RecoveredCertificate, identifier_bytes: bytes, pan: str, capk: CaPublicKey,
                         today: date, revocations: RevocationList | None,
                         algorithm: int) -> tuple[int, int] | OdaFailure:
    """The issuer certificate checks of Book 2 §5.3 after its hash (the SM path too): the Issuer Identifier
    leads the PAN, the certificate has not expired, it is not revoked, it holds a key of ``algorithm``. The
    expiry (month, year), or the failure with the fields attached."""
    identifier = fields.identifier
    if not (3 <= len(identifier) <= 8 and identifier.isdigit() and _digits(pan).startswith(identifier)):
        return OdaFailure("issuer_identifier_mismatch",
                          f"Issuer Identifier {identifier_bytes.hex().upper()} is not the leading digits of the PAN",
                          fields)
    expiry = _check_expiry("issuer_certificate_expired", "the issuer certificate", fields.expiry, today)
    if isinstance(expiry, OdaFailure):
        return replace(expiry, certificate=fields)
    if revocations is not None and revocations.is_revoked(capk.rid, capk.index, fields.serial):
        return OdaFailure("issuer_certificate_revoked",
                          f"issuer certificate {fields.serial.hex().upper()} under CA key {capk.name} is revoked",
                          fields)
    if fields.key_algorithm != algorithm:
        return OdaFailure("issuer_key_algorithm", f"issuer public key algorithm {fields.key_algorithm:02X} is not "
                          f"{algorithm:02X} ({_KEY_NAMES[algorithm]})", fields)
    return expiry


def recover_icc_key(issuer: IssuerPublicKey, certificate: bytes | None, remainder: bytes | None,
                    exponent: bytes | None, static_data: bytes, pan: str,
                    today: date) -> IccPublicKey | OdaFailure:
    """Retrieve the ICC public key: EMV Book 2 §6.4, steps 1–11.

    ``certificate``, ``remainder``, ``exponent`` are tags 9F46, 9F48, 9F47;
    the certificate's hash also covers ``static_data`` (see
    :func:`static_data_to_authenticate`).
    """
    if not certificate:
        return _missing("the ICC Public Key Certificate (9F46)")
    if issuer.algorithm == "sm2":
        if not pan:
            return _missing("the Application PAN (5A)")
        return _recover_icc_key_sm(issuer, certificate, static_data, pan, today)
    if not exponent:
        return _missing("the ICC Public Key Exponent (9F47)")
    if not pan:
        return _missing("the Application PAN (5A)")
    opened = _open_certificate("icc", 0x04, 10, certificate, issuer.modulus, issuer.exponent,
                               remainder, exponent, static_data)
    if isinstance(opened, OdaFailure):
        return opened
    _, modulus, fields = opened
    expiry = _check_icc_fields(fields, pan, today, _KEY_RSA)
    if isinstance(expiry, OdaFailure):
        return expiry
    return IccPublicKey(modulus, bytes(exponent), fields.identifier, expiry, fields.serial, fields)


def _check_icc_fields(fields: RecoveredCertificate, pan: str, today: date,
                      algorithm: int) -> tuple[int, int] | OdaFailure:
    """The ICC certificate checks of Book 2 §6.4 after its hash (the SM path too): it certifies the card's
    PAN, has not expired and holds a key of ``algorithm``. The expiry (month, year), or the failure with the
    fields attached."""
    if not fields.identifier.isdigit() or fields.identifier != _digits(pan):
        return OdaFailure("pan_mismatch", "the ICC certificate is for another PAN than the card's (5A)", fields)
    expiry = _check_expiry("icc_certificate_expired", "the ICC certificate", fields.expiry, today)
    if isinstance(expiry, OdaFailure):
        return replace(expiry, certificate=fields)
    if fields.key_algorithm != algorithm:
        return OdaFailure("icc_key_algorithm", f"ICC public key algorithm {fields.key_algorithm:02X} is not "
                          f"{algorithm:02X} ({_KEY_NAMES[algorithm]})", fields)
    return expiry


# --- Signature verification (Book 2 §5.4, §6.5.2, §6.6.2; Book C-3) ---

def verify_ssad(issuer: IssuerPublicKey, ssad: bytes | None, static_data: bytes) -> bytes | OdaFailure:
    """Verify the Signed Static Application Data (93), EMV Book 2 §5.4 steps 1–7 (format 03).

    Returns the Data Authentication Code (9F45, 2 bytes).
    """
    if not ssad:
        return _missing("the Signed Static Application Data (93)")
    block = _recover("ssad", 0x03, ssad, issuer.modulus, issuer.exponent)
    if isinstance(block, OdaFailure):
        return block
    failed = _check_hash("ssad", block, block[2], static_data)
    return failed if failed is not None else block[3:5]


def _open_sdad(icc: IccPublicKey, sdad: bytes | None) -> tuple[bytes, bytes] | OdaFailure:
    """Steps 1–4 of §6.5.2 / §6.6.2 (format 05), and the ICC Dynamic Data (Table 17):
    (recovered block, ICC Dynamic Data)."""
    if not sdad:
        return _missing("the Signed Dynamic Application Data (9F4B)")
    if icc.algorithm != "rsa":
        return OdaFailure("sdad_format", "DDA and CDA with an SM2 ICC key are not implemented (fDDA only)")
    block = _recover("sdad", 0x05, sdad, icc.modulus, icc.exponent)
    if isinstance(block, OdaFailure):
        return block
    length = block[3]
    if length > len(block) - 25 or length < 1 or block[4] + 1 > length:
        return OdaFailure("sdad_dynamic_data",
                          f"ICC Dynamic Data length {length} does not fit the signature or its dynamic number")
    return block, block[4:4 + length]


def verify_dda(icc: IccPublicKey, sdad: bytes | None, ddol_data: bytes) -> DynamicData | OdaFailure:
    """Verify the SDAD of INTERNAL AUTHENTICATE, EMV Book 2 §6.5.2 steps 1–7: the hash
    covers format 05 .. BB padding, then the DDOL data the terminal sent."""
    opened = _open_sdad(icc, sdad)
    if isinstance(opened, OdaFailure):
        return opened
    block, dynamic = opened
    failed = _check_hash("sdad", block, block[2], ddol_data)
    return failed if failed is not None else DynamicData(dynamic[1:1 + dynamic[0]], dynamic)


def verify_fdda(icc: IccPublicKey, sdad: bytes | None, un: bytes, amount: bytes, currency: bytes,
                card_auth_data: bytes | None) -> DynamicData | OdaFailure:
    """Verify a Visa/UnionPay fDDA signature (EMV Contactless Book C-3, fDDA; Book 2 §6.5.2).

    The fDDA version is byte 1 of the Card Authentication Related Data (9F69);
    no 9F69 means version 00. Version 00 signs the Unpredictable Number (9F37)
    only; version 01 signs UN || Amount Authorised (9F02) || Transaction
    Currency Code (5F2A) || the 9F69 value. Other versions fail.
    """
    if len(un) != 4 or len(amount) != 6 or len(currency) != 2:
        raise ValueError("fDDA needs a 4-byte UN, a 6-byte amount and a 2-byte currency code")
    version = card_auth_data[0] if card_auth_data else 0
    if version not in (0, 1):
        return OdaFailure("fdda_version", f"fDDA version {version:02X} in 9F69 is not 00 or 01")
    signed = (un, amount, currency, card_auth_data) if version == 1 and card_auth_data is not None else (un,)
    if icc.algorithm == "sm2":
        return _verify_sdad_sm(icc, sdad, b"".join(signed))
    opened = _open_sdad(icc, sdad)
    if isinstance(opened, OdaFailure):
        return opened
    block, dynamic = opened
    failed = _check_hash("sdad", block, block[2], *signed)
    return failed if failed is not None else DynamicData(dynamic[1:1 + dynamic[0]], dynamic)


def verify_cda(icc: IccPublicKey, sdad: bytes | None, un: bytes, cid: int,
               transaction_data: bytes) -> CdaData | OdaFailure:
    """Verify a combined DDA/AC signature, EMV Book 2 §6.6.2 steps 1–12.

    ``cid`` is the CID (9F27) of the GENERATE AC response; ``transaction_data``
    is what the Transaction Data Hash Code covers: PDOL data || CDOL1 data
    (|| CDOL2 data) || the response's data objects other than 9F4B, in order.
    """
    opened = _open_sdad(icc, sdad)
    if isinstance(opened, OdaFailure):
        return opened
    block, dynamic = opened
    n = dynamic[0]
    if len(dynamic) < n + 30:  # LDN | ICC Dynamic Number | CID | AC (8) | hash code (20), Table 19
        return OdaFailure("sdad_dynamic_data",
                          f"ICC Dynamic Data is {len(dynamic)} bytes, too short for CDA (needs {n + 30})")
    signed_cid = dynamic[n + 1]
    if signed_cid != cid:
        return OdaFailure("cda_cid_mismatch",
                          f"the signature carries CID {signed_cid:02X}, the response returned {cid:02X}")
    failed = _check_hash("sdad", block, block[2], un)
    if failed is not None:
        return failed
    hash_code = dynamic[n + 10:n + 30]
    if hashlib.sha1(transaction_data).digest() != hash_code:
        return OdaFailure("cda_transaction_hash",
                          "the Transaction Data Hash Code does not match the PDOL/CDOL data and the response")
    return CdaData(dynamic[1:n + 1], signed_cid, dynamic[n + 2:n + 10], hash_code)


# --- The SM suite (PBOC 3.0, JR/T 0025): SM2 certificates and fDDA ---

def _sm2_verify(public_xy: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (r || s) is the SM2 signature of ``message`` by the
    key x || y, with SM3 under its Z_A and the default user ID."""
    try:
        point = sm2.decode_point(b"\x04" + public_xy)
    except sm2.SM2Error:
        return False
    return sm2.verify(point, message, signature)


def _open_sm_certificate(owner: str, fmt: int, owner_len: int, certificate: bytes, signer: bytes,
                         static_data: bytes) -> tuple[bytes, RecoveredCertificate] | OdaFailure:
    """Format, signature algorithm, length, SM2 signature and the certified key of an
    SM issuer (owner "issuer", format 12) or ICC (owner "icc", format 14)
    certificate: (public key x || y, its fields). A failure after the format
    check carries the fields."""
    prefix = f"{owner}_certificate"
    name = _NAMES[prefix]
    base = 1 + owner_len  # expiry, serial, signature alg, key alg, key parameter, key length, key
    header = base + 9
    if len(certificate) < header + _SM_SIGNATURE_LENGTH:
        return OdaFailure(f"{prefix}_length", f"{name} is {len(certificate)} bytes: too short for an SM certificate")
    body, signature = certificate[:-_SM_SIGNATURE_LENGTH], certificate[-_SM_SIGNATURE_LENGTH:]

    def fields(verified: bool | None) -> RecoveredCertificate:
        return RecoveredCertificate(
            owner=owner, format=body[0], identifier=_digits(body[1:base]), expiry=body[base:base + 2],
            serial=body[base + 2:base + 5], hash_algorithm=body[base + 5], key_algorithm=body[base + 6],
            key_length=body[base + 8], exponent_length=0, hash_result=b"", hash_matched=verified)

    if body[0] != fmt:
        return OdaFailure(f"{prefix}_format", f"{name} has format {body[0]:02X}, not {fmt:02X}")
    if body[base + 5] != _SM_SIGNATURE:
        return OdaFailure(f"{prefix}_hash_algorithm", f"{name} names signature algorithm {body[base + 5]:02X}; "
                          "only 04 (SM2 with SM3) is defined", fields(None))
    key_length = body[base + 8]
    if len(body) != header + key_length:
        return OdaFailure(f"{prefix}_length", f"{name} is {len(certificate)} bytes; a {key_length}-byte key "
                          f"makes it {header + key_length + _SM_SIGNATURE_LENGTH}", fields(None))
    if not _sm2_verify(signer, body + static_data, signature):
        return OdaFailure(f"{prefix}_signature", f"the SM2 signature of {name} does not verify", fields(False))
    key = _sm2_key(body[header:])
    if key is None:
        return OdaFailure(f"{owner}_public_key", f"the key in {name} is not an sm2p256v1 point: x || y (64 bytes) "
                          "or 02/03 || x (33)", fields(True))
    return key, fields(True)


def _sm2_key(key: bytes) -> bytes | None:
    """A certified SM2 key as x || y: given as x || y, or compressed (02/03 || x,
    as one public sample certificate has it); None when it is not a point."""
    try:
        point = sm2.decode_point(b"\x04" + key if len(key) == _SM_KEY_LENGTH else key)
    except sm2.SM2Error:
        return None
    return sm2.encode_point(point)[1:]


def _recover_issuer_key_sm(capk: CaPublicKey, certificate: bytes, pan: str, today: date,
                           revocations: RevocationList | None) -> IssuerPublicKey | OdaFailure:
    """The issuer public key from an SM certificate (format 12): the checks of
    §6.3 steps 8-11 after the SM2 signature."""
    opened = _open_sm_certificate("issuer", 0x12, 4, certificate, capk.modulus, b"")
    if isinstance(opened, OdaFailure):
        return opened
    key, fields = opened
    expiry = _check_issuer_fields(fields, certificate[1:5], pan, capk, today, revocations, _KEY_SM2)
    if isinstance(expiry, OdaFailure):
        return expiry
    return IssuerPublicKey(key, b"", fields.identifier, expiry, fields.serial, fields, algorithm="sm2")


def _recover_icc_key_sm(issuer: IssuerPublicKey, certificate: bytes, static_data: bytes, pan: str,
                        today: date) -> IccPublicKey | OdaFailure:
    """The ICC public key from an SM certificate (format 14), whose signature
    also covers the static data to be authenticated: §6.4 steps 8-10 after it."""
    opened = _open_sm_certificate("icc", 0x14, 10, certificate, issuer.modulus, static_data)
    if isinstance(opened, OdaFailure):
        return opened
    key, fields = opened
    expiry = _check_icc_fields(fields, pan, today, _KEY_SM2)
    if isinstance(expiry, OdaFailure):
        return expiry
    return IccPublicKey(key, b"", fields.identifier, expiry, fields.serial, fields, algorithm="sm2")


def _verify_sdad_sm(icc: IccPublicKey, sdad: bytes | None, extra: bytes) -> DynamicData | OdaFailure:
    """An SM suite SDAD: 15 | LDD | ICC Dynamic Data | r || s, the signature over
    everything before it followed by ``extra`` (the data fDDA signs)."""
    if not sdad:
        return _missing("the Signed Dynamic Application Data (9F4B)")
    name = _NAMES["sdad"]
    if len(sdad) < 2 + _SM_SIGNATURE_LENGTH:
        return OdaFailure("sdad_length", f"{name} is {len(sdad)} bytes: too short for an SM2 signature")
    if sdad[0] != 0x15:
        return OdaFailure("sdad_format", f"{name} has format {sdad[0]:02X}, not 15 (SM suite)")
    length = sdad[1]
    if len(sdad) != 2 + length + _SM_SIGNATURE_LENGTH:
        return OdaFailure("sdad_length", f"{name} is {len(sdad)} bytes; ICC Dynamic Data of {length} bytes makes it "
                          f"{2 + length + _SM_SIGNATURE_LENGTH}")
    dynamic = sdad[2:2 + length]
    if length < 1 or dynamic[0] + 1 > length:
        return OdaFailure("sdad_dynamic_data", f"ICC Dynamic Data length {length} does not fit its dynamic number")
    if not _sm2_verify(icc.modulus, sdad[:2 + length] + extra, sdad[2 + length:]):
        return OdaFailure("sdad_signature", f"the SM2 signature of {name} does not verify")
    return DynamicData(dynamic[1:1 + dynamic[0]], dynamic)


# --- Static data to be authenticated (Book 3 §10.3) ---

def _template_70_value(record: bytes) -> bytes | None:
    """The value of a record that is exactly one 70 template (BER length 1–3 bytes), else None."""
    if len(record) < 2 or record[0] != 0x70:
        return None
    first = record[1]
    if first < 0x80:
        start, length = 2, first
    elif first in (0x81, 0x82):
        start = 2 + (first & 0x7F)
        length = int.from_bytes(record[2:start], "big")
    else:
        return None
    return record[start:] if start + length == len(record) else None


def static_data_to_authenticate(records: list[tuple[int, bytes]], sda_tag_list: bytes | None,
                                aip: bytes) -> bytes | OdaFailure:
    """Assemble the static data to be authenticated, EMV Book 3 §10.3.

    ``records`` are (SFI, READ RECORD response data) of the records the AFL
    marks for ODA, in AFL order. Every such record must be coded as one 70
    template, whatever its SFI; one that is not makes ODA performed and
    failed (EMV 4.4 Book 3 §10.3: ``oda_record_not_template``). SFI 1–10
    records contribute the template's value, SFI 11–30 records the whole
    response (tag 70 and length included). An SDA Tag List (9F4A) may name
    only the AIP (82), whose value is appended.
    """
    parts: list[bytes] = []
    for sfi, record in records:
        if not 1 <= sfi <= 30:
            raise ValueError(f"SFI {sfi} is outside 1..30")
        value = _template_70_value(record)
        if value is None:
            return OdaFailure("oda_record_not_template",
                              f"a record of SFI {sfi} read for offline data authentication is not coded as "
                              "one 70 template")
        parts.append(value if sfi <= 10 else record)
    if sda_tag_list:
        if any(b != 0x82 for b in sda_tag_list):
            return OdaFailure("sda_tag_list_invalid",
                              f"the SDA Tag List (9F4A) {sda_tag_list.hex().upper()} names a tag other than 82")
        if not aip:
            return _missing("the Application Interchange Profile (82)")
        parts.extend([aip] * len(sda_tag_list))
    return b"".join(parts)
