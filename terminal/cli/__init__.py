"""The ``emvkit`` command line.

Each sub-command lives in its own module under ``emvkit.terminal.cli`` and exposes
``add_parser(subparsers)``, which registers the parser and sets ``func`` to a
callable taking the parsed arguments and returning the exit status. Errors
derived from :class:`emvkit.terminal.errors.EmvkitError` (and TLV errors) end the
program with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from emvkit.firmware.tlv import TLVError
from emvkit.terminal import __version__
from emvkit.terminal.errors import EmvkitError

# Sub-command modules, in the order ``emvkit --help`` lists them.
COMMANDS = ["tap", "watch", "info", "trace", "readers", "decode", "perso", "emulate", "host", "crypto", "capk", "token"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emvkit", description="Contactless and wearable EMV payment toolkit."
    )
    parser.add_argument("--version", action="version", version=f"emvkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"emvkit.terminal.cli.{name}").add_parser(sub)
    return parser


def _name(args: argparse.Namespace) -> str:
    """The command as error lines name it: ``command_name`` when set ("token provision"), else the command."""
    name: str = getattr(args, "command_name", None) or args.command
    return name


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub-)sub-command ``args`` chose (``emvkit host serve``: serve's)."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs and subs[0].dest != argparse.SUPPRESS else None
        if not subs or chosen not in subs[0].choices:
            return parser
        parser = subs[0].choices[chosen]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # the sub-command's usage, not the top level's
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        status: int = args.func(args)
    except (EmvkitError, TLVError) as exc:
        print(f"emvkit {_name(args)}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emvkit {_name(args)}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
