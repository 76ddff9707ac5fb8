"""The ``emvkit`` command line.

Each sub-command lives in its own module under ``emvkit.terminal.cli`` and exposes
``add_parser(subparsers)``, which registers the parser and sets ``func`` to a
callable taking the parsed arguments and returning the exit status. Errors
derived from :class:`emvkit.terminal.errors.EmvkitError` (and TLV errors) end the
program with status 2 and one line on stderr, never a traceback.

Options every command has are added here, in one place: ``-v``/``-vv`` (logging
to stderr at INFO/DEBUG; before or after the command's name). Shell completion
is argcomplete's: ``emvkit --completion bash`` prints the script to source.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from emvkit.firmware.tlv import TLVError
from emvkit.terminal import __version__
from emvkit.terminal.errors import EmvkitError

# Sub-command modules, in the order ``emvkit --help`` lists them.
COMMANDS = ["tap", "watch", "info", "trace", "readers", "decode", "perso", "emulate", "host", "crypto", "capk", "token"]


LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"
SHELLS = ("bash", "zsh", "fish", "tcsh", "powershell")


class _Completion(argparse.Action):
    """``--completion SHELL``: print the shell code that completes ``emvkit`` (argcomplete), then exit."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from argcomplete.shell_integration import shellcode

        print(shellcode(["emvkit"], shell=str(values)), end="")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emvkit", description="Contactless and wearable EMV payment toolkit."
    )
    parser.add_argument("--version", action="version", version=f"emvkit {__version__}")
    parser.add_argument("--completion", action=_Completion, choices=SHELLS, metavar="SHELL",
                        help=f"print the shell code that completes emvkit's commands and options ({', '.join(SHELLS)})")
    _add_verbose(parser, default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"emvkit.terminal.cli.{name}").add_parser(sub)
    for command in _parsers(parser):  # also after the command's name: emvkit tap -v
        if command is not parser:
            _add_verbose(command, default=argparse.SUPPRESS)  # SUPPRESS: does not reset a -v given before
    return parser


def _add_verbose(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="log to stderr what happens (-vv: also every APDU, masked; card data: use with care)")


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every (sub-)sub-command's parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                found += _parsers(child)
    return found


def setup_logging(level: int) -> None:
    """Log records of ``level`` and above to stderr. The level is the handler's too: a library that sets its own
    logger to INFO (nfcpy does on import) is not heard without -v."""
    root = logging.getLogger()
    root.setLevel(level)
    ours: list[logging.Handler] = [h for h in root.handlers if getattr(h, "emvkit", False)]
    if not ours and not root.handlers:  # (a host program's own handlers are left alone)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.emvkit = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        ours = [handler]
    for existing in ours:
        existing.setLevel(level)


def log_level(verbose: int) -> int:
    """``-v`` count -> logging level: warnings only, -v INFO, -vv DEBUG."""
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


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
    if "_ARGCOMPLETE" in os.environ:  # a shell asking for completions: answered and exited here
        import argcomplete

        argcomplete.autocomplete(parser)
    args, extras = parser.parse_known_args(argv)
    if extras:  # the sub-command's usage, not the top level's
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    setup_logging(log_level(args.verbose))
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
