"""The virtual-card side of vsmartcard's vpcd protocol: put a Python card behind PC/SC.

vpcd (package ``vsmartcard-vpcd``) is a pcscd reader driver that listens on
TCP (35963 for slot 0 of the default ``/etc/reader.conf.d/vpcd``, the next port
for slot 1). The virtual card connects to it as a client; a connected socket is
a card in the field, a closed one is a card removed. Every message either way
is a 2-byte big-endian length followed by the payload:

* a 1-byte payload from vpcd is a control code: 0 power off, 1 power on,
  2 reset, 4 get ATR; only "get ATR" is answered (with the ATR);
* any longer payload is a C-APDU, answered with the R-APDU.

Debian's vpcd writes the length and the payload with two ``send`` calls, so
with delayed ACKs on our side every exchange stalls ~40-50 ms (Nagle on the
vpcd side waits for our ACK of the first segment). Re-arming ``TCP_QUICKACK``
after every receive removes the stall; ``TCP_NODELAY`` alone does not.

A card is any object with ``process(command_apdu: bytes) -> bytes``; the
optional ``power_on()``, ``reset()`` and ``power_off()`` are called when vpcd
sends the matching control code. ``power_off()`` is also called when the
connection to vpcd ends, as a card leaving the field loses power.

Logging goes to ``emvkit.vpcd``; APDU bodies (which may hold card numbers)
appear only at DEBUG.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

from emvkit.terminal.emulator.serving import Stoppable, answer, call_hook, run_until_signalled
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.iso7816 import NO_PRECISE_DIAGNOSIS, ATRError, contactless_atr

__all__ = ["DEFAULT_VPCD_PORT", "Card", "VpcdBridge", "serve_forever"]

DEFAULT_VPCD_PORT = 35963

log = logging.getLogger("emvkit.vpcd")

_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4
_HEADER = struct.Struct(">H")
_RECV_SIZE = 65536 + _HEADER.size


class Card(Protocol):
    """What the bridge needs of a card; ``power_on``/``reset``/``power_off`` are optional."""

    def process(self, command_apdu: bytes) -> bytes: ...


class VpcdBridge(Stoppable):
    """Connect ``card`` to a vpcd slot and answer its requests until stopped.

    No I/O happens until :meth:`run`. Every blocking wait is bounded by
    ``poll_interval``; a dropped connection (pcscd restarted, vpcd not yet
    listening) is retried with a backoff from ``poll_interval / 4`` growing to
    ``max_backoff`` seconds.

    Stopping removes the card gracefully: the bridge half-closes the socket
    and waits (at most ``removal_timeout``) until vpcd, at its next presence
    poll (every 0.4 s in pcscd), finds it closed and drops it. So when
    :meth:`run` returns, pcscd has seen the card leave, and a new bridge on the
    same port is not mistaken for the old card. Stopping thus takes up to
    0.4 s with a live pcscd, never more than ``removal_timeout`` after
    :meth:`close`, or ``poll_interval`` more after an external ``stop``.
    """

    def __init__(
        self,
        card: Card,
        host: str = "127.0.0.1",
        port: int = DEFAULT_VPCD_PORT,
        atr: bytes = contactless_atr(),
        *,
        poll_interval: float = 0.1,
        max_backoff: float = 1.0,
        removal_timeout: float = 0.5,
    ) -> None:
        if not 2 <= len(atr) <= 33:
            raise ATRError(f"ATR of {len(atr)} bytes is outside 2..33")
        self.card = card
        self.host = host
        self.port = port
        self.atr = bytes(atr)
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.removal_timeout = removal_timeout
        self._closing = threading.Event()
        self._closed_at: float | None = None
        self._stop: threading.Event | None = None
        self._connected = threading.Event()
        self._sock: socket.socket | None = None

    @property
    def connected(self) -> bool:
        """True while vpcd talks to the card: it has accepted the connection and sent a message.

        An open TCP connection alone is not enough: vpcd's listen backlog can
        hold a connection it has not accepted yet (while it still serves an
        older one it has not found closed).
        """
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :attr:`connected`; return it."""
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Make :meth:`run` return soon, removing the card from the reader first; for good."""
        self._closed_at = time.monotonic()
        self._closing.set()
        sock = self._sock
        if sock is not None:
            _half_close(sock)

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve vpcd, reconnecting as needed, until ``stop`` is set or :meth:`close` is called."""
        self._stop = stop
        backoff = self.poll_interval / 4
        announced_wait = False
        while not self._stopping():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.poll_interval)
            except OSError as exc:
                if not announced_wait:
                    log.warning("waiting for vpcd at %s:%d (%s); retrying until it answers (pcscd with "
                                "vsmartcard-vpcd running?)", self.host, self.port, exc)
                    announced_wait = True
                self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            announced_wait = False
            backoff = self.poll_interval / 4
            self._sock = sock
            log.debug("TCP connection to vpcd at %s:%d open", self.host, self.port)
            try:
                self._serve(sock)
            except OSError as exc:
                log.info("vpcd connection lost: %s", exc)
            finally:
                self._sock = None
                sock.close()
                if self._connected.is_set():
                    self._connected.clear()
                    log.info("card removed from vpcd at %s:%d", self.host, self.port)
                self._call_hook("power_off")
            if not self._stopping():
                self._sleep(backoff)
        log.info("vpcd bridge stopped")

    def _serve(self, sock: socket.socket) -> None:
        """Answer vpcd on ``sock`` until it closes, or until a stop has removed the card."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.poll_interval)
        buffer = bytearray()
        removal_deadline: float | None = None
        while True:
            if removal_deadline is None and self._stopping():
                _half_close(sock)
                started = self._closed_at if self._closed_at is not None else time.monotonic()
                removal_deadline = started + self.removal_timeout
            if removal_deadline is not None:
                sock.settimeout(max(0.001, min(self.poll_interval, removal_deadline - time.monotonic())))
            try:
                chunk = sock.recv(_RECV_SIZE)
            except TimeoutError:
                chunk = None
            if removal_deadline is not None:
                # Read and drop until vpcd closes its side: it has noticed the removal.
                if chunk == b"" or time.monotonic() >= removal_deadline:
                    if chunk is None or chunk:
                        log.info("vpcd did not notice the removal within %.1f s", self.removal_timeout)
                    return
                continue
            if chunk is None:
                continue
            # Delayed ACK re-enables itself; re-arm after every receive (see module docstring).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            if not chunk:
                log.info("vpcd closed the connection")
                return
            if not self._connected.is_set():
                self._connected.set()
                log.info("card inserted: vpcd at %s:%d is talking to it", self.host, self.port)
            buffer += chunk
            while len(buffer) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buffer)
                end = _HEADER.size + length
                if len(buffer) < end:
                    break
                payload = bytes(buffer[_HEADER.size : end])
                del buffer[:end]
                reply = self._handle(payload)
                if reply is not None:
                    sock.sendall(_HEADER.pack(len(reply)) + reply)

    def _handle(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            return self._control(payload[0])
        response = answer(self.card, payload, log)  # a vpcd message length is 2 bytes: 0xFFFF at most
        return NO_PRECISE_DIAGNOSIS if response is None else response

    def _control(self, code: int) -> bytes | None:
        if code == _GET_ATR:
            log.debug("get ATR")
            return self.atr
        hook = {_POWER_OFF: "power_off", _POWER_ON: "power_on", _RESET: "reset"}.get(code)
        if hook is None:
            log.warning("ignoring unknown vpcd control code %d", code)
        else:
            log.debug("%s", hook.replace("_", " "))
            self._call_hook(hook)
        return None

    def _call_hook(self, name: str) -> None:
        call_hook(self.card, name, log)


def _half_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve_forever(
    card: Card,
    host: str = "127.0.0.1",
    port: int = DEFAULT_VPCD_PORT,
    atr: bytes = contactless_atr(),
    ready: Callable[[], None] | None = None,
) -> int:
    """Run a :class:`VpcdBridge` in the foreground until SIGINT or SIGTERM; return exit status 0.

    ``ready`` is called once the host resolves, before the bridge starts (it then waits for vpcd as long
    as it takes).

    Signal handlers are installed only when called from the main thread, and
    the previous handlers are restored on return.
    """
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # a name that resolves to nothing fails now
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--vpcd: cannot resolve {host!r} ({exc})") from None
    bridge = VpcdBridge(card, host, port, atr)
    if ready is not None:
        ready()
    return run_until_signalled(bridge.run)
