# NXP PN532 as the token's front end: the chip emulates an ISO/IEC 14443-4
# Type A card (it answers anticollision, RATS and the ISO-DEP blocks itself)
# and hands each C-APDU to this driver, which asks the card application for
# the R-APDU and gives it back to the chip.
#
# Written from the PN532 User Manual, UM0701-02 Rev. 02 ("UM" below);
# section numbers are that document's:
# - host link frames (§6.2.1): normal information frame
#     00 00 FF LEN LCS TFI PD0..PDn DCS 00
#   with LEN = bytes of TFI and PD, LEN + LCS = 0 and TFI + PD + DCS = 0
#   (mod 256); the extended frame 00 00 FF FF FF LENM LENL LCS TFI .. DCS 00
#   for longer data (§6.2.1.2; this driver reads it, never needs to send it);
#   ACK 00 00 FF 00 FF 00, NACK 00 00 FF FF 00 00 (§6.2.1.3-4), the error
#   frame 00 00 FF 01 FF 7F 81 00 (§6.2.1.5: the command was not understood);
#   TFI D4 host to chip, D5 chip to host; a response's code is the command's
#   plus one.
# - the dialog (§6.2.2): the chip ACKs a well-formed command at once and
#   answers when done. No ACK in time: send the command again. A response
#   that arrives damaged: NACK, and the chip sends it again. ACK from the
#   host while a command runs: the chip aborts it.
# - HSU (UART) wake-up: after power-up the chip sleeps (LowVbat); the host
#   sends 0x55 and a long preamble of 00s, and SAMConfiguration must be the
#   first command (§7.2.10, "normal mode" 01 takes it out of LowVbat).
# - the target commands: TgInitAsTarget 8C (§7.3.14), TgGetData 86 (§7.3.16),
#   TgSetData 8E (§7.3.17), TgSetMetaData 94 (§7.3.18); the status byte
#   (§7.1): b5-b0 the error code (00 success, 01 timeout, 29 released by the
#   initiator: DESELECT or field off, ...), b6 MI (more data follows), b7 NAD.
#
# - the host interface is one of three (§6.2: HSU, I2C, SPI), chosen by the
#   board: the same frames on each. HSU is a byte stream (the bus of bus.py
#   as it is). I2C and SPI carry them in transactions; I2cLink and SpiLink
#   below turn an I2C or SPI peripheral into the same stream, so the frame
#   layer and the state machine do not know which one is in use:
#   * I2C: the chip at 7-bit address 0x24; the host writes a frame in one
#     write transaction; a read transaction starts with the status byte
#     (bit 0 set: a frame is ready) followed by the frame. I2cLink polls
#     with one-byte reads until ready, then reads the status byte and the
#     longest frame it takes in one transaction and keeps what follows the
#     status byte up to the frame's end (reading the whole frame in one
#     transaction: our reading of public driver code, e.g. libnfc's).
#   * SPI: every transaction (chip select low ... high) starts with an
#     operation byte: DW 01 data write (a frame follows), SR 02 status read
#     (the chip answers the status byte), DR 03 data read (the chip clocks
#     out the ready frame); bytes go least significant bit first, so the
#     host's SPI is set up LSB first (firstbit=SPI.LSB), or SpiLink reverses
#     the bits in software where the peripheral can only send MSB first
#     (the RP2040/RP2350's). SpiLink reads the frame's header, then as many
#     bytes as its LEN says, in the same transaction.
#   * wake-up: HSU sends 0x55 and a preamble; over I2C an address-only
#     write, over SPI a chip-select pulse wakes the chip (the links'
#     wake_up(); the I2C/SPI wake-up details are our reading of public
#     driver code, not quoted from the manual).
#
# The driver is a state machine driven by poll(), which never waits for the
# chip: it takes what arrived on the bus, acts on it, and returns, so the
# token serves its dev link between two polls. A tap, as the driver sees it:
#   TgInitAsTarget (mode PassiveOnly|PICCOnly, SENS_RES, NFCID1t, SEL_RES 20,
#   the ATS historical bytes) -> answered when a reader has activated the
#   card (RATS: the chip sent the ATS);
#   TgGetData -> a C-APDU; card.process(); TgSetData with the R-APDU
#   (TgSetMetaData first for the parts of one too long for a frame); again,
#   until TgGetData or TgSetData says the reader released the card (29), the
#   field went (or any other error status): the card is powered off and the
#   driver arms the chip again with TgInitAsTarget.
# Anything out of order (no ACK, a damaged or wrong answer, an error frame, a
# response that never comes) ends in the same place: the command is aborted
# and the chip armed again; after repeated failures the driver starts over
# with the wake-up. Nothing here raises out of poll() because of the chip.

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

