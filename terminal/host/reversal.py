"""Reversals: the terminal undoing an authorisation it could not use.

A terminal sends a reversal (ISO 8583:1987 MTI 0400; 0420, the reversal
advice, when it repeats one) when it sent a request and did not get or could
not use the answer (no answer in time, the link broke, an answer that does not
decode or is for another STAN), or when the issuer approved and the card then
declined (its second GENERATE AC returned an AAC). The issuer may have
approved and logged what the terminal never completed; the reversal
reconciles it.

The host finds the authorisation by the row's unique key: the card (keyed
PAN hash of DE 2, PSN of DE 23) and its ATC (9F36 in DE 55); the original STAN
(DE 90) and terminal id (DE 41) must agree with the row. A match that is an
approval is marked reversed (answer ``00``; again ``00`` for a repeat, so
the terminal can stop repeating); no match is answered ``25`` (unable to
locate record). Every reversal is logged as a row of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from emvkit.terminal.host.api import AuthorisationRequest

__all__ = ["REVERSAL", "REVERSAL_ADVICE", "Reversal"]

REVERSAL = "0400"
REVERSAL_ADVICE = "0420"


@dataclass(frozen=True)
class Reversal:
    """An 0400/0420 message: the original request's identity and why."""

    original: AuthorisationRequest  # as sent: its MTI, STAN, PAN, PSN, amount, currency, DE 55 (the ATC)
    transmitted: str  # the original's DE 7, MMDDhhmmss UTC
    reason: str  # for people: "no answer within 5 s", "the card declined after the approval"
    mti: str = REVERSAL
    stan: int = 0  # DE 11 of the reversal itself

    @property
    def atc(self) -> int | None:
        value = self.original.icc_data.get(0x9F36)
        return int.from_bytes(value, "big") if value is not None and len(value) == 2 else None

    def repeated(self, stan: int) -> Reversal:
        """The same reversal sent again: a reversal advice with a new STAN."""
        return Reversal(self.original, self.transmitted, self.reason, REVERSAL_ADVICE, stan)
