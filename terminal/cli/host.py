"""``emvkit host``: the issuer host simulator on ISO 8583 over TCP, and its key files."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emvkit.terminal.cli.args import BadArgument
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.authlog import AuthLog
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.rules import Rules, load_blocked
from emvkit.terminal.jsonfile import read_json
from emvkit.terminal.perso.builtin import builtin_names, load_builtin
from emvkit.terminal.tlvdump import mask_pan

if TYPE_CHECKING:
    from emvkit.terminal.host.server import HostServer


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "host",
        help="run the issuer host simulator (ARQC, ARPC, ISO 8583 over TCP); build its key files",
        description="The issuer host simulator: verifies ARQCs, applies approval rules and the ATC replay "
        "window, answers with an ARPC, and logs every request in SQLite (masked PAN and PAN hash only).",
    )
    commands = parser.add_subparsers(dest="host_command", metavar="ACTION")
    commands.required = True

    run_parser = commands.add_parser(
        "serve", help="serve ISO 8583 (2-byte length header) on TCP until SIGINT/SIGTERM",
        description="Serve authorisation requests (0100/0200) on TCP, each message preceded by a 2-byte "
        "big-endian length. Without --keys the host knows the built-in test cards.",
    )
    run_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    run_parser.add_argument("--port", type=int, default=8583, help="TCP port (default 8583; 0 picks a free one)")
    run_parser.add_argument("--db", default="host.sqlite", help="authorisation log file (default host.sqlite)")
    run_parser.add_argument("--keys", type=Path, help="issuer key file (mode 0600; default: the built-in cards)")
    run_parser.add_argument("--max-amount", type=int, metavar="MINOR",
                            help="decline (61) amounts above this, in minor units")
    run_parser.add_argument("--velocity", metavar="N/SECONDS",
                            help="decline (65) a card's next request after N approvals in SECONDS")
    run_parser.add_argument("--atc-window", type=int, default=Rules.atc_window, metavar="W",
                            help=f"decline (63) an ATC more than W below the card's highest "
                            f"(default {Rules.atc_window})")
    run_parser.add_argument("--blocked", type=Path, metavar="FILE",
                            help="blocked PANs (62): one SHA-256 of the PAN digits per line")
    run_parser.add_argument("-v", "--verbose", action="store_true", help="log connections and every decision")
    run_parser.set_defaults(func=run_serve)

    keys_parser = commands.add_parser(
        "keys", help="write an issuer key file from card profiles (mode 0600)",
        description="Collect the issuer master keys (secrets.imk_ac) of card profiles made by emvkit perso "
        "into a key file for `emvkit host serve --keys`. Each card gets an entry for its whole PAN.",
    )
    keys_parser.add_argument("--from-profile", type=Path, action="append", default=[], metavar="PROFILE.json",
                             help="a card profile with secrets (repeatable)")
    keys_parser.add_argument("--builtin", action="store_true", help="also include the built-in test cards")
    keys_parser.add_argument("--out", type=Path, required=True, help="key file to write (mode 0600)")
    keys_parser.set_defaults(func=run_keys)


def _velocity(text: str | None) -> tuple[int | None, float]:
    if text is None:
        return None, Rules.velocity_window_s
    count, sep, seconds = text.partition("/")
    try:
        n, window = int(count), float(seconds)
    except ValueError:
        n, window = 0, 0.0
    if not sep or n < 1 or window <= 0:
        raise BadArgument(f"--velocity: expected N/SECONDS such as 3/60, got {text!r}")
    return n, window


def rules_from_args(args: argparse.Namespace) -> Rules:
    count, window = _velocity(args.velocity)
    if args.max_amount is not None and args.max_amount < 0:
        raise BadArgument("--max-amount must not be negative")
    if not 0 <= args.atc_window <= 0xFFFF:
        raise BadArgument("--atc-window must be 0..65535")
    blocked = load_blocked(args.blocked) if args.blocked else frozenset()
    return Rules(max_amount=args.max_amount, blocked=blocked, velocity_count=count, velocity_window_s=window,
                 atc_window=args.atc_window)


def run_serve(args: argparse.Namespace) -> int:
    # pyemv and pyiso8583 load here, not when `emvkit` builds its parser.
    from emvkit.terminal.host.issuer import IssuerHost
    from emvkit.terminal.host.server import serve

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    rules = rules_from_args(args)
    keys = IssuerKeys.load(args.keys) if args.keys else IssuerKeys.builtin()
    host = IssuerHost(keys, rules, AuthLog(args.db))
    which = str(args.keys) if args.keys else "the built-in test cards"

    def ready(server: HostServer) -> None:
        print(f"emvkit host: listening on {server.url} ({len(keys)} issuer keys from {which}; log {args.db}); "
              "stop with Ctrl-C", flush=True)

    try:
        serve(host, args.host, args.port, ready)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    print("emvkit host: stopped", flush=True)
    return 0


def _read_profile(path: Path) -> dict[str, Any]:
    doc = read_json(path, "profile")
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a card profile")
    return doc


def run_keys(args: argparse.Namespace) -> int:
    profiles = [_read_profile(p) for p in args.from_profile]
    if args.builtin:
        profiles += [load_builtin(name) for name in builtin_names()]
    if not profiles:
        raise BadArgument("give at least one --from-profile, or --builtin")
    keys = IssuerKeys.from_profiles(profiles)
    keys.save(args.out)
    print(f"issuer keys:      {args.out} (mode 0600; {len(keys)} keys)")
    for key in keys:
        print(f"  {mask_pan(key.bin_prefix) if len(key.bin_prefix) > 10 else key.bin_prefix:<19}  "
              f"{key.scheme:<10}  {key.cryptogram_version:<10}  option {key.derivation}  DKI {key.dki:02X}")
    return 0
