"""The RF side of a simulated front-end chip: emvkit's Type 4A card engine on nfcpy's ``udp`` driver.

A chip simulator (:class:`RfChip`) says when it listens and with what
(SENS_RES, SEL_RES, UID, ATS historical bytes); :class:`ChipRf` answers a
reader only then, with those, runs RATS/ATS and the ISO-DEP blocks
(:class:`emvkit.terminal.emulator.isodep.IsoDepCard` under
:class:`emvkit.terminal.emulator.nfc_listener.NfcListener`), and passes each
C-APDU to the chip, which passes it to its host and returns the host's
R-APDU. :class:`RfSimulator` runs it in a thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Protocol

from emvkit.terminal.emulator.isodep import IsoDepCard
from emvkit.terminal.emulator.nfc_listener import NfcListener
from emvkit.terminal.iso14443 import FRAME_SIZES

__all__ = ["ChipRf", "Listening", "RfChip", "RfSimulator"]

log = logging.getLogger("emvkit.chipsim.rf")


class Listening(Protocol):
    sens_res: bytes
    sel_res: int
    uid: bytes
    historical: bytes


class RfChip(Protocol):
    """What the RF side needs of a chip simulator."""

    def wait_listening(self, timeout: float) -> Listening | None: ...

    def rf_activate(self, rats: bytes) -> bool: ...

    def rf_command(self, apdu: bytes) -> bytes: ...

    def rf_released(self) -> None: ...


class _ChipCard:
    """The card the RF engine sees: every C-APDU goes through the chip to its host."""

    def __init__(self, chip: RfChip) -> None:
        self.chip = chip

    def process(self, command_apdu: bytes) -> bytes:
        return self.chip.rf_command(command_apdu)

    def power_off(self) -> None:
        self.chip.rf_released()


class ChipRf(NfcListener):
    """NfcListener that listens only while the chip listens, as the chip says, and reports RATS to it."""

    def __init__(self, chip: RfChip, target: str, fsci: int, fwi: int, **kwargs: Any) -> None:
        super().__init__(_ChipCard(chip), target, **kwargs)
        self.chip = chip
        self.fsci = fsci
        self.fwi = fwi
        self.listening: Listening | None = None

    def _local_target(self) -> Any:
        listening = None
        while listening is None and not self._stopping():
            listening = self.chip.wait_listening(self.poll_interval)
        if listening is not None:
            self.listening = listening
            self.uid = listening.uid
            self.config = dataclasses.replace(self.config, fsci=self.fsci, fwi=self.fwi,
                                              historical=listening.historical[:15])
        target = super()._local_target()
        if listening is not None:
            target.sens_res = bytearray(listening.sens_res)
            target.sel_res = bytearray((listening.sel_res,))
        return target

    def _activated(self, engine: IsoDepCard | None = None) -> bool:
        fsdi = FRAME_SIZES.index(engine.fsd) if engine is not None and engine.fsd in FRAME_SIZES else 8
        cid = engine.cid if engine is not None else 0
        if not self.chip.rf_activate(bytes((0xE0, fsdi << 4 | cid))):
            log.info("activated, but the chip no longer listens")
        return super()._activated(engine)


class RfSimulator:
    """A :class:`ChipRf` in a thread: start(), running, error, close()."""

    def __init__(self, listener: ChipRf, name: str = "chip-rf") -> None:
        self.listener = listener
        self.chip = listener.chip
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.listener.run()
        except BaseException as exc:  # reported by running/error, never lost
            self.error = exc
            if self.listener._listening.is_set():  # before that, start() raises it to its caller: said once
                log.error("the RF side stopped: %s", exc)

    def start(self, timeout: float = 5.0) -> None:
        """Start the RF side; returns once nfcpy has opened the udp device."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.listener._listening.wait(0.01):
            if self.error is not None or not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the simulated chip's RF side did not start: {self.error}")

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self.listener.close()
        self.chip.rf_released()
        if self._thread.is_alive():
            self._thread.join(3.0)
