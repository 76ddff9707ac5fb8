"""``emvkit tap``: one contactless transaction, explained."""

from __future__ import annotations

import argparse
import datetime
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emvkit.terminal.bitmaps import explain
from emvkit.terminal.cli.args import BadArgument
from emvkit.terminal.config_files import load_config
from emvkit.terminal.currency import Currency, format_amount, lookup, parse_amount
from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.kernel.authorisation import Authoriser
from emvkit.terminal.kernel.common import CID_NAMES
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TRANSACTION_TYPES, TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap, run_transaction, stamp
from emvkit.terminal.tlvdump import mask_pan
from emvkit.terminal.transport import Transport, open_transport

DEFAULT_READER = "emu:visa"
CARD_WAIT_S = 15
KERNEL_NAMES = {2: "C-2 Mastercard", 3: "C-3 Visa", 7: "C-7 UnionPay"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tap",
        help="run one contactless transaction and explain it",
        description="Run one EMV contactless transaction (Entry Point, then kernel C-2, C-3 or C-7) against a "
        "card and show each step, offline data authentication, the CVM, the TVR bit by bit, the cryptogram "
        "and the outcome. Without --reader: the card on the first PC/SC reader if one is connected, otherwise "
        "the built-in emulated Visa card (emu:visa). Online Requests go to the built-in issuer host simulator "
        "unless --host says otherwise.",
    )
    parser.add_argument("--reader", metavar="URL",
                        help="card to tap: pcsc: (first reader with a card), pcsc:NAME, emu:visa, emu:card.json, "
                        "mpy:visa, nfc:usb, serial:/dev/ttyACM0, scripted:trace.json ... (default: a connected "
                        "PC/SC reader, waiting up to 15 s for the card, else emu:visa)")
    add_transaction_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--trace", type=Path, help="write every exchange to this file (JSON, mode 0600)")
    parser.set_defaults(func=run)


def add_transaction_options(parser: argparse.ArgumentParser) -> None:
    """What the merchant asks for, the terminal and its issuer: shared by tap and watch."""
    parser.add_argument("--amount", default="12.34", help="amount, e.g. 12.34 (default 12.34)")
    parser.add_argument("--other-amount", default="0", help="cashback amount (default 0)")
    parser.add_argument("--currency", help="ISO 4217 code or number (default: the terminal's)")
    parser.add_argument("--type", choices=sorted(TRANSACTION_TYPES), default="purchase")
    parser.add_argument("--config", type=Path, help="terminal configuration (TOML); default: built-in")
    parser.add_argument("--date", help="transaction date YYYY-MM-DD (default today)")
    parser.add_argument("--reveal", action="store_true", help="show the full PAN")
    parser.add_argument("--host", metavar="URL",
                        help="where Online Requests are authorised: builtin (the issuer host simulator in-process, "
                        "knowing the built-in cards and the tapped profile; the default), tcp://HOST:PORT "
                        "(emvkit host serve), or none (stop at Online Request)")


def make_authoriser(spec: str | None, reader: str) -> Authoriser | None:
    """The issuer the terminal goes online to (None: the built-in one)."""
    spec = spec or "builtin"
    if spec == "none":
        return None
    if spec.startswith("tcp://"):
        from emvkit.terminal.host.client import TcpAuthoriser

        return TcpAuthoriser(spec)
    if spec != "builtin":
        raise BadArgument(f"--host: builtin, tcp://HOST:PORT or none, not {spec!r}")
    from emvkit.terminal.emulator.cards import load_profile
    from emvkit.terminal.host.issuer import IssuerHost
    from emvkit.terminal.host.keys import IssuerKeys
    from emvkit.terminal.perso.builtin import builtin_names

    keys = IssuerKeys()
    scheme, _, rest = reader.partition(":")
    spec_path = rest.split("?", 1)[0]
    if scheme in ("emu", "mpy") and spec_path and spec_path not in builtin_names():
        doc = load_profile(spec_path)
        if isinstance(doc.get("secrets"), dict) and doc["secrets"].get("imk_ac"):
            keys = IssuerKeys.from_profiles([doc])  # the tapped card's key wins over a built-in one
    for key in IssuerKeys.builtin():
        if keys.find(key.bin_prefix) is None:
            keys.add(key)
    return IssuerHost(keys)


