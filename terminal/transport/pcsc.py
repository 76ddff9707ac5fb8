"""The ``pcsc:`` transport: a card in a PC/SC reader, through pcscd and pyscard.

URLs (PC/SC Part 5 names the calls used here):

- ``pcsc:`` the first reader that has a card in it;
- ``pcsc:0`` the reader at that index of pcscd's list (``emvkit readers`` shows it);
- ``pcsc:NAME`` the reader called NAME, else every reader whose name contains
  NAME (case-insensitive; ``%20`` may stand for a space), the first with a card wins.

Options: ``?timeout=10`` waits up to that many seconds for a card (default 0:
the card must be there now); ``?protocol=T1|T0|any`` (default any). A
contactless reader shows an ISO 14443-4 card as a T=1 card whose ATR is the
PC/SC Part 3 §3.1.3.2.3 pseudo-ATR; :attr:`PcscTransport.atr_info` parses it
and :attr:`PcscTransport.historical_bytes` gives the ATS's historical bytes.

Every PC/SC failure comes out as a typed error, never a pyscard one:
:class:`~emvkit.terminal.errors.CardRemoved` when the card left (or another program
reset it, which loses the selected application as surely), :class:`NoCardPresent`,
:class:`PcscdNotRunning`, and :class:`~emvkit.terminal.errors.TransportError` for the
rest (reader unplugged, card held exclusively by another program...). An
exchange that fails without a reason (``SCARD_E_NOT_TRANSACTED``, or an empty
response, which is what vpcd returns when the virtual card disconnects) is a
removal if the reader reports the card gone within :data:`REMOVAL_SETTLE_S`.

Waiting never blocks in pcscd for more than :data:`WAIT_SLICE_S` at a time,
so Ctrl-C is seen promptly. pyscard is an optional extra (``pip install
'emvkit[pcsc]'``), imported when first needed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError, UnknownScheme
from emvkit.terminal.iso7816 import ATR, ATRError, parse_atr
from emvkit.terminal.transport.base import BaseTransport

__all__ = [
    "REMOVAL_SETTLE_S",
    "WAIT_SLICE_S",
    "NoCardPresent",
    "PcscOptions",
    "PcscTransport",
    "PcscdNotRunning",
    "ReaderState",
    "from_url",
    "list_readers",
    "parse_url",
    "wait_for_card",
    "wait_for_removal",
]

WAIT_SLICE_S = 0.2  # longest single SCardGetStatusChange: a signal is handled between two
REMOVAL_SETTLE_S = 1.0  # pcscd polls a reader without interrupts (vpcd) every 0.4 s
_PROTOCOLS = {"t0": 0x0001, "t1": 0x0002, "any": 0x0003}  # SCARD_PROTOCOL_T0 / T1 (PC/SC Part 5 §3.1.3)
_INSTALL_HINT = "pip install 'emvkit[pcsc]'"


class PcscdNotRunning(TransportError):
    """No PC/SC service to talk to (SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED)."""


class NoCardPresent(TransportError):
    """No card in the chosen reader(s), now or within the ``timeout`` asked for."""


@dataclass(frozen=True)
class PcscOptions:
    """What a ``pcsc:`` URL asks for; ``reader`` is "" (any), an index or a (part of a) name."""

    reader: str = ""
    timeout: float = 0.0
    protocol: str = "any"


@dataclass(frozen=True)
class ReaderState:
    """A reader as pcscd reports it (SCardGetStatusChange, PC/SC Part 5 §3.1.11)."""

    index: int
    name: str
    card_present: bool
    atr: bytes = b""
    mute: bool = False  # a card is there but gave no ATR
    in_use: bool = False  # some program is connected to the card
    exclusive: bool = False  # ... and holds it exclusively

    @property
    def usable(self) -> bool:
        """A card is present and answered: a connection can be made."""
        return self.card_present and not self.mute

    @property
    def atr_info(self) -> ATR | None:
        """The parsed ATR, or None when there is none or it violates ISO 7816-3."""
        return _parse(self.atr)


def parse_url(url: str) -> PcscOptions:
    """The options of a ``pcsc:`` URL; :class:`ConfigError` for a bad option."""
    scheme, _, rest = url.partition(":")
    if scheme != "pcsc":
        raise ConfigError(f"{url!r} is not a pcsc: URL")
    spec, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {"timeout", "protocol"})
    if unknown:
        raise ConfigError(f"{url}: unknown option(s) {', '.join(unknown)} (timeout, protocol)")
    timeout = 0.0
    if "timeout" in options:
        try:
            timeout = float(options["timeout"])
        except ValueError:
            timeout = -1.0
        if not 0 <= timeout < 86400:
            raise ConfigError(f"{url}: timeout is a number of seconds from 0 up, not {options['timeout']!r}")
    protocol = options.get("protocol", "any").lower().replace("=", "")
    if protocol not in _PROTOCOLS:
        raise ConfigError(f"{url}: protocol is T0, T1 or any, not {options['protocol']!r}")
    return PcscOptions(reader=unquote(spec).strip(), timeout=timeout, protocol=protocol)


def from_url(url: str) -> PcscTransport:
    _scard()  # a missing pyscard is reported before anything else
    return PcscTransport(parse_url(url), url=url)


class PcscTransport(BaseTransport):
    """APDUs to a card in a PC/SC reader. No I/O until :meth:`open`."""

    def __init__(self, options: PcscOptions | None = None, url: str = "pcsc:") -> None:
        super().__init__()
        self.options = options or PcscOptions()
        self.url = url
        self.reader_name = ""
        self.protocol = 0  # the active one: 1 T=0, 2 T=1
        self._atr_info: ATR | None = None
        self._context: _Context | None = None
        self._card: int = 0
        self._send: Callable[..., Any] | None = None

    @property
    def atr_info(self) -> ATR | None:
        """The card's ATR parsed (ISO 7816-3 §8.2); None when it does not parse."""
        return self._atr_info

    @property
    def historical_bytes(self) -> bytes:
        """The ATR's historical bytes: for a contactless card, those of its ATS."""
        return self._atr_info.historical_bytes if self._atr_info is not None else b""

    def open(self) -> None:
        """Pick the reader, wait for a card if asked to, connect (shared) and read the ATR."""
        if self.is_open:
            return
        s = _scard()
        context = _Context()
        try:
            state = context.wait(self.options.reader, self.options.timeout, want_card=True)
            if state is None:
                raise NoCardPresent(_no_card_message(context, self.options))
            rv, card, protocol = _call(s.SCardConnect, context.handle, state.name, s.SCARD_SHARE_SHARED,
                                       _PROTOCOLS[self.options.protocol])
            _check(rv, f"pcsc: {state.name}")
            self._context, self._card, self.reader_name, self.protocol = context, card, state.name, protocol
            rv, _name, _state, _protocol, atr = _call(s.SCardStatus, card)
            _check(rv, f"pcsc: {state.name}")
        except BaseException:
            self._release(context)
            raise
        self._atr = bytes(atr)
        self._atr_info = _parse(self._atr)
        self._send = s.SCardTransmit
        super().open()

    def close(self) -> None:
        """Disconnect, leaving the card as it is, and release the PC/SC context."""
        if self._context is not None:
            self._release(self._context)
        super().close()

    def card_present(self) -> bool:
        """Whether the reader holds a card now (SCardGetStatusChange with no wait)."""
        if not self.is_open or self._context is None:
            return False
        try:
            states = self._context.states([self.reader_name], {}, 0.0)
        except TransportError:
            return False
        return bool(states) and states[0].usable

    def _transmit(self, command: bytes) -> bytes:
        send = self._send
        assert send is not None  # set by open(), which BaseTransport.transmit requires
        try:
            rv, response = send(self._card, self.protocol, list(command))
        except (TypeError, ValueError, SystemError) as exc:  # the SWIG layer's own complaints
            raise TransportError(f"pcsc: {self.reader_name}: pyscard: {exc}") from exc
        if rv == 0 and len(response) >= 2:
            return bytes(response)
        s = _scard()
        where = f"pcsc: {self.reader_name}"
        if rv in (0, s.SCARD_E_NOT_TRANSACTED, s.SCARD_F_COMM_ERROR, s.SCARD_W_UNRESPONSIVE_CARD):
            # No reason given: a card leaving the field mid-exchange looks like this. Ask the reader.
            if self._card_left(REMOVAL_SETTLE_S):
                raise CardRemoved(f"{where}: card removed during the exchange")
            if rv == 0:
                raise TransportError(f"{where}: the reader answered {len(response)} byte(s), no status word")
        raise _error(rv, where)

    def _card_left(self, settle: float) -> bool:
        if self._context is None:
            return True
        try:
            state = self._context.wait(self.reader_name, settle, want_card=False)
        except CardRemoved:
            return True
        except TransportError:
            return False
        return state is not None

    def _release(self, context: _Context) -> None:
        s = _scard()
        if self._card:
            try:
                _call(s.SCardDisconnect, self._card, s.SCARD_LEAVE_CARD)
            except TransportError:
                pass
        self._card, self._context, self._send = 0, None, None
        context.release()


