"""``emvkit crypto``: an EMV symmetric crypto calculator.

Hex in, the result's hex alone on stdout (``--json`` for an object). The
arithmetic is the card's own (:mod:`emvkit.firmware.crypto.emv`), so the calculator
shows exactly what the emulated card and the firmware compute:

- ``derive-mk``: ICC master key from an issuer master key, PAN and PSN
  (EMV Book 2 Annex A1.4, option A or B);
- ``session-key``: EMV common session key (A1.3.1, R = ATC || 00..00) or the
  Mastercard SKD variant (R = ATC || 00 00 || UN);
- ``arqc`` / ``mac``: ISO/IEC 9797-1 MAC algorithm 3 (the retail MAC of
  A1.2.1) with padding method 1 or 2;
- ``arpc``: method 1 (``--arc``) or method 2 (``--csu``, ``--prop``), Book 2 §8.2;
- ``kcv``: the first 3 bytes of the key encrypting 8 zero bytes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from emvkit.firmware.crypto import emv, provider
from emvkit.terminal.cli.args import BadArgument, parse_hex

_KEY_SIZES = {8: "single", 16: "double-length", 24: "triple-length"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "crypto",
        help="EMV crypto calculator: ICC master key, session key, ARQC, ARPC, MAC, KCV",
        description="EMV symmetric cryptography with the card's own implementation. Hex in, the result's "
        "hex on stdout; --json prints an object.",
    )
    ops = parser.add_subparsers(dest="operation", metavar="OPERATION")
    ops.required = True

    def op(name: str, help_text: str) -> argparse.ArgumentParser:
        p = ops.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print a JSON object instead of bare hex")
        return p

    p = op("derive-mk", "ICC master key from the issuer master key (EMV Book 2 Annex A1.4)")
    p.add_argument("--imk", required=True, help="issuer master key, 16 bytes hex")
    p.add_argument("--pan", required=True, help="PAN digits")
    p.add_argument("--psn", default="00", help="PAN sequence number, 2 digits (default 00)")
    p.add_argument("--option", default="a", type=str.lower, choices=["a", "b"],
                   help="derivation option A (A1.4.1) or B (A1.4.2, PANs over 16 digits); default a")
    p.set_defaults(func=run_derive_mk)

    p = op("session-key", "AC session key: EMV common session key (csk) or Mastercard SKD (skd)")
    p.add_argument("--mk", required=True, help="ICC master key, 16 bytes hex")
    p.add_argument("--method", required=True, choices=["csk", "skd"],
                   help="csk: R = ATC || 00..00 (A1.3.1); skd: R = ATC || 0000 || UN")
    p.add_argument("--atc", required=True, help="ATC (9F36), 2 bytes hex")
    p.add_argument("--un", help="unpredictable number (9F37), 4 bytes hex; skd only")
    p.set_defaults(func=run_session_key)

    for name, what in (("arqc", "application cryptogram (ARQC/TC/AAC)"), ("mac", "MAC")):
        p = op(name, f"{what}: ISO/IEC 9797-1 MAC algorithm 3 (EMV Book 2 Annex A1.2.1)")
        p.add_argument("--key", required=True, help="session key (or MAC key), 16 bytes hex")
        p.add_argument("--data", required=True, help="the data, hex")
        p.add_argument("--padding", type=int, choices=[1, 2], default=2,
                       help="ISO/IEC 9797-1 padding method (default 2; Visa CVN 10 uses 1)")
        p.set_defaults(func=run_mac, result=name)

    p = op("arpc", "ARPC: method 1 with --arc, method 2 with --csu (EMV Book 2 §8.2)")
    p.add_argument("--key", required=True, help="ARPC key (session key or ICC master key), 16 bytes hex")
    p.add_argument("--arqc", required=True, help="the ARQC (9F26), 8 bytes hex")
    method = p.add_mutually_exclusive_group(required=True)
    method.add_argument("--arc", help="method 1: authorisation response code, 2 bytes hex (3030 for '00')")
    method.add_argument("--csu", help="method 2: card status update, 4 bytes hex")
    p.add_argument("--prop", help="method 2: proprietary authentication data, 0 to 8 bytes hex")
    p.set_defaults(func=run_arpc)

    p = op("kcv", "key check value: the first 3 bytes of DES/TDEA(key)[00..00]")
    p.add_argument("--key", required=True, help="DES or TDEA key, 8, 16 or 24 bytes hex")
    p.set_defaults(func=run_kcv)


# --- argument checks ---

def _hex(value: str, option: str, *sizes: int) -> bytes:
    data = parse_hex(value, option)
    if sizes and len(data) not in sizes:
        want = " or ".join(str(s) for s in sizes)
        raise BadArgument(f"{option}: expected {want} bytes ({' or '.join(str(2 * s) for s in sizes)} hex "
                          f"digits), got {len(data)}")
    return data


def _key(value: str, option: str, *sizes: int) -> bytes:
    key = _hex(value, option)
    allowed = sizes or (16,)
    if len(key) not in allowed:
        names = " or ".join(f"{s} bytes ({_KEY_SIZES[s]})" for s in allowed)
        raise BadArgument(f"{option}: a key of {names} expected, got {len(key)} bytes")
    return key


def _emit(args: argparse.Namespace, name: str, value: bytes, **extra: Any) -> int:
    if args.json:
        print(json.dumps({name: value.hex().upper(), **extra}))
    else:
        print(value.hex().upper())
    return 0


def _kcv(key: bytes) -> bytes:
    if len(key) == 8:
        return provider.des_encrypt_block(key, bytes(8))[:3]
    return provider.des3_encrypt_block(key, bytes(8))[:3]


# --- operations ---

def run_derive_mk(args: argparse.Namespace) -> int:
    imk = _key(args.imk, "--imk")
    pan = args.pan.strip()
    if not pan.isdigit() or not 1 <= len(pan) <= 19:
        raise BadArgument("--pan: 1 to 19 decimal digits")
    if len(args.psn) != 2 or not args.psn.isdigit():
        raise BadArgument("--psn: 2 decimal digits")
    option = args.option.upper()
    mk = emv.derive_icc_mk(imk, pan, args.psn, option)
    return _emit(args, "icc_mk", mk, kcv=_kcv(mk).hex().upper(), option=option)


def run_session_key(args: argparse.Namespace) -> int:
    mk = _key(args.mk, "--mk")
    atc = _hex(args.atc, "--atc", 2)
    if args.method == "skd":
        if args.un is None:
            raise BadArgument("--un is required with --method skd")
        sk = emv.session_key_mc_skd(mk, atc, _hex(args.un, "--un", 4))
    else:
        if args.un is not None:
            raise BadArgument("--un goes with --method skd only")
        sk = emv.session_key_common(mk, atc)
    return _emit(args, "session_key", sk, kcv=_kcv(sk).hex().upper(), method=args.method)


def run_mac(args: argparse.Namespace) -> int:
    key = _key(args.key, "--key")
    data = _hex(args.data, "--data")
    return _emit(args, args.result, emv.retail_mac(key, data, args.padding), padding=args.padding)


def run_arpc(args: argparse.Namespace) -> int:
    key = _key(args.key, "--key")
    arqc = _hex(args.arqc, "--arqc", 8)
    if args.arc is not None:
        if args.prop is not None:
            raise BadArgument("--prop goes with --csu (ARPC method 2) only")
        arc = _hex(args.arc, "--arc", 2)
        arpc = emv.arpc_method1(key, arqc, arc)
        return _emit(args, "arpc", arpc, method=1, issuer_authentication_data=(arpc + arc).hex().upper())
    csu = _hex(args.csu, "--csu", 4)
    prop = _hex(args.prop, "--prop") if args.prop is not None else b""
    if len(prop) > 8:
        raise BadArgument(f"--prop: at most 8 bytes, got {len(prop)}")
    arpc = emv.arpc_method2(key, arqc, csu, prop)
    return _emit(args, "arpc", arpc, method=2, issuer_authentication_data=(arpc + csu + prop).hex().upper())


def run_kcv(args: argparse.Namespace) -> int:
    key = _key(args.key, "--key", 8, 16, 24)
    return _emit(args, "kcv", _kcv(key))
