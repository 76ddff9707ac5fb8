"""The ``emu:`` transport: the card application running in-process.

``emu:`` (the built-in Visa card), ``emu:visa``, ``emu:mastercard``,
``emu:unionpay``, ``emu:wearable`` or ``emu:path/to/card.json``, optionally
with faults: ``emu:visa?tear=3&sw=A8:6985&corrupt=90&latency=2`` (see
:mod:`emvkit.terminal.emulator.faults`), ``rng=counting`` for the pinned random
source, and ``cdcvm=1`` for a wearable whose on-device verification has just
succeeded.

The card's counters and log live in memory, from the profile's start each
time; ``state=FILE`` keeps them in FILE instead (see
:mod:`emvkit.terminal.emulator.state`): :meth:`EmulatorTransport.open` locks
and reads it, :meth:`~EmulatorTransport.close` releases it.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from emvkit.firmware.payapp.card import Card
from emvkit.firmware.payapp.rng import source
from emvkit.terminal.emulator.cards import DEFAULT_CARD, attach_state, open_card
from emvkit.terminal.emulator.faults import CardLike, FaultPlan, FaultyCard
from emvkit.terminal.emulator.state import StateFile
from emvkit.terminal.errors import CardRemoved, ConfigError
from emvkit.terminal.iso7816 import contactless_atr
from emvkit.terminal.transport.base import BaseTransport

__all__ = ["EmulatorTransport", "from_url"]


class EmulatorTransport(BaseTransport):
    def __init__(self, card: CardLike, faults: FaultPlan | None = None, url: str = "emu:",
                 historical: bytes = b"", state: StateFile | None = None) -> None:
        super().__init__()
        if state is not None and not isinstance(card, Card):
            raise TypeError("a state file needs the card application itself (a Card)")
        self.card = card
        self.state = state
        self.faults = faults or FaultPlan()
        self.url = url
        self._historical = historical
        self._wrapped: CardLike = card if self.faults.empty else FaultyCard(card, self.faults)

    def open(self) -> None:
        if self.state is not None and not self.is_open and isinstance(self.card, Card):
            attach_state(self.card, self.state)  # the counters as the file has them now
        power_on: Callable[[], None] | None = getattr(self.card, "power_on", None)
        if power_on is not None:
            power_on()
        self._atr = contactless_atr(self._historical)
        super().open()

    def close(self) -> None:
        if self.state is not None:
            self.state.close()
        super().close()

    def card_present(self) -> bool:
        return self.is_open and not getattr(self._wrapped, "torn", False)

    def _transmit(self, command: bytes) -> bytes:
        if getattr(self._wrapped, "torn", False):
            raise CardRemoved("card removed")
        return self._wrapped.process(command)


def from_url(url: str) -> EmulatorTransport:
    rest = url.split(":", 1)[1]
    spec, _, query = rest.partition("?")
    options = dict(parse_qsl(query))
    try:
        rng = source(options.pop("rng", None))
    except ValueError as exc:
        raise ConfigError(f"{url}: {exc}") from exc
    cdcvm = options.pop("cdcvm", None)
    state_path = options.pop("state", None)
    card = open_card(spec or DEFAULT_CARD, rng=rng)
    if cdcvm not in (None, "0"):
        card.verify_cdcvm()  # the wearable's on-device verification just succeeded
    historical = getattr(card.profile, "atr_historical", b"")
    state = StateFile(state_path) if state_path else None
    return EmulatorTransport(card, FaultPlan.from_query(urlencode(options)), url=url, historical=historical,
                             state=state)
