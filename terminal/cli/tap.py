"""``emvkit tap``: one contactless transaction, explained."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emvkit.terminal.cli.args import add_transaction_options, order_of
from emvkit.terminal.cli.report import report, to_json
from emvkit.terminal.config_files import load_config
from emvkit.terminal.session import Tap, TapSession, default_reader
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.trace import Trace, TraceTransport, open_trace_sink


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tap",
        help="run one contactless transaction and explain it",
        description="Run one EMV contactless transaction (Entry Point, then kernel C-2, C-3 or C-7) against a "
        "card and show each step, offline data authentication, the CVM, the TVR bit by bit, the cryptogram "
        "and the outcome. Without --reader: the card on the first PC/SC reader if one is connected, otherwise "
        "the built-in emulated Visa card (emu:visa). Online Requests go to the built-in issuer host simulator "
        "unless --host says otherwise; on a real reader (pcsc:, nfc:, serial:) the default is --host none: the "
        "transaction stops at the Online Request and the card gets no second GENERATE AC.",
    )
    parser.add_argument("--reader", metavar="URL",
                        help="card to tap: pcsc: (first reader with a card), pcsc:NAME, emu:visa, emu:card.json, "
                        "mpy:visa, nfc:usb, serial:/dev/ttyACM0, scripted:trace.json ... (default: a connected "
                        "PC/SC reader, waiting up to 15 s for the card, else emu:visa)")
    add_transaction_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--trace", type=Path, metavar="FILE",
                        help="write every exchange to FILE (mode 0600), the format from its extension: .json, "
                        ".pcap or .pcapng (Wireshark); checked and created before the card is touched")
    parser.set_defaults(func=run)


# Readers where the card is a real one: going online to the built-in issuer host (which declines a card it does not
# know) and sending a second GENERATE AC changes its state, so the default there is to stop at the Online Request.
REAL_READERS = ("pcsc", "nfc", "serial")


def host_for(url: str, host: str | None) -> tuple[str | None, str]:
    """The ``--host`` to use on this reader, and a line saying why when it is the real-reader default."""
    scheme = url.partition(":")[0]
    if host is None and scheme in REAL_READERS:
        return "none", (f"{scheme}: is a real card: stopping at an Online Request (--host none, no second "
                        "GENERATE AC); --host builtin goes online to the built-in issuer host")
    return host, ""


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, known_keys=True)
    url, note = (args.reader, "") if args.reader else default_reader()
    host, safety = host_for(url, args.host)
    session = TapSession.prepare(url, config, order_of(args), host)
    sink = open_trace_sink(args.trace) if args.trace else None  # before the card is touched
    recorder: TraceTransport | None = None
    tap: Tap | None = None
    try:
        recorder = TraceTransport(open_transport(url))
        if note and not args.json:
            print(note + "\n")
        if safety:
            print(safety, file=sys.stderr)
        with recorder:
            tap = session.run(recorder)
    finally:
        if sink is not None:  # written whatever happened: what the card did is in it
            trace = tap.trace if tap is not None else recorder.trace if recorder is not None else Trace()
            session.record_order(trace, reader=args.reader or "default")
            sink.write(trace)
    if args.json:
        print(json.dumps(to_json(tap, url, args.reveal, session.amount), indent=2))
    else:
        print(report(tap, url, args.reveal, session.amount, session.order.type))
    return 0
