"""An :class:`~emvkit.terminal.host.api.Authoriser` that asks ``emvkit host serve``
over ISO 8583 on TCP: ``TcpAuthoriser("tcp://127.0.0.1:8583")``.

One connection, opened on first use and kept; requests go one at a time
(a lock makes the object safe to share between threads). Every wait is
bounded: connecting by ``connect_timeout``, the whole exchange by
``timeout``. Any failure (refused, reset, timed out, an answer that does not
decode or does not match the request's STAN) raises
:class:`~emvkit.terminal.errors.TransportError` and drops the connection; the next
request opens a new one. A request is never re-sent on its own: the host may
have authorised it already.

Instead, when a request went out and its answer did not come or could not be
used (timeout, broken link, an answer that does not decode or is for another
STAN), the client **reverses** it (:mod:`emvkit.terminal.host.reversal`): an
0400 at once, on a new connection; while the host does not acknowledge it, the
reversal stays pending (:attr:`TcpAuthoriser.pending`) and is repeated as an
0420 advice before the next request and when the client closes.
:meth:`TcpAuthoriser.reverse` does the same for an answer the terminal could
not use for another reason (the card declined after the approval).
"""

from __future__ import annotations

import itertools
import select
import socket
import threading
import time
from dataclasses import replace

from emvkit.terminal.endpoints import parse_tcp_url
from emvkit.terminal.errors import TransportError
from emvkit.terminal.host.api import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.host.iso8583 import (
    MAX_MESSAGE,
    MessageFormatError,
    decode_response,
    encode_request,
    encode_reversal,
    frame,
    transmission_time,
)
from emvkit.terminal.host.reversal import Reversal

__all__ = ["DEFAULT_PORT", "TcpAuthoriser", "parse_url"]

DEFAULT_PORT = 8583


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of ``tcp://HOST[:PORT]``."""
    return parse_tcp_url(url, "--host", DEFAULT_PORT)


class TcpAuthoriser:
    """ISO 8583 client of the issuer host simulator."""

    def __init__(self, url: str, timeout: float = 5.0, connect_timeout: float = 2.0) -> None:
        self.url = url
        self.address = parse_url(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._stans = itertools.count(1)
        self._pending: list[Reversal] = []
        # the last answered request: (id of the object given, the request as sent, its DE 7)
        self._answered: tuple[int, AuthorisationRequest, str] | None = None

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        with self._lock:
            self._send_pending()
            given = id(request)
            if request.stan == 0:
                request = replace(request, stan=self._next_stan())
            when = time.time()
            sent = {"sent": False}
            try:
                response, stan = self._exchange(frame(encode_request(request, when)), ("0110", "0210"), sent)
                if stan != request.stan % 1_000_000:
                    self._drop()
                    raise TransportError(f"{self.url}: the answer is for STAN {stan}, not {request.stan}")
            except TransportError as exc:
                if sent["sent"]:  # the host may have approved what we could not use
                    self._pending.append(Reversal(request, transmission_time(when), str(exc.args[0])[:200]))
                    self._send_pending()
                raise
            self._answered = (given, request, transmission_time(when))
            return response

    def reverse(self, request: AuthorisationRequest, reason: str) -> None:
        """Reverse the last authorisation this client received an answer to
        (``request``: the object passed to :meth:`authorise`, or the request
        as sent, with its STAN)."""
        with self._lock:
            if self._answered is None:
                return
            given, sent, transmitted = self._answered
            if id(request) != given and (request.stan != sent.stan or request.pan != sent.pan):
                return
            self._answered = None
            self._pending.append(Reversal(sent, transmitted, reason))
            self._send_pending()

    @property
    def pending(self) -> list[Reversal]:
        """Reversals sent without an acknowledgement yet (repeated as 0420)."""
        return list(self._pending)

    def _next_stan(self) -> int:
        return next(self._stans) % 1_000_000 or next(self._stans) % 1_000_000

    def _send_pending(self) -> None:
        """Send each pending reversal once (0400 the first time, then 0420);
        keep the ones the host did not acknowledge."""
        kept: list[Reversal] = []
        for n, reversal in enumerate(self._pending):
            if reversal.stan:  # sent before: repeat as an advice
                reversal = reversal.repeated(self._next_stan())
            else:
                reversal = Reversal(reversal.original, reversal.transmitted, reversal.reason, reversal.mti,
                                    self._next_stan())
            try:
                answer, stan = self._exchange(frame(encode_reversal(reversal)), ("0410", "0430"), {})
            except TransportError:
                kept += [reversal, *self._pending[n + 1:]]  # the host is away: try again later
                break
            if stan != reversal.stan % 1_000_000 or answer.response_code not in ("00", "25"):
                kept.append(reversal)
        self._pending = kept

    def _exchange(self, message: bytes, expected: tuple[str, ...],
                  sent: dict[str, bool]) -> tuple[AuthorisationResponse, int | None]:
        deadline = time.monotonic() + self.timeout
        try:
            sock = self._connection()
            sock.settimeout(self.timeout)
            sent["sent"] = True
            sock.sendall(message)
            reply = self._receive(sock, deadline)
            return decode_response(reply, expected)
        except TimeoutError:
            self._drop()
            raise TransportError(f"{self.url}: no answer within {self.timeout:g} s") from None
        except OSError as exc:
            self._drop()
            raise TransportError(f"{self.url}: {exc.strerror or exc}") from None
        except MessageFormatError as exc:
            self._drop()
            raise TransportError(f"{self.url}: malformed answer ({exc.reason})") from None
        except TransportError:
            self._drop()
            raise

    def close(self) -> None:
        """Send the pending reversals once more, then drop the connection."""
        with self._lock:
            if self._pending:
                self._send_pending()
            self._drop()

    def __enter__(self) -> TcpAuthoriser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> socket.socket:
        if self._sock is not None and select.select([self._sock], [], [], 0)[0]:
            # Readable while no request is outstanding: the host closed it
            # (its idle timeout) or sent something unasked. A new one.
            self._drop()
        if self._sock is None:
            try:
                sock = socket.create_connection(self.address, timeout=self.connect_timeout)
            except TimeoutError:
                raise TransportError(f"{self.url}: cannot connect within {self.connect_timeout:g} s") from None
            except OSError as exc:
                raise TransportError(f"{self.url}: cannot connect ({exc.strerror or exc})") from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def _receive(self, sock: socket.socket, deadline: float) -> bytes:
        header = self._read(sock, 2, deadline)
        size = int.from_bytes(header, "big")
        if size == 0 or size > MAX_MESSAGE:
            raise MessageFormatError(f"answer length {size} is outside 1..{MAX_MESSAGE}")
        return self._read(sock, size, deadline)

    @staticmethod
    def _read(sock: socket.socket, n: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError(0, "the host closed the connection")
            data += chunk
        return bytes(data)

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