# --- readers, and waiting for a card to come and go ------------------------------------------


def list_readers() -> list[ReaderState]:
    """Every reader pcscd knows, with its card (if any) and ATR."""
    with _Context() as context:
        names = context.readers()
        return context.states(names, {}, 0.0) if names else []


def wait_for_card(reader: str = "", timeout: float | None = 0.0) -> ReaderState | None:
    """Wait up to ``timeout`` seconds (None: for ever) for a usable card.

    ``reader`` selects as in a ``pcsc:`` URL: "" any reader, an index, a name
    or part of one. Returns the state of the reader holding the card, None on
    timeout. :class:`TransportError` names the readers when none matches.
    """
    with _Context() as context:
        return context.wait(reader, timeout, want_card=True)


def wait_for_removal(reader: str, timeout: float | None = 0.0) -> bool:
    """Wait up to ``timeout`` seconds (None: for ever) until the reader(s) hold no card; True if so."""
    with _Context() as context:
        return context.wait(reader, timeout, want_card=False) is not None


# --- the PC/SC context: the one place that calls pyscard --------------------------------------

_pyscard: ModuleType | None = None


def _scard() -> Any:
    """pyscard's ``smartcard.scard``, or :class:`UnknownScheme` saying how to install it."""
    global _pyscard
    if _pyscard is None:
        try:
            from smartcard import scard
        except ImportError as exc:
            raise UnknownScheme(f"pcsc: needs pyscard, which is not installed ({_INSTALL_HINT})") from exc
        _pyscard = scard
    return _pyscard


