"""A front-end driver polled in a thread against its simulated chip: the chip on an in-memory link, its RF
side on nfcpy's udp driver, so that ``open_transport(chain.url)`` taps the card behind the driver.

One harness for the PN532 and the NCI drivers (tests/test_pn532.py, tests/test_nci.py): what differs is how
the driver, the link and the simulator are made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from emvkit.terminal.token.front_end import free_udp_path


class DriverChain:
    """``link`` (a chip simulator's MemoryLink: ``chip``, ``wait(s)``), the driver ``make_driver(card_of)``
    makes, and the simulator ``make_simulator(chip, udp_path)`` makes; ``card`` may be swapped while it runs."""

    def __init__(self, link: Any, card: Any, make_driver: Callable[[Callable[[], Any]], Any],
                 make_simulator: Callable[[Any, str], Any], name: str) -> None:
        self.link = link
        self.card = card
        self.driver = make_driver(lambda: self.card)
        self.url = f"nfc:{free_udp_path()}"
        self.simulator = make_simulator(link.chip, self.url[4:])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.driver.poll():
                self.link.wait(0.002)

    def start(self) -> DriverChain:
        self.simulator.start()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.simulator.close()
        assert not self._thread.is_alive() and not self.simulator.running


def started(make: Callable[..., DriverChain]) -> Iterator[Callable[..., DriverChain]]:
    """A fixture's body: ``make(...)`` started, each one closed at the end of the test."""
    made: list[DriverChain] = []

    def start(*args: Any) -> DriverChain:
        made.append(make(*args).start())
        return made[-1]

    yield start
    for chain in made:
        chain.close()
