"""Loading card profiles (built-in or from a file) into a running card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from emvkit.firmware.payapp.card import Card
from emvkit.firmware.payapp.profile import ProfileError
from emvkit.firmware.payapp.state import CardState
from emvkit.terminal.emulator.state import StateFile
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.jsonfile import read_json
from emvkit.terminal.perso.builtin import builtin_names, load_builtin

__all__ = ["attach_state", "load_profile", "open_card"]

DEFAULT_CARD = "visa"


def load_profile(spec: str) -> dict[str, Any]:
    """A profile document: a built-in name (``visa``) or a JSON file path."""
    spec = spec or DEFAULT_CARD
    if spec in builtin_names():
        return load_builtin(spec)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"{spec}: neither a built-in card ({', '.join(builtin_names())}) nor a profile file")
    doc = read_json(path, "profile")
    if not isinstance(doc, dict):
        raise ConfigError(f"{spec}: a profile is a JSON object")
    return doc


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
