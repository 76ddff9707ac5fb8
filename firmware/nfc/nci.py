# NXP PN7150 / PN7160 as the token's front end, through NCI (the NFC
# Forum's NFC Controller Interface; PN7150: NCI 1.0, PN7160: NCI 2.0) over
# I2C. The chip (the NFCC) does ISO/IEC 14443-3 anticollision and the
# ISO-DEP protocol itself; this driver (the DH) configures it to listen as
# an NFC-A ISO-DEP card and hands each C-APDU to the card application.
#
# Packets (NCI "packet formats"): a 3-byte header, then the payload.
#   control: byte 0 = MT (b7-b5: 1 command, 2 response, 3 notification) |
#            PBF (b4: more segments follow) | GID (b3-b0); byte 1 = OID
#            (b5-b0); byte 2 = payload length.
#   data:    byte 0 = MT 0 | PBF | connection id (b3-b0; 0 is the static RF
#            connection); byte 1 RFU; byte 2 = payload length.
# A message longer than the largest payload is sent in segments, PBF set on
# all but the last. Data towards the chip needs a credit per packet: the
# chip gives the first ones in RF_INTF_ACTIVATED_NTF and more in
# CORE_CONN_CREDITS_NTF (60 06); 0xFF credits: no flow control.
#
# I2C (PN7150 UM10936, PN7160 UM11495): no status byte and no checksum; the
# chip raises its IRQ line while it holds a packet; the host reads the 3-byte
# header, then the payload, then IRQ falls. A write is one whole packet.
#
# Bring-up, each command answered by its response (status 00 = OK):
#   CORE_RESET_CMD 20 00 01 01 (reset the configuration)
#     NCI 1.0: RSP 40 00 03 status version config-status
#     NCI 2.0: RSP 40 00 01 status, then CORE_RESET_NTF 60 00 (its byte 2
#              is the NCI version)
#   CORE_INIT_CMD 20 01 00 (NCI 1.0) or 20 01 02 00 00 (NCI 2.0: two
#     feature-enable bytes); the response tells the largest control payload
#   NCI_PROPRIETARY_ACT_CMD 2F 02 00 (NXP: enables the chip's extensions)
#   RF_DISCOVER_MAP_CMD 21 00 04 01 04 02 02: one mapping, ISO-DEP (04) in
#     listen mode (02) to the ISO-DEP RF interface (02)
#   RF_SET_LISTEN_MODE_ROUTING_CMD 21 01 07 00 01 01 03 00 01 04: last
#     message, one protocol-based entry (01, 3 bytes): to the DH (00) when
#     switched on (01), protocol ISO-DEP (04)
# then, with a card (and again when the card changes):
#   CORE_SET_CONFIG_CMD: LA_BIT_FRAME_SDD 30 = 04 and LA_PLATFORM_CONFIG
#     31 = 00 (SENS_RES 04 00), LA_SEL_INFO 32 = 20 (SAK: ISO-DEP),
#     LA_NFCID1 33 = the UID, LI_A_HIST_BY 59 = the ATS historical bytes
#   RF_DISCOVER_CMD 21 03 03 01 80 01: listen NFC-A passive, every period.
#
# A tap: RF_INTF_ACTIVATED_NTF 61 05 (after the reader's RATS) -> the card
# is powered on; the largest data payload and the first credits come from
# it. Each C-APDU arrives as data packet(s) on connection 0, reassembled;
# card.process(); the R-APDU goes back in packets of at most that size, one
# credit each. RF_DEACTIVATE_NTF 61 06 type reason ends the tap: power off;
# type 03 (discovery) or 01/02 (sleep): the chip listens again by itself;
# type 00 (idle): RF_DISCOVER again.
#
# Never stuck, never raising out of poll(): a response that does not come in
# reply_ms, a response or notification that makes no sense here, a packet
# shorter than its header says, a truncated header, data on another
# connection, an error status, CORE_GENERIC_ERROR_NTF (60 07) or
# CORE_INTERFACE_ERROR_NTF (60 08) with anything but an RF error of the
# running tap, no credit for credit_ms: the card is powered off and the
# driver starts over (VEN pulsed when the board gives it, CORE_RESET, ...)
# and arms the chip again; after three failed starts in a row it waits
# pause_ms before each next one. RF errors (B0-B2) and failed activations (A1)
# leave the chip's RF state as it is: the reader retries or goes.

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