def default_reader() -> tuple[str, str]:
    """A PC/SC reader when one is connected (waiting for the tap), else the
    built-in emulated Visa card; and a line saying which."""
    try:
        from emvkit.terminal.transport.pcsc import list_readers

        readers = list_readers()
    except (EmvkitError, ImportError):
        readers = []
    if readers:
        return (f"pcsc:?timeout={CARD_WAIT_S}",
                f"No --reader given: waiting up to {CARD_WAIT_S} s for a card on the first PC/SC reader "
                f"({readers[0].name}).")
    return DEFAULT_READER, ("No --reader given and no PC/SC reader: tapping the built-in emulated card "
                            f"{DEFAULT_READER}.")


class RecordingRandom:
    """The transaction's random source, remembered so a trace can replay it."""

    def __init__(self, source: Callable[[int], bytes] = os.urandom) -> None:
        self.source = source
        self.drawn = bytearray()

    def __call__(self, n: int) -> bytes:
        out = self.source(n)
        self.drawn += out
        return out


def replaying(drawn: bytes) -> Callable[[int], bytes]:
    pool = bytearray(drawn)

    def draw(n: int) -> bytes:
        if len(pool) < n:
            raise BadArgument("the trace's recorded random bytes ran out: not the same transaction")
        out = bytes(pool[:n])
        del pool[:n]
        return out

    return draw


def _currency(args: argparse.Namespace, config: TerminalConfig) -> Currency:
    if args.currency:
        return lookup(args.currency)
    return lookup(config.currency.hex())


def build_request(args: argparse.Namespace, config: TerminalConfig, rng: Callable[[int], bytes]) -> TransactionRequest:
    currency = _currency(args, config)
    date = None
    if args.date:
        try:
            date = datetime.date.fromisoformat(args.date)
        except ValueError as exc:
            raise BadArgument(f"--date: {exc}") from exc
    when = datetime.datetime.now().time().replace(microsecond=0)
    if getattr(args, "time", None):
        try:
            when = datetime.time.fromisoformat(args.time)
        except ValueError as exc:
            raise BadArgument(f"time: {exc}") from exc
    return stamp(TransactionRequest(
        amount=parse_amount(args.amount, currency),
        amount_other=parse_amount(args.other_amount, currency),
        transaction_type=TRANSACTION_TYPES[args.type],
        currency=currency.bcd,
        date=date,
        time=when,
        random=rng,
    ))


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    url, note = (args.reader, "") if args.reader else default_reader()
    replay = url.startswith("scripted:") and url.endswith(".json")
    rng: Callable[[int], bytes] = RecordingRandom()
    if replay:
        from emvkit.terminal.transport.trace import load_trace

        meta = load_trace(url.split(":", 1)[1]).meta
        rng = replaying(bytes.fromhex(meta.get("random", "")))
        for key in ("amount", "other_amount", "currency", "type", "date", "time"):
            if meta.get(key) is not None:
                setattr(args, key, meta[key])
        if args.host is None and isinstance(meta.get("host"), str):
            args.host = meta["host"]  # replay against the same kind of issuer
    request = build_request(args, config, rng)
    args.host = args.host or "builtin"
    authoriser = make_authoriser(args.host, url)
    transport: Transport = open_transport(url)
    if note and not args.json:
        print(note + "\n")
    with transport:
        tap = run_transaction(transport, config, request, authoriser)
    if args.trace:
        tap.trace.meta = _meta(args, request, rng)
        tap.trace.save(args.trace)
    currency = _currency(args, config)
    if args.json:
        print(json.dumps(to_json(tap, url, args.reveal, format_amount(request.amount, currency)), indent=2))
    else:
        print(report(tap, url, args.reveal, format_amount(request.amount, currency), args.type))
    return 0


def _meta(args: argparse.Namespace, request: TransactionRequest, rng: Callable[[int], bytes]) -> dict[str, Any]:
    drawn = rng.drawn if isinstance(rng, RecordingRandom) else b""
    return {
        "amount": args.amount, "other_amount": args.other_amount, "currency": args.currency,
        "type": args.type, "date": (request.date or datetime.date.today()).isoformat(),
        "time": (request.time or datetime.time()).isoformat(),
        "random": bytes(drawn).hex().upper(), "reader": args.reader or "default", "host": args.host,
    }


def _pan(tap: Tap, reveal: bool) -> str:
    pan = tap.result.pan
    return pan if reveal or not pan else mask_pan(pan)


