"""``emvkit host``: the issuer host simulator on ISO 8583 over TCP, its log, its
key files and its secret."""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emvkit.terminal.cli.args import BadArgument
from emvkit.terminal.currency import MAX_AMOUNT_DIGITS
from emvkit.terminal.endpoints import check_port
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.authlog import PENDING, SYNCHRONOUS, UNCONFIRMED, AuthLog, LogEntry, is_postgres, scrub
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.rules import RESPONSE_CODES, SCRIPT_ACTIONS, Rules, ScriptRule, load_blocked
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.perso.builtin import builtin_names, load_builtin, read_profile
from emvkit.terminal.tlvdump import mask_pan

if TYPE_CHECKING:
    from emvkit.terminal.host.server import HostServer


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "host",
        help="run the issuer host simulator (ARQC, ARPC, ISO 8583 over TCP); build its key files",
        description="The issuer host simulator: verifies ARQCs, applies approval rules and the ATC replay "
        "window, answers with an ARPC, and logs every request in SQLite or PostgreSQL (masked PAN and keyed PAN "
        "hash only).",
    )
    commands = parser.add_subparsers(dest="host_command", metavar="ACTION")
    commands.required = True

    run_parser = commands.add_parser(
        "serve", help="serve ISO 8583 (2-byte length header) on TCP until SIGINT/SIGTERM",
        description="Serve authorisation requests (0100/0200) on TCP, each message preceded by a 2-byte "
        "big-endian length. Without --keys the host knows the built-in test cards.",
    )
    run_parser.add_argument("--listen", metavar="ADDRESS", default="127.0.0.1",
                            help="address to listen on (default 127.0.0.1)")
    # --host is the issuer URL everywhere else (tap, watch): here the old name of --listen, said to be so
    run_parser.add_argument("--host", dest="listen_deprecated", metavar="ADDRESS", help=argparse.SUPPRESS)
    run_parser.add_argument("--port", type=int, default=8583, help="TCP port (default 8583; 0 picks a free one)")
    run_parser.add_argument("--db", default="host.sqlite",
                            help="authorisation log: a SQLite file (default host.sqlite; one host per file) or a "
                            "postgresql:// URL (any number of hosts)")
    _secret_option(run_parser)
    run_parser.add_argument("--synchronous", choices=[m.lower() for m in SYNCHRONOUS], default="full",
                            help="SQLite durability: full (a committed answer survives power loss; the default) or "
                            "normal (it survives the process dying, not an OS crash; faster)")
    run_parser.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                            help="close a connection that sends nothing for this long (default 60)")
    run_parser.add_argument("--frame-timeout", type=float, default=10.0, metavar="SECONDS",
                            help="close a connection whose started message is not complete within this long "
                            "(default 10)")
    run_parser.add_argument("--max-connections", type=int, default=256, metavar="N",
                            help="refuse connections beyond N open ones (default 256)")
    run_parser.add_argument("--keys", type=Path, help="issuer key file (mode 0600; default: the built-in cards)")
    run_parser.add_argument("--max-amount", type=int, metavar="MINOR",
                            help="decline (61) amounts above this, in minor units")
    run_parser.add_argument("--velocity", metavar="N/SECONDS",
                            help="decline (65) a card's next request after N approvals in SECONDS")
    run_parser.add_argument("--atc-window", type=int, default=Rules.atc_window, metavar="W",
                            help=f"decline (63) an ATC more than W below the card's highest "
                            f"(default {Rules.atc_window})")
    run_parser.add_argument("--blocked", type=Path, metavar="FILE",
                            help="blocked PANs (62): one keyed PAN hash per line (emvkit host secret hash)")
    run_parser.add_argument("--script", action="append", default=[], metavar="ACTION:all|KEYED-PAN-HASH",
                            help="attach an issuer script to the answers for every card or one card (its keyed "
                            "hash, emvkit host secret hash): " + "; ".join(f"{a}: {w}" for a, w in
                                                                          SCRIPT_ACTIONS.items()))
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

    log_parser = commands.add_parser(
        "log", help="show the authorisation log: approvals, declines, reversals (masked PANs)",
        description="The newest rows of the authorisation log, oldest first. Reads beside a running host.",
    )
    log_parser.add_argument("--db", default="host.sqlite", help="the log: SQLite file or postgresql:// URL")
    log_parser.add_argument("--last", type=int, default=50, metavar="N", help="the newest N rows (default 50)")
    log_parser.set_defaults(func=run_log)

    secret_parser = commands.add_parser(
        "secret", help="the host secret of the keyed PAN hash: rotate it, hash PANs for a blocked list",
        description="The host secret (HMAC-SHA-256 keys, mode 0600) that the log, the blocked list and the "
        "velocity history find cards by.",
    )
    secret_parser.add_argument("secret_action", choices=["rotate", "hash"], metavar="rotate|hash",
                               help="rotate: add a new current key, keeping the old ones; hash: print the keyed "
                               "hash of each PAN read from standard input (one per line), for --blocked; the "
                               "secret is created when there is none yet")
    _secret_option(secret_parser)
    secret_parser.add_argument("--db", default="host.sqlite",
                               help="a SQLite log whose secret (DB.secret) to use (default host.sqlite)")
    secret_parser.set_defaults(func=run_secret)


