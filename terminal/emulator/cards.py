"""Loading card profiles (built-in or from a file) into a running card."""

from __future__ import annotations

from collections.abc import Callable

from emvkit.firmware.payapp.card import Card
from emvkit.firmware.payapp.profile import ProfileError
from emvkit.firmware.payapp.state import CardState
from emvkit.terminal.emulator.state import StateFile
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.perso.builtin import DEFAULT_CARD, load_profile

__all__ = ["DEFAULT_CARD", "attach_state", "load_profile", "open_card"]

def open_card(
    spec: str,
    rng: Callable[[int], bytes] | None = None,
    clock: Callable[[], float] | None = None,
    state: StateFile | None = None,
) -> Card:
    """A running card application for a profile spec.

    Its counters and log live in memory, or in ``state`` (opened here: locked
    and read; the caller closes it).
    """
    doc = load_profile(spec)
    try:
        card = Card(doc, rng=rng, clock=clock)
    except ProfileError as exc:
        raise ConfigError(f"{spec}: {exc}") from exc
    if state is not None:
        attach_state(card, state)
    return card


def attach_state(card: Card, state: StateFile) -> None:
    """Open ``state`` (lock and read it) and make it the card's store; a fresh file starts from the profile."""
    card.store = state.open(CardState.from_dict(card.profile.initial_state))
