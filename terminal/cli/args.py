"""Argument parsing shared by the sub-commands."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.kernel.context import TRANSACTION_TYPES
from emvkit.terminal.session import Order

__all__ = ["BadArgument", "add_transaction_options", "order_of", "parse_hex"]

_SEPARATORS = re.compile(r"[\s:]+")


class BadArgument(EmvkitError):
    """A command-line value that cannot be used."""


def parse_hex(text: str, what: str = "input") -> bytes:
    """Hex digits, optionally separated by spaces, newlines or colons."""
    compact = _SEPARATORS.sub("", text)
    if compact[:2].lower() == "0x":
        compact = compact[2:]
    for i, ch in enumerate(compact):
        if ch not in "0123456789abcdefABCDEF":
            raise BadArgument(f"{what}: character {ch!r} at hex digit {i} is not hex")
    if len(compact) % 2:
        raise BadArgument(f"{what}: odd number of hex digits ({len(compact)})")
    return bytes.fromhex(compact)


def add_transaction_options(parser: argparse.ArgumentParser) -> None:
    """What the merchant asks for, the terminal and its issuer: shared by tap and watch."""
    parser.add_argument("--amount", default="12.34", help="amount, e.g. 12.34 (default 12.34)")
    parser.add_argument("--other-amount", default="0", help="cashback amount (default 0)")
    parser.add_argument("--currency", help="ISO 4217 code or number (default: the terminal's)")
    parser.add_argument("--type", choices=sorted(TRANSACTION_TYPES), default="purchase")
    parser.add_argument("--config", type=Path, help="terminal configuration (TOML); default: built-in")
    parser.add_argument("--date", help="transaction date YYYY-MM-DD (default today)")
    parser.add_argument("--reveal", action="store_true", help="show the full PAN")
    parser.add_argument("--host", metavar="URL",
                        help="where Online Requests are authorised: builtin (the issuer host simulator in-process, "
                        "knowing the built-in cards and the tapped profile; the default), tcp://HOST:PORT "
                        "(emvkit host serve), or none (stop at Online Request)")


def order_of(args: argparse.Namespace) -> Order:
    """The order the options of :func:`add_transaction_options` describe."""
    return Order(amount=args.amount, other_amount=args.other_amount, currency=args.currency, type=args.type,
                 date=args.date)