def _secret_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret", type=Path, metavar="FILE",
                        help="host secret file (mode 0600; created on first start): the key of the keyed PAN "
                        "hash (default: DB.secret beside a SQLite log; required with PostgreSQL)")


def _secret_path(args: argparse.Namespace) -> Path:
    if args.secret is not None:
        return Path(args.secret)
    if is_postgres(args.db):
        raise BadArgument("--secret FILE is required with a PostgreSQL log (every host sharing it uses the same "
                          "secret file)")
    return Path(args.db + ".secret")


def _limits(args: argparse.Namespace) -> Any:
    from emvkit.terminal.host.server import ConnectionLimits

    for name in ("idle_timeout", "frame_timeout"):
        value = getattr(args, name)
        if not math.isfinite(value) or not 0 < value <= 86400:
            raise BadArgument(f"--{name.replace('_', '-')} must be more than 0 and at most 86400 seconds")
    if not 1 <= args.max_connections <= 65535:
        raise BadArgument("--max-connections must be 1..65535")
    return ConnectionLimits(args.idle_timeout, args.frame_timeout, args.max_connections)


def _velocity(text: str | None) -> tuple[int | None, float]:
    if text is None:
        return None, Rules.velocity_window_s
    count, sep, seconds = text.partition("/")
    try:
        n, window = int(count), float(seconds)
    except ValueError:
        n, window = 0, 0.0
    if not sep or n < 1 or not 0 < window <= 366 * 86400 or not (count + seconds).isascii():
        raise BadArgument(f"--velocity: expected N/SECONDS such as 3/60 (SECONDS at most a year), got {text!r}")
    return n, window


def rules_from_args(args: argparse.Namespace) -> Rules:
    count, window = _velocity(args.velocity)
    if args.max_amount is not None and not 0 <= args.max_amount <= 10**MAX_AMOUNT_DIGITS - 1:
        raise BadArgument(f"--max-amount: minor units, 0..{10**MAX_AMOUNT_DIGITS - 1} (the EMV amount is n 12)")
    if not 0 <= args.atc_window <= 0xFFFF:
        raise BadArgument("--atc-window must be 0..65535")
    blocked = load_blocked(args.blocked) if args.blocked else frozenset()
    scripts = tuple(ScriptRule.parse(text) for text in args.script)
    return Rules(max_amount=args.max_amount, blocked=blocked, velocity_count=count, velocity_window_s=window,
                 atc_window=args.atc_window, scripts=scripts)


