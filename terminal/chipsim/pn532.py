"""A strict NXP PN532 in card-emulation (target) mode: its host link (HSU) and its RF side.

:class:`Pn532Chip` is the chip's host interface as the PN532 User Manual
UM0701-02 Rev. 02 describes it (section numbers are that document's),
written independently of the firmware's driver so that it can catch the
driver's mistakes:

* frames (§6.2.1): ``00 00 FF LEN LCS TFI PD.. DCS 00``; the extended frame
  ``00 00 FF FF FF LENM LENL LCS ..``; ACK ``00 00 FF 00 FF 00``, NACK
  ``00 00 FF FF 00 00``; the error frame ``00 00 FF 01 FF 7F 81 00``.
* the dialog (§6.2.2): a well-formed command frame is ACKed at once and
  answered when done. A frame with a wrong LCS or DCS gets no answer at all
  (the host's ACK timeout makes it send again); a NACK from the host gets the
  last response again; an ACK from the host aborts the command in progress.
  A frame whose TFI is not D4 is ignored. A command the chip does not know,
  or whose parameters have the wrong length or an invalid value, is ACKed and
  answered with the error frame. A command that arrives while another is
  still running is not taken (no ACK).
* power (HSU): the chip starts asleep (LowVbat) and ignores every byte up
  to the wake-up byte 0x55; then, until SAMConfiguration (§7.2.10) has put
  it in normal mode, it takes no other command (no ACK): this simulator's
  model of LowVbat.
* target commands: TgInitAsTarget (§7.3.14) arms the RF side with the
  SENS_RES, NFCID1 (``08`` + the 3 bytes given: the chip forces the first
  byte), SEL_RES and the ATS historical bytes; it is answered when a reader
  has activated the card (after RATS and the ATS, which the chip sends
  itself): ``D5 8D`` mode (b3 set: ISO/IEC 14443-4 PICC) and the RATS.
  TgGetData (§7.3.16) answers the next C-APDU from the reader (status 00; b6
  MI set and the rest in the next TgGetData when it does not fit one normal
  frame), or status 29 once the reader has released the card (S(DESELECT),
  field off, a new poll); TgSetData (§7.3.17) takes the R-APDU, TgSetMetaData
  (§7.3.18) a part of it that more parts follow. Target commands while the
  chip is not an activated target are answered with status 27 ("not
  acceptable in the current context", §7.1), TgSetData without a C-APDU to
  answer likewise. After status 29 the chip is no longer a target: the host
  arms it again with TgInitAsTarget.
* GetFirmwareVersion (02): IC 32, version 1.6, support 07.

The RF side (:class:`Pn532Simulator`, on :mod:`emvkit.terminal.chipsim.rf`,
which the NCI simulator shares) is emvkit's Type 4A card engine on
nfcpy: :class:`emvkit.terminal.emulator.nfc_listener.NfcListener` (udp
listening, sessions) and :class:`emvkit.terminal.emulator.isodep.IsoDepCard`
(RATS/ATS, I-blocks with chaining, R(ACK)/R(NAK), S(DESELECT)), imported,
with the chip in between: a C-APDU from the reader becomes a TgGetData
answer and waits for the host's TgSetData. The udp side answers only while
the chip is armed. The ATS the chip sends is ``IsoDepConfig`` with the
historical bytes from TgInitAsTarget, FSCI 8 and FWI 14 (4.9 s) by default:
the token under QEMU takes about a second for the APDU with the RSA
signature (the real chip's ATS bytes are not given in the manual).

The host link goes over a pty (the QEMU board's second UART,
:class:`PtyLink`) or memory (:class:`MemoryLink`). In memory, the chip has
any of its three host interfaces (§6.2), the same frames on each:

* ``MemoryLink()`` / ``framing="hsu"``: a byte stream; ``firmware_bus`` is
  the bus the firmware driver takes (``write``, ``readinto`` with a timeout);
* ``framing="i2c"``: ``firmware_i2c`` behaves as a ``machine.I2C``
  (``writeto``, ``readfrom_into``) with the chip at 7-bit address 0x24 (any
  other address: ``OSError(ENODEV)``, no device answered). A write
  transaction carries host frames. A read transaction begins with the status
  byte: 01 when a frame is ready for the host, then that frame, then 00s; 00
  when none is, and 00s after it (a read before ready gets the not-ready
  status and no frame). A read that goes past the status byte takes the
  frame: one frame per read, what the host did not read of it is lost (a
  NACK gets a response again).
* ``framing="spi"``: ``firmware_spi`` behaves as a ``machine.SPI`` (``write``,
  ``readinto``, ``write_readinto``), ``firmware_cs`` as its chip-select
  ``machine.Pin`` (``value``). Each transaction (chip select low, then high)
  starts with an operation byte: DW 01, the host's frame follows; SR 02, the
  chip answers the status byte (01 ready, 00 not); DR 03, the chip clocks
  out the ready frame (not ready: 00s, and nothing is taken); any other
  operation is ignored. The chip takes bytes least significant bit first:
  ``spi_lsb_first=False`` models a host SPI left at MSB first, whose every
  byte the chip sees bit-reversed (and the host the chip's).

Waking (the chip starts asleep in every framing): the HSU wake-up byte 0x55;
over I2C any transaction to its address, over SPI a chip-select pulse. The
transaction that wakes the chip carries nothing to it. The I2C status-byte
read and the SPI operation bytes are the manual's host interface; that a
read takes the frame, the wake-up and the filler bytes are this simulator's
model, from reading public driver code.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import select
import threading
from collections.abc import Callable
from typing import Any

from emvkit.terminal.chipsim.rf import ChipRf, RfSimulator
from emvkit.terminal.errors import CardRemoved

__all__ = [
    "ACK",
    "ERROR_FRAME",
    "I2C_ADDRESS",
    "NACK",
    "MemoryLink",
    "Pn532Chip",
    "Pn532Simulator",
    "PtyLink",
    "frame",
]

log = logging.getLogger("emvkit.chipsim.pn532")

ACK = bytes.fromhex("0000FF00FF00")
NACK = bytes.fromhex("0000FFFF0000")
ERROR_FRAME = bytes.fromhex("0000FF01FF7F8100")
TFI_HOST, TFI_CHIP = 0xD4, 0xD5
WAKE_BYTE = 0x55
MAX_FRAME_DATA = 252  # DataIn bytes in one TgGetData answer: LEN = D5 87 status + 252 = 255
MAX_DATA_OUT = 262  # TgSetData / TgSetMetaData DataOut (§7.3.17)
MAX_APDU = 4 + 3 + 65535 + 3

GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
TG_GET_DATA = 0x86
TG_INIT_AS_TARGET = 0x8C
TG_SET_DATA = 0x8E
TG_SET_META_DATA = 0x94

STATUS_OK = 0x00
STATUS_MI = 0x40
STATUS_NOT_IN_CONTEXT = 0x27  # §7.1: not acceptable in the current context (not a target, no command to answer)
STATUS_RELEASED = 0x29  # §7.1: the target has been released by its initiator
I2C_ADDRESS = 0x24  # 7-bit
STATUS_READY = 0x01  # I2C and SPI status byte: a frame is ready for the host
SPI_DW, SPI_SR, SPI_DR = 0x01, 0x02, 0x03  # SPI operation bytes: data write, status read, data read
FRAMINGS = ("hsu", "i2c", "spi")
FIRMWARE_VERSION = bytes.fromhex("32010607")  # IC PN532, version 1.6, supports ISO 14443A/B and ISO 18092


def frame(tfi: int, data: bytes) -> bytes:
    """A normal information frame (§6.2.1.1), or an extended one (§6.2.1.2) when TFI + data exceed 255 bytes."""
    n = 1 + len(data)
    body = bytes((tfi,)) + data
    dcs = -sum(body) & 0xFF
    if n <= 255:
        return bytes((0x00, 0x00, 0xFF, n, -n & 0xFF)) + body + bytes((dcs, 0x00))
    hi, lo = n >> 8, n & 0xFF
    return bytes((0x00, 0x00, 0xFF, 0xFF, 0xFF, hi, lo, -(hi + lo) & 0xFF)) + body + bytes((dcs, 0x00))


@dataclasses.dataclass
class Armed:
    """What TgInitAsTarget armed the RF side with."""

    mode: int
    sens_res: bytes
    uid: bytes
    sel_res: int
    historical: bytes


class _Frames:
    """Host frames out of a byte stream: yields ("ack"|"nack"|"bad"|"frame", bytes)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.buf += data
        out: list[tuple[str, bytes]] = []
        while True:
            start = self.buf.find(b"\x00\xff")
            if start < 0:
                del self.buf[:-1]  # keep a trailing 00: the start code may be split
                return out
            b = self.buf[start + 2:]
            if len(b) < 2:
                del self.buf[:start]
                return out
            length, lcs = b[0], b[1]
            if (length, lcs) == (0x00, 0xFF):
                out.append(("ack", b""))
                del self.buf[:start + 4]
                continue
            if (length, lcs) == (0xFF, 0x00):
                out.append(("nack", b""))
                del self.buf[:start + 4]
                continue
            head = 2
            if (length, lcs) == (0xFF, 0xFF):  # extended frame
                if len(b) < 5:
                    del self.buf[:start]
                    return out
                if (b[2] + b[3] + b[4]) & 0xFF:
                    out.append(("bad", b"LCS"))
                    del self.buf[:start + 2]
                    continue
                length, head = b[2] << 8 | b[3], 5
            elif (length + lcs) & 0xFF or length == 0:
                out.append(("bad", b"LCS"))
                del self.buf[:start + 2]
                continue
            if len(b) < head + length + 1:
                del self.buf[:start]
                return out
            body = bytes(b[head:head + length])
            if (sum(body) + b[head + length]) & 0xFF:
                out.append(("bad", b"DCS"))
            else:
                out.append(("frame", body))
            del self.buf[:start + 2 + head + length + 1]