# --- packet header ---
MT_DATA = const(0)
MT_CMD = const(1)
MT_RSP = const(2)
MT_NTF = const(3)
PBF = const(0x10)
GID_CORE = const(0x0)
GID_RF = const(0x1)
GID_PROP = const(0xF)
HEADER = const(3)
MAX_PAYLOAD = const(255)

# --- OIDs ---
CORE_RESET = const(0x00)
CORE_INIT = const(0x01)
CORE_SET_CONFIG = const(0x02)
CORE_CONN_CREDITS = const(0x06)
CORE_GENERIC_ERROR = const(0x07)
CORE_INTERFACE_ERROR = const(0x08)
RF_DISCOVER_MAP = const(0x00)
RF_SET_LISTEN_MODE_ROUTING = const(0x01)
RF_DISCOVER = const(0x03)
RF_INTF_ACTIVATED = const(0x05)
RF_DEACTIVATE = const(0x06)
RF_FIELD_INFO = const(0x07)
PROP_ACT = const(0x02)

# --- values ---
STATUS_OK = const(0x00)
STATUS_ACTIVATION_FAILED = const(0xA1)  # DISCOVERY_TARGET_ACTIVATION_FAILED
STATUS_RF_FIRST = const(0xB0)  # RF_TRANSMISSION_ERROR, RF_PROTOCOL_ERROR, RF_TIMEOUT_ERROR
STATUS_RF_LAST = const(0xB2)
RESET_CONFIG = const(0x01)
PROTOCOL_ISO_DEP = const(0x04)
INTERFACE_ISO_DEP = const(0x02)
MODE_LISTEN = const(0x02)
LISTEN_A_PASSIVE = const(0x80)
DEACTIVATE_IDLE = const(0x00)
NO_FLOW_CONTROL = const(0xFF)
LA_BIT_FRAME_SDD = const(0x30)
LA_PLATFORM_CONFIG = const(0x31)
LA_SEL_INFO = const(0x32)
LA_NFCID1 = const(0x33)
LI_A_HIST_BY = const(0x59)
SEL_INFO_ISO_DEP = const(0x20)

CORE_RESET_CMD = b"\x20\x00\x01\x01"
CORE_INIT_CMD_1 = b"\x20\x01\x00"
CORE_INIT_CMD_2 = b"\x20\x01\x02\x00\x00"
PROP_ACT_CMD = b"\x2f\x02\x00"
DISCOVER_MAP_CMD = b"\x21\x00\x04\x01\x04\x02\x02"
ROUTING_CMD = b"\x21\x01\x07\x00\x01\x01\x03\x00\x01\x04"
DISCOVER_CMD = b"\x21\x03\x03\x01\x80\x01"
DEACTIVATE_IDLE_CMD = b"\x21\x06\x01\x00"

# --- the driver's states ---
ST_OFF = const(0)  # start over next: reset the chip
ST_RESET = const(1)  # CORE_RESET_CMD sent
ST_RESET_NTF = const(2)  # NCI 2.0: CORE_RESET_RSP came, CORE_RESET_NTF next
ST_INIT = const(3)  # CORE_INIT_CMD sent
ST_PROP = const(4)  # NCI_PROPRIETARY_ACT_CMD sent
ST_MAP = const(5)  # RF_DISCOVER_MAP_CMD sent
ST_ROUTING = const(6)  # RF_SET_LISTEN_MODE_ROUTING_CMD sent
ST_IDLE = const(7)  # configured, RF idle: no card yet
ST_CONFIG = const(8)  # CORE_SET_CONFIG_CMD sent
ST_DISCOVER = const(9)  # RF_DISCOVER_CMD sent
ST_LISTEN = const(10)  # discovering: waiting for a reader
ST_ACTIVE = const(11)  # a reader activated the card
ST_STOP = const(12)  # RF_DEACTIVATE_CMD (idle) sent: the card changed

_FAULTS_BEFORE_PAUSE = const(3)  # failed starts in a row before the driver pauses between two
_APDU_MAX = const(261)  # a short C-APDU: CLA INS P1 P2 Lc 255 bytes Le
_DRAIN = const(16)  # packets read and dropped at most when starting over
_WRONG_LENGTH = b"\x67\x00"
_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"


