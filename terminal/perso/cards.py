"""Test card profiles for each scheme (the JSON format of
docs/card-profile.md), complete with keys, certificates and static data.

One card is one PAN with one or more applications. Its records follow the
layout real contactless cards of the scheme use: static data signed for ODA
first, then the certificates, then data that changes per transaction.
"""

from __future__ import annotations

import datetime
import secrets as _secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emvkit.firmware import tlv
from emvkit.firmware.crypto import emv as emvcrypto
from emvkit.firmware.crypto.rsa import RSAPrivateKey
from emvkit.firmware.crypto.sm2 import SM2PrivateKey
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.perso.certificates import (
    icc_certificate,
    issuer_certificate,
    signed_static_data,
    sm_icc_certificate,
    sm_issuer_certificate,
)
from emvkit.terminal.perso.keys import CA_BITS_DEFAULT, ca_public_key, generate_rsa, generate_sm2, sm2_ca_public_key

__all__ = ["SCHEMES", "BuiltCard", "CardOptions", "build_card", "luhn_complete"]

Pairs = list[list[str]]

RIDS = {"visa": "A000000003", "mastercard": "A000000004", "unionpay": "A000000333"}
# A CA index no published test key uses, so emvkit's test CAs never collide
# with keys already in a terminal.
TEST_CA_INDEX = 0xE1
SCHEMES = ("visa", "mastercard", "unionpay", "wearable")
DEFAULT_PAN_PREFIX = {
    "visa": "476173900101011",
    "mastercard": "541333008901001",
    "unionpay": "621234567890123",
    "wearable": "489537001234567",
}

ISSUER_BITS = 1024
ICC_BITS = 1024

# Terminal data the qVSDC / qPBOC card signs: EMV Book C-3 / C-7 PDOL.
QUICK_PDOL = "9F66049F02069F03069F1A0295055F2A029A039C019F3704"
# PBOC 3.0 SM suite: the card also asks for the terminal's SM Algorithm
# Support Indicator (DF69, 1 byte: 01 the terminal supports SM).
SM_PDOL = QUICK_PDOL + "DF6901"
EMV_CDOL1 = "9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403"
EMV_CDOL2 = "8A0291" + "0A" + "95059F3704"
LOG_FORMAT = "9A039F21039F02065F2A029F1A029C019F36029F2701"


