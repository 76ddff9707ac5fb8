"""The ``serial:`` transport: a token on a serial link speaking the emvkit link framing.

``serial:/dev/ttyACM0`` (the token's USB CDC port), ``serial:/dev/pts/3`` (a
pty from ``emvkit emulate --serial pty``), ``serial:socket://127.0.0.1:7000``
(``emvkit emulate --tcp 7000``) or any other pyserial URL (``serial_for_url``:
``rfc2217://``, ``spy://``, ``loop://``, ...). Options go in the query:
``?baud=115200&timeout=2&retries=3``; other query options of a pyserial URL
(``socket://host:port?logging=debug``) are passed on to pyserial.

The frames are those of :mod:`emvkit.firmware.link` and the device side is
:mod:`emvkit.firmware.devlink` (the firmware, or the host emulator in
:mod:`emvkit.terminal.emulator.serial_server`). :meth:`SerialTransport.open` opens the
port and sends POWER_ON; the ATR answers it. Every request (POWER_ON, an APDU,
DEVICE_INFO, RESET, POWER_OFF) carries a sequence number and its answer the
same one; answers with another number are stale (the late answer to a resent
request) and are dropped. LOG frames from the device go to the
``emvkit.serial`` logger at DEBUG.

Retries and timeouts. A request is sent again when the device NAKs (an ERROR
frame whose code says a frame was lost: bad CRC, malformed, too long), when
an answer arrives corrupted (the decoder reports a fault), or when nothing
valid arrives within ``timeout`` seconds; at most ``retries`` times. The
device answers a resent APDU from its last response without running the card
again, so a retry never executes a command twice. When the retries are spent:

* if not one byte came back during the whole request, the token stopped
  answering: :class:`~emvkit.terminal.errors.CardRemoved` -- for the kernel a token
  that went silent and one that left the field are the same thing (Outcome
  Try Again, "present card again");
* otherwise the link is too noisy: :class:`~emvkit.terminal.errors.TransportError`.

A port that closes under us (the pty's other side exits, the USB device goes,
the TCP peer closes) is :class:`~emvkit.terminal.errors.CardRemoved` at once. So one
request waits at most ``(retries + 1) * timeout`` seconds (8 s by default).

pyserial is an optional dependency (``pip install 'emvkit[serial]'``).
Command and response bodies are logged at DEBUG only: they hold card data.
"""

from __future__ import annotations

import importlib
import logging
import os
import select
import time
from dataclasses import dataclass, field
from typing import Any

from emvkit.firmware import link
from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError
from emvkit.terminal.tlvdump import masked_response
from emvkit.terminal.transport.base import BaseTransport

__all__ = [
    "DEFAULT_BAUD",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "DeviceInfo",
    "SerialTransport",
    "TokenRefused",
    "from_url",
]

DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRIES = 3
_READ_SLICE = 0.05  # the longest single read: how often a wait looks at its deadline
_READ_SLICE_MS = 50
_READ_SIZE = 4096
_CLOSE_TIMEOUT = 0.5  # how long close() waits for POWER_OFF to be acknowledged
_OPTIONS = ("baud", "timeout", "retries")

log = logging.getLogger("emvkit.serial")


@dataclass(frozen=True)
class DeviceInfo:
    """What a DEVICE_INFO request reports (``fields`` holds every key as sent)."""

    version: str
    profile: str
    implementation: str
    mem_free: int
    max_payload: int
    fields: dict[str, str] = field(default_factory=dict)


class TokenRefused(TransportError):
    """The token answered a request with an ERROR frame (not a NAK): ``code`` is the link's ERR_* code."""

    def __init__(self, message: str, code: int, text: str) -> None:
        super().__init__(message)
        self.code = code
        self.text = text


def _pyserial() -> Any:
    try:
        return importlib.import_module("serial")  # pyserial, not this module: imports are absolute
    except ImportError as exc:
        raise TransportError("serial: needs pyserial: pip install 'emvkit[serial]' (or pyserial)") from exc


def _name(ftype: int) -> str:
    return link.TYPE_NAMES.get(ftype, f"0x{ftype:02X}")


