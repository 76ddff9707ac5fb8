"""Serve a card over the emvkit link framing: on a new pty, a serial port, or TCP.

This is the token's USB-serial dev link on the host: the protocol is
:class:`emvkit.firmware.devlink.DevLink`, the very dispatcher the firmware runs, fed
from a pty master, a pyserial port or a TCP connection instead of the token's
USB CDC stream. Terminals reach it with the ``serial:`` transport
(:mod:`emvkit.terminal.transport.serial`):

* ``emvkit emulate --serial pty`` makes a pseudo-terminal pair, prints
  ``serving on /dev/pts/N`` on stderr and serves on the master; terminals open
  ``serial:/dev/pts/N``. The server keeps the slave open itself, so terminals
  may come and go (a pty master with no slave open reads EIO forever);
* ``emvkit emulate --serial URL`` serves on a device or any pyserial URL
  (reopened, with a backoff, when it goes away);
* ``emvkit emulate --tcp [HOST:]PORT`` listens on TCP (host 127.0.0.1 by
  default) for ``serial:socket://HOST:PORT``, one connection at a time; the
  card is powered off when a connection ends, as a token leaving the field.

A card is any object with ``process(command_apdu) -> response_apdu`` and
optionally ``power_on()``, ``reset()`` and ``power_off()``. Every blocking
wait is bounded by ``poll_interval``. Logging goes to ``emvkit.serial_server``;
APDU bodies (card data) appear only at DEBUG.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import select
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from emvkit.firmware.devlink import DevLink
from emvkit.terminal.emulator.serving import Stoppable, call_hook, run_until_signalled
from emvkit.terminal.endpoints import parse_host_port
from emvkit.terminal.errors import TransportError
from emvkit.terminal.iso7816 import contactless_atr
from emvkit.terminal.tlvdump import masked_response

__all__ = [
    "Card",
    "LinkServer",
    "PortLinkServer",
    "PtyLinkServer",
    "TcpLinkServer",
    "parse_tcp_target",
    "serve_forever",
    "serve_tcp_forever",
]

log = logging.getLogger("emvkit.serial_server")

_WRITE_TIMEOUT = 2.0  # a peer that does not read for this long loses the answer
_READ_SIZE = 4096


class Card(Protocol):
    """What the server needs of a card; ``power_on``/``reset``/``power_off`` are optional."""

    def process(self, command_apdu: bytes) -> bytes: ...


class _LoggedCard:
    """The card with every APDU logged at DEBUG and exceptions logged before DevLink answers 6F00."""

    def __init__(self, card: Card) -> None:
        self._card = card
        for name in ("power_on", "reset", "power_off"):
            hook = getattr(card, name, None)
            if hook is not None:
                setattr(self, name, hook)

    def process(self, command_apdu: bytes) -> bytes:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("C-APDU %s", command_apdu.hex(" ").upper())
        try:
            response = self._card.process(command_apdu)
        except Exception:
            log.exception("card raised while processing a %d-byte C-APDU; answering 6F00", len(command_apdu))
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug("R-APDU %s", masked_response(bytes(response)))  # PAN and track data masked
        return response


class _Endpoint(Protocol):
    def read(self, want: Callable[[], int], timeout: float) -> bytes | None:
        """Bytes that arrived; ``None`` when none did within ``timeout``; ``b""`` when the peer is gone.

        ``want()`` is how many bytes a blocking read may ask for (:meth:`emvkit.firmware.link.Decoder.want`);
        endpoints that read what has arrived do not call it.
        """
        ...

    def write(self, data: bytes) -> None: ...


class LinkServer(Stoppable):
    """Serve one card on one link until stopped; subclasses say where.

    No I/O happens in the constructor: :meth:`open` makes the endpoint (so its
    name is known before serving), :meth:`run` serves until ``stop`` is set or
    :meth:`close` is called, and :meth:`close` also releases the endpoint. Use
    it from a thread: ``server.open(); Thread(target=server.run).start(); ...;
    server.close()``; or as a context manager around :meth:`run` calls.
    """

    def __init__(self, card: Card, atr: bytes = contactless_atr(), *, poll_interval: float = 0.1) -> None:
        self.card = _LoggedCard(card)
        self.atr = bytes(atr)
        self.poll_interval = poll_interval
        profile = getattr(card, "profile", None)
        self.profile_id = str(getattr(profile, "id", "") or "")
        self.sessions = 0
        self._counted = [0, 0, 0]  # frames, faults, duplicates of the sessions that ended
        self._session: DevLink | None = None
        self._closing = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop: threading.Event | None = None
        self._opened = False
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """Where the server listens, as a terminal would name it."""
        raise NotImplementedError

    @property
    def frames(self) -> int:
        """Valid frames received, over all sessions."""
        return self._counted[0] + (self._session.frames if self._session else 0)

    @property
    def faults(self) -> int:
        """Bad frames (garbage, CRC failures) answered with a NAK, over all sessions."""
        return self._counted[1] + (self._session.faults if self._session else 0)

    @property
    def duplicates(self) -> int:
        """Resent APDUs answered from the last response without running the card again."""
        return self._counted[2] + (self._session.duplicates if self._session else 0)

    def open(self) -> None:
        self._opened = True

    def close(self) -> None:
        """Make :meth:`run` return (within ``poll_interval``) and release the endpoint; for good."""
        self._closing.set()
        self._idle.wait(10 * self.poll_interval + 1.0)
        with self._lock:
            if self._opened:
                self._opened = False
                self._release()

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until ``stop`` is set or :meth:`close` is called (opening first if needed)."""
        with self._lock:
            if self._closing.is_set():
                return
            if not self._opened:
                self.open()
            self._stop = stop
            self._idle.clear()
        try:
            self._run()
            log.info("link server on %s stopped", self.name)
        finally:
            self._idle.set()

    def __enter__(self) -> LinkServer:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _serve(self, endpoint: _Endpoint) -> None:
        """Serve frames from ``endpoint`` until it closes or the server stops."""
        dev = DevLink(self.card, self.atr, self.profile_id)
        self._session = dev
        self.sessions += 1
        out: list[bytes] = []

        def collect(data: Any) -> None:
            out.append(bytes(data))  # DevLink's buffer is reused: copy

        try:
            while not self._stopping():
                data = endpoint.read(dev.want, self.poll_interval)
                if data is None:
                    continue
                if not data:
                    return
                dev.receive(data, collect)
                if out:
                    endpoint.write(out[0] if len(out) == 1 else b"".join(out))
                    out.clear()
        finally:
            self._session = None
            self._counted = [self._counted[0] + dev.frames, self._counted[1] + dev.faults,
                             self._counted[2] + dev.duplicates]
            if dev.faults:
                log.info("session ended: %d frames, %d bad frames NAKed, %d resent APDUs",
                         dev.frames, dev.faults, dev.duplicates)