def luhn_complete(prefix: str) -> str:
    """``prefix`` followed by its Luhn check digit (ISO/IEC 7812-1 Annex B)."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return prefix + str((10 - total % 10) % 10)


@dataclass
class CardOptions:
    scheme: str
    pan: str | None = None
    expiry: str = "3012"  # YYMM
    effective: str = "250101"  # YYMMDD
    psn: str = "01"
    issuer_cert_expiry: str = "1231"  # MMYY
    icc_cert_expiry: str = "1230"  # MMYY
    ca: RSAPrivateKey | SM2PrivateKey | None = None
    ca_index: int = TEST_CA_INDEX
    random: Callable[[int], bytes] = _secrets.token_bytes
    # UnionPay only: the PBOC 3.0 SM suite (SM2/SM3 certificates and fDDA,
    # SM4 cryptograms) instead of RSA/SHA-1/TDEA; the CA is then an SM2 key.
    sm: bool = False


@dataclass
class BuiltCard:
    profile: dict[str, Any]
    capk: dict[str, str]
    ca: RSAPrivateKey | SM2PrivateKey


def _h(value: bytes | str) -> str:
    return value.hex().upper() if isinstance(value, bytes) else value.upper()


def _track2(pan: str, expiry: str) -> str:
    t2 = pan + "D" + expiry + "201" + "0000000000000"
    return t2 + ("F" if len(t2) % 2 else "")


def _static_data(records: list[dict[str, Any]], aip: str) -> bytes:
    """Static data to be authenticated (Book 3 §10.3): the ODA records of
    SFI 1-10 without their template, then the AIP (SDA tag list 82)."""
    data = b""
    for rec in records:
        if rec.get("oda"):
            data += b"".join(tlv.encode_tlv(int(t, 16), bytes.fromhex(v)) for t, v in rec["data"])
    return data + bytes.fromhex(aip)


class _Scheme:
    """The parts of a profile that differ between schemes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.base = "visa" if name == "wearable" else name

    def applications(self, pan: str) -> list[dict[str, Any]]:
        if self.base == "mastercard":
            return [{
                "aid": "A0000000041010", "label": "MASTERCARD", "priority": 1, "kernel": 2,
                "scheme": "mastercard", "cryptogram_version": "mc_cvn16", "cvn": 0x10,
                "aip": "1D80", "cdol1": EMV_CDOL1, "cdol2": EMV_CDOL2,
                "fci": [["5F2D", _h(b"en")]],
                "risk": {"lower_consecutive_offline_limit": 3, "upper_consecutive_offline_limit": 6,
                         "single_offline_limit": 5000, "cumulative_offline_limit": 15000},
            }]
        if self.base == "unionpay":
            common = {
                "kernel": 7, "scheme": "unionpay", "cryptogram_version": "upi", "cvn": 0x01,
                "aip": "7C00", "pdol": QUICK_PDOL, "cdol1": EMV_CDOL1, "cdol2": EMV_CDOL2, "fdda_version": 1,
                "fci": [["5F2D", _h(b"zhen")]],
                "risk": {"lower_consecutive_offline_limit": 3, "upper_consecutive_offline_limit": 6,
                         "single_offline_limit": 5000, "cumulative_offline_limit": 15000},
            }
            return [
                dict(common, aid="A000000333010101", label="UnionPay Debit", priority=1),
                dict(common, aid="A000000333010102", label="UnionPay Credit", priority=2),
            ]
        wearable = self.name == "wearable"
        app: dict[str, Any] = {
            "aid": "A0000000031010", "label": "VISA TOKEN" if wearable else "VISA CREDIT", "priority": 1,
            "kernel": 3, "scheme": "visa", "cryptogram_version": "visa_cvn18", "cvn": 0x12,
            "aip": "2000", "pdol": QUICK_PDOL, "cdol1": EMV_CDOL1, "cdol2": EMV_CDOL2, "fdda_version": 1,
            "fci": [["5F2D", _h(b"en")]],
            "fci_discretionary": [["9F5A", "3108260826"]],
            "risk": {"lower_consecutive_offline_limit": 5, "upper_consecutive_offline_limit": 10,
                     "single_offline_limit": 5000, "cumulative_offline_limit": 20000},
        }
        if wearable:
            app["cdcvm"] = {"window_s": 300}
        return [app]

    def card_data(self, pan: str, expiry: str, psn: str) -> Pairs:
        """Data the card holds outside records (GPO response composition)."""
        if self.base == "mastercard":
            return []
        # CTQ (C-3 Annex A): online PIN required above the CVM limit (unless
        # the wearable's consumer-device CVM was performed), go online if ODA
        # fails; byte 2 b7: the card supports Issuer Update Processing.
        ctq = "A040"
        # Form Factor Indicator: version 1, consumer device (wearable) or card.
        ffi = "22400000" if self.name == "wearable" else "20000000"
        return [["57", _track2(pan, expiry)], ["5F34", psn], ["9F6C", ctq], ["9F6E", ffi]]

    def static_records(self, pan: str, expiry: str, effective: str, psn: str) -> list[dict[str, Any]]:
        data = [
            ["5A", pan + ("F" if len(pan) % 2 else "")],
            ["5F24", _end_of_month(expiry)],
            ["5F25", effective],
            ["5F28", "0826" if self.base == "visa" else "0840" if self.base == "mastercard" else "0156"],
            ["5F34", psn],
            ["9F07", "FF00"],
            ["9F08", "0096" if self.base == "visa" else "0002" if self.base == "mastercard" else "0030"],
            ["9F0D", "FC50AC8800"], ["9F0E", "0000000000"], ["9F0F", "FC70BC9800"],
            ["9F42", "0978"],
            ["9F4A", "82"],
        ]
        if self.base in ("mastercard", "unionpay"):
            data += [["8C", EMV_CDOL1], ["8D", EMV_CDOL2],
                     ["8E", "00000000000000004203" + "1E03" + "1F03"]]
        if self.name == "wearable":
            # Token data: Payment Account Reference, Token Requestor ID.
            data += [["9F24", _h(b"V0010013019000000000000000001")], ["9F19", "040010030273"]]
        return [{"sfi": 1, "record": 1, "oda": True, "data": data}]

    def dynamic_records(self, pan: str, expiry: str) -> list[dict[str, Any]]:
        if self.base == "mastercard":
            return [{"sfi": 4, "record": 1, "data": [["57", _track2(pan, expiry)],
                                                     ["5F20", _h(b"CARDHOLDER/TEST")]]}]
        # Card Authentication Related Data (9F69): fDDA version 01, card
        # unpredictable number and CTQ, refreshed by the card on each GPO.
        return [{"sfi": 3, "record": 1, "data": [["9F69", "01000000000000"]]}]


