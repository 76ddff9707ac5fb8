"""``emvkit emulate``: serve an emulated card to other programs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from emvkit.terminal.cli import log_level
from emvkit.terminal.cli.args import BadArgument
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.emulator.state import StateFile, default_state_path
from emvkit.terminal.emulator.vpcd import DEFAULT_VPCD_PORT
from emvkit.terminal.endpoints import parse_host_port
from emvkit.terminal.iso7816 import contactless_atr
from emvkit.terminal.perso.builtin import builtin_names

# Where the card can be served: option -> module under emvkit.terminal.emulator with
# serve_forever(card, target, atr) -> exit status.
SERVERS = {"vpcd": "vpcd", "nfc": "nfc_listener", "serial": "serial_server", "tcp": "serial_server"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "emulate",
        help="serve an emulated card: to PC/SC programs (vpcd), nfcpy readers (udp), a serial link or TCP",
        description="Run a card (a built-in profile or a profile file) and serve it until interrupted "
        "(SIGINT or SIGTERM): --vpcd attaches it to pcscd through vsmartcard-vpcd ('Virtual PCD 00 00'); "
        "--nfc answers as an ISO-DEP Type 4A card over nfcpy's udp driver; --serial speaks the emvkit "
        "link framing on a pty or serial URL; --tcp speaks it on a TCP port.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--card", metavar="PROFILE.json", help="a card profile file (from emvkit perso)")
    which.add_argument("--profile", choices=builtin_names(), help="a built-in card")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--vpcd", nargs="?", const=f"127.0.0.1:{DEFAULT_VPCD_PORT}", metavar="HOST:PORT",
                       help=f"attach to vpcd (default 127.0.0.1:{DEFAULT_VPCD_PORT})")
    where.add_argument("--nfc", metavar="udp:HOST:PORT", help="listen as an ISO-DEP card on nfcpy's udp driver")
    where.add_argument("--serial", metavar="pty|URL", help="serve the link framing on a new pty or a serial URL")
    where.add_argument("--tcp", metavar="[HOST:]PORT", help="serve the link framing on a TCP port")
    parser.add_argument("--state", metavar="FILE|none",
                        help="keep the card's ATC, counters and log in FILE across runs (default: beside --card, "
                        "card.json -> card.state; for --profile NAME, $XDG_STATE_HOME/emvkit/NAME.state); "
                        "'none' keeps them in memory")
    parser.add_argument("--cdcvm", action="store_true",
                        help="the token's on-device verification has just succeeded (wearable profiles)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chosen = [(name, getattr(args, name)) for name in SERVERS if getattr(args, name) is not None]
    if not chosen:
        raise BadArgument("choose where to serve the card: --vpcd, --nfc, --serial or --tcp")
    name, target = chosen[0]
    level = log_level(args.verbose)  # -v: connections; -vv: every APDU too
    spec = args.card or args.profile
    state = _state_file(args.state, spec)
    card = open_card(spec, state=state)
    try:
        if args.cdcvm:
            card.verify_cdcvm()
        atr = contactless_atr(card.profile.atr_historical)
        module = importlib.import_module(f"emvkit.terminal.emulator.{SERVERS[name]}")
        # nfcpy sets INFO on import; its warnings repeat our own errors: its messages only with -v
        logging.getLogger("nfc").setLevel(level if args.verbose else logging.CRITICAL)
        kept = f"state {state.shown}" if state is not None else "state in memory"

        def banner() -> None:  # once the target is open: a bad one is the only line
            print(f"emulating {card.profile.id} on {name} {target} ({kept}); stop with Ctrl-C", file=sys.stderr,
                  flush=True)

        if name == "vpcd":
            host, port = parse_host_port(target, "--vpcd")
            status: int = module.serve_forever(card, host, port, atr, ready=banner)
        elif name == "tcp":
            status = module.serve_tcp_forever(card, target, atr, ready=banner)
        else:
            status = module.serve_forever(card, target, atr, ready=banner)
        return status
    finally:
        if state is not None:
            state.close()


def _state_file(option: str | None, spec: str) -> StateFile | None:
    """The state file ``--state`` names: FILE, ``none`` (memory), or the default place for the card."""
    if option == "none":
        return None
    if option:
        return StateFile(option)
    return StateFile(default_state_path(spec), make_dir=True)


