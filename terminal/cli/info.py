"""``emvkit info``: look at a card without changing it (:mod:`emvkit.terminal.inspect`)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from emvkit.firmware.tlv import TLV
from emvkit.terminal.apdu import Channel, sw_meaning
from emvkit.terminal.cli.apdus import watched
from emvkit.terminal.cli.args import BadArgument
from emvkit.terminal.cli.report import certificate_fields, certificate_line
from emvkit.terminal.config_files import load_config
from emvkit.terminal.inspect import Application, Inspection, inspect_card
from emvkit.terminal.session import Order, default_reader
from emvkit.terminal.tlvdump import format_tree, to_json_tree
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.base import Transport
from emvkit.terminal.transport.trace import TraceTransport

GPO_NOTE = "it moves the card's ATC, the transaction counter; --gpo sends it"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "info",
        help="read a card without changing it: PPSE, every application's FCI and records, ODA certificates",
        description="Read what a terminal can read from a card without changing its state: SELECT PPSE, "
        "SELECT and FCI of every application listed, the records (READ RECORD of SFI 1-10, records 1-16, "
        "stopping per SFI at the first error, 6A83; with --gpo the records the AFL names), the ATC (GET DATA), "
        "every data object with its name and bit meanings, and the ODA certificate chain where the CA public "
        "key is known (emvkit capk). No GENERATE AC is ever sent; GET PROCESSING OPTIONS, which moves the ATC, "
        "only with --gpo. Card numbers and track data are masked unless --reveal.",
    )
    parser.add_argument("--reader", metavar="URL",
                        help="card to read: pcsc:, pcsc:NAME, nfc:usb, serial:..., emu:visa, emu:card.json?state=FILE "
                        "... (default: a connected PC/SC reader, else emu:visa)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--reveal", action="store_true", help="show PAN and track data in full")
    parser.add_argument("--gpo", action="store_true",
                        help="send GET PROCESSING OPTIONS (PDOL from the terminal configuration) and read the AFL's "
                        "records; this moves the card's ATC")
    parser.add_argument("--config", type=Path, help="terminal configuration (TOML) for CA keys and the PDOL")
    parser.add_argument("--trace", type=Path, help="write every exchange to this file (JSON, mode 0600)")
    parser.add_argument("--apdu", action="store_true",
                        help="print each C-APDU and R-APDU in hex as it happens (PAN and track data masked "
                        "unless --reveal)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.trace is not None and not args.trace.parent.is_dir():
        raise BadArgument(f"--trace {args.trace}: no directory {args.trace.parent}")  # before the card is touched
    config = load_config(args.config, known_keys=True)
    request = Order().request(config)
    url, note = (args.reader, "") if args.reader else default_reader()
    if note:
        print(note, file=sys.stderr)
    if args.gpo:
        print("--gpo: GET PROCESSING OPTIONS is sent, and it moves the card's ATC (the transaction counter)",
              file=sys.stderr)
    card: Transport = open_transport(url)
    card = watched(card, args.apdu, args.json, args.reveal)
    traced = TraceTransport(card)
    try:
        with traced:
            found = inspect_card(Channel(traced), config, request, date.today(), gpo=args.gpo)
    finally:
        if args.trace is not None:
            traced.trace.meta = {"reader": url, "command": "info"}
            traced.trace.save(args.trace)
    if args.json:
        print(json.dumps(to_json(found, url, args.reveal), indent=2))
    else:
        print(report(found, url, args.reveal))
    return 0


def _sw(sw: int | None) -> str | None:
    return None if sw is None else f"{sw:04X}"


def _app_json(app: Application, reveal: bool) -> dict[str, Any]:
    return {
        "aid": app.aid.hex().upper(), "label": app.label, "select_sw": _sw(app.select_sw),
        "fci": to_json_tree(app.fci or [], reveal=reveal),
        "gpo": None if app.gpo_sw is None else {"sw": _sw(app.gpo_sw), "data": to_json_tree(app.gpo or [],
                                                                                          reveal=reveal)},
        "records": [{"sfi": r.sfi, "record": r.number, "oda": r.oda,
                     "data": None if r.nodes is None else to_json_tree(r.nodes, reveal=reveal),
                     **({"raw": r.data.hex().upper()} if r.nodes is None and reveal else {})} for r in app.records],
        "atc": None if app.atc is None else app.atc.hex().upper(),
        "oda": {"capk": app.capk, "chain": [
            {"certificate": c.owner, "status": c.status, "reason": c.reason,
             "fields": None if c.certificate is None else certificate_fields(c.certificate, reveal)}
            for c in app.chain]},
    }


def to_json(found: Inspection, url: str, reveal: bool) -> dict[str, Any]:
    return {
        "reader": url, "gpo_sent": found.gpo,
        "records_from": "AFL (GET PROCESSING OPTIONS)" if found.gpo else "probe: SFI 1-10, records 1-16",
        "ppse": {"sw": _sw(found.ppse_sw), "data": to_json_tree(found.ppse or [], reveal=reveal)},
        "applications": [_app_json(app, reveal) for app in found.applications],
    }


def _tree(nodes: list[TLV] | None, reveal: bool, indent: str) -> list[str]:
    return [indent + line for line in format_tree(nodes or [], reveal=reveal).splitlines()]


def report(found: Inspection, url: str, reveal: bool) -> str:
    lines = [f"Card: {url}", "", f"SELECT PPSE: {found.ppse_sw:04X} ({sw_meaning(found.ppse_sw)})"]
    lines += _tree(found.ppse, reveal, "  ")
    if not found.applications:
        lines.append("no application in the PPSE directory")
    for app in found.applications:
        lines += ["", f"Application {app.aid.hex().upper()} {app.label!r}",
                  f"  SELECT: {app.select_sw:04X} ({sw_meaning(app.select_sw)})"]
        lines += _tree(app.fci, reveal, "    ")
        if app.gpo_sw is None:
            lines.append(f"  GET PROCESSING OPTIONS: not sent ({GPO_NOTE}); records found by probing SFI 1-10, "
                         "records 1-16")
        else:
            lines.append(f"  GET PROCESSING OPTIONS: {app.gpo_sw:04X} ({sw_meaning(app.gpo_sw)}); "
                         "sent: it can move the ATC")
            lines += _tree(app.gpo, reveal, "    ")
        for record in app.records:
            lines.append(f"  SFI {record.sfi} record {record.number}" + (" (signed for ODA)" if record.oda else ""))
            if record.nodes is None:
                lines.append(f"    {len(record.data)} bytes, not BER-TLV")
            lines += _tree(record.nodes, reveal, "    ")
        lines.append(f"  ATC (GET DATA 9F36): {app.atc.hex().upper() if app.atc else 'not returned'}")
        if app.chain or app.capk:
            lines.append(f"  ODA: CA public key {app.capk or 'not known (emvkit capk import)'}")
        for check in app.chain:
            lines.append(f"    {check.owner} certificate: {check.status}" + (f" ({check.reason})" if check.reason
                                                                                 else ""))
            if check.certificate is not None:
                lines.append(f"      {certificate_line(check.certificate, reveal)}")
    return "\n".join(lines)
