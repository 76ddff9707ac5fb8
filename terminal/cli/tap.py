"""``emvkit tap``: one contactless transaction, explained."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emvkit.terminal.cli.args import add_transaction_options, order_of
from emvkit.terminal.cli.report import report, to_json
from emvkit.terminal.config_files import load_config
from emvkit.terminal.session import TapSession, default_reader
from emvkit.terminal.transport import open_transport


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


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    url, note = (args.reader, "") if args.reader else default_reader()
    session = TapSession.prepare(url, config, order_of(args), args.host)
    transport = open_transport(url)
    if note and not args.json:
        print(note + "\n")
    with transport:
        tap = session.run(transport)
    if args.trace:
        session.save_trace(tap, args.trace, reader=args.reader or "default")
    if args.json:
        print(json.dumps(to_json(tap, url, args.reveal, session.amount), indent=2))
    else:
        print(report(tap, url, args.reveal, session.amount, session.order.type))
    return 0