# --- a pseudo-terminal ---

class _PtyEndpoint:
    def __init__(self, master: int) -> None:
        self.master = master
        self.poller = select.poll()
        self.poller.register(master, select.POLLIN)

    def read(self, want: Callable[[], int], timeout: float) -> bytes | None:
        if not self.poller.poll(timeout * 1000):
            return None
        try:
            return os.read(self.master, _READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open; cannot happen while we hold one
                time.sleep(timeout)
                return None
            raise

    def write(self, data: bytes) -> None:
        try:
            done = os.write(self.master, data)  # the whole answer, nearly always
        except BlockingIOError:
            done = 0
        if done == len(data):
            return
        view = memoryview(data)[done:]
        deadline = time.monotonic() + _WRITE_TIMEOUT
        while view:
            try:
                view = view[os.write(self.master, view):]
                continue
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("nobody reads the pty: dropped %d bytes of answer", len(view))
                return
            select.select([], [self.master], [], remaining)


class PtyLinkServer(LinkServer):
    """Serve on the master of a new pseudo-terminal; terminals open :attr:`path`."""

    def __init__(self, card: Card, atr: bytes = contactless_atr(), *, poll_interval: float = 0.1) -> None:
        super().__init__(card, atr, poll_interval=poll_interval)
        self.path = ""
        self._master = -1
        self._slave = -1

    @property
    def name(self) -> str:
        return self.path or "pty"

    def open(self) -> None:
        if self._opened:
            return
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # 8-bit clean until a terminal configures it (pyserial does the same)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        super().open()

    def _run(self) -> None:
        log.info("serving on %s", self.path)
        self._serve(_PtyEndpoint(self._master))

    def _release(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1


# --- a serial device or pyserial URL ---

class _PortEndpoint:
    def __init__(self, port: Any) -> None:
        self.port = port

    def read(self, want: Callable[[], int], timeout: float) -> bytes | None:
        data: bytes = self.port.read(max(want(), self.port.in_waiting))  # returns within the port timeout
        return data or None  # pyserial raises when the port is gone; b"" means nothing yet

    def write(self, data: bytes) -> None:
        self.port.write(data)


class PortLinkServer(LinkServer):
    """Serve on a serial device or any pyserial URL, reopening it when it goes away."""

    def __init__(
        self,
        card: Card,
        url: str,
        atr: bytes = contactless_atr(),
        *,
        baudrate: int = 115200,
        poll_interval: float = 0.1,
        max_backoff: float = 2.0,
    ) -> None:
        super().__init__(card, atr, poll_interval=poll_interval)
        self.url = url
        self.baudrate = baudrate
        self.max_backoff = max_backoff
        self._port: Any = None

    @property
    def name(self) -> str:
        return self.url

    def open(self) -> None:
        if self._opened:
            return
        self._port = self._open_port()
        super().open()

    def _open_port(self) -> Any:
        try:
            pyserial = importlib.import_module("serial")
        except ImportError as exc:
            raise TransportError("serving on a serial port needs pyserial: pip install 'emvkit[serial]'") from exc
        try:
            return pyserial.serial_for_url(self.url, baudrate=self.baudrate, timeout=self.poll_interval,
                                           write_timeout=_WRITE_TIMEOUT)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.url}: {exc}") from exc

    def _run(self) -> None:
        backoff = self.poll_interval
        while not self._stopping():
            if self._port is None:
                try:
                    self._port = self._open_port()
                except TransportError as exc:
                    log.debug("%s", exc)
                    self._sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                log.info("%s is back", self.url)
            backoff = self.poll_interval
            log.info("serving on %s", self.url)
            try:
                self._serve(_PortEndpoint(self._port))
            except Exception as exc:  # pyserial raises SerialException and friends
                log.info("%s went away: %s", self.url, exc)
                call_hook(self.card, "power_off", log)
                self._close_port()

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception as exc:
                log.debug("closing %s: %s", self.url, exc)

    def _release(self) -> None:
        self._close_port()


# --- TCP ---

class _SocketEndpoint:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self, want: Callable[[], int], timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(_READ_SIZE)
        except TimeoutError:
            return None
        except OSError as exc:
            log.info("connection lost: %s", exc)
            return b""

    def write(self, data: bytes) -> None:
        self.sock.settimeout(_WRITE_TIMEOUT)
        self.sock.sendall(data)


class TcpLinkServer(LinkServer):
    """Listen on TCP for ``serial:socket://HOST:PORT``; one connection at a time (port 0: any free port)."""

    def __init__(
        self, card: Card, host: str = "127.0.0.1", port: int = 0, atr: bytes = contactless_atr(), *,
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__(card, atr, poll_interval=poll_interval)
        self.host = host
        self.port = port
        self._listener: socket.socket | None = None
        self._bound: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the port is known after :meth:`open`)."""
        return self._bound or (self.host, self.port)

    @property
    def name(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def open(self) -> None:
        if self._opened:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._listener = socket.create_server((self.host, self.port), family=family, backlog=1)
        except OSError as exc:
            raise TransportError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self._listener.settimeout(self.poll_interval)
        name = self._listener.getsockname()
        self._bound = (str(name[0]), int(name[1]))
        super().open()

    def _run(self) -> None:
        listener = self._listener
        assert listener is not None
        log.info("serving on tcp %s", self.name)
        while not self._stopping():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                log.info("accept failed: %s", exc)
                self._sleep(self.poll_interval)
                continue
            log.info("terminal connected from %s:%d", peer[0], peer[1])
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._serve(_SocketEndpoint(conn))
            except OSError as exc:
                log.info("connection from %s:%d lost: %s", peer[0], peer[1], exc)
            finally:
                conn.close()
                call_hook(self.card, "power_off", log)  # the token left the field
            log.info("terminal %s:%d disconnected", peer[0], peer[1])

    def _release(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()


def parse_tcp_target(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to 127.0.0.1."""
    return parse_host_port(text, "--tcp", listen=True)


def _run_until_signal(server: LinkServer) -> int:
    """Run ``server`` in the foreground until SIGINT or SIGTERM; return exit status 0.

    Signal handlers are installed only when called from the main thread, and
    the previous handlers are restored on return.
    """
    try:
        return run_until_signalled(server.run)
    finally:
        server.close()


def serve_forever(card: Card, target: str, atr: bytes = contactless_atr(),
                  ready: Callable[[], None] | None = None) -> int:
    """Serve ``card`` on a new pty (``target`` "pty") or a serial device / pyserial URL, until a signal.

    ``ready`` is called once the port is open, before the "serving on" line."""
    server: LinkServer = PtyLinkServer(card, atr) if target == "pty" else PortLinkServer(card, target, atr)
    server.open()
    if ready is not None:
        ready()
    print(f"serving on {server.name}", file=sys.stderr, flush=True)
    return _run_until_signal(server)


def serve_tcp_forever(card: Card, target: str, atr: bytes = contactless_atr(),
                      ready: Callable[[], None] | None = None) -> int:
    """Serve ``card`` on TCP ``[HOST:]PORT`` (host 127.0.0.1 by default), until a signal;
    ``ready`` as for :func:`serve_forever`."""
    host, port = parse_tcp_target(target)
    server = TcpLinkServer(card, host, port, atr)
    server.open()
    if ready is not None:
        ready()
    print(f"serving on {server.name}", file=sys.stderr, flush=True)
    return _run_until_signal(server)