# --- the host link (§6.2.1) ---
TFI_HOST = const(0xD4)
TFI_CHIP = const(0xD5)
TFI_ERROR = const(0x7F)
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
WAKE_UP = b"\x55\x55" + bytes(14)  # 0x55, then a long preamble (HSU wake-up)
MAX_LEN = const(255)  # the largest LEN of a normal frame (TFI + PD)
MAX_DATA = const(253)  # data bytes after TFI and command code in one normal frame

# --- commands (§7.2, §7.3) ---
SAM_CONFIGURATION = const(0x14)
TG_INIT_AS_TARGET = const(0x8C)
TG_GET_DATA = const(0x86)
TG_SET_DATA = const(0x8E)
TG_SET_META_DATA = const(0x94)

SAM_NORMAL = const(0x01)  # SAMConfiguration mode: normal (no SAM), leaves LowVbat
TG_MODE_PASSIVE_ONLY = const(0x01)
TG_MODE_PICC_ONLY = const(0x04)
TG_ACTIVATED_PICC = const(0x08)  # TgInitAsTarget's answer, Mode b3: activated as ISO/IEC 14443-4 PICC
SEL_RES_ISO_DEP = const(0x20)  # SAK b6: ISO/IEC 14443-4 compliant
SENS_RES = b"\x04\x00"  # ATQA 0x0004 as sent on the air: single-size UID, bit-frame anticollision

# --- the status byte (§7.1) ---
STATUS_ERROR = const(0x3F)
STATUS_MI = const(0x40)
STATUS_TIMEOUT = const(0x01)
STATUS_RELEASED = const(0x29)

# --- what the parser reports for a byte ---
EV_NONE = const(0)
EV_ACK = const(1)
EV_NACK = const(2)
EV_FRAME = const(3)
EV_BAD = const(4)  # a frame whose LCS or DCS is wrong, or of a length that cannot be

_P_START = const(0)  # looking for the start code 00 FF
_P_LEN = const(1)
_P_LCS = const(2)
_P_XLENM = const(3)
_P_XLENL = const(4)
_P_XLCS = const(5)
_P_DATA = const(6)
_P_DCS = const(7)
_FRAME_MAX = const(265)  # TFI + code + status + 262 bytes of data (extended frames)


class FrameParser:
    # Host-link frames out of a byte stream, one byte at a time (feed()
    # returns an EV_*). After EV_FRAME, frame() is TFI and PD (a view of the
    # parser's buffer, valid until the next feed()). Garbage between frames
    # is skipped; an extended frame longer than _FRAME_MAX is EV_BAD.
    def __init__(self) -> None:
        self.buf = bytearray(_FRAME_MAX)
        self.view = memoryview(self.buf)
        self.reset()

    def reset(self) -> None:
        self.state = _P_START
        self.prev = -1
        self.length = 0
        self.got = 0
        self.sum = 0

    def frame(self):
        return self.view[: self.length]

    def feed(self, b: int) -> int:
        s = self.state
        if s == _P_START:
            if self.prev == 0 and b == 0xFF:
                self.state = _P_LEN
            self.prev = b
            return EV_NONE
        if s == _P_LEN:
            self.length = b
            self.state = _P_LCS
            return EV_NONE
        if s == _P_LCS:
            n = self.length
            self.reset()
            if n == 0 and b == 0xFF:
                return EV_ACK
            if n == 0xFF and b == 0x00:
                return EV_NACK
            if n == 0xFF and b == 0xFF:
                self.state = _P_XLENM
                return EV_NONE
            if n == 0 or (n + b) & 0xFF:
                return EV_BAD
            self.length = n
            self.state = _P_DATA
            return EV_NONE
        if s == _P_XLENM:
            self.length = b << 8
            self.state = _P_XLENL
            return EV_NONE
        if s == _P_XLENL:
            self.length |= b
            self.state = _P_XLCS
            return EV_NONE
        if s == _P_XLCS:
            n = self.length
            total = (n >> 8) + (n & 0xFF) + b
            self.reset()
            if total & 0xFF or n == 0 or n > _FRAME_MAX:
                return EV_BAD
            self.length = n
            self.state = _P_DATA
            return EV_NONE
        if s == _P_DATA:
            self.buf[self.got] = b
            self.got += 1
            self.sum += b
            if self.got == self.length:
                self.state = _P_DCS
            return EV_NONE
        # _P_DCS
        ok = not (self.sum + b) & 0xFF
        n = self.length
        self.reset()
        self.length = n
        return EV_FRAME if ok else EV_BAD