def run_serve(args: argparse.Namespace) -> int:
    # pyemv and pyiso8583 load here, not when `emvkit` builds its parser.
    from emvkit.terminal.host.issuer import IssuerHost
    from emvkit.terminal.host.server import serve

    if args.listen_deprecated is not None:
        print("emvkit host serve: --host is deprecated here (it names the issuer URL in tap and watch); use "
              "--listen", file=sys.stderr)
        args.listen = args.listen_deprecated
    check_port(args.port, "--port", listen=True)
    limits = _limits(args)
    rules = rules_from_args(args)
    keys = IssuerKeys.load(args.keys) if args.keys else IssuerKeys.builtin()
    secret, created = HostSecret.open(_secret_path(args))
    log = AuthLog(args.db, secret, synchronous=args.synchronous)
    host = IssuerHost(keys, rules, log)
    which = str(args.keys) if args.keys else "the built-in test cards"
    where = _db_name(args.db) + ("" if log.shared else f", synchronous={args.synchronous.upper()}")
    made = " (created)" if created else ""

    def ready(server: HostServer) -> None:
        print(f"emvkit host: listening on {server.url} ({len(keys)} issuer keys from {which}; log {where}; "
              f"secret {secret.path}{made}); stop with Ctrl-C", flush=True)

    try:
        serve(host, args.listen, args.port, ready, limits)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.listen}:{args.port} ({exc.strerror or exc})") from None
    print("emvkit host: stopped", flush=True)
    return 0


def _db_name(db: str) -> str:
    """The log as it may be shown: a PostgreSQL URL without its password."""
    if not is_postgres(db):
        return db
    scheme, _, rest = db.partition("://")
    user_host = rest.rsplit("@", 1)
    if len(user_host) == 2:
        rest = user_host[0].split(":", 1)[0] + "@" + user_host[1]
    return f"{scheme}://{rest}"


_STATUS_WIDTH = 31


def _status(row: LogEntry) -> str:
    code = row.response_code
    if row.mti in ("0400", "0420"):
        return "reversal " + ("matched" if code == "00" else f"{code} {RESPONSE_CODES.get(code, '')}".strip())
    if code == "00":
        if row.reversed is not None:
            return "approved, reversed"
        return {PENDING: "approved, awaiting confirmation", UNCONFIRMED: "approved, unconfirmed"}.get(
            row.delivery or "", "approved")
    return f"declined {code} {RESPONSE_CODES.get(code, '')}".strip()


def run_log(args: argparse.Namespace) -> int:
    if args.last < 1:
        raise BadArgument("--last must be at least 1")
    with AuthLog(args.db, readonly=True) as log:
        rows = log.entries(last=args.last)
    print(f"{'time (UTC)':<19}  {'MTI':<4}  {'STAN':>6}  {'terminal':<8}  {'card':<19}  {'ATC':>5}  "
          f"{'amount':>12}  {'cur':<3}  {'status':<{_STATUS_WIDTH}}  reason")
    for row in rows:
        when = datetime.datetime.fromtimestamp(row.time, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{when:<19}  {row.mti or '-':<4}  {'-' if row.stan is None else row.stan:>6}  "
              f"{row.terminal_id or '-':<8}  {row.pan_masked or '-':<19}  {'-' if row.atc is None else row.atc:>5}  "
              f"{'-' if row.amount is None else row.amount:>12}  {row.currency or '-':<3}  "
              f"{_status(row):<{_STATUS_WIDTH}}  {scrub(row.reason)}")
    return 0


def run_secret(args: argparse.Namespace) -> int:
    path = _secret_path(args)
    if args.secret_action == "rotate":
        secret = HostSecret.load(path).rotate()
        print(f"host secret:      {path} (mode 0600; key {secret.current} is current, {len(secret.keys) - 1} "
              "older kept); restart every host that uses it")
        return 0
    secret, created = HostSecret.open(path)
    if created:  # a new host: the first `host serve` uses this secret
        print(f"host secret:      {path} (created, mode 0600)", file=sys.stderr)
    for n, line in enumerate(sys.stdin, 1):
        pan = line.strip()
        if not pan:
            continue
        if not pan.isdigit() or not 12 <= len(pan) <= 19:
            raise BadArgument(f"standard input line {n}: a PAN is 12 to 19 digits")
        print(f"{secret.pan_hash(pan)}  # {mask_pan(pan)}")
    return 0


def run_keys(args: argparse.Namespace) -> int:
    profiles = [read_profile(p) for p in args.from_profile]
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
