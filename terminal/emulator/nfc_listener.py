"""Serve an emulated card as an ISO-DEP (Type 4A) card on nfcpy: ``emvkit emulate --nfc udp:HOST:PORT``.

nfcpy's ``udp`` driver simulates the RF link between two processes, one
datagram per frame (``b"106A " + hex``, no CRC_A, no parity). In listen mode
it answers ISO/IEC 14443-3 anticollision by itself (SENS_REQ, SDD_REQ and
SEL_REQ, from the ATQA, UID and SAK given to ``ContactlessFrontend.listen``)
and returns the first frame after that, which from an nfcpy reader is RATS.
Everything above is done here: :class:`emvkit.terminal.emulator.isodep.IsoDepCard`
answers RATS with the ATS and runs the ISO/IEC 14443-4 block protocol, and
the card application answers the C-APDUs.

The card announces ATQA 0x0004 (sent ``04 00``: single-size UID, bit-frame
anticollision), a 4-byte UID ``08 xx xx xx`` (``08``: a random ID, which
PN53x chips insist on in target mode) and SAK 0x20 (ISO/IEC 14443-4
compliant). Its ATS carries the historical bytes of the card's pseudo-ATR.

nfcpy's udp listen closes its socket and binds a new one for every listen
call, dropping whatever frames arrived in between; the listener keeps one
socket bound instead (see :func:`_keep_udp_socket`), so a reader that polls
again right after a session is answered at once.

A session ends when the reader switches the field off (nfcpy sends ``RFOFF``
when it closes or polls again), sends S(DESELECT) or polls again (SENS_REQ),
when no frame comes for ``idle_timeout`` seconds, or when the card leaves:
a card whose ``process()`` raises :class:`emvkit.terminal.errors.CardRemoved` (such
as :class:`emvkit.terminal.emulator.faults.FaultyCard` with ``tear_after``) gets no
answer out, so the reader sees it as gone. Then the listener listens again.

A card is any object with ``process(command_apdu: bytes) -> bytes``; the
optional ``power_on()`` is called at each activation (RATS) and
``power_off()`` when the session ends.

``target`` is nfcpy's device path with optional settings after ``?``:
``udp:127.0.0.1:50000?fsci=2&fwi=8&frame=64&uid=08A1B2C3`` (``frame``: the
largest frame the card sends, so that it chains long R-APDUs even to an
FSD-256 reader). nfcpy's udp driver binds the port on all interfaces, whatever
the host.

Logging goes to ``emvkit.nfc``; frames and APDUs (which may hold card
numbers) appear only at DEBUG.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl

from emvkit.terminal.emulator.isodep import Command, IsoDepCard, IsoDepConfig, Reply, State
from emvkit.terminal.emulator.serving import Stoppable, answer, call_hook, run_until_signalled
from emvkit.terminal.endpoints import parse_udp_path
from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError
from emvkit.terminal.iso7816 import NO_PRECISE_DIAGNOSIS, contactless_atr
from emvkit.terminal.iso14443 import RATS, historical_bytes_from_atr
from emvkit.terminal.tlvdump import masked_response

try:
    import nfc
    import nfc.clf
except ModuleNotFoundError as exc:  # nfcpy is the optional extra emvkit[nfc]
    raise TransportError(f"--nfc needs nfcpy (pip install 'emvkit[nfc]'): cannot import {exc.name}") from exc

__all__ = ["DEFAULT_TARGET", "SEL_RES", "SENS_RES", "Card", "NfcListener", "parse_target", "serve_forever"]

DEFAULT_TARGET = "udp:127.0.0.1:54321"
_NFCPY_UDP_PORT = 54321  # nfcpy's udp driver without a port
SENS_RES = b"\x04\x00"  # ATQA 0x0004 in the order nfcpy sends it (least significant byte first)
SEL_RES = b"\x20"  # SAK: UID complete, ISO/IEC 14443-4 compliant
_POLL = (b"\x26", b"\x52")  # SENS_REQ (REQA) and ALL_REQ (WUPA): the reader starts over
_MAX_RESPONSE = 65536 + 2

log = logging.getLogger("emvkit.nfc")


def _shown(frame: bytes) -> str:
    """A PICC frame for the -vv log: an I-block's R-APDU with PAN and track data masked (its PCB, CID and NAD
    as they are); other blocks as they are."""
    if frame[0] & 0xE2 != 0x02:  # not an I-block (ISO/IEC 14443-4 §7.1.1.1)
        return frame.hex().upper()
    head = 1 + bool(frame[0] & 0x08) + bool(frame[0] & 0x04)  # PCB, then CID and NAD when announced
    return frame[:head].hex().upper() + " " + masked_response(frame[head:])


class Card(Protocol):
    """What the listener needs of a card; ``power_on``/``power_off`` are optional."""

    def process(self, command_apdu: bytes) -> bytes: ...


def parse_target(target: str) -> tuple[str, dict[str, Any]]:
    """Split ``udp:HOST:PORT?fsci=..&fwi=..&frame=..&uid=..`` into the nfcpy path and settings.

    The settings are :class:`IsoDepConfig` fields (``fsci``, ``fwi``, ``max_frame`` as ``frame``)
    and ``uid`` (hex); unknown or malformed ones raise :class:`ConfigError`.
    """
    path, _, query = target.partition("?")
    if not path:
        raise ConfigError(f"{target!r}: expected an nfcpy device path such as udp:127.0.0.1:54321")
    if path.startswith("udp"):
        parse_udp_path(path, "--nfc", _NFCPY_UDP_PORT)  # a bad host or port fails here, before anything runs
    settings: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        try:
            if key in ("fsci", "fwi"):
                settings[key] = int(value)
            elif key == "frame":
                settings["max_frame"] = int(value)
            elif key == "uid":
                settings["uid"] = bytes.fromhex(value)
            else:
                raise ConfigError(f"{target!r}: unknown setting {key!r} (fsci, fwi, frame, uid)")
        except ValueError as exc:
            raise ConfigError(f"{target!r}: {key}={value!r}: {exc}") from exc
    return path, settings


class NfcListener(Stoppable):
    """Answer as an ISO-DEP card on an nfcpy device, one reader session after another, until stopped.

    No I/O happens until :meth:`run`. Every wait is bounded by
    ``poll_interval`` (nfcpy's udp listen waits at least 0.5 s), so a stop is
    seen within about a second.
    """

    def __init__(
        self,
        card: Card,
        target: str = DEFAULT_TARGET,
        atr: bytes = contactless_atr(),
        *,
        config: IsoDepConfig | None = None,
        uid: bytes | None = None,
        poll_interval: float = 0.25,
        idle_timeout: float = 10.0,
    ) -> None:
        self.card = card
        self.path, settings = parse_target(target)
        uid = settings.pop("uid", uid)
        base = config or IsoDepConfig(historical=historical_bytes_from_atr(atr))
        self.config = dataclasses.replace(base, **settings)
        self.uid = bytes(uid) if uid is not None else b"\x08" + os.urandom(3)
        if len(self.uid) not in (4, 7, 10):
            raise ConfigError(f"a UID has 4, 7 or 10 bytes, not {len(self.uid)}")
        self.poll_interval = poll_interval
        self.idle_timeout = idle_timeout
        self.activations = 0  # RATS answered
        self.commands = 0  # C-APDUs answered
        self._closing = threading.Event()
        self._stop: threading.Event | None = None
        self._listening = threading.Event()
        self._clf: Any = None
        self._opened: Any = None  # the device opened by open(), before run()

    # --- control -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Make :meth:`run` return soon, for good."""
        self._closing.set()

    def open(self) -> None:
        """Open the device now (``run`` opens it otherwise): a missing device or a taken port fails here."""
        if self._opened is None:
            self._opened = self._open()

    def wait_listening(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the device listens (for udp: the port is bound)."""
        deadline = time.monotonic() + timeout
        while not self._listening.wait(max(0.0, deadline - time.monotonic())) or not self._bound():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def _bound(self) -> bool:
        sock = getattr(getattr(self._clf, "device", None), "socket", None)
        if sock is None:
            return not self.path.startswith("udp")
        try:
            return bool(sock.getsockname()[1])
        except OSError:
            return False

    # --- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Listen and serve sessions until ``stop`` is set or :meth:`close` is called."""
        self._stop = stop
        clf, self._opened = self._opened or self._open(), None
        self._clf = clf
        release: Callable[[], None] | None = None
        log.info("listening as an ISO-DEP card (UID %s) on %s", self.uid.hex().upper(), self.path)
        try:
            if self.path.startswith("udp"):
                release = _keep_udp_socket(clf.device)
            while not self._stopping():
                self._listening.set()
                started = time.monotonic()
                try:
                    activated = clf.listen(self._local_target(), self.poll_interval)
                except nfc.clf.UnsupportedTargetError as exc:
                    raise TransportError(f"NFC device {self.path} cannot emulate a Type 4A card ({exc}); "
                                         "PN531/PN532/PN533 and RC-S380 can, an ACR122U cannot") from exc
                except nfc.clf.CommunicationError as exc:
                    log.debug("listen: %s", exc)
                    activated = None
                except OSError as exc:
                    raise TransportError(f"NFC device {self.path} failed: {exc}") from exc
                if activated is not None:
                    self._session(clf, activated)
                elif time.monotonic() - started < self.poll_interval / 2:
                    # nfcpy returns at once when it cannot listen (its udp port taken): do not spin.
                    self._closing.wait(self.poll_interval)
        finally:
            self._clf = None
            self._listening.clear()
            if release is not None:
                release()
            clf.close()
            log.info("NFC listener on %s stopped", self.path)

    def _open(self) -> Any:
        if self.path.startswith("udp"):
            _check_udp_port_free(self.path)
        try:
            clf = nfc.ContactlessFrontend()
            found = clf.open(self.path)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot open NFC device {self.path}: {exc}") from exc
        if not found:
            raise TransportError(f"no NFC device at {self.path} (a reader that can listen: PN53x, RC-S380; or udp:)")
        return clf

    def _local_target(self) -> Any:
        target = nfc.clf.LocalTarget("106A")
        target.sens_res = bytearray(SENS_RES)
        target.sdd_res = bytearray(self.uid)
        target.sel_res = bytearray(SEL_RES)
        target.rats_res = bytearray(self.config.ats.to_bytes())  # PN53x drivers answer RATS with it
        return target

    def _session(self, clf: Any, activated: Any) -> None:
        """One activation: RATS/ATS, blocks, until the field goes, S(DESELECT), a new poll or the card leaves."""
        first = activated.tt4_cmd or activated.tt2_cmd
        if not first:
            return
        engine = IsoDepCard(self.config)
        powered = False
        if activated.tt4_cmd and activated.tt4_cmd[0] != RATS:
            engine.activated_without_rats()  # the driver answered RATS itself
            powered = self._activated()
        frame = bytes(first)
        try:
            while True:
                idle = engine.state is State.IDLE
                event = engine.receive(frame)
                if isinstance(event, Command):
                    try:
                        response = self._process(event.apdu)
                    except CardRemoved as exc:
                        log.info("card left the field: %s", exc)
                        return
                    event = engine.respond(response)
                if idle:
                    if engine.state is not State.ACTIVE:
                        log.debug("not activated: %s", getattr(event, "reason", "halted"))
                        return
                    powered = self._activated(engine)
                reply = event.frame if isinstance(event, Reply) else None
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("PCD %s -> PICC %s", frame.hex().upper(), _shown(reply) if reply else "(silent)")
                if engine.state is State.HALT:
                    if reply is not None:
                        clf.exchange(reply, 0)  # send only
                    log.info("deselected")
                    return
                next_frame = self._exchange(clf, reply)
                if next_frame is None:
                    return
                if next_frame in _POLL:
                    log.info("the reader polls again: session over")
                    return
                frame = next_frame
        finally:
            if powered:
                self._call_hook("power_off")

    def _activated(self, engine: IsoDepCard | None = None) -> bool:
        self.activations += 1
        self._call_hook("power_on")
        if engine is not None:
            log.info("activated: RATS with FSD %d, CID %d", engine.fsd, engine.cid)
        else:
            log.info("activated by the reader chip")
        return True

    def _exchange(self, clf: Any, reply: bytes | None) -> bytes | None:
        """Send ``reply`` (if any) and wait for the reader's next frame; None when the session is over."""
        data = None if reply is None else bytearray(reply)
        idle_until = time.monotonic() + self.idle_timeout
        while not self._stopping():
            try:
                frame = clf.exchange(data, self.poll_interval)
            except nfc.clf.BrokenLinkError:
                log.info("the reader switched the field off")
                return None
            except nfc.clf.TimeoutError:
                if time.monotonic() >= idle_until:
                    log.info("no frame for %.1f s: the reader is gone", self.idle_timeout)
                    return None
                frame = None
            except nfc.clf.CommunicationError as exc:
                log.debug("bad frame: %s", exc)
                frame = None
            except OSError as exc:
                log.warning("NFC device error: %s", exc)
                return None
            data = None  # sent once; from here on only listen
            if frame is not None:
                return bytes(frame)
        return None

    def _process(self, command: bytes) -> bytes:
        # CardRemoved from the card is the card leaving the field: the session ends.
        response = answer(self.card, command, log, _MAX_RESPONSE, passthrough=(CardRemoved,))
        if response is None:
            return NO_PRECISE_DIAGNOSIS
        self.commands += 1
        return response

    def _call_hook(self, name: str) -> None:
        call_hook(self.card, name, log)


def _keep_udp_socket(device: Any) -> Callable[[], None]:
    """Keep nfcpy's udp socket bound from one listen to the next; return what undoes it.

    ``ContactlessFrontend.listen`` mutes the device first, and the udp driver's
    mute closes its socket, to bind a new one. Frames that arrived in between,
    such as the poll of a reader that starts again as soon as the last session
    ended, were lost with the old socket, and the reader waited a second for
    an answer (one back-to-back tap in four). Here muting leaves the socket
    (and what is queued on it) alone, and binding is skipped while it is bound.
    """
    mute: Callable[[], None] | None = getattr(device, "mute", None)
    bind: Callable[[float], bool] | None = getattr(device, "_bind_socket", None)
    if mute is None or bind is None or not hasattr(device, "socket"):
        return lambda: None  # not the udp driver this was written for: leave it as it is

    def keep_socket() -> None:
        pass

    def bind_once(time_to_return: float) -> bool:
        sock = device.socket
        if sock is not None and sock.getsockname()[1]:
            return True
        return bool(bind(time_to_return))

    def release() -> None:
        del device.mute, device._bind_socket
        mute()

    device.mute = keep_socket
    device._bind_socket = bind_once
    return release


def _check_udp_port_free(path: str) -> None:
    """nfcpy's udp listen binds 0.0.0.0:PORT and silently gives up when it is taken: say so instead."""
    _, port = parse_udp_path(path, "--nfc", _NFCPY_UDP_PORT)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TransportError(f"udp port {port} is in use (another listener?)") from exc
            raise TransportError(f"cannot listen on udp port {port}: {exc}") from exc


def serve_forever(card: Card, target: str = DEFAULT_TARGET, atr: bytes = contactless_atr(),
                  ready: Callable[[], None] | None = None) -> int:
    """Run an :class:`NfcListener` in the foreground until SIGINT or SIGTERM; return exit status 0.

    ``ready`` is called once the device is open. Signal handlers are installed
    only when called from the main thread, and the previous handlers are
    restored on return.
    """
    listener = NfcListener(card, target, atr)
    listener.open()
    if ready is not None:
        ready()
    return run_until_signalled(listener.run)