def build_frame(buf, code: int, data=b"", tfi: int = TFI_HOST) -> int:
    # Writes the normal information frame TFI code data into buf; returns
    # its length. len(data) <= MAX_DATA.
    n = 2 + len(data)
    if n > MAX_LEN:
        raise ValueError("%d data bytes: at most %d in a frame" % (len(data), MAX_DATA))
    buf[0] = 0x00
    buf[1] = 0x00
    buf[2] = 0xFF
    buf[3] = n
    buf[4] = (-n) & 0xFF
    buf[5] = tfi
    buf[6] = code
    total = tfi + code
    i = 7
    for b in data:
        buf[i] = b
        total += b
        i += 1
    buf[i] = (-total) & 0xFF
    buf[i + 1] = 0x00
    return i + 2


# --- the driver's states ---
ST_ASLEEP = const(0)  # after power-up or repeated failures: wake-up next
ST_CONFIGURING = const(1)  # SAMConfiguration sent
ST_IDLE = const(2)  # configured; no personalised card yet
ST_ARMED = const(3)  # TgInitAsTarget sent: waiting for a reader
ST_GETTING = const(4)  # TgGetData sent
ST_SETTING = const(5)  # TgSetData or TgSetMetaData sent

_FAILURES_BEFORE_WAKE = const(3)  # failed commands in a row before starting over with the wake-up
_SENDS = const(3)  # tries of one command that is not ACKed
_NACKS = const(3)  # damaged responses asked again before giving up
_READ_CHUNK = const(64)
_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"