class NciTarget:
    # bus: see bus.py (I2cBus; MemoryI2cBus in tests). card_getter(): the
    # card application now (process(apdu) -> bytes, optional power_on() /
    # power_off() and profile.atr_historical) or None while the token is not
    # personalised: then the chip is configured but does not listen.
    # nfcid1: the UID the chip announces (4, 7 or 10 bytes). ven: a function
    # that pulses the chip's VEN line (a hardware reset), or None. Timeouts
    # in ms: reply_ms for a response, credit_ms for a credit to send with,
    # pause_ms between two starts after three failed ones in a row.
    def __init__(self, bus, card_getter, nfcid1: bytes = b"\x08\x01\x02\x03", ven=None,
                 ticks_ms=None, ticks_diff=None, reply_ms: int = 1000, credit_ms: int = 1000,
                 pause_ms: int = 1000) -> None:
        if len(nfcid1) not in (4, 7, 10):
            raise ValueError("an NFCID1 has 4, 7 or 10 bytes")
        if ticks_ms is None or ticks_diff is None:
            from .bus import platform_ticks

            ticks_ms, ticks_diff = platform_ticks()
        self.bus = bus
        self.card_getter = card_getter
        self.nfcid1 = bytes(nfcid1)
        self.ven = ven
        self.ticks_ms = ticks_ms
        self.ticks_diff = ticks_diff
        self.reply_ms = reply_ms
        self.credit_ms = credit_ms
        self.pause_ms = pause_ms
        self.faults = 0  # faults since the chip last listened
        self.pkt = bytearray(HEADER + MAX_PAYLOAD)  # the packet being read
        self.pkt_view = memoryview(self.pkt)
        self.head_view = self.pkt_view[:HEADER]  # an idle poll reads into it without allocating
        self.got = 0  # bytes of it read so far
        self.out = bytearray(HEADER + MAX_PAYLOAD)  # the packet being written
        self.out_view = memoryview(self.out)
        self.apdu = bytearray(_APDU_MAX)  # the C-APDU being reassembled
        self.apdu_len = 0
        self.apdu_over = False
        self.response = b""  # the R-APDU being sent
        self.response_view = memoryview(self.response)
        self.sent = 0  # bytes of it sent
        self.state = ST_OFF
        self.expect = -1  # GID << 8 | OID of the response awaited, -1: none
        self.waiting = False  # a response (or NCI 2.0's CORE_RESET_NTF) is awaited
        self.since = 0  # ticks: when the command went, or since when a credit is awaited
        self.version = 0  # NCI version the chip reported (0x10, 0x11, 0x20)
        self.max_ctrl = 32  # largest control payload (CORE_INIT_RSP; 32 is the least a chip may have)
        self.max_data = 0  # largest data payload (RF_INTF_ACTIVATED_NTF)
        self.credits = 0
        self.card = None  # the card the chip is configured with
        self.session = None  # the card of the tap in progress
        # counters, for tests and DEVICE_INFO
        self.resets = 0
        self.activations = 0
        self.apdus = 0
        self.rearms = 0  # taps and bring-ups ended by an error, a timeout or a bad packet
        self.errors = 0  # exceptions caught in poll() (a broken bus, or a bug)
        self.last_status = 0
        self.last_fault = ""

    # --- the loop ---

    def poll(self) -> bool:
        # Does what there is to do now, without waiting for the chip; True when anything happened.
        try:
            return self._poll()
        except Exception as exc:  # never out of poll(): start over
            self.errors += 1
            self._fault("exception: %r" % (exc,))
            return True

    def _poll(self) -> bool:
        st = self.state
        if st == ST_OFF:
            if self.faults >= _FAULTS_BEFORE_PAUSE and self.ticks_diff(self.ticks_ms(), self.since) < self.pause_ms:
                return False  # a chip that keeps failing is not hammered
            self._reset()
            return True
        if st == ST_IDLE:
            card = self.card_getter()
            if card is None:
                return False
            self._configure(card)
            return True
        if st == ST_LISTEN and self.card_getter() is not self.card:
            self._send(DEACTIVATE_IDLE_CMD, ST_STOP)  # a new card: RF idle, configure, listen again
            return True
        if st == ST_ACTIVE and self.sent < len(self.response) and self.credits:
            self._send_segment()
            return True
        got = self._read()
        if got > 0:
            self._packet()
            return True
        if got < 0:
            self._fault("truncated packet")
            return True
        return self._check_deadline()

    def _check_deadline(self) -> bool:
        if self.waiting:
            if self.ticks_diff(self.ticks_ms(), self.since) >= self.reply_ms:
                self._fault("no answer to %02X %02X" % (0x20 | self.expect >> 8, self.expect & 0x3F))
                return True
        elif self.state == ST_ACTIVE and self.sent < len(self.response):
            if self.ticks_diff(self.ticks_ms(), self.since) >= self.credit_ms:
                self._fault("no credit")
                return True
        return False

    # --- the bus ---

    def _read(self) -> int:
        # 1: a whole packet in self.pkt; 0: none (yet); -1: one shorter than its header says.
        if self.got < HEADER:
            n = self.bus.readinto(self.head_view if self.got == 0 else self.pkt_view[self.got:HEADER], 0)
            if n == 0:
                return -1 if self.got else 0
            self.got += n
            if self.got < HEADER:
                return -1  # the chip had no more: a truncated header
        need = HEADER + self.pkt[2]
        if self.got < need:
            n = self.bus.readinto(self.pkt_view[self.got:need], 0)
            self.got += n
            if self.got < need:
                return -1  # IRQ fell before the payload's end
        self.got = 0
        return 1

    def _write(self, n: int) -> None:
        self.bus.write(self.out_view[:n])

    def _send(self, message, state: int) -> None:
        # A whole control message (header + payload), segmented to max_ctrl; its response awaited.
        head0 = message[0]
        head1 = message[1]
        payload = memoryview(message)[HEADER:]
        total = len(payload)
        off = 0
        while True:
            n = min(total - off, self.max_ctrl)
            last = off + n >= total
            self.out[0] = head0 if last else head0 | PBF
            self.out[1] = head1
            self.out[2] = n
            self.out[HEADER:HEADER + n] = payload[off:off + n]
            self._write(HEADER + n)
            off += n
            if last:
                break
        self.state = state
        self.expect = (head0 & 0x0F) << 8 | (head1 & 0x3F)
        self.waiting = True
        self.since = self.ticks_ms()

    def _send_segment(self) -> None:
        # The next data packet of the R-APDU on the static RF connection.
        left = len(self.response) - self.sent
        room = self.max_data if self.max_data else MAX_PAYLOAD
        n = left if left <= room else room
        self.out[0] = MT_DATA << 5 if n == left else MT_DATA << 5 | PBF
        self.out[1] = 0
        self.out[2] = n
        self.out[HEADER:HEADER + n] = self.response_view[self.sent:self.sent + n]
        self._write(HEADER + n)
        self.sent += n
        if self.credits != NO_FLOW_CONTROL:
            self.credits -= 1
        self.since = self.ticks_ms()  # a credit for the next one is awaited from now

    # --- bring-up ---

    def _reset(self) -> None:
        self.resets += 1
        self._session_over()
        self.card = None
        self.got = 0
        self.max_ctrl = 32
        if self.ven is not None:
            self.ven()  # the chip starts from power-up, with nothing pending
        for _ in range(_DRAIN):  # what the chip still holds from before
            self.got = 0
            if self._read() == 0:
                break
        self.got = 0
        self._send(CORE_RESET_CMD, ST_RESET)

    def _configure(self, card) -> None:
        historical = bytes(getattr(getattr(card, "profile", None), "atr_historical", b""))[:15]
        params = bytearray(b"\x20\x02\x00\x05")
        params += bytes((LA_BIT_FRAME_SDD, 1, 0x04, LA_PLATFORM_CONFIG, 1, 0x00, LA_SEL_INFO, 1, SEL_INFO_ISO_DEP))
        params += bytes((LA_NFCID1, len(self.nfcid1))) + self.nfcid1
        params += bytes((LI_A_HIST_BY, len(historical))) + historical
        params[2] = len(params) - HEADER
        self.card = card
        self._send(params, ST_CONFIG)

    # --- receiving ---

    def _packet(self) -> None:
        p = self.pkt
        mt = p[0] >> 5
        if mt == MT_DATA:
            self._data(p[0] & PBF, p[0] & 0x0F, p[2])
            return
        if p[0] & PBF:
            self._fault("segmented control message")  # none this driver asks for is longer than 32 bytes
            return
        gid = p[0] & 0x0F
        oid = p[1] & 0x3F
        n = p[2]
        if mt == MT_RSP:
            if (gid << 8 | oid) != self.expect or not self.waiting or self.state == ST_RESET_NTF:
                self._fault("unexpected response %02X %02X" % (p[0], p[1]))
                return
            self.waiting = False
            if n < 1 or p[HEADER] != STATUS_OK:
                self.last_status = p[HEADER] if n else -1
                self._fault("status %02X to %02X %02X" % (self.last_status, p[0], p[1]))
                return
            self._response(gid, oid, n)
        elif mt == MT_NTF:
            self._notification(gid, oid, n)
        else:
            self._fault("packet type %d" % mt)

    def _response(self, gid: int, oid: int, n: int) -> None:
        p = self.pkt
        st = self.state
        if st == ST_RESET:
            if n == 3:  # NCI 1.x: status, version, configuration status
                self.version = p[HEADER + 1]
                self._send(CORE_INIT_CMD_1, ST_INIT)
            elif n == 1:  # NCI 2.0: the version comes in CORE_RESET_NTF
                self.state = ST_RESET_NTF
                self.waiting = True  # for the notification, from now
            else:
                self._fault("CORE_RESET_RSP of %d bytes" % n)
        elif st == ST_INIT:
            self._init_response(n)
        elif st == ST_PROP:
            self._send(DISCOVER_MAP_CMD, ST_MAP)
        elif st == ST_MAP:
            self._send(ROUTING_CMD, ST_ROUTING)
        elif st == ST_ROUTING:
            self.state = ST_IDLE
            self.faults = 0
        elif st == ST_CONFIG:
            self._send(DISCOVER_CMD, ST_DISCOVER)
        elif st == ST_DISCOVER:
            self.state = ST_LISTEN
            self.faults = 0
        elif st == ST_STOP:
            self.state = ST_IDLE
            self.card = None

    def _init_response(self, n: int) -> None:
        # The largest control payload: NCI 1.x after the RF interface list; NCI 2.0 at a fixed place.
        p = self.pkt
        if self.version >= 0x20:
            if n < 14:
                self._fault("CORE_INIT_RSP of %d bytes" % n)
                return
            size = p[HEADER + 8]
        else:
            k = p[HEADER + 5] if n > 5 else 255
            if n < 17 + k:
                self._fault("CORE_INIT_RSP of %d bytes" % n)
                return
            size = p[HEADER + 6 + k + 3]
        if size < 32:
            self._fault("largest control payload %d" % size)
            return
        self.max_ctrl = size
        self._send(PROP_ACT_CMD, ST_PROP)

    def _notification(self, gid: int, oid: int, n: int) -> None:
        p = self.pkt
        b = HEADER
        if gid == GID_CORE and oid == CORE_CONN_CREDITS:
            if n < 1 or n != 1 + 2 * p[b]:
                self._fault("CORE_CONN_CREDITS_NTF of %d bytes" % n)
                return
            for i in range(p[b]):
                if p[b + 1 + 2 * i] == 0 and self.credits != NO_FLOW_CONTROL:
                    self.credits = min(self.credits + p[b + 2 + 2 * i], 254)
                    self.since = self.ticks_ms()
        elif gid == GID_RF and oid == RF_INTF_ACTIVATED:
            self._activated(n)
        elif gid == GID_RF and oid == RF_DEACTIVATE:
            self._deactivated(n)
        elif gid == GID_CORE and oid == CORE_RESET and self.state == ST_RESET_NTF:
            # reset trigger, configuration status, NCI version, manufacturer id, its info (length, bytes)
            if n < 5 or n != 5 + p[b + 4]:
                self._fault("CORE_RESET_NTF of %d bytes" % n)
                return
            self.waiting = False
            self.version = p[b + 2]
            self._send(CORE_INIT_CMD_2, ST_INIT)
        elif gid == GID_CORE and oid == CORE_RESET and self.state == ST_RESET:
            pass  # NCI 2.0: the one the chip sends at power-up, before the answer to CORE_RESET_CMD
        elif gid == GID_CORE and oid in (CORE_GENERIC_ERROR, CORE_INTERFACE_ERROR):
            status = p[b] if n else -1
            self.last_status = status
            if status == STATUS_ACTIVATION_FAILED or STATUS_RF_FIRST <= status <= STATUS_RF_LAST:
                return  # the RF link of a tap failed: the chip's RF state goes on; so does the reader
            self._fault("error notification %02X %02X status %02X" % (p[0], p[1], status & 0xFF))
        elif (gid == GID_RF and oid == RF_FIELD_INFO) or gid == GID_PROP:
            pass  # the field came or went; NXP's own notifications
        else:
            self._fault("unexpected notification %02X %02X" % (p[0], p[1]))

    def _activated(self, n: int) -> None:
        # RF_INTF_ACTIVATED_NTF: discovery id, RF interface, protocol, technology and mode, largest
        # data payload, initial credits, ... (the RF parameters are the chip's business).
        p = self.pkt
        b = HEADER
        if self.state != ST_LISTEN or n < 10:
            self._fault("RF_INTF_ACTIVATED_NTF now (%d bytes)" % n)
            return
        if p[b + 1] != INTERFACE_ISO_DEP or p[b + 2] != PROTOCOL_ISO_DEP or p[b + 3] != LISTEN_A_PASSIVE \
                or p[b + 4] == 0:
            self._fault("activated as %02X %02X %02X" % (p[b + 1], p[b + 2], p[b + 3]))
            return
        self.max_data = p[b + 4]
        self.credits = p[b + 5]
        self.state = ST_ACTIVE
        self.activations += 1
        self.session = self.card
        self.apdu_len = 0
        self.apdu_over = False
        self.response = b""
        self.sent = 0
        self._hook("power_on")

    def _deactivated(self, n: int) -> None:
        p = self.pkt
        if n != 2:
            self._fault("RF_DEACTIVATE_NTF of %d bytes" % n)
            return
        self.last_status = p[HEADER + 1]  # the reason
        if self.state not in (ST_ACTIVE, ST_LISTEN):
            return  # after RF_DEACTIVATE_CMD: the chip says where it went
        self._session_over()
        if p[HEADER] == DEACTIVATE_IDLE:
            self._send(DISCOVER_CMD, ST_DISCOVER)
        else:
            self.state = ST_LISTEN  # discovery or listen sleep: the chip goes on listening

    def _data(self, more: int, conn: int, n: int) -> None:
        if conn != 0 or self.state != ST_ACTIVE:
            self._fault("data on connection %d now" % conn)
            return
        if self.sent < len(self.response):
            self._fault("C-APDU before the last R-APDU was sent")
            return
        if self.apdu_len + n > _APDU_MAX:
            self.apdu_over = True
        else:
            self.apdu[self.apdu_len:self.apdu_len + n] = self.pkt_view[HEADER:HEADER + n]
            self.apdu_len += n
        if more:
            return
        command = bytes(memoryview(self.apdu)[:self.apdu_len]) if not self.apdu_over else b""
        self.apdu_len = 0
        self.apdu_over = False
        self.response = self._process(command) if command else _WRONG_LENGTH
        self.response_view = memoryview(self.response)
        self.sent = 0
        self.since = self.ticks_ms()

    def _process(self, command: bytes) -> bytes:
        card = self.session
        self.apdus += 1
        try:
            response = bytes(card.process(command)) if card is not None else b""
        except Exception:
            response = b""
        return response if len(response) >= 2 else _NO_PRECISE_DIAGNOSIS

    # --- ending ---

    def _fault(self, why: str) -> None:
        # Something the chip said or did not say makes no sense here: start over, then listen again.
        self.last_fault = why
        self.rearms += 1
        self.faults += 1
        self._session_over()
        self.expect = -1
        self.waiting = False
        self.since = self.ticks_ms()
        self.state = ST_OFF

    def _session_over(self) -> None:
        self.response = b""
        self.sent = 0
        self.apdu_len = 0
        self.credits = 0
        if self.session is not None:
            self._hook("power_off")
            self.session = None

    def _hook(self, name: str) -> None:
        f = getattr(self.session, name, None)
        if f is not None:
            try:
                f()
            except Exception:
                pass
