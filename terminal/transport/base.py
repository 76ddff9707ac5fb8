"""The Transport interface: anything that can exchange APDUs with a card.

A transport is created without I/O, opened with :meth:`Transport.open` (or by
entering it as a context manager) and closed with :meth:`Transport.close`.
``transmit`` takes a complete command APDU and returns the complete response
APDU including the status word; it raises :class:`emvkit.terminal.errors.CardRemoved`
when the card has left and :class:`emvkit.terminal.errors.TransportError` for any
other link failure.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, runtime_checkable

from emvkit.terminal.errors import TransportError

__all__ = ["BaseTransport", "Transport"]


@runtime_checkable
class Transport(Protocol):
    url: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def transmit(self, command: bytes) -> bytes: ...

    @property
    def atr(self) -> bytes: ...

    def card_present(self) -> bool: ...

    def __enter__(self) -> Transport: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class BaseTransport:
    """Shared plumbing: open state, the context manager, closed-use errors."""

    url: str = ""

    def __init__(self) -> None:
        self._open = False
        self._atr = b""

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def atr(self) -> bytes:
        return self._atr

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def card_present(self) -> bool:
        return self._open

    def transmit(self, command: bytes) -> bytes:
        if not self._open:
            raise TransportError(f"{self.url or type(self).__name__}: transport is not open")
        return self._transmit(bytes(command))

    def _transmit(self, command: bytes) -> bytes:
        raise NotImplementedError

    def __enter__(self) -> BaseTransport:
        if not self._open:
            self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<{type(self).__name__} {self.url!r} {state}>"