class Pn532Target:
    # bus: see bus.py. card_source(): the card application now (an object
    # with process(apdu) -> bytes, optional power_on()/power_off() and
    # profile.atr_historical), or None while the token is not personalised:
    # then the chip is configured but not armed. nfcid1: 3 bytes, the UID
    # after the 08 the chip puts first. Timeouts in ms: ack_ms for the ACK,
    # reply_ms for the answers that come at once, get_ms for the reader's
    # next command; TgInitAsTarget waits for a reader as long as it takes.
    def __init__(self, bus, card_source, nfcid1: bytes = b"\x01\x02\x03", sens_res: bytes = SENS_RES,
                 ticks_ms=None, ticks_diff=None, ack_ms: int = 100, reply_ms: int = 1000,
                 get_ms: int = 10000) -> None:
        if len(nfcid1) != 3 or len(sens_res) != 2:
            raise ValueError("NFCID1t has 3 bytes, SENS_RES 2")
        if ticks_ms is None or ticks_diff is None:
            from .bus import platform_ticks

            ticks_ms, ticks_diff = platform_ticks()
        self.bus = bus
        self.card_source = card_source
        self.nfcid1 = bytes(nfcid1)
        self.sens_res = bytes(sens_res)
        self.ticks_ms = ticks_ms
        self.ticks_diff = ticks_diff
        self.ack_ms = ack_ms
        self.reply_ms = reply_ms
        self.get_ms = get_ms
        self.parser = FrameParser()
        self.out = bytearray(_FRAME_MAX + 9)  # the command frame, kept for resends
        self.out_len = 0
        self.rx = bytearray(_READ_CHUNK)
        self.apdu = bytearray()  # the C-APDU so far (TgGetData with MI)
        self.pending = b""  # what is left of the R-APDU to hand to the chip
        self.state = ST_ASLEEP
        self.code = 0  # the command in flight
        self.acked = False
        self.deadline = 0  # ticks; 0 with acked: no timeout
        self.since = 0
        self.sends = 0
        self.nacks = 0
        self.failures = 0
        self.card = None  # the card of the session in progress
        # counters, for tests and DEVICE_INFO
        self.wakeups = 0
        self.activations = 0
        self.apdus = 0
        self.rearms = 0  # sessions ended by an error status, a timeout or a bad answer
        self.last_status = 0

    # --- the loop ---

    def poll(self) -> bool:
        # Does what there is to do now; True when anything happened.
        if self.state == ST_ASLEEP:
            self._wake()
            return True
        if self.state == ST_IDLE:
            if self.card_source() is None:
                return False
            self._arm()
            return True
        n = self.bus.readinto(self.rx, 0)
        for i in range(n):
            event = self.parser.feed(self.rx[i])
            if event != EV_NONE:
                self._event(event)
        if n:
            return True
        return self._check_deadline()

    def _check_deadline(self) -> bool:
        if not self.acked:
            if self.ticks_diff(self.ticks_ms(), self.since) < self.ack_ms:
                return False
            self.parser.reset()
            if self.sends < _SENDS:
                self._resend()  # §6.2.2: no ACK, send the command again
            else:
                self._failed()
            return True
        if self.deadline and self.ticks_diff(self.ticks_ms(), self.since) >= self.deadline:
            self.parser.reset()
            self._failed()
            return True
        return False

    # --- sending ---

    def _send(self, code: int, data=b"", wait_ms: int = 0) -> None:
        self.code = code
        self.out_len = build_frame(self.out, code, data)
        self.sends = 0
        self.nacks = 0
        self.deadline = wait_ms
        self._resend()

    def _resend(self) -> None:
        self.sends += 1
        self.acked = False
        self.since = self.ticks_ms()
        self.bus.write(memoryview(self.out)[: self.out_len])

    def _wake(self) -> None:
        self.wakeups += 1
        wake_up = getattr(self.bus, "wake_up", None)  # I2cLink, SpiLink: their own wake-up
        if wake_up is not None:
            wake_up()
        else:
            self.bus.write(WAKE_UP)  # HSU
        self.parser.reset()
        self.state = ST_CONFIGURING
        self._send(SAM_CONFIGURATION, b"\x01\x14\x00", self.reply_ms)  # normal mode, 1 s, no IRQ

    def _arm(self) -> None:
        card = self.card_source()
        if card is None:
            self.state = ST_IDLE
            return
        historical = bytes(getattr(getattr(card, "profile", None), "atr_historical", b""))[:15]
        data = bytearray((TG_MODE_PASSIVE_ONLY | TG_MODE_PICC_ONLY,))
        data += self.sens_res + self.nfcid1 + bytes((SEL_RES_ISO_DEP,))  # MifareParams
        data += bytes(18)  # FeliCaParams (not listened for)
        data += bytes(10)  # NFCID3t (no DEP)
        data += b"\x00"  # no general bytes
        data += bytes((len(historical),)) + historical  # Tk: the ATS historical bytes
        self.state = ST_ARMED
        self._send(TG_INIT_AS_TARGET, data, 0)

    def _get(self) -> None:
        self.state = ST_GETTING
        self._send(TG_GET_DATA, b"", self.get_ms)

    def _give(self) -> None:
        # The next part of the R-APDU: TgSetMetaData (MI) while more follows, TgSetData with the last.
        part = self.pending[:MAX_DATA]
        self.pending = self.pending[MAX_DATA:]
        self.state = ST_SETTING
        self._send(TG_SET_META_DATA if self.pending else TG_SET_DATA, part, self.reply_ms)

    # --- receiving ---

    def _event(self, event: int) -> None:
        if event == EV_ACK:
            if not self.acked:
                self.acked = True
                self.since = self.ticks_ms()
            return
        if event == EV_BAD:
            if self.acked:
                if self.nacks < _NACKS:
                    self.nacks += 1
                    self.bus.write(NACK)  # §6.2.2: the chip sends its response again
                else:
                    self._failed()
            return  # before the ACK: the deadline sends the command again
        if event != EV_FRAME:
            return  # a NACK: the chip never sends one
        frame = self.parser.frame()
        if frame[0] == TFI_ERROR:
            self._failed()  # §6.2.1.5: the chip did not understand the command
            return
        if len(frame) < 2 or frame[0] != TFI_CHIP or frame[1] != self.code + 1:
            return  # not the answer to this command (one to a command aborted before)
        self.acked = True
        self.failures = 0
        self._answer(bytes(frame[2:]))

    def _answer(self, data: bytes) -> None:
        code = self.code
        if code == SAM_CONFIGURATION:
            self.state = ST_IDLE
            self._arm()
        elif code == TG_INIT_AS_TARGET:
            if not data or not data[0] & TG_ACTIVATED_PICC:
                self._rearm(0)  # activated as something other than an ISO-DEP card
                return
            self.activations += 1
            self.card = self.card_source()
            self._hook("power_on")
            self.apdu = bytearray()
            self._get()
        elif not data:
            self._failed()  # TgGetData and TgSetData answers start with the status byte
        elif data[0] & STATUS_ERROR:
            self._end(data[0] & STATUS_ERROR)
        elif code == TG_GET_DATA:
            self.apdu += data[1:]
            if data[0] & STATUS_MI:
                self._get()  # the chip holds more of this C-APDU
                return
            command = bytes(self.apdu)
            self.apdu = bytearray()
            self.pending = self._process(command)
            self._give()
        elif self.pending:
            self._give()
        else:
            self._get()

    def _process(self, command: bytes) -> bytes:
        card = self.card
        self.apdus += 1
        try:
            response = bytes(card.process(command)) if card is not None else b""
        except Exception:
            response = b""
        return response if len(response) >= 2 else _NO_PRECISE_DIAGNOSIS

    # --- ending a session ---

    def _end(self, status: int) -> None:
        # The chip reports the end of the tap (or an error of the RF link): power off, arm again.
        self._rearm(status)

    def _failed(self) -> None:
        # The command went wrong (no ACK, no answer, an error frame, answers damaged
        # again and again): abort it and arm again; start over after repeated failures.
        self.failures += 1
        self.bus.write(ACK)  # §6.2.2: an ACK from the host aborts the command in progress
        if self.failures >= _FAILURES_BEFORE_WAKE or self.state == ST_CONFIGURING:
            self.failures = 0
            self._session_over()
            self.state = ST_ASLEEP
            return
        self._rearm(-1)

    def _rearm(self, status: int) -> None:
        self.last_status = status
        if status:
            self.rearms += 1
        self._session_over()
        self._arm()

    def _session_over(self) -> None:
        self.pending = b""
        self.apdu = bytearray()
        if self.card is not None:
            self._hook("power_off")
            self.card = None

    def _hook(self, name: str) -> None:
        f = getattr(self.card, name, None)
        if f is not None:
            try:
                f()
            except Exception:
                pass


