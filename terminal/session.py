"""A transaction in the world: the driver, and everything the sans-IO kernel
leaves to it.

The kernel (:mod:`emvkit.terminal.kernel`) touches no transport and reads no
clock, file or random source. This module brings them:

- :func:`drive` runs a kernel's generator: its commands go to the card over a
  :class:`~emvkit.terminal.apdu.Channel`, its OnlineRequests to an authoriser;
  link failures are thrown into it, and it turns them into an outcome;
- :func:`stamp` gives a request the terminal's date, time and random source
  (today, now, ``os.urandom``) where it has none;
- :func:`run_transaction` stamps the request and drives the transaction over a
  transport, recording every exchange: a :class:`Tap`.

Configuration files are read by :mod:`emvkit.terminal.config_files`.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, replace

from emvkit.terminal.apdu import Channel
from emvkit.terminal.errors import APDUError, TransportError
from emvkit.terminal.kernel.authorisation import AuthorisationResponse, Authoriser, OnlineRequest
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import Exchange, Random, TransactionRequest
from emvkit.terminal.kernel.entry_point import transaction
from emvkit.terminal.kernel.outcome import TransactionResult
from emvkit.terminal.transport.base import Transport
from emvkit.terminal.transport.trace import Trace, TraceTransport

__all__ = ["Tap", "drive", "run_transaction", "stamp"]


# --- the driver ---------------------------------------------------------------------------------


def drive(kernel: Exchange[TransactionResult], channel: Channel,
          authoriser: Authoriser | None = None) -> TransactionResult:
    """Run a kernel to its result: commands to ``channel``, OnlineRequests to
    ``authoriser`` (None: the host cannot be reached); link failures
    (``TransportError``, ``APDUError``) are thrown into the kernel."""
    try:
        item = next(kernel)
        while True:
            if isinstance(item, OnlineRequest):
                item = kernel.send(_authorise(authoriser, item))
                continue
            try:
                response = channel.transmit(item)
            except (TransportError, APDUError) as exc:
                item = kernel.throw(exc)
            else:
                item = kernel.send(response)
    except StopIteration as stop:
        result: TransactionResult = stop.value
        return result


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