def _end_of_month(yymm: str) -> str:
    year, month = 2000 + int(yymm[:2]), int(yymm[2:])
    days = [31, 29 if year % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return f"{yymm}{days:02d}"


def random_pan(scheme: str, random: Callable[[int], bytes]) -> str:
    """A fresh test PAN: the scheme's test BIN, nine random digits and the
    Luhn digit, so two personalised cards never share a PAN."""
    digits = "".join(str(b % 10) for b in random(9))
    return luhn_complete(DEFAULT_PAN_PREFIX[scheme][:6] + digits)


def _check(options: CardOptions) -> str:
    if options.scheme not in SCHEMES:
        raise ConfigError(f"scheme must be one of {', '.join(SCHEMES)}")
    pan = options.pan or random_pan(options.scheme, options.random)
    if not _ascii_digits(pan) or not 12 <= len(pan) <= 19:
        raise ConfigError("PAN: 12 to 19 digits")
    if luhn_complete(pan[:-1]) != pan:
        raise ConfigError(f"PAN: the check digit should be {luhn_complete(pan[:-1])[-1]} (ISO/IEC 7812 Luhn)")
    # Dates as EMV writes them: YYMM(DD) (Book 3 Annex A, 5F24 and 5F25), MMYY in the issuer and ICC public
    # key certificates (Book 2 §5.3, §6.4).
    _date("expiry", options.expiry, "YYMM")
    _date("effective date", options.effective, "YYMMDD")
    _date("issuer certificate expiry", options.issuer_cert_expiry, "MMYY")
    _date("ICC certificate expiry", options.icc_cert_expiry, "MMYY")
    if not _ascii_digits(options.psn) or len(options.psn) != 2:
        raise ConfigError("PSN: 2 digits")
    return pan


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _date(name: str, value: str, form: str) -> None:
    """``value`` is a real date in ``form`` (YYMM, MMYY or YYMMDD, years 2000-2099): ConfigError otherwise."""
    if not _ascii_digits(value) or len(value) != len(form):
        raise ConfigError(f"{name}: {form}, {len(form)} digits, not {value!r}")
    fields = {form[i:i + 2]: int(value[i:i + 2]) for i in range(0, len(form), 2)}
    try:
        datetime.date(2000 + fields["YY"], fields["MM"], fields.get("DD", 1))
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a date {form} (a month 01..12)") from None


def build_card(options: CardOptions) -> BuiltCard:
    """A complete, personalised test card and the CA public key for it."""
    pan = _check(options)
    if options.sm:
        return _build_sm_card(options, pan)
    if isinstance(options.ca, SM2PrivateKey):
        raise ConfigError("an SM2 CA signs SM cards only (--algorithms sm)")
    scheme = _Scheme(options.scheme)
    rid = bytes.fromhex(RIDS[scheme.base])
    ca = options.ca or generate_rsa(CA_BITS_DEFAULT)
    issuer = generate_rsa(ISSUER_BITS)
    icc = generate_rsa(ICC_BITS)
    apps = scheme.applications(pan)
    static = scheme.static_records(pan, options.expiry, options.effective, options.psn)
    issuer_cert = issuer_certificate(ca, issuer, pan, options.issuer_cert_expiry, options.random(3))
    icc_cert = icc_certificate(issuer, icc, pan, options.icc_cert_expiry, options.random(3),
                               _static_data(static, apps[0]["aip"]))
    cert_sfi = 2 if scheme.base != "mastercard" else 3
    issuer_record: Pairs = [["8F", f"{options.ca_index:02X}"], ["90", _h(issuer_cert.certificate)],
                            ["9F32", _h(issuer_cert.exponent)]]
    if issuer_cert.remainder:
        issuer_record.append(["92", _h(issuer_cert.remainder)])
    icc_record: Pairs = [["9F46", _h(icc_cert.certificate)], ["9F47", _h(icc_cert.exponent)]]
    if icc_cert.remainder:
        icc_record.append(["9F48", _h(icc_cert.remainder)])
    if int(apps[0]["aip"][:2], 16) & 0x40:  # SDA supported: Signed Static Application Data
        ssad = signed_static_data(issuer, b"\xda\xc1", _static_data(static, apps[0]["aip"]))
        icc_record.append(["93", _h(ssad)])
    certs: list[dict[str, Any]] = [
        {"sfi": cert_sfi, "record": 1, "data": issuer_record},
        {"sfi": cert_sfi, "record": 2, "data": icc_record},
    ]
    records = static + certs + scheme.dynamic_records(pan, options.expiry)
    card_data = scheme.card_data(pan, options.expiry, options.psn)
    for app in apps:
        app["records"] = records
        app["data"] = card_data
        app["log"] = {"sfi": 11, "records": 10, "format": LOG_FORMAT}
    option = emvcrypto.CRYPTOGRAM_VERSIONS[apps[0]["cryptogram_version"]][2]
    imk_ac = emvcrypto.adjust_parity(options.random(16))
    icc_mk_ac = emvcrypto.derive_icc_mk(imk_ac, pan, options.psn, option)
    # The issuer's master key for secure messaging integrity (script MACs,
    # EMV Book 2 §9.2), derived to the card's as the AC key is.
    imk_smi = emvcrypto.adjust_parity(options.random(16))
    icc_mk_smi = emvcrypto.derive_icc_mk(imk_smi, pan, options.psn, option)
    profile = {
        "format": "emvkit-card",
        "version": 1,
        "id": options.scheme,
        "description": f"emvkit test card ({options.scheme}); keys are test keys",
        "applications": apps,
        "secrets": {
            "pan": pan,
            "psn": options.psn,
            "imk_ac": _h(imk_ac),
            "icc_mk_ac": _h(icc_mk_ac),
            "imk_smi": _h(imk_smi),
            "icc_mk_smi": _h(icc_mk_smi),
            "derivation": option,
            "icc_rsa": icc.to_dict(),
        },
    }
    return BuiltCard(profile, ca_public_key(rid, options.ca_index, ca), ca)


def _build_sm_card(options: CardOptions, pan: str) -> BuiltCard:
    """A UnionPay card of the PBOC 3.0 SM suite: SM2 CA, issuer and ICC keys,
    SM2 certificates (certificates.py), SM4 master keys, a PDOL asking for
    DF69. It takes the qPBOC path only (no SDA, no DDA or CDA)."""
    if options.scheme != "unionpay":
        raise ConfigError("the SM suite (--algorithms sm) is UnionPay's: use --scheme unionpay")
    if isinstance(options.ca, RSAPrivateKey):
        raise ConfigError("an SM card needs an SM2 CA (the CA key file of an earlier --algorithms sm perso)")
    scheme = _Scheme(options.scheme)
    rid = bytes.fromhex(RIDS[scheme.base])
    ca = options.ca or generate_sm2()
    issuer = generate_sm2()
    icc = generate_sm2()
    apps = scheme.applications(pan)
    for app in apps:
        app.update(cryptogram_version="upi_sm4", aip="3C00", pdol=SM_PDOL)
    static = scheme.static_records(pan, options.expiry, options.effective, options.psn)
    issuer_cert = sm_issuer_certificate(ca, issuer, pan, options.issuer_cert_expiry, options.random(3))
    icc_cert = sm_icc_certificate(issuer, icc, pan, options.icc_cert_expiry, options.random(3),
                                  _static_data(static, apps[0]["aip"]))
    certs: list[dict[str, Any]] = [
        {"sfi": 2, "record": 1, "data": [["8F", f"{options.ca_index:02X}"], ["90", _h(issuer_cert)]]},
        {"sfi": 2, "record": 2, "data": [["9F46", _h(icc_cert)]]},
    ]
    records = static + certs + scheme.dynamic_records(pan, options.expiry)
    card_data = scheme.card_data(pan, options.expiry, options.psn)
    for app in apps:
        app["records"] = records
        app["data"] = card_data
        app["log"] = {"sfi": 11, "records": 10, "format": LOG_FORMAT}
    imk_ac = options.random(16)  # an SM4 key: no parity bits
    icc_mk_ac = emvcrypto.derive_icc_mk(imk_ac, pan, options.psn, "SM4")
    profile = {
        "format": "emvkit-card",
        "version": 1,
        "id": f"{options.scheme}-sm",
        "description": f"emvkit test card ({options.scheme}, SM suite); keys are test keys",
        "applications": apps,
        "secrets": {
            "pan": pan,
            "psn": options.psn,
            "imk_ac": _h(imk_ac),
            "icc_mk_ac": _h(icc_mk_ac),
            "derivation": "SM4",
            "icc_sm2": icc.to_dict(),
        },
    }
    return BuiltCard(profile, sm2_ca_public_key(rid, options.ca_index, ca), ca)
