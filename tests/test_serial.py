"""The ``serial:`` transport end to end: pyserial on real ttys, the firmware under the real MicroPython.

How the two ends meet. pyserial opens a tty by path, and a pty's master has no
path, so:

* the firmware (``firmware/devlink.py`` under the MicroPython unix port) gets
  the pty's MASTER as its stdin/stdout, and the host's ``serial:`` transport
  opens the SLAVE, ``/dev/pts/N``, through pyserial: both ends sit on the real
  tty device, with pyserial's own termios set-up on the slave. The test keeps
  a slave descriptor open while it starts the firmware (a master with no slave
  open reads EIO) and closes it once pyserial holds the slave; when the host
  closes the port the firmware reads EIO and exits 0, and when the firmware
  dies the host reads EIO: the token is gone;
* ``devlink.py --tty PATH`` (the firmware opening a tty itself) is run on the
  slave of one pty while the host opens the slave of a second pty; a relay in
  the test copies between the two masters and injects garbage and bit flips.

The host-side server (``emvkit.terminal.emulator.serial_server``) is tested on a pty,
on TCP (``serial:socket://``) behind a fault-injecting TCP relay, and through
``emvkit emulate --serial pty`` / ``--tcp`` subprocesses. Every wait is bounded.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import select
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from emvkit.firmware import link
from emvkit.terminal.config_files import load_config
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.emulator.serial_server import (
    LinkServer,
    PortLinkServer,
    PtyLinkServer,
    TcpLinkServer,
    parse_tcp_target,
)
from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.perso.builtin import profile_path
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.transport import make_transport, open_transport
from emvkit.terminal.transport.base import BaseTransport, Transport
from emvkit.terminal.transport.serial import SerialTransport, from_url
from tests.conftest import HANG_S, ROOT, serving_line, venv_tool, within

# The firmware package runs as ``firmware`` under MicroPython (MICROPYPATH holds the repository root)
# and as ``emvkit.firmware`` on CPython; its modules import each other relatively, so it runs with -m.
DEVLINK = ["-m", "firmware.devlink"]
DEVLINK_CPYTHON = ["-m", "emvkit.firmware.devlink"]
SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
ODA = {"visa": "fDDA", "mastercard": "CDA"}


def tap(transport: Transport, amount: int = 1234) -> Tap:
    return run_transaction(transport, load_config(), TransactionRequest(amount=amount))


def assert_approved(result: Tap, scheme: str) -> None:
    assert result.result.outcome.outcome is Outcome.APPROVED, (result.result.outcome, result.result.error)
    assert (result.result.oda, result.result.oda_result) == (ODA[scheme], "successful")


def micropython_env() -> dict[str, str]:
    return dict(os.environ, MICROPYPATH=f".frozen:{ROOT}")


def stop_process(proc: subprocess.Popen[Any], timeout: float = HANG_S) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout)


@contextmanager
def firmware_on_pty(
    scheme: str, interpreter: str = "micropython", *, blocking: bool = True
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The firmware on a pty master (its stdin/stdout); yields the slave path for pyserial.

    ``blocking=False`` hands it the master with O_NONBLOCK: the firmware then reads what has
    arrived in one call (DEVICE_INFO ``reader=arrived``) instead of byte by byte (``reader=bytes``).
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, blocking)
    executable = venv_tool("micropython") if interpreter == "micropython" else sys.executable
    proc = subprocess.Popen(
        [executable, *(DEVLINK if interpreter == "micropython" else DEVLINK_CPYTHON), str(profile_path(scheme))],
        stdin=master, stdout=master, stderr=subprocess.PIPE, env=dict(micropython_env(), PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )
    os.close(master)  # the firmware holds the only master: when it dies, the host reads EIO
    slave_open = True
    try:
        yield os.ttyname(slave), proc
        os.close(slave)
        slave_open = False
    finally:
        if slave_open:
            os.close(slave)
        if proc.poll() is None:
            stop_process(proc)
        assert proc.stderr is not None
        proc.stderr.close()


def open_serial(path: str, **options: object) -> SerialTransport:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    transport = open_transport(f"serial:{path}" + (f"?{query}" if query else ""))
    assert isinstance(transport, SerialTransport)
    return transport


@contextmanager
def serial_link(path: str, **options: object) -> Iterator[SerialTransport]:
    transport = open_serial(path, **options)
    try:
        yield transport
    finally:
        transport.close()


# --- a fault-injecting relay ---


class FaultyRelay:
    """Copies bytes between two descriptors (pty masters or sockets), with seeded faults.

    Per chunk read: with ``p_garbage`` random bytes (zeros included) go in
    front of it, between the frame before and this one; with ``p_flip`` one
    bit of it is flipped (a delimiter, a COBS code byte or data alike).
    """

    def __init__(self, a: int, b: int, seed: int, p_garbage: float = 0.0, p_flip: float = 0.0) -> None:
        self.fds = {a: b, b: a}
        self.rng = random.Random(seed)
        self.p_garbage = p_garbage
        self.p_flip = p_flip
        self.garbage = 0
        self.flips = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FaultyRelay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(HANG_S)
        assert not self.thread.is_alive()

    def _run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select(list(self.fds), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # a pty whose slave is not open (yet, or any more)
                    self.stop.wait(0.01)  # select says readable (EIO) at once: poll, do not spin; ends at stop
                    continue
                if not data:
                    return
                self._write(self.fds[fd], self._mangle(bytearray(data)))

    def _mangle(self, data: bytearray) -> bytes:
        if self.rng.random() < self.p_flip:
            data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
            self.flips += 1
        if self.rng.random() < self.p_garbage:
            data[0:0] = self.rng.randbytes(self.rng.randint(1, 12))
            self.garbage += 1
        return bytes(data)

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 2
        while view and time.monotonic() < deadline:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                select.select([], [fd], [], 0.05)
            except OSError:
                return


@contextmanager
def tcp_relay(
    upstream: tuple[str, int], seed: int, p_garbage: float, p_flip: float
) -> Iterator[tuple[int, list[FaultyRelay]]]:
    """Listen on a free port; relay the first connection to ``upstream`` through a FaultyRelay."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    relays: list[FaultyRelay] = []
    sockets: list[socket.socket] = []

    def accept() -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        server = socket.create_connection(upstream, timeout=5)
        sockets.extend([client, server])
        relay = FaultyRelay(client.fileno(), server.fileno(), seed, p_garbage, p_flip)
        relays.append(relay)
        relay.thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], relays
    finally:
        listener.close()
        acceptor.join(6)
        for relay in relays:
            relay.stop.set()
            relay.thread.join(2)
        for sock in sockets:
            sock.close()