# --- the I2C and SPI host interfaces (see the top of this file) ---
I2C_ADDRESS = const(0x24)  # 7-bit (0x48 written, 0x49 read)
STATUS_READY = const(0x01)  # the status byte's bit 0: the chip has a frame for the host
SPI_DW = const(0x01)  # data write
SPI_SR = const(0x02)  # status read
SPI_DR = const(0x03)  # data read
_LINK_MAX = const(_FRAME_MAX + 10)  # the longest frame taken: 00 00 FF FF FF LENM LENL LCS, data, DCS 00


def frame_end(buf, start: int, end: int) -> int:
    # Where the frame beginning at buf[start] (00 00 FF ...) ends, at most `end`:
    # ACK and NACK are 6 bytes, a normal frame LEN + 7, an extended one LEN + 10.
    if end - start < 6 or buf[start] or buf[start + 1] or buf[start + 2] != 0xFF:
        return end
    n, lcs = buf[start + 3], buf[start + 4]
    if (n == 0 and lcs == 0xFF) or (n == 0xFF and lcs == 0):
        return start + 6
    if n == 0xFF and lcs == 0xFF:
        if end - start < 8:
            return end
        return min(end, start + 10 + (buf[start + 5] << 8 | buf[start + 6]))
    return min(end, start + 7 + n)


