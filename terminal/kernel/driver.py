"""The one loop that runs a transaction over any transport.

The kernel is sans-IO: :func:`drive` feeds its commands to a
:class:`~emvkit.terminal.apdu.Channel` and sends the responses back; link failures
are thrown into the kernel, which turns them into an outcome. The same loop
replays a recorded trace through the ``scripted`` transport.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

from emvkit.terminal.apdu import Channel, CommandAPDU, ResponseAPDU
from emvkit.terminal.errors import APDUError, TransportError
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.entry_point import transaction
from emvkit.terminal.kernel.online import AuthorisationResponse, Authoriser, OnlineRequest
from emvkit.terminal.kernel.outcome import TransactionResult
from emvkit.terminal.transport.base import Transport
from emvkit.terminal.transport.trace import Trace, TraceTransport

__all__ = ["Tap", "drive", "run_transaction"]


KernelGen = Generator[CommandAPDU | OnlineRequest, ResponseAPDU | AuthorisationResponse | None, TransactionResult]


def drive(kernel: KernelGen, channel: Channel, authoriser: Authoriser | None = None) -> TransactionResult:
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
    """Run one transaction on an open transport, recording every exchange.
    With an ``authoriser``, Online Requests are authorised by it."""
    traced = TraceTransport(transport)
    start = time.perf_counter()
    result = drive(transaction(config, request, online=authoriser is not None), Channel(traced), authoriser)
    elapsed = (time.perf_counter() - start) * 1000.0
    return Tap(result, traced.trace, elapsed)