@contextmanager
def running(server: LinkServer) -> Iterator[LinkServer]:
    server.open()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        with within(HANG_S, "the link server stopping"):
            server.close()
            thread.join(HANG_S)
        assert not thread.is_alive()


# --- a scripted token on a pty, for the transport's own behaviour ---


class FakeToken:
    """Answers each frame from the host with ``answer(frame)`` (wire bytes) on a pty master."""

    def __init__(self, answer: Callable[[link.Frame], bytes]) -> None:
        self.answer = answer
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.received: list[link.Frame] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeToken:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)
        os.close(self.master)
        os.close(self.slave)

    def _run(self) -> None:
        decoder = link.Decoder()
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            for event in decoder.feed(os.read(self.master, 4096)):
                if isinstance(event, link.Frame):
                    self.received.append(event)
                    os.write(self.master, self.answer(event))


def power_on_then(answer: Callable[[link.Frame], bytes]) -> Callable[[link.Frame], bytes]:
    def reply(frame: link.Frame) -> bytes:
        if frame.type in (link.POWER_ON, link.POWER_OFF):
            return link.encode_frame(link.ATR, frame.seq, bytes.fromhex("3B80800101"))
        return answer(frame)

    return reply


# --- URLs and the pyserial import ---


def test_url_options_and_pyserial_passthrough() -> None:
    t = from_url("serial:/dev/ttyACM0?baud=9600&timeout=0.5&retries=1")
    assert (t.port, t.baudrate, t.timeout, t.retries) == ("/dev/ttyACM0", 9600, 0.5, 1)
    t = from_url("serial:socket://127.0.0.1:7000?logging=debug&retries=0")
    assert (t.port, t.retries, t.timeout) == ("socket://127.0.0.1:7000?logging=debug", 0, 2.0)
    t = from_url("serial:/dev/pts/3")
    assert (t.baudrate, t.timeout, t.retries, t.url) == (115200, 2.0, 3, "serial:/dev/pts/3")
    assert isinstance(make_transport("serial:loop://"), SerialTransport)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("serial:", "name the port"),
        ("serial:/dev/ttyACM0?parity=E", "unknown option"),
        ("serial:/dev/ttyACM0?timeout=soon", "timeout must be a number"),
        ("serial:/dev/ttyACM0?timeout=0", "timeout must be between"),
        ("serial:/dev/ttyACM0?retries=-1", "retries must be between"),
        ("serial:/dev/ttyACM0?baud=0", "baud must be positive"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_transport(url)


def test_import_serial_inside_the_module_is_pyserial() -> None:
    import serial as pyserial

    from emvkit.terminal.transport import serial as ours

    assert pyserial is not ours and pyserial.__name__ == "serial" and hasattr(pyserial, "serial_for_url")
    assert ours._pyserial() is pyserial


def test_missing_pyserial_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(TransportError, match=r"needs pyserial: pip install 'emvkit\[serial\]'"):
        open_transport("serial:/dev/ttyACM0")


def test_a_port_that_cannot_open_is_a_transport_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="cannot open"):
        open_transport(f"serial:{tmp_path / 'ttyNONE'}")