class Pn532Chip:
    """The PN532's host interface and target state; ``send`` takes every byte the chip puts on its host link.

    :meth:`receive` is called with the host's bytes; the RF side calls :meth:`rf_activate`,
    :meth:`rf_command` and :meth:`rf_released`. Thread-safe: the host link and the RF side run in
    their own threads.
    """

    def __init__(self, send: Callable[[bytes], None], *, rf_timeout: float = 30.0) -> None:
        self.send = send
        self.rf_timeout = rf_timeout  # the longest an RF command waits for the host's TgSetData
        self._lock = threading.Condition()
        self._frames = _Frames()
        self.awake = False
        self.configured = False
        self.busy: int | None = None  # the command in progress (answered later)
        self.armed: Armed | None = None  # TgInitAsTarget in progress or done
        self.active = False  # activated by a reader: TgGetData/TgSetData make sense
        self.released = False  # the reader let go: the next TgGetData says 29
        self._rats = b""
        self._commands: list[bytes] = []  # C-APDUs from the reader, not yet given to the host
        self._awaiting_answer = False  # a C-APDU was given to the host: TgSetData may answer it
        self._meta = bytearray()  # TgSetMetaData parts so far
        self._answer: bytes | None = None  # the R-APDU for the RF side
        self._last_response = b""
        self._generation = 0  # counts arming: an RF command waits only for its own session
        # what happened, for tests
        self.log: list[str] = []
        self.received_frames = 0

    # --- the host link ---

    def receive(self, data: bytes) -> None:
        with self._lock:
            if not self.awake:
                at = data.find(bytes((WAKE_BYTE,)))
                if at < 0:
                    return
                self.awake = True
                self.log.append("wake")
                data = data[at + 1:]
            for kind, body in self._frames.feed(bytes(data)):
                self._host_event(kind, body)
            self._lock.notify_all()

    def wake(self) -> bool:
        """The I2C/SPI wake-up (a transaction to the chip while it sleeps); True if it was asleep."""
        with self._lock:
            if self.awake:
                return False
            self.awake = True
            self.log.append("wake")
            return True

    def wait_for_log(self, line: str, after: int, timeout: float) -> bool:
        """Wait until ``line`` is in :attr:`log` more than ``after`` times (for tests)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.log.count(line) > after, timeout)

    def _host_event(self, kind: str, body: bytes) -> None:
        if kind == "bad":
            self.log.append(f"bad {body.decode()}")  # no ACK: the host sends again
        elif kind == "nack":
            self.log.append("nack")
            if self._last_response:
                self.send(self._last_response)
        elif kind == "ack":
            self.log.append("abort" if self.busy is not None else "ack")
            if self.busy is not None:
                self._abort()
        elif body[0] != TFI_HOST or len(body) < 2:
            self.log.append(f"ignored TFI {body[0]:02X}")
        elif self.busy is not None:
            self.log.append(f"busy: {body[1]:02X} not taken")
        elif not self.configured and body[1] != SAM_CONFIGURATION:
            self.log.append(f"LowVbat: {body[1]:02X} not taken")
        else:
            self.received_frames += 1
            self.send(ACK)
            self._command(body[1], body[2:])

    def _respond(self, code: int, data: bytes) -> None:
        self.busy = None
        self._last_response = frame(TFI_CHIP, bytes((code + 1,)) + data)
        self.send(self._last_response)

    def _error(self, why: str) -> None:
        self.busy = None
        self.log.append(f"error frame: {why}")
        self._last_response = ERROR_FRAME
        self.send(ERROR_FRAME)

    def _command(self, code: int, params: bytes) -> None:
        self.log.append(f"cmd {code:02X}")
        if code == GET_FIRMWARE_VERSION:
            return self._error("parameters") if params else self._respond(code, FIRMWARE_VERSION)
        if code == SAM_CONFIGURATION:
            return self._sam_configuration(params)
        if code == TG_INIT_AS_TARGET:
            return self._tg_init_as_target(params)
        if code == TG_GET_DATA:
            return self._error("parameters") if params else self._tg_get_data()
        if code in (TG_SET_DATA, TG_SET_META_DATA):
            return self._tg_set_data(code, params)
        return self._error(f"command {code:02X} not simulated")

    def _sam_configuration(self, params: bytes) -> None:
        # §7.2.10: Mode (1 normal, 2 virtual card, 3 wired card, 4 dual card), [Timeout], [IRQ].
        if not 1 <= len(params) <= 3 or not 1 <= params[0] <= 4:
            return self._error("SAMConfiguration parameters")
        if params[0] != 1:
            return self._error("only normal mode (no SAM) is simulated")
        self.configured = True
        self._respond(SAM_CONFIGURATION, b"")

    def _tg_init_as_target(self, p: bytes) -> None:
        # §7.3.14: Mode, MifareParams (6), FeliCaParams (18), NFCID3t (10), LEN Gt, Gt, LEN Tk, Tk.
        if len(p) < 37:
            return self._error("TgInitAsTarget is at least 37 bytes")
        n_gt = p[35]
        if len(p) < 37 + n_gt:
            return self._error("TgInitAsTarget: Gt longer than the frame")
        n_tk = p[36 + n_gt]
        if len(p) != 37 + n_gt + n_tk:
            return self._error("TgInitAsTarget: the lengths do not add up")
        mode = p[0]
        if mode & 0xF8:
            return self._error(f"TgInitAsTarget mode {mode:02X}: RFU bits set")
        if n_gt > 47 or n_tk > 30:
            return self._error("TgInitAsTarget: Gt or Tk too long")
        sel_res = p[6]
        if not mode & 0x04 or not sel_res & 0x20:
            return self._error("only ISO/IEC 14443-4 PICC emulation (PICCOnly, SEL_RES b6) is simulated")
        self._release_target()
        self._generation += 1
        self.armed = Armed(mode, bytes(p[1:3]), b"\x08" + bytes(p[3:6]), sel_res, bytes(p[37 + n_gt:]))
        self.busy = TG_INIT_AS_TARGET
        self.log.append(f"armed uid {self.armed.uid.hex()}")
        self._lock.notify_all()

    def _tg_get_data(self) -> None:
        if self.released:
            self.released = False
            self.active = False
            self._respond(TG_GET_DATA, bytes((STATUS_RELEASED,)))
            return
        if not self.active:
            return self._respond(TG_GET_DATA, bytes((STATUS_NOT_IN_CONTEXT,)))
        if self._awaiting_answer:
            return self._respond(TG_GET_DATA, bytes((STATUS_NOT_IN_CONTEXT,)))  # answer the last one first
        self.busy = TG_GET_DATA
        self._deliver()

    def _deliver(self) -> None:
        # Answer a TgGetData in progress with the next C-APDU (part), if one has come.
        if self.busy != TG_GET_DATA or not self._commands:
            return
        command = self._commands[0]
        part, rest = command[:MAX_FRAME_DATA], command[MAX_FRAME_DATA:]
        if rest:
            self._commands[0] = rest
            self._respond(TG_GET_DATA, bytes((STATUS_MI,)) + part)
            return
        self._commands.pop(0)
        self._awaiting_answer = True
        self._respond(TG_GET_DATA, bytes((STATUS_OK,)) + part)

    def _tg_set_data(self, code: int, data: bytes) -> None:
        if len(data) > MAX_DATA_OUT:
            return self._error(f"{len(data)} bytes of DataOut, at most {MAX_DATA_OUT}")
        if self.released:
            self.released = False
            self.active = False
            self._meta.clear()
            return self._respond(code, bytes((STATUS_RELEASED,)))
        if not self.active or not self._awaiting_answer:
            return self._respond(code, bytes((STATUS_NOT_IN_CONTEXT,)))
        self._meta += data
        if code == TG_SET_META_DATA:
            return self._respond(code, bytes((STATUS_OK,)))
        self._answer = bytes(self._meta)
        self._meta.clear()
        self._awaiting_answer = False
        self._lock.notify_all()
        self._respond(code, bytes((STATUS_OK,)))

    def _abort(self) -> None:
        # §6.2.2: the host's ACK aborts the command in progress; an aborted target command leaves target mode.
        code, self.busy = self.busy, None
        if code in (TG_INIT_AS_TARGET, TG_GET_DATA):
            self._release_target()

    def _release_target(self) -> None:
        self.armed = None
        self.active = False
        self.released = False
        self._commands.clear()
        self._meta.clear()
        self._awaiting_answer = False
        self._lock.notify_all()

    # --- the RF side ---

    def wait_listening(self, timeout: float) -> Armed | None:
        """The TgInitAsTarget parameters once the chip is armed and not yet activated (None after ``timeout``)."""
        with self._lock:
            self._lock.wait_for(lambda: self.armed is not None and self.busy == TG_INIT_AS_TARGET, timeout)
            return self.armed if self.busy == TG_INIT_AS_TARGET else None

    def rf_activate(self, rats: bytes) -> bool:
        """A reader sent RATS and got the ATS: answer TgInitAsTarget. False when the chip is no longer armed."""
        with self._lock:
            if self.armed is None or self.busy != TG_INIT_AS_TARGET:
                return False
            self.active = True
            self.released = False
            self._rats = bytes(rats)
            self._respond(TG_INIT_AS_TARGET, bytes((0x08,)) + self._rats)  # 106 kbit/s, PICC, Mifare framing
            return True

    def rf_command(self, apdu: bytes) -> bytes:
        """A C-APDU from the reader: the R-APDU the host gives with TgSetData; CardRemoved when none comes."""
        with self._lock:
            if not self.active:
                raise CardRemoved("the PN532 is not an activated target")
            generation = self._generation
            self._answer = None
            self._commands.append(bytes(apdu))
            self._deliver()
            done = self._lock.wait_for(
                lambda: self._answer is not None or not self.active or self._generation != generation,
                self.rf_timeout)
            if self._answer is None:
                raise CardRemoved("the host gave no R-APDU" if done else "the host gave no R-APDU in time")
            answer, self._answer = self._answer, None
            return answer

    def rf_released(self) -> None:
        """The reader let go of the card (S(DESELECT), field off, a new poll, gone)."""
        with self._lock:
            if not self.active:
                return
            self.log.append("released")
            self._commands.clear()
            self._awaiting_answer = False
            if self.busy in (TG_GET_DATA,):
                self.active = False
                self._respond(TG_GET_DATA, bytes((STATUS_RELEASED,)))
            else:
                self.released = True  # said at the next TgGetData or TgSetData
            self.armed = None
            self._lock.notify_all()


class MemoryLink:
    """The host link in memory, in one of the chip's framings (see the module docstring); ``chip`` answers on it.

    The firmware's side: ``firmware_bus`` (HSU), ``firmware_i2c`` (I2C), ``firmware_spi`` and ``firmware_cs`` (SPI).
    """

    def __init__(self, chip_factory: Callable[[Callable[[bytes], None]], Pn532Chip] | None = None, *,
                 framing: str = "hsu", spi_lsb_first: bool = True) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing {framing!r}: one of {', '.join(FRAMINGS)}")
        self.framing = framing
        self._cond = threading.Condition()
        self._to_host = bytearray()  # HSU: the stream towards the host
        self._ready: list[bytes] = []  # I2C, SPI: frames the host has not read
        self.chip = (chip_factory or Pn532Chip)(self._chip_sends)
        self.firmware_bus = _FirmwareBus(self)
        self.firmware_i2c = _I2cPort(self)
        self.firmware_cs = _ChipSelect(self)
        self.firmware_spi = _SpiPort(self, spi_lsb_first)
        self.taps: list[Callable[[str, bytes], None]] = []  # spies: ("host"|"chip", bytes)
        self.log: list[str] = []  # what the I2C/SPI interface did that a test may ask about

    def _chip_sends(self, data: bytes) -> None:
        for spy in self.taps:
            spy("chip", data)
        with self._cond:
            if self.framing == "hsu":
                self._to_host += data
            else:
                self._ready.append(bytes(data))
            self._cond.notify_all()

    def _pending(self) -> bool:
        return bool(self._to_host or self._ready)

    def wait(self, timeout: float) -> bool:
        """Wait until the chip has sent something the firmware has not read (True), at most ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(self._pending, timeout)

    def wait_for_log(self, line: str, after: int, timeout: float) -> bool:
        return self.chip.wait_for_log(line, after, timeout)

    def inject(self, data: bytes) -> None:
        """Bytes on the line towards the firmware, as if the chip had sent them (noise, a bad frame)."""
        self._chip_sends(data)

    def _from_host(self, data: bytes) -> None:
        for spy in self.taps:
            spy("host", data)
        self.chip.receive(data)

    def _take_frame(self) -> bytes | None:
        with self._cond:
            return self._ready.pop(0) if self._ready else None

    def _peek_frame(self) -> bytes | None:
        with self._cond:
            return self._ready[0] if self._ready else None


