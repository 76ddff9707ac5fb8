"""``emvkit host serve``: the issuer host behind ISO 8583 over TCP.

Each message travels with a 2-byte big-endian length header
(:func:`emvkit.terminal.host.iso8583.frame`). The server is one asyncio event loop
with a :class:`asyncio.Protocol` per connection: authorising is CPU work
under the GIL (pyemv, pyiso8583), so threads would only add switching; the
loop decides the frames of every connection in arrival order, several per
wake-up when terminals pipeline. The log rows are written by one writer
(:mod:`emvkit.terminal.host.groupcommit`): the loop inserts many requests'
rows in one transaction, a thread of its own commits it (one fsync), and
their answers are sent only after it commits (group commit), while the loop
goes on deciding the next requests.

Delivery: an approval is logged ``pending``; the terminal's next message on
that connection, or its closing the connection, confirms it (the emvkit
client sends one request at a time and closes only after reading the answer
or before reversing it); a connection that breaks, or closes before its
answer could be written, leaves it ``unconfirmed``
(:mod:`emvkit.terminal.host.authlog`).

:func:`answer` is the whole front end without I/O: bytes in, bytes out
(:func:`prepare` splits it into the decision and the writing).
A message that cannot be used is logged and answered with DE 39 "30" when its
MTI is readable; one whose MTI is not readable, or a frame of length 0 or
longer than :data:`~emvkit.terminal.host.iso8583.MAX_MESSAGE`, closes that
connection (there is nothing to answer). Nothing a peer sends stops the
server. Reversals (0400/0420) are answered 0410/0430
(:mod:`emvkit.terminal.host.reversal`).

Connections are bounded (:class:`ConnectionLimits`): one that sends nothing
for ``idle_timeout`` seconds is closed; one that starts a frame and does not
complete it within ``frame_timeout`` seconds (a slow or "slowloris" client,
however it trickles its bytes) is closed; beyond ``max_connections`` open
connections a new one is closed as soon as it is accepted. Each closing is a
log line. SIGINT and SIGTERM stop the server gracefully: no new connections,
open ones closed between messages, the log checkpointed and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.authlog import CONFIRMED, UNCONFIRMED
from emvkit.terminal.host.groupcommit import GroupCommit
from emvkit.terminal.host.iso8583 import (
    MAX_MESSAGE,
    REVERSAL_MTIS,
    MessageFormatError,
    decode_request,
    decode_reversal,
    encode_format_error,
    encode_response,
    encode_reversal_response,
    frame,
)
from emvkit.terminal.host.issuer import Decided, IssuerHost

__all__ = ["ConnectionLimits", "HostServer", "Prepared", "ServerThread", "answer", "prepare", "serve"]

log = logging.getLogger("emvkit.host")


@dataclass
class Prepared:
    """A message decided, its row not yet written: ``run()`` writes it and
    gives the answer (None: close the connection)."""

    run: Callable[[], bytes | None]
    decided: Decided | None = None
    send: Callable[[], None] | None = None  # sends its row's INSERT ahead of run() (batched rows travel together)

    @property
    def order(self) -> tuple[Any, ...]:
        return (0, *self.decided.card_atc) if self.decided is not None else (1,)


def prepare(host: IssuerHost, message: bytes, delivered: bool = True) -> Prepared:
    """Decode and decide one ISO 8583 message (the CPU part); the writing of
    its row and the answer wait in :meth:`Prepared.run`. ``delivered=False``:
    an approval is logged ``pending`` until the terminal confirms it."""
    if message[:4].decode("ascii", "replace") in REVERSAL_MTIS:
        try:
            reversal = decode_reversal(message)
        except MessageFormatError as err:
            return _format_error(host, err)
        except Exception as exc:  # as below: pyiso8583 faults on input it did not foresee
            return _undecodable(host, exc)
        return Prepared(lambda: encode_reversal_response(host.apply_reversal(reversal), reversal))
    try:
        request = decode_request(message)
    except MessageFormatError as err:
        return _format_error(host, err)
    except Exception as exc:  # pyiso8583 faults on input it did not foresee: still a format error
        return _undecodable(host, exc)
    decided = host.decide(request, delivered)
    return Prepared(lambda: encode_response(host.record(decided), request), decided,
                    functools.partial(host.send, decided))


def _format_error(host: IssuerHost, err: MessageFormatError) -> Prepared:
    def run() -> bytes | None:
        host.format_error(err.reason, err.mti, err.stan, err.terminal_id)
        return encode_format_error(err)

    return Prepared(run)


def _undecodable(host: IssuerHost, exc: Exception) -> Prepared:
    reason = f"undecodable message ({type(exc).__name__})"

    def run() -> None:
        host.format_error(reason)

    return Prepared(run)


def answer(host: IssuerHost, message: bytes) -> bytes | None:
    """The host's reply to one ISO 8583 message, or None when there is
    nothing to answer (the MTI is unreadable)."""
    return prepare(host, message).run()


@dataclass
class _Write:
    """Writer job with no answer to send: a delivery mark, a frame that closes its connection."""

    run: Callable[[], object]
    order: tuple[Any, ...] = (1,)


@dataclass
class _Job:
    """Writer job: one message of one connection."""

    connection: _Connection
    prepared: Prepared

    @property
    def order(self) -> tuple[Any, ...]:
        return self.prepared.order

    def run(self) -> bytes | None:
        return self.prepared.run()

    def send(self) -> None:
        if self.prepared.send is not None:
            self.prepared.send()


@dataclass(frozen=True)
class ConnectionLimits:
    """How long and how many: seconds without a byte before an idle
    connection is closed, seconds a started frame may take to complete, and
    the most connections open at once."""

    idle_timeout: float = 60.0
    frame_timeout: float = 10.0
    max_connections: int = 256

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "frame_timeout"):
            value = getattr(self, name)
            if not 0 < value <= 86400:  # also refuses NaN
                raise ConfigError(f"--{name.replace('_', '-')} must be more than 0 and at most 86400 seconds")
        if not 1 <= self.max_connections <= 65535:
            raise ConfigError("--max-connections must be 1..65535")


class _Connection(asyncio.Protocol):
    def __init__(self, server: HostServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.outstanding = 0  # messages with the writer, their answers not yet back
        self.written: list[int] = []  # approvals whose answers were written, not yet confirmed
        self.closing = False
        self.lost = False
        self.peer: object = None
        self._idle: asyncio.TimerHandle | None = None
        self._frame: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.peer = transport.get_extra_info("peername")
        limits = self.server.limits
        if len(self.server.connections) >= limits.max_connections:
            log.warning("refusing the connection from %s: %d connections open (the limit)", self.peer,
                        len(self.server.connections))
            self.closing = True
            transport.abort()
            return
        self.transport = transport
        self.server.connections.add(self)
        self._idle = self.server.loop.call_later(limits.idle_timeout, self._expire, "idle")
        log.info("terminal connected from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._idle, self._frame):
            if timer is not None:
                timer.cancel()
        self.lost = True
        if self.transport is None:
            return
        # Answers written and never confirmed: the terminal may not have them.
        self.server.mark(self.written, UNCONFIRMED)
        self.written = []
        self.server.connections.discard(self)
        log.info("terminal disconnected%s", f" ({exc})" if exc else "")

    def _expire(self, why: str) -> None:
        limits = self.server.limits
        if why == "idle":
            log.info("closing the idle connection from %s (nothing for %g s)", self.peer, limits.idle_timeout)
        else:
            log.warning("closing the slow connection from %s (a frame not complete within %g s)", self.peer,
                        limits.frame_timeout)
        self.close()

    def _watch(self, frames_completed: bool) -> None:
        """Restart the idle timer; time the frame that is now incomplete."""
        loop, limits = self.server.loop, self.server.limits
        if self._idle is not None:
            self._idle.cancel()
        self._idle = loop.call_later(limits.idle_timeout, self._expire, "idle")
        if self._frame is not None and (frames_completed or not self.buffer):
            self._frame.cancel()
            self._frame = None
        if self.buffer and self._frame is None:
            self._frame = loop.call_later(limits.frame_timeout, self._expire, "slow")

    # A terminal that sends without reading its answers: stop reading from
    # it until its answers drain, so memory stays bounded.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        # The terminal closed its side: it read the answers it waited for
        # (the emvkit client closes after reading, or before reversing).
        self.server.mark(self.written, CONFIRMED)
        self.written = []
        self.closing = True
        return True if self.outstanding else None  # answers still coming: close after them

    def data_received(self, data: bytes) -> None:
        if self.written:
            # The terminal sent again after its answers were written: it read them.
            self.server.mark(self.written, CONFIRMED)
            self.written = []
        if self.closing:
            return
        buffer = self.buffer
        buffer += data
        completed = False
        while len(buffer) >= 2:
            size = (buffer[0] << 8) | buffer[1]
            if size == 0 or size > MAX_MESSAGE:
                reason = f"frame length {size} is outside 1..{MAX_MESSAGE}"
                self.server.writer.submit(_Write(functools.partial(self.server.host.format_error, reason)))
                self.closing = True
                break
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2:2 + size])
            del buffer[:2 + size]
            completed = True
            try:
                prepared = prepare(self.server.host, message, delivered=False)
            except Exception:
                log.exception("fault while answering a message; closing the connection")
                self.closing = True
                break
            self.outstanding += 1
            self.server.writer.submit(_Job(self, prepared))
        if not self.closing:
            self._watch(completed)
        elif not self.outstanding:
            self.close()

    def deliver(self, reply: bytes | None, pending: int | None) -> None:
        """Write one answer (its row is committed); ``pending``: the row of
        an approval waiting for its confirmation."""
        self.outstanding -= 1
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            if pending is not None:
                self.server.mark([pending], UNCONFIRMED)
            return
        if reply is None:
            self.closing = True
        else:
            transport.write(frame(reply))
            if pending is not None:
                self.written.append(pending)
        if self.closing and not self.outstanding:
            transport.close()

    def fail(self) -> None:
        """The batch holding this connection's message was not committed:
        nothing to answer, the link is broken."""
        self.outstanding -= 1
        self.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class HostServer:
    """The TCP front end of an :class:`IssuerHost` on one event loop.

    Answers are sent once their rows are committed
    (:class:`~emvkit.terminal.host.groupcommit.GroupCommit`), many rows per
    commit."""

    def __init__(self, host: IssuerHost, address: str = "127.0.0.1", port: int = 8583,
                 limits: ConnectionLimits | None = None) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.limits = limits or ConnectionLimits()
        self.connections: set[_Connection] = set()
        self.writer = GroupCommit(host.log, self._handed_back)
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Bind and listen; ``self.port`` is the real port afterwards (for port 0)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(lambda: _Connection(self), self.address, self.port,
                                                      reuse_address=True, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        self.writer.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the server has not started")
        return self._loop

    def mark(self, row_ids: list[int], delivery: str) -> None:
        """Record the delivery of approvals (with the next batch)."""
        if row_ids:
            ids = list(row_ids)
            self.writer.submit(_Write(lambda: self.host.log.mark_delivery(ids, delivery)))

    def _handed_back(self, jobs: Sequence[Any], results: list[Any] | None) -> None:
        """A batch is committed (or failed): send its answers."""
        for i, job in enumerate(jobs):
            if not isinstance(job, _Job):
                continue
            if results is None:
                job.connection.fail()
                continue
            decided = job.prepared.decided
            pending = decided.row_id if decided is not None and decided.pending else None
            job.connection.deliver(results[i], pending)

    async def stop(self) -> None:
        """Stop listening; send the answers of what was received, close every
        connection, write the last rows."""
        if self._server is None:
            return
        self._server.close()
        for connection in self.connections:
            connection.closing = True  # nothing more is read
        await self.writer.drain()  # its answers are written
        for connection in list(self.connections):
            self.mark(connection.written, UNCONFIRMED)  # written, never confirmed
            connection.written = []
            connection.close()
        await self._server.wait_closed()
        self._server = None
        await self.writer.stop()

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{self.port}"


def serve(host: IssuerHost, address: str = "127.0.0.1", port: int = 8583,
          ready: Callable[[HostServer], None] | None = None, limits: ConnectionLimits | None = None) -> None:
    """Run the server until SIGINT or SIGTERM (main thread), then close the log."""

    async def main() -> None:
        server = HostServer(host, address, port, limits)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready(server)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await server.stop()

    try:
        asyncio.run(main())
    finally:
        host.close()


class ServerThread:
    """The server on an event loop in a background thread (tests, benches,
    an in-process TCP host). ``with ServerThread(host) as s: s.url``."""

    def __init__(self, host: IssuerHost, address: str = "127.0.0.1", port: int = 0,
                 limits: ConnectionLimits | None = None) -> None:
        self.server = HostServer(host, address, port, limits)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emvkit-host", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.stop())
        self._loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
