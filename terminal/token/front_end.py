"""The token's NFC front end on a QEMU board: the chip, simulated on the host, on the board's second UART.

::

    with QemuToken(image, "qemu_m3", args={"frontend": "pn532"}, nfc_uart=True) as token:
        front = start_front_end("pn532", token.nfc_pty)   # before boot: the driver wakes the chip at once
        token.boot()
        ...  # tap nfc:{front.nfc_path}
        front.close()

:func:`start_front_end` is the one start-up of a simulated front end: ``emvkit token run --front-end`` and
the ``qemu:BOARD?front-end=pn532`` transport both call it. The chip's host link is
:class:`emvkit.terminal.chipsim.pn532.PtyLink` on UART1's pty, its RF side
:class:`emvkit.terminal.chipsim.pn532.Pn532Simulator` on nfcpy's udp driver (a free port on 127.0.0.1
unless ``nfc_path`` names one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emvkit.terminal.endpoints import free_udp_port
from emvkit.terminal.errors import ConfigError, EmvkitError

if TYPE_CHECKING:
    from emvkit.terminal.chipsim.pn532 import Pn532Simulator, PtyLink

__all__ = ["FRONT_ENDS", "FrontEnd", "FrontEndError", "free_udp_path", "start_front_end"]

FRONT_ENDS = ("pn532",)  # the chips the QEMU boards' firmware drives (firmware/boards/qemu_mps2.py)


class FrontEndError(EmvkitError):
    """The simulated front end could not start (no second UART, nfcpy missing, the udp port taken)."""


def free_udp_path(host: str = "127.0.0.1") -> str:
    """``udp:HOST:PORT`` with a port free at the time of asking."""
    return f"udp:{host}:{free_udp_port(host)}"


class FrontEnd:
    """A running simulated chip: its host link on a pty, its RF side at ``nfc:{nfc_path}``."""

    def __init__(self, name: str, link: PtyLink, simulator: Pn532Simulator, nfc_path: str) -> None:
        self.name = name
        self.link = link
        self.simulator = simulator
        self.nfc_path = nfc_path

    @property
    def nfc_url(self) -> str:
        return f"nfc:{self.nfc_path}"

    @property
    def running(self) -> bool:
        return self.simulator.running

    @property
    def error(self) -> BaseException | None:
        return self.simulator.error

    def close(self) -> None:
        try:
            self.simulator.close()
        finally:
            self.link.close()


def start_front_end(name: str, pty: str | None, nfc_path: str | None = None) -> FrontEnd:
    """Start the simulated chip ``name`` on ``pty`` (UART1), its RF side on ``nfc_path`` (default: a free port)."""
    if name not in FRONT_ENDS:
        raise ConfigError(f"front end {name!r}: one of {', '.join(FRONT_ENDS)}")
    if pty is None:
        raise FrontEndError("QEMU gave no second UART for the front end")
    path = nfc_path or free_udp_path()
    if not path.startswith("udp:"):
        raise ConfigError(f"{path}: the simulated chip listens on nfcpy's udp driver (udp:HOST:PORT)")
    try:
        from emvkit.terminal.chipsim.pn532 import Pn532Simulator, PtyLink
    except ModuleNotFoundError as exc:
        raise FrontEndError(f"the simulated {name} needs nfcpy (pip install 'emvkit[nfc]'): {exc.name}") from exc
    link = PtyLink(pty)
    link.start()
    simulator = Pn532Simulator(link.chip, path)
    try:
        simulator.start()
    except Exception as exc:
        link.close()
        raise FrontEndError(f"the simulated {name} did not start on {path}: {exc}") from exc
    return FrontEnd(name, link, simulator, path)
