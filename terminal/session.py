"""A transaction in the world: the driver, and everything the sans-IO kernel
leaves to it.

The kernel (:mod:`emvkit.terminal.kernel`) touches no transport and reads no
clock, file or random source. This module brings them:

- :func:`drive` runs a kernel's generator: its commands go to the card over a
  :class:`~emvkit.terminal.apdu.Channel`, its OnlineRequests to an authoriser;
  link failures are thrown into it, and it turns them into an outcome; an
  approval the transaction did not end approved with is reversed;
- :func:`stamp` gives a request the terminal's date, time and random source
  (today, now, ``os.urandom``) where it has none;
- :func:`run_transaction` stamps the request and drives the transaction over a
  transport, recording every exchange: a :class:`Tap`;
- :class:`Order` is what the merchant asks for as written (``12.34``, ``EUR``,
  ``purchase``), turned into a request;
- :class:`TapSession` is one ``emvkit tap``: the order, the issuer, the random
  bytes drawn (kept in the trace), and the replay of a trace with the order,
  random bytes and issuer it was made with;
- :func:`watch` is a terminal's loop (``emvkit watch``): wait for a card,
  one transaction, wait until the card has left, again;
- :func:`make_authoriser` is where Online Requests go (``builtin``,
  ``tcp://HOST:PORT``, ``none``); :func:`default_reader` the card when none is
  named.

Configuration files are read by :mod:`emvkit.terminal.config_files`.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from emvkit.terminal.apdu import Channel
from emvkit.terminal.currency import Currency, format_amount, lookup, parse_amount
from emvkit.terminal.errors import APDUError, CardRemoved, ConfigError, EmvkitError, TransportError
from emvkit.terminal.kernel.authorisation import AuthorisationResponse, Authoriser, OnlineRequest
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TRANSACTION_TYPES, Exchange, Random, TransactionRequest
from emvkit.terminal.kernel.entry_point import transaction
from emvkit.terminal.kernel.outcome import Outcome, TransactionResult
from emvkit.terminal.transport import make_transport
from emvkit.terminal.transport.base import Transport
from emvkit.terminal.transport.trace import Trace, TraceTransport, load_trace

__all__ = [
    "Order",
    "RecordingRandom",
    "Tap",
    "TapSession",
    "default_reader",
    "drive",
    "make_authoriser",
    "replaying",
    "run_transaction",
    "stamp",
    "watch",
]

DEFAULT_READER = "emu:visa"
CARD_WAIT_S = 15


# --- the driver ---------------------------------------------------------------------------------


def drive(kernel: Exchange[TransactionResult], channel: Channel,
          authoriser: Authoriser | None = None) -> TransactionResult:
    """Run a kernel to its result: commands to ``channel``, OnlineRequests to
    ``authoriser`` (None: the host cannot be reached); link failures
    (``TransportError``, ``APDUError``) are thrown into the kernel."""
    online: tuple[OnlineRequest, AuthorisationResponse | None] | None = None
    try:
        item = next(kernel)
        while True:
            if isinstance(item, OnlineRequest):
                online = (item, _authorise(authoriser, item))
                item = kernel.send(online[1])
                continue
            try:
                response = channel.transmit(item)
            except (TransportError, APDUError) as exc:
                item = kernel.throw(exc)
            else:
                item = kernel.send(response)
    except StopIteration as stop:
        result: TransactionResult = stop.value
    if online is not None and online[1] is not None and online[1].approved \
            and result.outcome.outcome is not Outcome.APPROVED:
        _reverse(authoriser, online[0], "the card declined after the issuer approved")
    return result


def _reverse(authoriser: Authoriser | None, item: OnlineRequest, reason: str) -> None:
    """An approval the transaction could not use: reverse it where the
    authoriser can (:mod:`emvkit.terminal.host.reversal`)."""
    reverse = getattr(authoriser, "reverse", None)
    if callable(reverse):
        try:
            reverse(item.request, reason)
        except TransportError:
            pass  # the authoriser keeps it pending and repeats it


def _authorise(authoriser: Authoriser | None, item: OnlineRequest) -> AuthorisationResponse | None:
    if authoriser is None:
        return None
    try:
        return authoriser.authorise(item.request)
    except TransportError:
        return None  # the kernel decides what an unreachable host means


def stamp(request: TransactionRequest, random: Random = os.urandom) -> TransactionRequest:
    """The request with the terminal's date and time (now, to the second) and
    ``random`` where it has none; what it has, it keeps."""
    now = datetime.datetime.now()
    return replace(request,
                   date=now.date() if request.date is None else request.date,
                   time=now.time().replace(microsecond=0) if request.time is None else request.time,
                   random=random if request.random is None else request.random)


@dataclass
class Tap:
    """A transaction's result with the exchanges that made it."""

    result: TransactionResult
    trace: Trace
    elapsed_ms: float

    @property
    def apdus(self) -> int:
        return len(self.trace.exchanges)

    @property
    def bytes_exchanged(self) -> int:
        return sum(len(e.command) + len(e.response or b"") for e in self.trace.exchanges)


