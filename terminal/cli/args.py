"""Argument parsing shared by the sub-commands."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.kernel.context import TRANSACTION_TYPES
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Order

__all__ = ["BadArgument", "add_transaction_options", "expected_outcomes", "given_order", "order_of", "outcome_key",
           "parse_hex"]

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
    # None when not given: a replayed trace's own order is used, and a given one that differs is reported
    parser.add_argument("--amount", help="amount, e.g. 12.34 (default 12.34)")
    parser.add_argument("--other-amount", help="cashback amount (default 0)")
    parser.add_argument("--currency", help="ISO 4217 code or number (default: the terminal's)")
    parser.add_argument("--type", choices=sorted(TRANSACTION_TYPES), help="transaction type (default purchase)")
    parser.add_argument("--config", type=Path, help="terminal configuration (TOML); default: built-in")
    parser.add_argument("--date", help="transaction date YYYY-MM-DD (default today)")
    parser.add_argument("--reveal", action="store_true", help="show the full PAN")
    parser.add_argument("--host", metavar="URL",
                        help="where Online Requests are authorised: builtin (the issuer host simulator in-process, "
                        "knowing the built-in cards and the tapped profile; the default), tcp://HOST:PORT "
                        "(emvkit host serve), or none (stop at Online Request)")
    parser.add_argument("--expect", metavar="OUTCOME[,OUTCOME]",
                        help="exit status 0 only if the outcome is one of these, 1 otherwise (for CI): "
                        + ", ".join(outcome_key(o.value) for o in Outcome) + "; any case, spaces or hyphens")
    parser.add_argument("--apdu", action="store_true",
                        help="print each C-APDU and R-APDU in hex as it happens (PAN and track data masked "
                        "unless --reveal)")


def order_of(args: argparse.Namespace) -> Order:
    """The order the options of :func:`add_transaction_options` describe (Order's defaults where not given)."""
    return Order(**given_order(args))


def given_order(args: argparse.Namespace) -> dict[str, str]:
    """The order options given on the command line (amount, other_amount, currency, type, date), by Order field."""
    keys = ("amount", "other_amount", "currency", "type", "date")
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


def outcome_key(name: str) -> str:
    """An outcome name as ``--expect`` compares it: lower case, hyphens for spaces and underscores."""
    return "-".join(name.lower().replace("_", " ").replace("-", " ").split())


def expected_outcomes(text: str | None) -> frozenset[Outcome] | None:
    """``--expect``'s outcomes (names as ``--json`` prints them: ``approved,online request``), None when not
    given; an unknown name is a :class:`BadArgument` listing the names."""
    if text is None:
        return None
    names = {outcome_key(o.value): o for o in Outcome}
    chosen = set()
    for word in text.split(","):
        outcome = names.get(outcome_key(word))
        if outcome is None:
            raise BadArgument(f"--expect: unknown outcome {word.strip()!r}; one of {', '.join(names)}")
        chosen.add(outcome)
    return frozenset(chosen)