class SerialTransport(BaseTransport):
    """A token behind a pyserial port; see the module docstring for the protocol and its retries."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = DEFAULT_BAUD,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        url: str = "",
    ) -> None:
        super().__init__()
        if timeout <= 0:
            raise ConfigError(f"serial: timeout must be positive, not {timeout}")
        if retries < 0:
            raise ConfigError(f"serial: retries must be 0 or more, not {retries}")
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.retries = retries
        self.url = url or f"serial:{port}"
        self.retransmissions = 0  # requests sent again, over the transport's life
        self._serial: Any = None
        self._decoder = link.Decoder()
        self._writer = link.FrameWriter()
        self._seq = 0
        self._lost = False
        self._pending: list[Any] = []
        self._fd: int | None = None
        self._poller: Any = None

    # --- life cycle ---

    def open(self) -> None:
        pyserial = _pyserial()
        try:
            self._serial = pyserial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=min(_READ_SLICE, self.timeout), write_timeout=self.timeout
            )
        except (OSError, ValueError) as exc:  # SerialException is an OSError
            raise TransportError(f"{self.url}: cannot open {self.port}: {exc}") from exc
        self._decoder = link.Decoder()
        self._lost = False
        self._pending = []
        self._fd = _file_descriptor(self._serial)
        self._poller = None
        if self._fd is not None:
            self._poller = select.poll()
            self._poller.register(self._fd, select.POLLIN)
        try:
            try:
                self._serial.reset_input_buffer()
            except OSError as exc:
                raise TransportError(f"{self.url}: {self.port}: {exc}") from exc
            self._atr = self._request(link.POWER_ON, b"", link.ATR).payload
        except BaseException:
            self._close_port()
            raise
        log.info("%s: token powered on, ATR %s", self.url, self._atr.hex(" ").upper())
        super().open()

    def close(self) -> None:
        if self._serial is not None and self.is_open and not self._lost:
            try:
                self._request(link.POWER_OFF, b"", link.ATR, timeout=min(self.timeout, _CLOSE_TIMEOUT), retries=0)
            except TransportError as exc:
                log.info("%s: POWER_OFF not acknowledged (%s)", self.url, exc)
        self._close_port()
        super().close()

    def card_present(self) -> bool:
        return self.is_open and not self._lost

    def reset(self) -> bytes:
        """Warm reset: the card application forgets its transaction; returns the ATR."""
        self._require_open()
        self._atr = self._request(link.RESET, b"", link.ATR).payload
        return self._atr

    def device_info(self) -> DeviceInfo:
        """Ask the token what it runs: firmware version, profile, interpreter, free memory."""
        self._require_open()
        payload = self._request(link.DEVICE_INFO_REQUEST, b"", link.DEVICE_INFO).payload
        try:
            fields = link.parse_info(payload)
            mem_free = int(fields.get("mem_free", "0"))
            max_payload = int(fields.get("max_payload", str(link.MAX_PAYLOAD)))
        except ValueError as exc:
            raise TransportError(f"{self.url}: unreadable DEVICE_INFO: {exc}") from exc
        return DeviceInfo(
            version=fields.get("version", ""),
            profile=fields.get("profile", ""),
            implementation=fields.get("impl", ""),
            mem_free=mem_free,
            max_payload=max_payload,
            fields=fields,
        )

    def request(self, ftype: int, payload: bytes, answer: int, *, timeout: float | None = None) -> link.Frame:
        """One request of the link protocol (PROVISION_*, ...) and its answer of type ``answer``.

        Resent on NAKs and timeouts as every request is (``timeout`` per attempt, the transport's by
        default); an ERROR frame for it raises :class:`TokenRefused`.
        """
        self._require_open()
        try:
            return self._request(ftype, payload, answer, timeout=timeout)
        except link.LinkError as exc:
            raise TransportError(f"{self.url}: {exc}") from exc

    def _transmit(self, command: bytes) -> bytes:
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            log.debug("C-APDU %s", command.hex(" ").upper())
        try:
            response: bytes = self._request(link.APDU_COMMAND, command, link.APDU_RESPONSE).payload
        except link.LinkError as exc:
            raise TransportError(f"{self.url}: {exc}") from exc
        if debug:
            log.debug("R-APDU %s", masked_response(response))  # PAN and track data masked
        return response

    def _require_open(self) -> None:
        if not self.is_open:
            raise TransportError(f"{self.url}: transport is not open")

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        self._fd = None
        self._poller = None
        if port is not None:
            try:
                port.close()
            except OSError as exc:
                log.debug("%s: closing the port: %s", self.url, exc)

    # --- one request and its answer ---

    def _request(
        self, ftype: int, payload: bytes, answer: int, *, timeout: float | None = None, retries: int | None = None
    ) -> link.Frame:
        if self._lost:
            raise CardRemoved(f"{self.url}: the token is gone")
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        seq = self._seq = (self._seq + 1) & 0xFF
        wire = self._writer.encode(ftype, seq, payload)  # valid until the next request: kept for resends
        if self._pending:
            self._forward_logs()
        heard = False
        resent = 0
        self._write(wire)
        deadline = time.monotonic() + timeout
        while True:
            problem = ""
            events = self._events()
            if events is not None:
                heard = True
                if events:
                    event = events[0]  # the answer, nearly always, and alone
                    if type(event) is link.Frame and event.seq == seq and event.type == answer:
                        if len(events) > 1:
                            self._pending = events[1:]  # what came after the answer in the same read
                        return event
                for i, event in enumerate(events):
                    if isinstance(event, link.Frame):
                        if event.seq == seq and event.type == answer:
                            if i + 1 < len(events):
                                self._pending = events[i + 1:]  # what came after the answer in the same read
                            return event
                        problem = self._unexpected(event, ftype, seq) or problem
                    else:
                        problem = f"a corrupted frame from the token ({link.FAULT_NAMES[event.kind]})"
                        log.debug("%s: %r", self.url, event)
            if not problem:
                if time.monotonic() < deadline:
                    continue
                problem = f"no answer within {timeout:g} s"
            what = _what(ftype, seq)
            if resent >= retries:
                if not heard:
                    self._lost = True
                    raise CardRemoved(f"{self.url}: the token stopped answering ({what}: {problem}, "
                                      f"{resent} resend(s))")
                raise TransportError(f"{self.url}: no valid answer to {what} after {resent} resend(s): {problem}")
            resent += 1
            self.retransmissions += 1
            log.info("%s: %s; resending %s (%d/%d)", self.url, problem, what, resent, retries)
            self._write(wire)
            deadline = time.monotonic() + timeout

    def _unexpected(self, frame: link.Frame, ftype: int, seq: int) -> str:
        """A frame that is not the answer: log it, raise, or return the problem that calls for a resend."""
        if frame.type == link.LOG:
            log.debug("%s: device: %s", self.url, frame.payload.decode("utf-8", "replace"))
        elif frame.type == link.ERROR:
            code, text = link.parse_error(frame.payload)
            if code in link.NAK_CODES:
                return f"the token lost a frame ({text or code})"
            if frame.seq == seq:
                raise TokenRefused(f"{self.url}: the token refused {_what(ftype, seq)}: {text or code}", code, text)
            log.debug("%s: ignoring a stale error for seq %d: %s", self.url, frame.seq, text)
        elif frame.seq != seq:
            log.debug("%s: ignoring a stale %s seq %d", self.url, _name(frame.type), frame.seq)
        else:
            raise TransportError(f"{self.url}: {_name(frame.type)} in answer to {_what(ftype, seq)}")
        return ""

    def _forward_logs(self) -> None:
        # What came after the last answer (in the same read) predates this
        # request: LOG lines are passed on, stale answers and NAKs dropped.
        events, self._pending = self._pending, []
        for event in events:
            if isinstance(event, link.Frame) and event.type == link.LOG:
                log.debug("%s: device: %s", self.url, event.payload.decode("utf-8", "replace"))

    def _write(self, wire: Any) -> None:
        # A tty is written directly: os.write() takes a whole frame at once
        # (pyserial's write() adds a select() after every write, even a complete one).
        port = self._serial
        if port is None:
            raise TransportError(f"{self.url}: transport is not open")
        fd = self._fd
        try:
            if fd is None:
                port.write(wire)
                return
            try:
                done = os.write(fd, wire)
            except BlockingIOError:
                done = 0
            if done < len(wire):
                self._write_rest(fd, memoryview(wire)[done:])
        except OSError as exc:
            self._lost = True
            raise CardRemoved(f"{self.url}: the link closed while writing ({exc})") from exc
        except TransportError:
            raise
        except Exception as exc:  # pyserial's SerialTimeoutException and friends
            raise TransportError(f"{self.url}: write failed: {exc}") from exc

    def _write_rest(self, fd: int, rest: memoryview) -> None:
        """The part of a frame the tty did not take at once: wait until it does, at most ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        while rest:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(f"{self.url}: write failed: Write timeout")
            _, ready, _ = select.select([], [fd], [], remaining)
            if ready:
                try:
                    rest = rest[os.write(fd, rest):]
                except BlockingIOError:
                    pass

    def _events(self) -> list[Any] | None:
        # What the next read completes: None when no byte came within the read
        # slice, else the decoder's events (none yet, when the bytes did not
        # end a frame). A port with a file descriptor (a tty) is read
        # directly: one poll() and one read() of everything that has arrived.
        # Other pyserial ports (socket://, rfc2217://, ...) are asked for up
        # to one COBS block, or all that is waiting, so the read returns
        # within the port's read timeout, early once the bytes are there.
        port = self._serial
        if port is None:
            raise TransportError(f"{self.url}: transport is not open")
        try:
            if self._fd is not None:
                if not self._poller.poll(_READ_SLICE_MS):
                    return None
                data = os.read(self._fd, _READ_SIZE)
                if not data:
                    raise OSError("end of file")
            else:
                data = port.read(max(self._decoder.want(), port.in_waiting))
        except BlockingIOError:
            return None
        except OSError as exc:
            self._lost = True
            raise CardRemoved(f"{self.url}: the link closed ({exc})") from exc
        if not data:
            return None
        events: list[Any] = self._decoder.feed(data)
        return events