class _Stream:
    # What the link took from the chip, handed to the driver as a stream.
    def __init__(self) -> None:
        self.buf = bytearray(1 + _LINK_MAX)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0

    def take(self, buf) -> int:
        n = min(len(buf), self.end - self.start)
        buf[:n] = self.view[self.start : self.start + n]
        self.start += n
        return n


class I2cLink(_Stream):
    # A machine.I2C (writeto, readfrom_into) as the driver's bus. An I2C
    # error (no ACK on the address: the chip is asleep or busy) is not
    # raised: the driver's ACK timeout sends the command again.
    def __init__(self, i2c, addr: int = I2C_ADDRESS) -> None:
        super().__init__()
        self.i2c = i2c
        self.addr = addr
        self.status = bytearray(1)

    def wake_up(self) -> None:
        try:
            self.i2c.writeto(self.addr, b"")
        except OSError:
            pass

    def write(self, buf) -> None:
        try:
            self.i2c.writeto(self.addr, buf)
        except OSError:
            pass

    def readinto(self, buf, timeout_ms: int = 0) -> int:
        if self.start == self.end:
            try:
                self.i2c.readfrom_into(self.addr, self.status)
                if not self.status[0] & STATUS_READY:
                    return 0
                self.i2c.readfrom_into(self.addr, self.buf)
            except OSError:
                return 0
            if not self.buf[0] & STATUS_READY:
                return 0
            self.start = 1
            self.end = frame_end(self.buf, 1, len(self.buf))
        return self.take(buf)


def _reverse_bits(b: int) -> int:
    b = (b & 0xF0) >> 4 | (b & 0x0F) << 4
    b = (b & 0xCC) >> 2 | (b & 0x33) << 2
    return (b & 0xAA) >> 1 | (b & 0x55) << 1


class SpiLink(_Stream):
    # A machine.SPI (write, readinto) and its chip-select machine.Pin as the
    # driver's bus. lsb_first: the SPI is set up LSB first; False: it sends
    # MSB first and the link reverses every byte's bits. sleep_ms: how the
    # wake-up holds chip select low (2 ms; None: not held).
    def __init__(self, spi, cs, lsb_first: bool = True, sleep_ms=None) -> None:
        super().__init__()
        self.spi = spi
        self.cs = cs
        self.sleep_ms = sleep_ms
        self.table = None if lsb_first else bytes(_reverse_bits(i) for i in range(256))
        self.one = bytearray(1)
        cs.value(1)

    def _out(self, data) -> None:
        if self.table is not None:
            data = bytes(self.table[b] for b in data)
        self.spi.write(data)

    def _in(self, view) -> None:
        self.spi.readinto(view)
        if self.table is not None:
            for i in range(len(view)):
                view[i] = self.table[view[i]]

    def wake_up(self) -> None:
        self.cs.value(0)
        if self.sleep_ms is not None:
            self.sleep_ms(2)
        self.cs.value(1)

    def write(self, buf) -> None:
        self.cs.value(0)
        try:
            self.one[0] = SPI_DW
            self._out(self.one)
            self._out(buf)
        finally:
            self.cs.value(1)

    def readinto(self, buf, timeout_ms: int = 0) -> int:
        if self.start == self.end and not self._read_frame():
            return 0
        return self.take(buf)

    def _read_frame(self) -> bool:
        self.cs.value(0)
        try:
            self.one[0] = SPI_SR
            self._out(self.one)
            self._in(self.one)
            if not self.one[0] & STATUS_READY:
                return False
        finally:
            self.cs.value(1)
        self.cs.value(0)
        try:
            self.one[0] = SPI_DR
            self._out(self.one)
            v = self.view
            self._in(v[0:5])  # 00 00 FF LEN LCS
            n = 5
            if v[3] == 0xFF and v[4] == 0xFF:  # extended: LENM LENL LCS
                self._in(v[5:8])
                n = 8
            if v[0] or v[1] or v[2] != 0xFF:
                end = n  # not a frame's start: handed on as it is, the parser skips it
            else:
                end = frame_end(self.buf, 0, len(self.buf))
            if end > n:
                self._in(v[n:end])
        finally:
            self.cs.value(1)
        self.start = 0
        self.end = end
        return True
