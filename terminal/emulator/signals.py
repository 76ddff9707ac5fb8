"""Running a card server in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["run_until_signalled"]

log = logging.getLogger("emvkit.emulator")


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
