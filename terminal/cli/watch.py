"""``emvkit watch``: wait for taps as a terminal does, one transaction per card presented.

The loop (EMV Book A §5's "present card", "processing", "remove card"): wait
for a card, run one transaction (the same request, kernel and report as
``emvkit tap``), print the outcome, wait until the card has left, repeat.
It stops after ``--count`` transactions or on Ctrl-C / SIGTERM, with status 0.

With a ``pcsc:`` reader the waits ask pcscd (in short slices, so a signal
is handled within a fraction of a second). Other transports (``emu:``,
``mpy:``, ...) always have a card, so ``--count`` is required with them; each
transaction opens the transport anew.
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from emvkit.terminal.cli.apdus import exchanges_json, watched
from emvkit.terminal.cli.args import BadArgument, add_transaction_options, expected_outcomes, order_of
from emvkit.terminal.cli.report import report, to_json
from emvkit.terminal.cli.style import colour_outcome, use_colour
from emvkit.terminal.cli.tap import host_for
from emvkit.terminal.config_files import load_config
from emvkit.terminal.currency import format_amount
from emvkit.terminal.session import Tap, make_authoriser, watch
from emvkit.terminal.transport.trace import TraceSink, open_trace_sink

DEFAULT_READER = "pcsc:"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "watch",
        help="wait for cards like a terminal: one transaction per tap, until Ctrl-C or --count",
        description="Wait for a card, run one contactless transaction, print the outcome, wait for the card to be "
        "removed, and repeat until interrupted (Ctrl-C or SIGTERM: status 0) or --count transactions are done. "
        "The reader is a PC/SC reader by default (pcsc:, pcsc:0, pcsc:NAME); with emu: or mpy: cards, which are "
        "always present, --count is required. On a real reader (pcsc:, nfc:, serial:) Online Requests stop the "
        "transaction unless --host says where to go (--host builtin: the built-in issuer host).",
    )
    parser.add_argument("--reader", metavar="URL", default=DEFAULT_READER,
                        help=f"reader to watch: pcsc:, pcsc:0, pcsc:NAME, or emu:/mpy: with --count "
                        f"(default {DEFAULT_READER}, any PC/SC reader)")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N transactions")
    add_transaction_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object per line, one per transaction")
    parser.add_argument("--trace", type=Path, metavar="DIR",
                        help="write each tap's exchanges to DIR/tap-YYYYMMDD-HHMMSS-NNNN.json (when watch started, "
                        "the tap's number; mode 0600), each file created before its card is touched")
    parser.add_argument("--trace-format", choices=("json", "pcap", "pcapng"), default="json",
                        help="format of the --trace files (pcap and pcapng open in Wireshark; default json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    expected = expected_outcomes(args.expect)
    if args.count is not None and args.count < 1:
        raise BadArgument(f"--count: expected a number of transactions from 1 up, got {args.count}")
    url: str = args.reader
    scheme = url.partition(":")[0]
    if scheme != "pcsc" and args.count is None:
        raise BadArgument(f"--reader {url}: the card behind {scheme}: is always present, so watch would never stop; "
                          "give --count N")
    config = load_config(args.config, known_keys=True)
    order = order_of(args)
    amount = format_amount(order.request(config).amount, order.currency_in(config))  # bad arguments fail now
    host, safety = host_for(url, args.host)  # real readers: --host none unless asked
    authoriser = make_authoriser(host, url)  # one issuer for every tap: its replay window spans them
    traces = _TraceFiles(args.trace, args.trace_format, url) if args.trace else None
    if scheme == "pcsc":
        _check_pcscd(url)
    if safety:  # the first line, once every argument and the reader's service are known good
        print(safety, file=sys.stderr)
    done = unexpected = 0
    with _signals_interrupt():
        try:
            taps = watch(url, config, order, authoriser, args.count, lambda m: _say(args, m),
                         lambda card: watched(card, args.apdu, args.json, args.reveal))
            while True:
                sink = traces.next(done + 1) if traces else None  # before the card is touched
                got: tuple[Tap, str] | None = None
                try:
                    got = next(taps, None)
                finally:
                    if traces and sink:
                        traces.done(sink, got[0] if got else None, done + 1)
                if got is None:
                    break
                tap, reader_name = got
                done += 1
                _print_tap(args, tap, url, reader_name, amount, done, order.type)
                if expected is not None and tap.result.outcome.outcome not in expected:
                    unexpected += 1
        except KeyboardInterrupt:
            _say(args, f"\nstopped after {done} transaction(s)")
    if expected is not None and unexpected:
        # on stderr even with --json (stdout stays one object per line): what a CI log needs
        print(f"{unexpected} of {done} transaction(s) ended outside --expect {args.expect}", file=sys.stderr)
    return 1 if unexpected else 0


class _TraceFiles:
    """One trace file per tap in a directory: ``tap-YYYYMMDD-HHMMSS-NNNN.EXT`` (when watch started, the tap's
    number), each created before its card is touched and written whatever the transaction's end."""

    def __init__(self, directory: Path, fmt: str, url: str) -> None:
        if not directory.is_dir():
            raise BadArgument(f"--trace {directory}: not a directory (watch writes one trace file per tap in it)")
        self.directory, self.suffix, self.url = directory, f".{fmt}", url
        self.started = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")

    def next(self, number: int) -> TraceSink:
        return open_trace_sink(self.directory / f"tap-{self.started}-{number:04d}{self.suffix}")

    def done(self, sink: TraceSink, tap: Tap | None, number: int) -> None:
        """Write the tap's trace; no tap: the loop ended or failed before a card answered, no file is left."""
        if tap is None:
            sink.path.unlink(missing_ok=True)
            return
        tap.trace.meta = {"reader": self.url, "tap": number}
        sink.write(tap.trace)


def _print_tap(args: argparse.Namespace, tap: Tap, url: str, reader_name: str, amount: str, number: int,
               kind: str) -> None:
    when = datetime.datetime.now().isoformat(timespec="seconds")
    if args.json:
        doc = {"tap": number, "time": when, "reader_name": reader_name, **to_json(tap, url, args.reveal, amount),
               "exchanges": exchanges_json(tap.trace, args.reveal, with_hex=args.apdu)}
        print(json.dumps(doc), flush=True)
        return
    print(f"=== tap {number} at {when} on {reader_name} ===")
    text = report(tap, url, args.reveal, amount, kind)
    print(colour_outcome(text, tap.result.outcome.outcome) if use_colour(sys.stdout) else text)
    print(flush=True)


def _check_pcscd(url: str) -> None:
    """A bad ``pcsc:`` URL or no pcscd is an error now, before any prompt."""
    from emvkit.terminal.transport import pcsc

    pcsc.parse_url(url)
    pcsc.list_readers()


def _say(args: argparse.Namespace, message: str) -> None:
    """Prompts for the person at the reader: on stderr, and not at all with --json."""
    if not args.json:
        print(message, file=sys.stderr, flush=True)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Let SIGINT and SIGTERM stop the loop (main thread only), SIGINT even when the process started
    with it ignored (a job started with `&` from a script); restore the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

