"""Argument parsing shared by the sub-commands."""

from __future__ import annotations

import re

from emvkit.terminal.errors import EmvkitError

__all__ = ["BadArgument", "parse_hex"]

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