class _FirmwareBus:
    def __init__(self, link: MemoryLink) -> None:
        self.link = link
        self.filters: list[Callable[[bytes], bytes]] = []  # what the wire does to the host's bytes

    def write(self, buf: Any) -> None:
        data = bytes(buf)
        for spy in self.link.taps:
            spy("host", data)
        for f in self.filters:
            data = f(data)
        self.link.chip.receive(data)

    def readinto(self, buf: Any, timeout_ms: int = 0) -> int:
        link = self.link
        with link._cond:
            if not link._to_host and timeout_ms:
                link._cond.wait_for(lambda: bool(link._to_host), timeout_ms / 1000)
            n = min(len(buf), len(link._to_host))
            buf[:n] = link._to_host[:n]
            del link._to_host[:n]
            return n


class _I2cPort:
    """The chip on an I2C bus, as ``machine.I2C`` shows it to the host."""

    def __init__(self, link: MemoryLink) -> None:
        self.link = link

    def _address(self, addr: int) -> bool:
        if addr != I2C_ADDRESS:
            raise OSError(errno.ENODEV, f"no I2C device at 0x{addr:02X}")
        return self.link.chip.wake()  # a transaction to a sleeping chip wakes it and carries nothing

    def writeto(self, addr: int, buf: Any, stop: bool = True) -> int:
        if not self._address(addr) and len(buf):
            self.link._from_host(bytes(buf))
        return len(buf)

    def readfrom_into(self, addr: int, buf: Any, stop: bool = True) -> None:
        woke = self._address(addr)
        out = bytearray(len(buf))
        frame = None if woke else self.link._peek_frame()
        if frame is not None:
            out[0] = STATUS_READY
            if len(buf) > 1:
                self.link._take_frame()
                part = frame[:len(buf) - 1]
                out[1:1 + len(part)] = part
                if len(part) < len(frame):
                    self.link.log.append(f"i2c: frame cut after {len(part)} of {len(frame)} bytes")
        elif len(buf) > 1:
            self.link.log.append("i2c: read before ready")
        buf[:] = out

    def readfrom(self, addr: int, n: int, stop: bool = True) -> bytes:
        buf = bytearray(n)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)