def _call(function: Callable[..., Any], *args: Any) -> Any:
    """Call pyscard, turning the exceptions its SWIG layer can raise into TransportError."""
    try:
        return function(*args)
    except (TypeError, ValueError, SystemError, OverflowError) as exc:
        raise TransportError(f"pcsc: pyscard {getattr(function, '__name__', 'call')}: {exc}") from exc


def _check(rv: int, where: str) -> None:
    if rv != 0:
        raise _error(rv, where)


def _error(rv: int, where: str) -> TransportError:
    """The emvkit error for a PC/SC return code (PC/SC Part 5 §3.1, pcsc-lite's pcsclite.h)."""
    s = _scard()
    if rv in (s.SCARD_W_REMOVED_CARD, s.SCARD_E_NO_SMARTCARD):
        return CardRemoved(f"{where}: card removed")
    if rv == s.SCARD_W_RESET_CARD:
        return CardRemoved(f"{where}: another program reset the card, ending this session with it")
    if rv in (s.SCARD_E_READER_UNAVAILABLE, s.SCARD_E_NO_READERS_AVAILABLE, s.SCARD_E_UNKNOWN_READER):
        return TransportError(f"{where}: reader gone")
    if rv == s.SCARD_E_SHARING_VIOLATION:
        return TransportError(f"{where}: another program holds the card exclusively; close it and tap again")
    if rv in (s.SCARD_E_NO_SERVICE, s.SCARD_E_SERVICE_STOPPED):
        socket = os.environ.get("PCSCLITE_CSOCK_NAME")
        return PcscdNotRunning("pcscd is not running" + (f" at {socket}" if socket else "")
                               + " (start it: systemctl start pcscd, or pcscd --foreground)")
    if rv == s.SCARD_E_INVALID_HANDLE:
        return TransportError(f"{where}: pcscd no longer knows this connection (was it restarted?)")
    if rv == s.SCARD_E_PROTO_MISMATCH:
        return TransportError(f"{where}: the card does not speak the protocol asked for (?protocol=)")
    if rv == s.SCARD_E_TIMEOUT:
        return TransportError(f"{where}: timed out")
    try:
        text = str(s.SCardGetErrorMessage(rv))
    except Exception:  # pyscard's message table is best effort
        text = "PC/SC error"
    return TransportError(f"{where}: {text} (0x{rv & 0xFFFFFFFF:08X})")


def _parse(atr: bytes) -> ATR | None:
    if not atr:
        return None
    try:
        return parse_atr(atr, check_tck=False)
    except ATRError:
        return None