def run_transaction(transport: Transport, config: TerminalConfig, request: TransactionRequest,
                    authoriser: Authoriser | None = None) -> Tap:
    """Run one transaction on an open transport, recording every exchange; the
    request is stamped first (:func:`stamp`). With an ``authoriser``, Online
    Requests are authorised by it."""
    request = stamp(request)
    traced = TraceTransport(transport)
    start = time.perf_counter()
    result = drive(transaction(config, request, online=authoriser is not None), Channel(traced), authoriser)
    elapsed = (time.perf_counter() - start) * 1000.0
    return Tap(result, traced.trace, elapsed)


# --- what the merchant asks for ---------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """What the merchant asks for, as written on the command line and kept in
    a trace: amounts in major units of the currency, the currency by code or
    number (None: the terminal's), the transaction type, the date
    (YYYY-MM-DD) and time (HH:MM:SS) (None: today, now)."""

    amount: str = "12.34"
    other_amount: str = "0"
    currency: str | None = None
    type: str = "purchase"
    date: str | None = None
    time: str | None = None

    def currency_in(self, config: TerminalConfig) -> Currency:
        return lookup(self.currency) if self.currency else lookup(config.currency.hex())

    def request(self, config: TerminalConfig, random: Random = os.urandom) -> TransactionRequest:
        """The transaction request, stamped; an EmvkitError saying what cannot be used."""
        currency = self.currency_in(config)
        try:
            date = datetime.date.fromisoformat(self.date) if self.date else None
        except ValueError as exc:
            raise ConfigError(f"--date: {exc}") from exc
        try:
            when = datetime.time.fromisoformat(self.time) if self.time else None
        except ValueError as exc:
            raise ConfigError(f"time: {exc}") from exc
        if self.type not in TRANSACTION_TYPES:
            raise ConfigError(f"type: one of {', '.join(sorted(TRANSACTION_TYPES))}, not {self.type!r}")
        return stamp(TransactionRequest(
            amount=parse_amount(self.amount, currency),
            amount_other=parse_amount(self.other_amount, currency),
            transaction_type=TRANSACTION_TYPES[self.type],
            currency=currency.bcd,
            date=date,
            time=when,
        ), random)


class RecordingRandom:
    """The transaction's random source, remembered so a trace can replay it."""

    def __init__(self, source: Random = os.urandom) -> None:
        self.source = source
        self.drawn = bytearray()

    def __call__(self, n: int) -> bytes:
        out = self.source(n)
        self.drawn += out
        return out


def replaying(drawn: bytes) -> Random:
    """A random source that gives back ``drawn``, in order, and no more."""
    pool = bytearray(drawn)

    def draw(n: int) -> bytes:
        if len(pool) < n:
            raise ConfigError("the trace's recorded random bytes ran out: not the same transaction")
        out = bytes(pool[:n])
        del pool[:n]
        return out

    return draw


# --- one tap ------------------------------------------------------------------------------------

_ORDER_KEYS = ("amount", "other_amount", "currency", "type", "date", "time")


@dataclass
class TapSession:
    """One tap as ``emvkit tap`` runs it: the terminal, the order, the
    issuer, the request (stamped), and the random bytes it draws, for the
    trace (None when it replays one)."""

    reader: str
    config: TerminalConfig
    order: Order
    host: str
    request: TransactionRequest
    authoriser: Authoriser | None
    recording: RecordingRandom | None

    @classmethod
    def prepare(cls, reader: str, config: TerminalConfig, order: Order, host: str | None = None) -> TapSession:
        """Check the order and build the issuer. A trace (``scripted:FILE.json``)
        replays with the order and random bytes it recorded and, unless
        ``host`` is given, the same kind of issuer."""
        recording: RecordingRandom | None = None
        random: Random
        if reader.startswith("scripted:") and reader.endswith(".json"):
            meta = load_trace(reader.split(":", 1)[1]).meta
            recorded = {key: str(meta[key]) for key in _ORDER_KEYS if meta.get(key) is not None}
            order = replace(order, **recorded)
            random = replaying(bytes.fromhex(meta.get("random", "")))
            if host is None and isinstance(meta.get("host"), str):
                host = meta["host"]
        else:
            random = recording = RecordingRandom()
        request = order.request(config, random)
        host = host or "builtin"
        return cls(reader, config, order, host, request, make_authoriser(host, reader), recording)

    def run(self, transport: Transport) -> Tap:
        return run_transaction(transport, self.config, self.request, self.authoriser)

    @property
    def amount(self) -> str:
        """The amount as people read it: ``12.34 EUR``."""
        return format_amount(self.request.amount, self.order.currency_in(self.config))

    def save_trace(self, tap: Tap, path: str | Path, reader: str) -> None:
        """Write the tap's trace (mode 0600) with what it was asked for, so that
        ``scripted:PATH`` replays it; ``reader`` is the reader as the user named it."""
        self.record_order(tap.trace, reader)
        tap.trace.save(path)

    def record_order(self, trace: Trace, reader: str) -> None:
        """Put in the trace's ``meta`` what the tap was asked for, so that ``scripted:`` replays it."""
        date, when, _ = self.request.terminal_values()
        trace.meta = {
            "amount": self.order.amount, "other_amount": self.order.other_amount,
            "currency": self.order.currency, "type": self.order.type,
            "date": date.isoformat(), "time": when.isoformat(),
            "random": bytes(self.recording.drawn if self.recording else b"").hex().upper(),
            "reader": reader, "host": self.host,
        }


# --- a terminal's loop ----------------------------------------------------------------------------


def watch(url: str, config: TerminalConfig, order: Order, authoriser: Authoriser | None, count: int | None = None,
          say: Callable[[str], None] = lambda message: None,
          wrap: Callable[[Transport], Transport] = lambda transport: transport) -> Iterator[tuple[Tap, str]]:
    """Taps as a terminal sees them (EMV Book A §5: present card, processing,
    remove card): (the tap, the reader's name), ``count`` times (None: until
    interrupted). With a ``pcsc:`` reader it waits for each card and for its
    removal, telling the person at the reader through ``say``; other
    transports always have a card, opened anew for every transaction. ``wrap`` wraps each transaction's
    transport (``--apdu`` prints its exchanges as they happen)."""
    done = 0
    while count is None or done < count:
        tap, reader_name = _one_tap(url, config, order, authoriser, say, wrap)
        if tap is None:
            continue
        done += 1
        yield tap, reader_name
        if url.startswith("pcsc:") and (count is None or done < count):
            _wait_for_removal(reader_name, say)


def _one_tap(url: str, config: TerminalConfig, order: Order, authoriser: Authoriser | None,
             say: Callable[[str], None], wrap: Callable[[Transport], Transport]) -> tuple[Tap | None, str]:
    """Wait for a card and run one transaction: (the tap or None if the card left first, the reader's name)."""
    transport: Transport
    if url.startswith("pcsc:"):
        from emvkit.terminal.transport import pcsc

        options = pcsc.parse_url(url)
        say(f"Present card ({url}; Ctrl-C to stop)")
        state = pcsc.wait_for_card(options.reader, None)
        assert state is not None  # no timeout: only a card (or an exception) ends the wait
        reader_name = state.name
        transport = pcsc.PcscTransport(pcsc.PcscOptions(state.name, 0.0, options.protocol), url=url)
    else:
        reader_name = url
        transport = make_transport(url)
    request = order.request(config)
    try:
        transport.open()
    except CardRemoved as exc:
        say(f"card left before the transaction began ({exc})")
        return None, reader_name
    with transport:
        return run_transaction(wrap(transport), config, request, authoriser), reader_name


def _wait_for_removal(reader_name: str, say: Callable[[str], None]) -> None:
    from emvkit.terminal.transport import pcsc

    if pcsc.wait_for_removal(reader_name, 0.0):
        return
    say("Remove card")
    pcsc.wait_for_removal(reader_name, None)


# --- where the transaction goes -----------------------------------------------------------------


def make_authoriser(spec: str | None, reader: str) -> Authoriser | None:
    """The issuer the terminal goes online to: ``builtin`` (the default: the
    issuer host simulator in-process, knowing the built-in cards and the
    tapped profile's key), ``tcp://HOST:PORT`` (``emvkit host serve``), or
    ``none`` (None: stop at Online Request)."""
    spec = spec or "builtin"
    if spec == "none":
        return None
    if spec.startswith("tcp://"):
        from emvkit.terminal.host.client import TcpAuthoriser

        return TcpAuthoriser(spec)
    if spec != "builtin":
        raise ConfigError(f"--host: builtin, tcp://HOST:PORT or none, not {spec!r}")
    from emvkit.terminal.host.issuer import IssuerHost
    from emvkit.terminal.host.keys import IssuerKeys
    from emvkit.terminal.perso.builtin import builtin_names, load_profile

    keys = IssuerKeys()
    scheme, _, rest = reader.partition(":")
    spec_path = rest.split("?", 1)[0]
    if scheme in ("emu", "mpy") and spec_path and spec_path not in builtin_names():
        doc = load_profile(spec_path)
        if isinstance(doc.get("secrets"), dict) and doc["secrets"].get("imk_ac"):
            keys = IssuerKeys.from_profiles([doc])  # the tapped card's key wins over a built-in one
    for key in IssuerKeys.builtin():
        if keys.find(key.bin_prefix) is None:
            keys.add(key)
    return IssuerHost(keys)


def default_reader() -> tuple[str, str]:
    """A PC/SC reader when one is connected (waiting for the tap), else the
    built-in emulated Visa card; and a line saying which."""
    try:
        from emvkit.terminal.transport.pcsc import list_readers

        readers = list_readers()
    except (EmvkitError, ImportError):
        readers = []
    if readers:
        return (f"pcsc:?timeout={CARD_WAIT_S}",
                f"No --reader given: waiting up to {CARD_WAIT_S} s for a card on the first PC/SC reader "
                f"({readers[0].name}).")
    return DEFAULT_READER, ("No --reader given and no PC/SC reader: tapping the built-in emulated card "
                            f"{DEFAULT_READER}.")
