"""What every card server shares: answering a C-APDU without ever letting the
card's faults reach the link, calling the card's optional power hooks, a stop
that is seen within one poll interval, and running in the foreground until
SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from emvkit.terminal.iso7816 import NO_PRECISE_DIAGNOSIS

__all__ = ["NO_PRECISE_DIAGNOSIS", "Stoppable", "answer", "call_hook", "run_until_signalled"]

log = logging.getLogger("emvkit.emulator")


class Card(Protocol):
    def process(self, command_apdu: bytes) -> bytes: ...


def answer(card: Card, command: bytes, logger: logging.Logger, max_length: int = 0xFFFF,
           passthrough: tuple[type[BaseException], ...] = ()) -> bytes | None:
    """The card's R-APDU, or None (logged) when the card raised or answered
    something that is not an R-APDU: the server then answers
    :data:`NO_PRECISE_DIAGNOSIS`. Exceptions in ``passthrough`` (a server that
    models card removal) are raised. APDU bodies are logged at DEBUG only."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("C-APDU %s", command.hex(" ").upper())
    try:
        response = bytes(card.process(command))
    except passthrough:
        raise
    except Exception:
        logger.exception("card raised while processing a %d-byte C-APDU; answering 6F00", len(command))
        return None
    if not 2 <= len(response) <= max_length:
        logger.error("card returned a %d-byte R-APDU; answering 6F00", len(response))
        return None
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("R-APDU %s", response.hex(" ").upper())
    return response


def call_hook(card: object, name: str, logger: logging.Logger) -> None:
    """Call the card's optional ``power_on``/``reset``/``power_off``; a fault is logged, not raised."""
    hook = getattr(card, name, None)
    if hook is None:
        return
    try:
        hook()
    except Exception:
        logger.exception("card %s() raised", name)


class Stoppable:
    """A server loop stopped by :meth:`close` (``_closing``) or an external
    ``stop`` event (``_stop``), checked at least every ``poll_interval``."""

    poll_interval: float
    _closing: threading.Event
    _stop: threading.Event | None

    def _stopping(self) -> bool:
        return self._closing.is_set() or (self._stop is not None and self._stop.is_set())

    def _sleep(self, seconds: float) -> None:
        # Wait on the internal event in slices so that an external stop is seen too.
        deadline = time.monotonic() + seconds
        while not self._stopping():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._closing.wait(min(remaining, self.poll_interval))


def run_until_signalled(run: Callable[[threading.Event], None]) -> int:
    """Call ``run(stop)`` until it returns; SIGINT or SIGTERM sets ``stop``.

    Signal handlers are installed only in the main thread, and the previous
    handlers are restored on return. Returns exit status 0.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous: dict[signal.Signals, Callable[[int, FrameType | None], object] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        run(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
