"""``emvkit emulate``: serve an emulated card to other programs."""

from __future__ import annotations

import argparse
import logging
import sys

from terminal.cli.args import BadArgument
from terminal.emulator.atr import contactless_atr
from terminal.emulator.cards import open_card
from terminal.emulator.vpcd import DEFAULT_VPCD_PORT, serve_forever
from terminal.perso.builtin import builtin_names


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "emulate",
        help="serve an emulated card to PC/SC applications (through pcscd and vsmartcard-vpcd)",
        description="Run a card (a built-in profile or a profile file) and attach it to pcscd through the "
        "vsmartcard-vpcd virtual reader, so any PC/SC application sees a contactless card in "
        "'Virtual PCD 00 00'. Runs until interrupted (SIGINT or SIGTERM); reconnects when pcscd restarts.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--card", metavar="PROFILE.json", help="a card profile file (from emvkit perso)")
    which.add_argument("--profile", choices=builtin_names(), help="a built-in card")
    parser.add_argument("--vpcd", nargs="?", const=f"127.0.0.1:{DEFAULT_VPCD_PORT}", metavar="HOST:PORT",
                        help=f"attach to vpcd (default 127.0.0.1:{DEFAULT_VPCD_PORT})")
    parser.add_argument("--cdcvm", action="store_true",
                        help="the token's on-device verification has just succeeded (wearable profiles)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log connections; -vv also logs every APDU (card data: use with care)")
    parser.set_defaults(func=run)


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadArgument(f"--vpcd: expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def run(args: argparse.Namespace) -> int:
    if args.vpcd is None:
        raise BadArgument("choose where to serve the card: --vpcd [HOST:PORT]")
    host, port = _host_port(args.vpcd)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level,
                        format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    card = open_card(args.card or args.profile)
    if args.cdcvm:
        card.verify_cdcvm()
    print(f"emulating {card.profile.id} on vpcd {host}:{port}; stop with Ctrl-C", file=sys.stderr, flush=True)
    return serve_forever(card, host, port, contactless_atr(card.profile.atr_historical))