# --- retries, timeouts, stale answers (a scripted token) ---


def test_silent_token_is_card_removed_within_the_bound() -> None:
    with FakeToken(lambda frame: b"") as token:
        with within(HANG_S, "three unanswered POWER_ONs"), pytest.raises(CardRemoved, match="stopped answering"):
            open_serial(token.path, timeout=0.2, retries=2)
        within(HANG_S, "the token reading the last resend").until(lambda: len(token.received) >= 3)
    assert [f.type for f in token.received] == [link.POWER_ON] * 3
    assert len({f.seq for f in token.received}) == 1  # resent as is


def test_a_token_that_only_naks_is_a_transport_error() -> None:
    nak = link.encode_frame(link.ERROR, 0, link.error_payload(link.FAULT_CRC, "bad CRC"))
    with FakeToken(power_on_then(lambda frame: nak)) as token:
        transport = open_serial(token.path, timeout=0.5, retries=3)
        with pytest.raises(TransportError, match="after 3 resend") as info:
            transport.transmit(SELECT_PPSE)
        assert not isinstance(info.value, CardRemoved)
        transport.close()
    apdus = [f for f in token.received if f.type == link.APDU_COMMAND]
    assert len(apdus) == 4 and transport.retransmissions == 3


def test_stale_answers_logs_and_corrupted_frames_are_handled(caplog: pytest.LogCaptureFixture) -> None:
    def answer(frame: link.Frame) -> bytes:
        corrupted = bytearray(link.encode_frame(link.APDU_RESPONSE, frame.seq, b"\x90\x00"))
        corrupted[3] ^= 0x01
        if frame.type == link.APDU_COMMAND and len([f for f in token.received if f.seq == frame.seq]) == 1:
            return (link.encode_frame(link.LOG, 1, b"hello from the token")
                    + link.encode_frame(link.APDU_RESPONSE, (frame.seq - 1) & 0xFF, b"\x6a\x82")
                    + b"\x17\x42" + bytes(corrupted))
        return link.encode_frame(link.APDU_RESPONSE, frame.seq, b"\x90\x00")

    caplog.set_level(logging.DEBUG, logger="emvkit.serial")
    with FakeToken(power_on_then(answer)) as token:
        with serial_link(token.path, timeout=0.5) as transport:
            assert transport.transmit(SELECT_PPSE) == b"\x90\x00"
            assert transport.retransmissions == 1  # after the corrupted answer, not the stale one
    assert any("hello from the token" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    assert any("stale APDU_RESPONSE" in r.getMessage() for r in caplog.records)


def test_an_error_for_the_request_is_a_transport_error() -> None:
    refuse = power_on_then(lambda frame: link.encode_frame(
        link.ERROR, frame.seq, link.error_payload(link.ERR_NOT_POWERED, "send POWER_ON first")))
    with FakeToken(refuse) as token, open_serial(token.path, timeout=0.5) as transport:
        with pytest.raises(TransportError, match=r"refused APDU_COMMAND.*POWER_ON first"):
            transport.transmit(SELECT_PPSE)
        assert transport.card_present()


class _OsWith:
    """The os module with another ``write``, for the transport module only (the test's threads keep os.write)."""

    def __init__(self, write: Callable[[int, Any], int]) -> None:
        self.write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def test_a_tty_that_takes_a_few_bytes_a_write_gets_whole_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """The transport writes a tty with os.write: what a write leaves over goes once the tty is writable."""
    import emvkit.terminal.transport.serial as serial_module

    writes: list[int] = []

    def trickle(fd: int, data: Any) -> int:
        writes.append(len(data))
        if len(writes) % 3 == 0:
            raise BlockingIOError
        return os.write(fd, bytes(data)[:7])

    echo = power_on_then(lambda frame: link.encode_frame(link.APDU_RESPONSE, frame.seq, frame.payload + b"\x90\x00"))
    with FakeToken(echo) as token, serial_link(token.path, timeout=1) as transport:
        monkeypatch.setattr(serial_module, "os", _OsWith(trickle))
        command = bytes(range(256)) + bytes(300)
        assert transport.transmit(command) == command + b"\x90\x00"
        assert transport.retransmissions == 0
        monkeypatch.undo()
    assert len(writes) > 50


def test_a_tty_that_takes_nothing_is_a_write_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import emvkit.terminal.transport.serial as serial_module

    def full(fd: int, data: Any) -> int:
        raise BlockingIOError

    with FakeToken(power_on_then(lambda frame: b"")) as token, serial_link(token.path, timeout=0.2) as transport:
        monkeypatch.setattr(serial_module, "os", _OsWith(full))
        with within(HANG_S, "the write timeout"), pytest.raises(TransportError, match="Write timeout") as info:
            transport.transmit(SELECT_PPSE)
        assert not isinstance(info.value, CardRemoved)
        monkeypatch.undo()


# --- the firmware under the real MicroPython ---


@pytest.mark.parametrize(
    ("scheme", "interpreter", "blocking", "reader"),
    [
        ("visa", "micropython", False, "arrived"),
        ("mastercard", "micropython", True, "bytes"),
        ("visa", "cpython", True, "arrived"),
        ("mastercard", "cpython", False, "arrived"),
    ],
)
def test_kernel_over_the_firmware_on_a_pty(scheme: str, interpreter: str, blocking: bool, reader: str) -> None:
    with firmware_on_pty(scheme, interpreter, blocking=blocking) as (path, proc):
        with serial_link(path, timeout=2) as transport:
            info = transport.device_info()
            assert (info.profile, info.implementation) == (scheme, interpreter)
            if (interpreter, blocking) == ("micropython", False):
                # It reads byte by byte until it first finds nothing waiting (a request may have come
                # before it started reading): only then does the non-blocking stream answer None.
                within(HANG_S, "the firmware finding its stdin non-blocking").until(
                    lambda: transport.device_info().fields["reader"] != "bytes")
                info = transport.device_info()
            assert info.fields["reader"] == reader
            assert (info.mem_free > 0) == (interpreter == "micropython")  # gc.mem_free() or 0
            assert info.max_payload == link.MAX_PAYLOAD
            assert transport.atr == bytes.fromhex("3B80800101")
            result = tap(transport)
            assert transport.retransmissions == 0
        assert_approved(result, scheme)
        assert result.apdus >= 6
    assert proc.returncode == 0  # it saw the link close and ended by itself


def test_firmware_tty_option_through_a_noisy_relay() -> None:
    m_device, s_device = os.openpty()
    m_host, s_host = os.openpty()
    for fd in (s_device, s_host):
        tty.setraw(fd)
    proc = subprocess.Popen(
        [venv_tool("micropython"), *DEVLINK, str(profile_path("visa")), "--tty", os.ttyname(s_device)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=micropython_env(), cwd=ROOT,
    )
    try:
        with FaultyRelay(m_device, m_host, seed=7, p_garbage=0.25, p_flip=0.1) as relay:
            with serial_link(os.ttyname(s_host), timeout=0.3, retries=12) as transport:
                assert transport.device_info().implementation == "micropython"
                results = [tap(transport) for _ in range(3)]
                retransmissions = transport.retransmissions
        for result in results:
            assert_approved(result, "visa")
        assert relay.garbage + relay.flips > 5 and retransmissions > 0
    finally:
        for fd in (m_device, s_device, m_host, s_host):
            os.close(fd)
        stop_process(proc)
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()


def _frames_from(fd: int, decoder: link.Decoder, count: int, timeout: float) -> list[object]:
    """Read ``fd`` until ``count`` events (frames and faults) came, or ``timeout`` passed."""
    events: list[object] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            events += decoder.feed(os.read(fd, 4096))
    return events


@contextmanager
def firmware_link(mode: str) -> Iterator[int]:
    """The firmware, and a descriptor the test talks to it through (raw frames, no transport).

    ``stdin`` / ``stdin-nonblocking``: the firmware on a pty master, the test on the slave.
    ``tty``: ``devlink.py --tty SLAVE`` (under MicroPython: the tty set to VMIN 0), the test on the master.
    ``cpython``: the firmware under CPython on a blocking pty master.
    """
    if mode == "tty":
        master, slave = os.openpty()
        tty.setraw(slave)
        proc = subprocess.Popen(
            [venv_tool("micropython"), *DEVLINK, str(profile_path("visa")), "--tty", os.ttyname(slave)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=micropython_env(),
            cwd=ROOT,
        )
        try:
            yield master
        finally:
            proc.kill()
            proc.wait(5)
            os.close(master)
            os.close(slave)
        return
    interpreter = "cpython" if mode == "cpython" else "micropython"
    with firmware_on_pty("visa", interpreter, blocking=mode != "stdin-nonblocking") as (path, _proc):
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            yield fd
        finally:
            os.close(fd)


@pytest.mark.parametrize("mode", ["stdin", "stdin-nonblocking", "tty", "cpython"])
def test_the_firmware_never_waits_for_bytes_that_garbage_announced(mode: str) -> None:
    """A run whose code byte announces a long block, then silence: the next frame is served at once.

    ``00 FE ...`` announces 253 bytes and 4 come; a device that read announced block sizes would
    sit in that read until 249 more bytes arrived (the host's resends, long after its timeout).
    """
    decoder = link.Decoder()
    atr = link.Frame(link.ATR, 1, bytes.fromhex("3B80800101"))
    with firmware_link(mode) as fd:
        up = within(HANG_S, "the firmware answering POWER_ON")
        while atr not in _frames_from(fd, decoder, 1, 0.2):  # until it is up (--tty flushes on set-up)
            assert not up.expired(), "the firmware never answered POWER_ON"
            os.write(fd, link.encode_frame(link.POWER_ON, 1))
        os.write(fd, b"\x00\xfe\x12\x34\x56\x78")
        # nothing to answer until the run ends (but late ATRs, answers to POWER_ONs repeated above)
        assert [e for e in _frames_from(fd, decoder, 1, 0.2) if e != atr] == []
        os.write(fd, link.encode_frame(link.DEVICE_INFO_REQUEST, 2))
        # The answers come without any resend: one waiting for the 249 announced bytes would never come.
        events: list[object] = []
        bound = within(HANG_S, "the NAK and DEVICE_INFO after garbage")
        while len(events) < 2 and not bound.expired():
            events += [e for e in _frames_from(fd, decoder, 2 - len(events), bound.left()) if e != atr]
        assert len(events) == 2, events
        nak, info = events
        assert isinstance(nak, link.Frame) and (nak.type, nak.seq) == (link.ERROR, 0)
        assert link.parse_error(nak.payload)[0] == link.FAULT_FRAMING
        assert isinstance(info, link.Frame) and (info.type, info.seq) == (link.DEVICE_INFO, 2)
        reader = link.parse_info(info.payload)["reader"]
        if mode == "stdin-nonblocking":  # found out the first time nothing was waiting (see above)
            seq = 3
            settled = within(HANG_S, "the firmware finding its stdin non-blocking")
            while reader == "bytes" and not settled.expired():
                os.write(fd, link.encode_frame(link.DEVICE_INFO_REQUEST, seq))
                answers = [e for e in _frames_from(fd, decoder, 1, settled.left()) if e != atr]
                assert answers and isinstance(answers[0], link.Frame), answers
                reader = link.parse_info(answers[0].payload)["reader"]
                seq += 1
    expected = {"stdin": "bytes", "stdin-nonblocking": "arrived", "tty": "arrived", "cpython": "arrived"}[mode]
    assert reader == expected


@pytest.mark.parametrize("interpreter", ["micropython", "cpython"])
def test_the_firmware_on_a_non_blocking_stdout_loses_no_answer_when_the_host_reads_late(interpreter: str) -> None:
    """1000 answers (about 90 KB) for a host that reads none until it has sent every request.

    The pty takes a few dozen KB; then the firmware's writes come up short (or take nothing), and
    it waits until the pty takes bytes again instead of dropping the rest.
    """
    requests = b"".join(link.encode_frame(link.DEVICE_INFO_REQUEST, i & 0xFF) for i in range(1000))
    with firmware_on_pty("visa", interpreter, blocking=False) as (path, _proc):
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, requests)
            # Read late: only once the line discipline holds all it takes (4095 bytes unread). The pty
            # takes a few KB more; the firmware, with some 85 KB of answers still to go, then finds it full.
            within(HANG_S, "the pty filling up with answers").until(lambda: _unread(fd) >= 4095)
            events = _frames_from(fd, link.Decoder(), 1000, HANG_S)
        finally:
            os.close(fd)
    assert [(e.type, e.seq) for e in events if isinstance(e, link.Frame)] == [
        (link.DEVICE_INFO, i & 0xFF) for i in range(1000)]
    assert len(events) == 1000 and sum(len(e.payload) for e in events if isinstance(e, link.Frame)) > 80_000


def _unread(fd: int) -> int:
    """Bytes waiting to be read on a tty (FIONREAD)."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), sys.byteorder)


class KillAfter(BaseTransport):
    """Passes APDUs on, and kills the firmware process before the ``after``-th one + 1."""

    def __init__(self, inner: Transport, proc: subprocess.Popen[bytes], after: int) -> None:
        super().__init__()
        self.inner, self.proc, self.after, self.sent = inner, proc, after, 0
        self.url = inner.url
        self._atr = inner.atr
        self._open = True

    def _transmit(self, command: bytes) -> bytes:
        if self.sent == self.after:
            self.proc.kill()
            self.proc.wait(5)
        self.sent += 1
        return self.inner.transmit(command)


def test_firmware_killed_mid_transaction_is_try_again() -> None:
    with firmware_on_pty("mastercard") as (path, proc):
        transport = open_serial(path, timeout=0.5, retries=1)
        try:
            result = tap(KillAfter(transport, proc, after=3))
        finally:
            transport.close()
    assert result.result.outcome.outcome is Outcome.TRY_AGAIN
    assert result.result.steps[-1].name == "card removed"  # CardRemoved, not some other link error
    assert "the link closed" in result.result.error  # seen at once: a timeout is "stopped answering"
    assert not transport.card_present()


# --- the host emulator ---


def test_host_server_on_a_pty_serves_terminal_after_terminal() -> None:
    with running(PtyLinkServer(open_card("visa"), poll_interval=0.05)) as server:
        assert isinstance(server, PtyLinkServer) and server.path.startswith("/dev/")
        for _ in range(2):
            with serial_link(server.path, timeout=1) as transport:
                info = transport.device_info()
                assert (info.profile, info.implementation, info.mem_free) == ("visa", "cpython", 0)
                assert_approved(tap(transport), "visa")
        assert server.faults == 0 and server.frames >= 2 * 10


def test_socket_url_against_the_tcp_server_and_power_off_on_disconnect() -> None:
    card = open_card("mastercard")
    events: list[str] = []
    card.power_off = lambda: events.append("off")  # type: ignore[method-assign]
    with running(TcpLinkServer(card, poll_interval=0.05)) as server:
        assert isinstance(server, TcpLinkServer)
        host, port = server.address
        with serial_link(f"socket://{host}:{port}", timeout=1) as transport:
            assert_approved(tap(transport), "mastercard")
        within(HANG_S, "POWER_OFF and the connection's end").until(lambda: events.count("off") >= 2)
    assert events.count("off") == 2  # POWER_OFF from close(), then the connection's end


def test_port_server_on_a_device_path_answers_frames() -> None:
    """``--serial URL`` for a device: the server opens a tty through pyserial; the test is the terminal."""
    master, slave = os.openpty()
    tty.setraw(slave)
    decoder = link.Decoder()

    def ask(frame: bytes) -> link.Frame:
        os.write(master, frame)
        bound = within(HANG_S, "an answer from the port server")
        while not bound.expired():
            ready, _, _ = select.select([master], [], [], 0.05)
            for event in decoder.feed(os.read(master, 4096)) if ready else []:
                assert isinstance(event, link.Frame)
                return event
        raise AssertionError("no answer from the port server")

    try:
        with running(PortLinkServer(open_card("visa"), os.ttyname(slave), poll_interval=0.05)):
            assert ask(link.encode_frame(link.POWER_ON, 1)) == link.Frame(link.ATR, 1, bytes.fromhex("3B80800101"))
            answer = ask(link.encode_frame(link.APDU_COMMAND, 2, SELECT_PPSE))
            assert answer.type == link.APDU_RESPONSE and answer.seq == 2 and answer.payload[-2:] == b"\x90\x00"
            nak = ask(b"\x00\x42\x42\x00")
            assert (nak.type, link.parse_error(nak.payload)[0]) == (link.ERROR, link.FAULT_FRAMING)
    finally:
        os.close(master)
        os.close(slave)


def test_fault_injecting_relay_transactions_complete_or_fail_typed() -> None:
    """Garbage and bit flips both ways on the wire: retries recover, nothing hangs, the card never runs twice."""
    outcomes: list[Outcome | None] = []
    injected = retransmissions = faults = duplicates = 0
    for seed in range(6):
        card = open_card("visa")
        with running(TcpLinkServer(card, poll_interval=0.05)) as server:
            assert isinstance(server, TcpLinkServer)
            with tcp_relay(server.address, seed, p_garbage=0.3, p_flip=0.15) as (port, relays):
                with within(HANG_S, f"a transaction through the faulty relay, seed {seed}"):
                    try:
                        with serial_link(f"socket://127.0.0.1:{port}", timeout=0.25, retries=10) as transport:
                            outcomes.append(tap(transport).result.outcome.outcome)
                            retransmissions += transport.retransmissions
                    except TransportError as exc:  # a typed error is an acceptable end; a hang is not
                        outcomes.append(None)
                        print(f"seed {seed}: {exc}")
                injected += relays[0].garbage + relays[0].flips
            faults += server.faults
            duplicates += server.duplicates
        assert card.store.load().atc == 1  # GET PROCESSING OPTIONS ran once, whatever was resent
    assert set(outcomes) <= {Outcome.APPROVED, Outcome.TRY_AGAIN, None}
    assert outcomes == [Outcome.APPROVED] * 6  # with 10 retries, every seed gets through
    assert injected > 20 and retransmissions > 0 and faults > 0 and duplicates > 0


def test_logs_hold_no_apdu_bodies_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running(TcpLinkServer(open_card("visa"), poll_interval=0.05)) as server:
        assert isinstance(server, TcpLinkServer)
        host, port = server.address
        with serial_link(f"socket://{host}:{port}", timeout=1) as transport:
            result = tap(transport)
    assert result.result.data[0x5A].hex() == "4761739001010119"
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    louder = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    # DEBUG has the APDUs, the PAN in them masked (first 6 and last 4 digits) on both sides of the link
    assert any(m.startswith("C-APDU") for m in debug) and any("5A08476173******0119" in m for m in debug)
    assert not any(pan in m for m in debug for pan in ("4761739001010119", "47 61 73 90 01 01 01 19"))
    assert louder and not any("APDU " in m or "4761739001010119" in m for m in louder)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7000", ("127.0.0.1", 7000)), ("0.0.0.0:7001", ("0.0.0.0", 7001)), ("[::1]:7002", ("::1", 7002)),
     (":7003", ("127.0.0.1", 7003))],
)
def test_parse_tcp_target(text: str, expected: tuple[str, int]) -> None:
    assert parse_tcp_target(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:port", "70000"])
def test_parse_tcp_target_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_tcp_target(text)


# --- emvkit emulate as a subprocess ---


@contextmanager
def emulate(*args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    proc = subprocess.Popen([venv_tool("emvkit"), "emulate", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        yield serving_line(proc)[1], proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        assert proc.stderr is not None
        proc.stderr.close()


def test_emulate_cli_on_a_pty_taps_and_stops_on_sigterm() -> None:
    with emulate("--profile", "visa", "--serial", "pty") as (path, proc):
        assert path.startswith("/dev/")
        with serial_link(path, timeout=1) as transport:
            assert_approved(tap(transport), "visa")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG_S) == 0


def test_emulate_cli_on_tcp_serves_socket_urls_and_stops_on_sigterm() -> None:
    with emulate("--profile", "mastercard", "--tcp", "127.0.0.1:0") as (address, proc):
        with serial_link(f"socket://{address}", timeout=1) as transport:
            assert_approved(tap(transport), "mastercard")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG_S) == 0