def _select(names: list[str], selector: str) -> list[str]:
    """The readers a ``pcsc:`` selector names, in pcscd's order; TransportError naming them all if none."""
    if not names:
        raise TransportError("pcsc: pcscd sees no reader (is one plugged in?)")
    if not selector:
        return names
    if selector.isdigit():
        if int(selector) < len(names):
            return [names[int(selector)]]
    elif selector in names:
        return [selector]
    else:
        wanted = selector.casefold()
        matching = [name for name in names if wanted in name.casefold()]
        if matching:
            return matching
    available = ", ".join(f"{i}: {name}" for i, name in enumerate(names))
    raise TransportError(f"pcsc: no reader {selector!r}; readers: {available}")


def _no_card_message(context: _Context, options: PcscOptions) -> str:
    try:
        where = ", ".join(_select(context.readers(), options.reader))
    except TransportError:
        where = options.reader or "any reader"
    if options.timeout:
        return f"pcsc: no card in {where} within {options.timeout:g} s"
    return f"pcsc: no card in {where} (add ?timeout=SECONDS to wait for one)"


class _Context:
    """A PC/SC context (SCardEstablishContext); released by :meth:`release` or ``with``."""

    def __init__(self) -> None:
        s = self._s = _scard()
        rv, handle = _call(s.SCardEstablishContext, s.SCARD_SCOPE_USER)
        _check(rv, "pcsc")
        self.handle: int = handle
        self._names: list[str] = []

    def __enter__(self) -> _Context:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        if self.handle:
            handle, self.handle = self.handle, 0
            try:
                _call(self._s.SCardReleaseContext, handle)
            except TransportError:
                pass

    def readers(self) -> list[str]:
        rv, names = _call(self._s.SCardListReaders, self.handle, [])
        if rv == self._s.SCARD_E_NO_READERS_AVAILABLE:
            names = []
        else:
            _check(rv, "pcsc")
        self._names = [str(name) for name in names]
        return list(self._names)

    def states(self, names: list[str], known: dict[str, int], timeout: float) -> list[ReaderState]:
        """SCardGetStatusChange on ``names``: returns at once, or when a state differs from ``known``.

        ``known`` maps names to the last event state seen (missing: unaware)
        and is updated. Returns [] when ``timeout`` passes with no change.
        """
        s = self._s
        query = [(name, known.get(name, s.SCARD_STATE_UNAWARE)) for name in names]
        rv, answers = _call(s.SCardGetStatusChange, self.handle, max(0, int(timeout * 1000)), query)
        if rv == s.SCARD_E_TIMEOUT:
            return []
        _check(rv, "pcsc: " + ", ".join(names))
        out = []
        for name, event, atr in answers:
            if event & (s.SCARD_STATE_UNKNOWN | s.SCARD_STATE_UNAVAILABLE):
                raise TransportError(f"pcsc: {name}: reader gone")
            known[name] = event & ~s.SCARD_STATE_CHANGED
            out.append(ReaderState(
                index=self._names.index(name) if name in self._names else -1,
                name=str(name),
                card_present=bool(event & s.SCARD_STATE_PRESENT),
                atr=bytes(atr) if event & s.SCARD_STATE_PRESENT else b"",
                mute=bool(event & s.SCARD_STATE_MUTE),
                in_use=bool(event & s.SCARD_STATE_INUSE),
                exclusive=bool(event & s.SCARD_STATE_EXCLUSIVE),
            ))
        return out

    def wait(self, selector: str, timeout: float | None, *, want_card: bool) -> ReaderState | None:
        """Wait until a selected reader has a usable card (``want_card``) or none has a card.

        Returns the reader holding the card, or (waiting for removal) the first
        selected reader; None when ``timeout`` seconds pass first.
        """
        names = _select(self.readers(), selector)
        known: dict[str, int] = {}
        for states in self._changes(names, known, timeout):
            if want_card:
                for state in states:
                    if state.usable:
                        return state
            elif not any(state.card_present for state in states):
                return states[0]
        return None

    def _changes(self, names: list[str], known: dict[str, int], timeout: float | None) -> Iterator[list[ReaderState]]:
        """The readers' states now, then after each change, until ``timeout``; in slices of WAIT_SLICE_S."""
        deadline = None if timeout is None else time.monotonic() + timeout
        yield self.states(names, known, 0.0)
        while True:
            remaining = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
            if remaining <= 0:
                return
            states = self.states(names, known, remaining)
            if states:
                yield states
