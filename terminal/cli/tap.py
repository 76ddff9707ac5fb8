"""``emvkit tap``: one contactless transaction, explained."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from emvkit.terminal.cli.apdus import exchanges_json, watched
from emvkit.terminal.cli.args import add_transaction_options, expected_outcomes, given_order, order_of
from emvkit.terminal.cli.report import report, to_json
from emvkit.terminal.cli.style import colour_outcome, use_colour
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap, TapSession, default_reader
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.base import Transport
from emvkit.terminal.transport.trace import Trace, TraceTransport, open_trace_sink

log = logging.getLogger("emvkit.tap")


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
    expected = expected_outcomes(args.expect)
    config = load_config(args.config, known_keys=True)
    url, note = (args.reader, "") if args.reader else default_reader()
    host, safety = host_for(url, args.host)
    session = TapSession.prepare(url, config, order_of(args), host)
    log.info("tap on %s: %s %s, issuer %s", url, session.order.type, session.amount, session.host)
    replay_overrides(url, args, session)
    sink = open_trace_sink(args.trace) if args.trace else None  # before the card is touched
    recorder: TraceTransport | None = None
    tap: Tap | None = None
    try:
        card: Transport = open_transport(url)
        card = watched(card, args.apdu, args.json, args.reveal)
        recorder = TraceTransport(card)
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
    log.info("outcome %s after %d APDUs in %.2f ms", tap.result.outcome.outcome.value, tap.apdus, tap.elapsed_ms)
    if args.json:
        doc = to_json(tap, url, args.reveal, session.amount)
        doc["exchanges"] = exchanges_json(tap.trace, args.reveal, with_hex=args.apdu)
        print(json.dumps(doc, indent=2))
    else:
        text = report(tap, url, args.reveal, session.amount, session.order.type)
        print(colour_outcome(text, tap.result.outcome.outcome) if use_colour(sys.stdout) else text)
    return expect_status(expected, tap)


def expect_status(expected: frozenset[Outcome] | None, tap: Tap) -> int:
    """``--expect``: 0 when the outcome is one of ``expected`` (or nothing is expected), else 1."""
    return 0 if expected is None or tap.result.outcome.outcome in expected else 1


def replay_overrides(url: str, args: argparse.Namespace, session: TapSession) -> None:
    """A replayed trace (``scripted:FILE.json``) keeps the order it recorded: say so on stderr for each option
    given that it overrides."""
    if not url.startswith("scripted:"):
        return
    for key, value in given_order(args).items():
        recorded = getattr(session.order, key)
        if recorded != value:
            option = "--" + key.replace("_", "-")
            print(f"{url}: replaying the trace's {key.replace('_', ' ')} {recorded}, not {option} {value} "
                  "(a replay sends the recorded commands)", file=sys.stderr)
