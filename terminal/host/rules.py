"""The issuer's approval rules and the response codes it answers with.

Response codes (DE 39, ISO 8583:1987 values; the ARC in tag 8A is the same
two characters in ASCII):

====  ==========================  ===============================================
code  meaning                     when the simulator answers it
====  ==========================  ===============================================
00    approved                    every check passed
05    do not honour               the ARQC (9F26) does not verify
12    invalid transaction         the card did not ask to go online (CID not ARQC)
13    invalid amount              DE 4 / DE 49 differ from the signed 9F02 / 5F2A
15    no such issuer              no issuer key covers the PAN
30    format error                malformed message, missing or bad DE / DE 55 tag
61    exceeds amount limit        the amount is above the per-transaction limit
62    restricted card             the PAN is on the blocked list
25    unable to locate record     a reversal of an authorisation the log does not hold
63    security violation          ATC replayed, or more than W behind the highest
65    exceeds frequency limit     more than N approvals for the PAN in T seconds
96    system malfunction          a fault in the host itself (never a crash)
====  ==========================  ===============================================

The checks run in this order: format, issuer key, CID, ARQC, ATC window,
amount/currency consistency, blocked PAN, amount limit, velocity. Blocked
PANs are held as their keyed hash (HMAC-SHA-256 under the host secret,
:mod:`emvkit.terminal.host.secret`; ``emvkit host secret hash`` prints it),
never as the PAN or an unkeyed hash.

Issuer scripts (:class:`ScriptRule`): the rules can also attach issuer
scripts to the answer for a card (by keyed PAN hash) or for every card:
``reset-counters`` (PUT DATA of the card's offline counters to zero, template
72), ``block`` (APPLICATION BLOCK, template 71: the card blocks itself before
the final GENERATE AC) and ``unblock`` (APPLICATION UNBLOCK, template 72).
They go with every answer whose ARQC verified, approved or declined; the
host builds and MACs them (:mod:`emvkit.terminal.host.issuer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.jsonfile import read_text

__all__ = [
    "APPROVED",
    "DO_NOT_HONOUR",
    "EXCEEDS_AMOUNT_LIMIT",
    "EXCEEDS_FREQUENCY_LIMIT",
    "FORMAT_ERROR",
    "INVALID_AMOUNT",
    "INVALID_TRANSACTION",
    "NO_SUCH_ISSUER",
    "RESPONSE_CODES",
    "RESTRICTED_CARD",
    "SCRIPT_ACTIONS",
    "SECURITY_VIOLATION",
    "SYSTEM_MALFUNCTION",
    "UNABLE_TO_LOCATE",
    "Decision",
    "Rules",
    "ScriptRule",
    "load_blocked",
]

APPROVED: Final = "00"
DO_NOT_HONOUR: Final = "05"
INVALID_TRANSACTION: Final = "12"
INVALID_AMOUNT: Final = "13"
NO_SUCH_ISSUER: Final = "15"
UNABLE_TO_LOCATE: Final = "25"
FORMAT_ERROR: Final = "30"
EXCEEDS_AMOUNT_LIMIT: Final = "61"
RESTRICTED_CARD: Final = "62"
SECURITY_VIOLATION: Final = "63"
EXCEEDS_FREQUENCY_LIMIT: Final = "65"
SYSTEM_MALFUNCTION: Final = "96"

RESPONSE_CODES: Final = {
    APPROVED: "approved",
    DO_NOT_HONOUR: "do not honour",
    INVALID_TRANSACTION: "invalid transaction",
    INVALID_AMOUNT: "invalid amount",
    NO_SUCH_ISSUER: "no such issuer",
    UNABLE_TO_LOCATE: "unable to locate record",
    FORMAT_ERROR: "format error",
    EXCEEDS_AMOUNT_LIMIT: "exceeds withdrawal amount limit",
    RESTRICTED_CARD: "restricted card",
    SECURITY_VIOLATION: "security violation",
    EXCEEDS_FREQUENCY_LIMIT: "exceeds withdrawal frequency limit",
    SYSTEM_MALFUNCTION: "system malfunction",
}


# Script action -> what it does, for help texts.
SCRIPT_ACTIONS: Final = {
    "reset-counters": "reset the card's offline counters (PUT DATA, template 72)",
    "block": "block the application (APPLICATION BLOCK, template 71)",
    "unblock": "unblock the application (APPLICATION UNBLOCK, template 72)",
}


@dataclass(frozen=True)
class ScriptRule:
    """Attach the script ``action`` to the answers for ``target``: a keyed PAN
    hash (64 hex digits, ``emvkit host secret hash``) or ``all``."""

    action: str
    target: str = "all"

    def __post_init__(self) -> None:
        if self.action not in SCRIPT_ACTIONS:
            raise ConfigError(f"unknown script action {self.action!r} (one of {', '.join(SCRIPT_ACTIONS)})")
        if self.target != "all":
            _check_hash(self.target)

    @classmethod
    def parse(cls, text: str) -> ScriptRule:
        """``ACTION:TARGET`` as the CLI takes it; TARGET is ``all`` or a keyed PAN hash."""
        action, sep, target = text.partition(":")
        if not sep or not target:
            raise ConfigError(f"--script {text!r}: expected ACTION:all or ACTION:KEYED-PAN-HASH "
                              f"(actions: {', '.join(SCRIPT_ACTIONS)})")
        return cls(action.strip().lower(), target.strip().lower())


@dataclass(frozen=True)
class Decision:
    response_code: str
    reason: str


@dataclass(frozen=True)
class Rules:
    """Issuer approval policy. None disables a limit."""

    max_amount: int | None = None  # per transaction, minor units (DE 4)
    blocked: frozenset[str] = frozenset()  # keyed hashes (HMAC-SHA-256 hex) of blocked PANs
    velocity_count: int | None = None  # at most this many approvals per PAN ...
    velocity_window_s: float = 86400.0  # ... in this many seconds
    atc_window: int = 32  # W: an ATC more than W below the highest seen is declined
    scripts: tuple[ScriptRule, ...] = ()  # issuer scripts to attach, in this order

    def __post_init__(self) -> None:
        if self.max_amount is not None and self.max_amount < 0:
            raise ConfigError("the amount limit must not be negative")
        if self.velocity_count is not None and self.velocity_count < 1:
            raise ConfigError("the velocity limit must allow at least 1 approval")
        if self.velocity_window_s <= 0:
            raise ConfigError("the velocity window must be positive")
        if not 0 <= self.atc_window <= 0xFFFF:
            raise ConfigError("the ATC window must be 0..65535")
        for h in self.blocked:
            _check_hash(h)

    def blocking(self, secret: HostSecret, *pans: str) -> Rules:
        """These rules with ``pans`` added to the blocked list (hashed here
        under the secret's current key)."""
        return replace(self, blocked=self.blocked | {secret.pan_hash(p) for p in pans})

    def scripting(self, secret: HostSecret, action: str, *pans: str) -> Rules:
        """These rules with the script ``action`` for ``pans`` (hashed here),
        or for every card when no PAN is given."""
        added = tuple(ScriptRule(action, secret.pan_hash(p)) for p in pans) or (ScriptRule(action),)
        return replace(self, scripts=self.scripts + added)

    def script_actions(self, pan_hashes: Sequence[str]) -> list[str]:
        """The script actions for a card, in rule order, each once."""
        out: list[str] = []
        for rule in self.scripts:
            if (rule.target == "all" or rule.target in pan_hashes) and rule.action not in out:
                out.append(rule.action)
        return out

    def check(self, pan_hashes: Sequence[str], amount: int, recent_approvals: int) -> Decision | None:
        """The decline the rules call for, or None to approve. ``pan_hashes``:
        the PAN's keyed hash under each host secret key (an entry of the
        blocked list made before a key rotation still matches);
        ``recent_approvals``: approvals for the PAN in the velocity window."""
        if any(h in self.blocked for h in pan_hashes):
            return Decision(RESTRICTED_CARD, "the card is blocked")
        if self.max_amount is not None and amount > self.max_amount:
            return Decision(EXCEEDS_AMOUNT_LIMIT, f"amount {amount} is above the limit of {self.max_amount}")
        if self.velocity_count is not None and recent_approvals >= self.velocity_count:
            return Decision(EXCEEDS_FREQUENCY_LIMIT, f"{recent_approvals} approvals in the last "
                            f"{self.velocity_window_s:g} s (limit {self.velocity_count})")
        return None


def _check_hash(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError("a blocked PAN is given as its keyed hash (emvkit host secret hash): 64 hex digits")
    return text


def load_blocked(path: str | Path) -> frozenset[str]:
    """A blocked-PAN file: one keyed PAN hash (hex) per line; blank lines
    and ``#`` comments are ignored."""
    lines = read_text(path, "blocked-PAN file").splitlines()  # bounded, as every user file
    out = set()
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip().lower()
        if text:
            try:
                out.add(_check_hash(text))
            except ConfigError as exc:
                raise ConfigError(f"{path}:{n}: {exc}") from None
    return frozenset(out)
