"""Colour for people: outcome lines in green, red or yellow on a terminal.

Colour only when the stream is a TTY and ``NO_COLOR`` is unset or empty (the
no-color.org convention); piped output and ``--json`` never carry escape codes.
"""

from __future__ import annotations

import os
from typing import TextIO

from emvkit.terminal.kernel.outcome import Outcome

__all__ = ["colour_outcome", "use_colour"]

_GREEN, _RED, _YELLOW, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[0m"
_COLOURS = {Outcome.APPROVED: _GREEN, Outcome.DECLINED: _RED}
_OUTCOME_LINE = "OUTCOME:"


def use_colour(stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``: a TTY, and no non-empty ``NO_COLOR``."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def colour_outcome(report: str, outcome: Outcome) -> str:
    """The report with its ``OUTCOME:`` line coloured: approved green, declined red, any other yellow."""
    colour = _COLOURS.get(outcome, _YELLOW)
    return "\n".join(f"{colour}{line}{_RESET}" if line.startswith(_OUTCOME_LINE) else line
                     for line in report.split("\n"))