def _what(ftype: int, seq: int) -> str:
    return f"{_name(ftype)} seq {seq}"


def _file_descriptor(port: Any) -> int | None:
    """The descriptor of a port that is pyserial's plain posix ``Serial`` (a tty), else None.

    Subclasses are left to pyserial's own read: ``spy://`` wraps it to hexdump what it reads.
    """
    if type(port).__module__ != "serial.serialposix":
        return None
    fileno = getattr(port, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = fileno()
    except (OSError, AttributeError, NotImplementedError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _number(url: str, name: str, text: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(text)
    except ValueError as exc:
        raise ConfigError(f"{url}: {name} must be a number, not {text!r}") from exc


def from_url(url: str) -> SerialTransport:
    """``serial:PORT[?baud=N&timeout=S&retries=N]``; PORT is a device path or any pyserial URL."""
    rest = url.split(":", 1)[1]
    target, _, query = rest.partition("?")
    if not target:
        raise ConfigError(f"{url}: name the port: serial:/dev/ttyACM0, serial:socket://HOST:PORT, ...")
    ours: dict[str, str] = {}
    theirs: list[str] = []
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key in _OPTIONS:
            ours[key] = value
        else:
            theirs.append(part)
    if theirs and "://" not in target:
        unknown = ", ".join(sorted(p.partition("=")[0] for p in theirs))
        raise ConfigError(f"{url}: unknown option(s) {unknown} ({', '.join(_OPTIONS)})")
    port = target + ("?" + "&".join(theirs) if theirs else "")
    baud = _number(url, "baud", ours.get("baud", str(DEFAULT_BAUD)), int)
    timeout = _number(url, "timeout", ours.get("timeout", str(DEFAULT_TIMEOUT)), float)
    retries = _number(url, "retries", ours.get("retries", str(DEFAULT_RETRIES)), int)
    if baud <= 0:
        raise ConfigError(f"{url}: baud must be positive")
    if not 0 < timeout < 3600:
        raise ConfigError(f"{url}: timeout must be between 0 and 3600 seconds")
    if not 0 <= retries <= 100:
        raise ConfigError(f"{url}: retries must be between 0 and 100")
    return SerialTransport(port, baudrate=baud, timeout=timeout, retries=retries, url=url)
