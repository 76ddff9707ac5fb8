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
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import replace
from urllib.parse import urlsplit

from emvkit.terminal.errors import ConfigError, TransportError
from emvkit.terminal.host.api import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.host.iso8583 import MAX_MESSAGE, MessageFormatError, decode_response, encode_request, frame

__all__ = ["DEFAULT_PORT", "TcpAuthoriser", "parse_url"]

DEFAULT_PORT = 8583


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of ``tcp://HOST[:PORT]``."""
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"{url}: the port must be a number 0..65535") from None
    if parts.scheme != "tcp" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"{url}: an issuer host address looks like tcp://127.0.0.1:{DEFAULT_PORT}")
    return parts.hostname, port


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

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        with self._lock:
            if request.stan == 0:
                request = replace(request, stan=next(self._stans) % 1_000_000 or 1)
            message = frame(encode_request(request))
            deadline = time.monotonic() + self.timeout
            try:
                sock = self._connection()
                sock.settimeout(self.timeout)
                sock.sendall(message)
                reply = self._receive(sock, deadline)
                response, stan = decode_response(reply)
            except TimeoutError:
                self._drop()
                raise TransportError(f"{self.url}: no answer within {self.timeout:g} s") from None
            except OSError as exc:
                self._drop()
                raise TransportError(f"{self.url}: {exc.strerror or exc}") from None
            except MessageFormatError as exc:
                self._drop()
                raise TransportError(f"{self.url}: malformed answer ({exc.reason})") from None
            if stan != request.stan % 1_000_000:
                self._drop()
                raise TransportError(f"{self.url}: the answer is for STAN {stan}, not {request.stan}")
            return response

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> TcpAuthoriser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> socket.socket:
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