def to_json(tap: Tap, url: str, reveal: bool, amount: str) -> dict[str, Any]:
    r = tap.result
    return {
        "reader": url,
        "amount": amount,
        "outcome": r.outcome.outcome.value,
        "kernel": r.kernel,
        "aid": r.aid.hex().upper(),
        "label": r.label,
        "pan": _pan(tap, reveal),
        "tvr": r.tvr.hex().upper(),
        "tsi": r.tsi.hex().upper(),
        "cid": r.cid.hex().upper(),
        "cryptogram": r.cryptogram.hex().upper(),
        "atc": r.atc.hex().upper(),
        "cvm": r.outcome.cvm.value,
        "oda": r.oda,
        "oda_result": r.oda_result,
        "ui_message": r.outcome.ui_message,
        "error": r.error,
        "apdus": tap.apdus,
        "bytes": tap.bytes_exchanged,
        "elapsed_ms": round(tap.elapsed_ms, 3),
        "steps": [{"step": s.name, "detail": s.detail} for s in r.steps],
        "authorisation": None if r.authorisation is None else {
            "approved": r.authorisation.approved,
            "response_code": r.authorisation.response_code,
            "reason": r.authorisation.reason,
            "issuer_authentication_data": (r.authorisation.issuer_authentication_data or b"").hex().upper(),
        },
    }


def report(tap: Tap, url: str, reveal: bool, amount: str, kind: str) -> str:
    r = tap.result
    lines = [f"Card:        {url}", f"Transaction: {kind} of {amount}", ""]
    for i, step in enumerate(r.steps, 1):
        lines.append(f"  {i:2}. {step.name}" + (f": {step.detail}" if step.detail else ""))
    lines.append("")
    if r.aid:
        lines.append(f"Application: {r.label or '-'} ({r.aid.hex().upper()}), kernel {KERNEL_NAMES.get(r.kernel or 0)}")
    if r.pan:
        lines.append(f"PAN:         {_pan(tap, reveal)}")
    lines.append(f"ODA:         {r.oda}" + (f" ({r.oda_result})" if r.oda_result else ""))
    lines.append(f"CVM:         {r.outcome.cvm.value}")
    lines.append(f"TVR:         {r.tvr.hex().upper()}")
    lines += [f"             {line}" for line in explain(0x95, r.tvr)]
    lines.append(f"TSI:         {r.tsi.hex().upper()}")
    if r.cid:
        cid = CID_NAMES.get(r.cid[0] & 0xC0, "RFU")
        lines.append(f"Cryptogram:  {cid} {r.cryptogram.hex().upper()}  ATC {r.atc.hex().upper()}")
    auth = r.authorisation
    if auth is not None:
        verdict = "approved" if auth.approved else "declined"
        lines.append(f"Issuer:      {verdict}, response code {auth.response_code}"
                     + (f" ({auth.reason})" if auth.reason else ""))
        if auth.issuer_authentication_data:
            lines.append(f"             issuer authentication data (91) "
                         f"{auth.issuer_authentication_data.hex().upper()}")
    lines.append("")
    banner = r.outcome.outcome.value.upper()
    lines.append(f"OUTCOME:     {banner}" + (f"  ({r.error})" if r.error and r.outcome.outcome is not
                                             Outcome.APPROVED else ""))
    if r.outcome.ui_message:
        lines.append(f"Message:     {r.outcome.ui_message}")
    lines.append("")
    lines.append(f"{tap.apdus} APDUs, {tap.bytes_exchanged} bytes, {tap.elapsed_ms:.2f} ms in total")
    for e in tap.trace.exchanges:
        name = _command_name(e.command)
        status = (e.response or b"")[-2:].hex().upper() if e.response else (e.error or "no response")
        size = len(e.response or b"")
        lines.append(f"  {name:22} {len(e.command):4} > {size:4} <  {status:6} {e.elapsed_ms:8.3f} ms")
    return "\n".join(lines)


def _command_name(apdu: bytes) -> str:
    ins = apdu[1] if len(apdu) > 1 else 0
    if ins == 0xA4:
        name = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        return "SELECT PPSE" if name == b"2PAY.SYS.DDF01" else f"SELECT {name.hex().upper()}"
    if ins == 0xB2 and len(apdu) > 3:
        return f"READ RECORD {apdu[3] >> 3}.{apdu[2]}"
    return {0xA8: "GET PROCESSING OPTIONS", 0xAE: "GENERATE AC", 0xC0: "GET RESPONSE", 0x88: "INTERNAL AUTHENTICATE",
            0xCA: "GET DATA"}.get(ins, f"INS {ins:02X}")

