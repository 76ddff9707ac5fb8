"""``emvkit perso``: personalise a test card (keys, certificates, profile)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emvkit.firmware.crypto.rsa import RSAPrivateKey
from emvkit.firmware.crypto.sm2 import SM2Error, SM2PrivateKey
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.jsonfile import parse_json
from emvkit.terminal.perso.cards import SCHEMES, CardOptions, build_card
from emvkit.terminal.secretfile import read_private, write_private
from emvkit.terminal.tlvdump import mask_pan


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "perso",
        help="build a test card profile with fresh keys and certificates",
        description="Build a complete test card: CA, issuer and ICC RSA keys, issuer and ICC public key "
        "certificates, static data for ODA, symmetric keys. Writes the profile (mode 0600: it holds the "
        "card's secrets), the CA public key a terminal needs, and the CA private key when a new CA was "
        "made (mode 0600), so further cards can be issued under it with --ca.",
    )
    parser.add_argument("--scheme", required=True, choices=SCHEMES)
    parser.add_argument("--pan", help="PAN digits (default: a fresh random PAN on the scheme's test BIN)")
    parser.add_argument("--expiry", default="3012", help="application expiry YYMM (default 3012)")
    parser.add_argument("--psn", default="01", help="PAN sequence number, 2 digits (default 01)")
    # One date format for every expiry of the command line, YYMM as the card's own dates (5F24); the certificates'
    # MMYY (EMV Book 2 §5.3, §6.4) is made here.
    parser.add_argument("--issuer-cert-expiry", default="3112", help="issuer certificate expiry YYMM (default 3112)")
    parser.add_argument("--icc-cert-expiry", default="3012", help="ICC certificate expiry YYMM (default 3012)")
    parser.add_argument("--ca", type=Path, help="CA private key file from an earlier perso (reuse the CA)")
    parser.add_argument("--ca-index", default="E2", help="CA public key index of a new CA, hex (default E2; the "
                        "built-in cards use E1, so both can sit in one terminal configuration)")
    parser.add_argument("--algorithms", choices=("rsa", "sm"), default="rsa",
                        help="the card's algorithm suite: rsa (RSA/SHA-1/TDEA, the default) or sm (UnionPay only: "
                        "the PBOC 3.0 SM suite, SM2 CA, issuer and ICC keys and certificates, SM2/SM3 fDDA, SM4 "
                        "cryptogram keys)")
    parser.add_argument("--out", type=Path, required=True, help="profile file to write")
    parser.add_argument("--capk-out", type=Path, help="CA public key file (default: OUT with .capk.json)")
    parser.set_defaults(func=run)


def _read_ca(path: Path) -> tuple[RSAPrivateKey | SM2PrivateKey, int]:
    doc = parse_json(read_private(path, "CA private key file"), str(path))
    try:
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        if doc.get("algorithm") == "sm2":
            return SM2PrivateKey.from_dict(doc["key"]), int(doc["index"], 16)
        return RSAPrivateKey.from_dict(doc["key"]), int(doc["index"], 16)
    except (ValueError, KeyError, TypeError, AttributeError, SM2Error) as exc:
        raise ConfigError(f"{path}: not an emvkit CA key file ({exc})") from exc


def _index(text: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        value = -1
    if not 0 <= value <= 0xFF:
        raise ConfigError(f"--ca-index: one byte in hex, got {text!r}")
    return value


def _mmyy(yymm: str, what: str) -> str:
    """A certificate expiry given as YYMM (like --expiry), as the certificate holds it: MMYY."""
    if not (len(yymm) == 4 and yymm.isascii() and yymm.isdigit() and 1 <= int(yymm[2:]) <= 12):
        raise ConfigError(f"{what}: {yymm!r} is not a date YYMM (a month 01..12)")
    return yymm[2:] + yymm[:2]


def run(args: argparse.Namespace) -> int:
    ca, index = _read_ca(args.ca) if args.ca else (None, _index(args.ca_index))
    options = CardOptions(
        scheme=args.scheme, pan=args.pan, expiry=args.expiry, psn=args.psn,
        issuer_cert_expiry=_mmyy(args.issuer_cert_expiry, "issuer certificate expiry"),
        icc_cert_expiry=_mmyy(args.icc_cert_expiry, "ICC certificate expiry"), ca=ca, ca_index=index,
        sm=args.algorithms == "sm",
    )
    built = build_card(options)
    out: Path = args.out
    capk_out: Path = args.capk_out or out.with_name(out.stem + ".capk.json")
    writing = out  # the file an error names (not the temporary file beside it)
    try:
        write_private(out, json.dumps(built.profile, indent=1) + "\n")
        writing = capk_out
        capk_out.write_text(json.dumps([built.capk], indent=1) + "\n")
        if ca is None:
            ca_out = writing = out.with_name(out.stem + ".ca.json")
            sm = {"algorithm": "sm2"} if isinstance(built.ca, SM2PrivateKey) else {}
            write_private(ca_out, json.dumps({"format": "emvkit-ca", "rid": built.capk["rid"],
                                                  "index": built.capk["index"], **sm,
                                                  "key": built.ca.to_dict()}, indent=1) + "\n")
            print(f"CA private key:   {ca_out} (mode 0600)")
    except OSError as exc:
        raise ConfigError(f"cannot write {writing}: {exc.strerror or exc}") from exc
    pan = built.profile["secrets"]["pan"]
    suite = ", SM suite" if args.algorithms == "sm" else ""
    print(f"card profile:     {out} (mode 0600; scheme {args.scheme}{suite}, PAN {mask_pan(pan)})")
    print(f"CA public key:    {capk_out} (RID {built.capk['rid']}, index {built.capk['index']})")
    return 0
