"""The one loop that runs a transaction over any transport.

The kernel is sans-IO: :func:`drive` feeds its commands to a
:class:`~terminal.apdu.Channel` and sends the responses back; link failures
are thrown into the kernel, which turns them into an outcome. The same loop
replays a recorded trace through the ``scripted`` transport.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

from terminal.apdu import Channel, CommandAPDU, ResponseAPDU
from terminal.errors import APDUError, TransportError
from terminal.kernel.config import TerminalConfig
from terminal.kernel.context import TransactionRequest
from terminal.kernel.entry_point import transaction
from terminal.kernel.outcome import TransactionResult
from terminal.transport.base import Transport
from terminal.transport.trace import Trace, TraceTransport

__all__ = ["Tap", "drive", "run_transaction"]


def drive(kernel: Generator[CommandAPDU, ResponseAPDU, TransactionResult], channel: Channel) -> TransactionResult:
    try:
        command = next(kernel)
        while True:
            try:
                response = channel.transmit(command)
            except (TransportError, APDUError) as exc:
                command = kernel.throw(exc)
            else:
                command = kernel.send(response)
    except StopIteration as stop:
        result: TransactionResult = stop.value
        return result


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


def run_transaction(transport: Transport, config: TerminalConfig, request: TransactionRequest) -> Tap:
    """Run one transaction on an open transport, recording every exchange."""
    traced = TraceTransport(transport)
    start = time.perf_counter()
    result = drive(transaction(config, request), Channel(traced))
    elapsed = (time.perf_counter() - start) * 1000.0
    return Tap(result, traced.trace, elapsed)