def _reverse_bits(b: int) -> int:
    return int(f"{b:08b}"[::-1], 2)


class _ChipSelect:
    """The chip-select pin (active low) as ``machine.Pin`` shows it: a transaction from low to high."""

    def __init__(self, link: MemoryLink) -> None:
        self.link = link
        self.level = 1

    def value(self, level: int | None = None) -> int:
        if level is None:
            return self.level
        if level != self.level:
            self.level = 1 if level else 0
            if self.level == 0:
                self.link.firmware_spi.begin()
            else:
                self.link.firmware_spi.end()
        return self.level

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)


class _SpiPort:
    """The chip on SPI, as ``machine.SPI`` shows it to the host; bytes reach the chip LSB first."""

    def __init__(self, link: MemoryLink, lsb_first: bool) -> None:
        self.link = link
        self.lsb_first = lsb_first
        self._selected = False
        self._wake_only = False
        self._op: int | None = None
        self._data = bytearray()
        self._pos = 0
        self._early = False  # a data read before ready, said once per transaction

    def begin(self) -> None:
        self._selected = True
        self._wake_only = self.link.chip.wake()
        self._op = None
        self._data.clear()
        self._pos = 0
        self._early = False

    def end(self) -> None:
        self._selected = False
        if self._wake_only:
            return
        if self._op == SPI_DW and self._data:
            self.link._from_host(bytes(self._data))
        elif self._op == SPI_DR and self._pos:
            self.link._take_frame()
        elif self._op not in (None, SPI_DW, SPI_SR, SPI_DR):
            self.link.log.append(f"spi: unknown operation {self._op:02X}")

    def _clock(self, mosi: int) -> int:
        """One byte each way on the wire (the host's bit order): what the chip puts on MISO."""
        if not self._selected:
            raise OSError(errno.EIO, "SPI transfer with the chip not selected")
        if not self.lsb_first:
            mosi = _reverse_bits(mosi)
        miso = 0
        if self._wake_only:
            pass
        elif self._op is None:
            self._op = mosi
        elif self._op == SPI_DW:
            self._data.append(mosi)
        elif self._op == SPI_SR:
            miso = STATUS_READY if self.link._peek_frame() is not None else 0
        elif self._op == SPI_DR:
            frame = self.link._peek_frame()
            if frame is None:
                if not self._early:
                    self._early = True
                    self.link.log.append("spi: read before ready")
            else:
                miso = frame[self._pos] if self._pos < len(frame) else 0
                self._pos += 1
        return miso if self.lsb_first else _reverse_bits(miso)

    def write(self, buf: Any) -> None:
        for b in bytes(buf):
            self._clock(b)

    def readinto(self, buf: Any, write: int = 0x00) -> None:
        for i in range(len(buf)):
            buf[i] = self._clock(write)

    def write_readinto(self, write_buf: Any, read_buf: Any) -> None:
        for i, b in enumerate(bytes(write_buf)):
            read_buf[i] = self._clock(b)


class PtyLink:
    """The host link on a tty (the QEMU board's second UART): a thread feeds the chip what the firmware writes."""

    def __init__(self, path: str, chip_factory: Callable[[Callable[[bytes], None]], Pn532Chip] | None = None) -> None:
        import tty

        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.chip = (chip_factory or Pn532Chip)(self._write)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pn532-host-link", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _run(self) -> None:
        while not self._closing.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if data:
                self.chip.receive(data)

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        os.close(self.fd)


class Pn532Simulator(RfSimulator):
    """The chip's RF side on nfcpy (``udp:HOST:PORT``), in a thread, for the chip of a link."""

    def __init__(self, chip: Pn532Chip, target: str, *, fsci: int = 8, fwi: int = 14,
                 idle_timeout: float = 10.0) -> None:
        super().__init__(ChipRf(chip, target, fsci, fwi, idle_timeout=idle_timeout), name="pn532-rf")

