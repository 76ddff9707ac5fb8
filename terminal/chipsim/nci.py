"""A strict NCI controller (NXP PN7150: NCI 1.0; PN7160: NCI 2.0) in listen mode: host side and RF side.

:class:`NciChip` is the controller (NFCC) as the NFC Forum's NCI specification
describes it to a host (DH) that uses it as an ISO-DEP card, written
independently of the firmware's driver so that it can catch the driver's
mistakes:

* packets: a 3-byte header (control: MT | PBF | GID, OID, length; data:
  MT 0 | PBF | connection id, RFU, length), then the payload. Each host
  write is one I2C write of one whole packet; a write shorter than 3 bytes or
  whose length field does not match what was written gets
  CORE_GENERIC_ERROR_NTF ``60 07 01 05`` (STATUS_SYNTAX_ERROR) and is dropped.
  A packet type the host may not send (response, notification) likewise.
  Control messages may come in segments (PBF); the chip reassembles them.
* the core state machine: after power-up (VEN) only CORE_RESET_CMD is taken;
  before CORE_INIT_CMD every other command gets its response with
  STATUS_NOT_INITIALIZED (04). CORE_RESET_CMD (1 byte: 00 keep, 01 reset the
  configuration) is answered, NCI 1.0, ``40 00 03 00 10 cs``; NCI 2.0,
  ``40 00 01 00`` then CORE_RESET_NTF ``60 00 ..`` (trigger 02: the command,
  configuration status, version 20, manufacturer 04, its info).
  CORE_INIT_CMD has no payload in NCI 1.0 and two feature bytes in NCI 2.0;
  the other length is STATUS_SYNTAX_ERROR. Its response has the version's
  layout (NCI 1.0: features, RF interfaces, ..., largest control payload,
  ...; NCI 2.0: features, ..., largest control payload, ..., RF interfaces
  with their extensions).
* a command whose payload does not parse (lengths that do not add up, a
  count that does not match the entries): STATUS_SYNTAX_ERROR (05); a
  known parameter with a value the chip does not take: STATUS_INVALID_PARAM
  (09, CORE_SET_CONFIG lists the parameter ids); an unknown GID or OID: the
  response with that GID/OID and STATUS_UNKNOWN_GID (07) / STATUS_UNKNOWN_OID
  (08).
* the RF state machine (RFST_IDLE, RFST_DISCOVERY, RFST_LISTEN_ACTIVE,
  RFST_LISTEN_SLEEP): RF_DISCOVER_MAP_CMD, RF_SET_LISTEN_MODE_ROUTING_CMD
  and RF_DISCOVER_CMD only in RFST_IDLE (RF_DISCOVER_CMD while discovering:
  STATUS_DISCOVERY_ALREADY_STARTED, A0; any of them in another state:
  STATUS_SEMANTIC_ERROR, 06); RF_DEACTIVATE_CMD: from discovery to idle
  (response only), from a listen state the response then RF_DEACTIVATE_NTF
  with the type asked and reason 00 (DH request); in RFST_IDLE:
  STATUS_SEMANTIC_ERROR.
* NXP's NCI_PROPRIETARY_ACT_CMD ``2F 02 00``: ``4F 02 05 00`` and four
  bytes of firmware version (this simulator's, not a real chip's).
* listening: the RF side answers a reader only while the chip discovers in
  listen NFC-A passive (80), ISO-DEP is mapped to the ISO-DEP RF interface
  in listen mode, and the routing sends ISO-DEP (protocol entry) or NFC-A
  (technology entry) to the DH (NFCEE 00) when switched on; it announces
  SENS_RES from LA_BIT_FRAME_SDD and LA_PLATFORM_CONFIG, SAK LA_SEL_INFO,
  UID LA_NFCID1 (``08`` + 3 random bytes when none is set) and the ATS
  historical bytes LI_A_HIST_BY. After RATS: RF_INTF_ACTIVATED_NTF
  ``61 05 0C 01 02 04 80 max-data credits 00 80 00 00 01 rats-param``.
* data: the reader's C-APDU goes to the host on connection 0 in packets of
  at most ``segment`` bytes (PBF on all but the last). The host's R-APDU
  comes back the same way; each packet takes a credit, given back with
  CORE_CONN_CREDITS_NTF ``60 06 03 01 00 01`` once the chip has taken it
  (``withhold_credits`` keeps them). A data packet without a credit, longer
  than the largest data payload, on another connection, outside a tap or
  with no C-APDU to answer is dropped and reported with
  CORE_INTERFACE_ERROR_NTF ``60 08 02 status conn`` (no credit or nothing
  to answer: STATUS_REJECTED 01; too long: STATUS_MESSAGE_SIZE_EXCEEDED 0A;
  outside a tap or another connection: STATUS_SEMANTIC_ERROR).
* the reader going: field off, ``RF_DEACTIVATE_NTF 61 06 02 03 02``
  (discovery, RF link loss); S(DESELECT) in memory (:meth:`rf_deactivate`
  with ``sleep``), ``61 06 02 01 01`` (sleep mode, endpoint request).

Where the specification leaves the chip's choice open (which status a data
packet without credit gets; the reaction to a write whose length is wrong),
this simulator's choice is said above and in docs/front-ends.md.

The RF side (:class:`NciSimulator`) is emvkit's Type 4A engine on nfcpy's
``udp`` driver, as for the PN532 (:mod:`.rf`). In memory, tests drive the RF
side themselves: :meth:`NciChip.rf_activate`, :meth:`NciChip.rf_command_begin`
and :meth:`NciChip.rf_response`, :meth:`NciChip.rf_deactivate`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any

from emvkit.terminal.chipsim.rf import ChipRf, RfSimulator
from emvkit.terminal.errors import CardRemoved

__all__ = [
    "PN7150",
    "PN7160",
    "Flavour",
    "Listening",
    "MemoryLink",
    "NciChip",
    "NciSimulator",
]

MT_DATA, MT_CMD, MT_RSP, MT_NTF = 0, 1, 2, 3
PBF = 0x10
GID_CORE, GID_RF, GID_NFCEE, GID_PROP = 0x0, 0x1, 0x2, 0xF

STATUS_OK = 0x00
STATUS_REJECTED = 0x01
STATUS_NOT_INITIALIZED = 0x04
STATUS_SYNTAX_ERROR = 0x05
STATUS_SEMANTIC_ERROR = 0x06
STATUS_UNKNOWN_GID = 0x07
STATUS_UNKNOWN_OID = 0x08
STATUS_INVALID_PARAM = 0x09
STATUS_MESSAGE_SIZE_EXCEEDED = 0x0A
STATUS_DISCOVERY_ALREADY_STARTED = 0xA0

PROTOCOL_ISO_DEP = 0x04
INTERFACE_ISO_DEP = 0x02
LISTEN_A_PASSIVE = 0x80
DH = 0x00

# CORE_SET_CONFIG parameters this chip takes (listen NFC-A / ISO-DEP), with the value lengths allowed
_CONFIG_LENGTHS: dict[int, tuple[int, ...]] = {
    0x30: (1,),  # LA_BIT_FRAME_SDD
    0x31: (1,),  # LA_PLATFORM_CONFIG
    0x32: (1,),  # LA_SEL_INFO
    0x33: (0, 4, 7, 10),  # LA_NFCID1
    0x58: (1,),  # LI_A_RATS_TB1
    0x59: tuple(range(16)),  # LI_A_HIST_BY
    0x5B: (1,),  # LI_A_BIT_RATE
    0x5C: (1,),  # LI_A_RATS_TC1
}
_CONFIG_DEFAULTS = {0x30: b"\x04", 0x31: b"\x00", 0x32: b"\x00", 0x33: b"", 0x59: b""}


@dataclasses.dataclass(frozen=True)
class Flavour:
    """What distinguishes one chip from the other on the host link."""

    name: str
    version: int  # NCI version: 0x10 (1.0) or 0x20 (2.0)
    max_ctrl: int = 255  # largest control payload (CORE_INIT_RSP)
    firmware: bytes = b"\x10\x01\x02\x03"  # NCI_PROPRIETARY_ACT_RSP after the status (this simulator's)


PN7150 = Flavour("pn7150", 0x10)
PN7160 = Flavour("pn7160", 0x20, firmware=b"\x12\x01\x02\x03")


@dataclasses.dataclass
class Listening:
    """What the RF side announces while the chip listens."""

    sens_res: bytes
    sel_res: int
    uid: bytes
    historical: bytes


def ctrl(mt: int, gid: int, oid: int, payload: bytes = b"") -> bytes:
    """One control packet (unsegmented)."""
    return bytes((mt << 5 | gid, oid, len(payload))) + payload


class NciChip:
    """The NFCC: :meth:`receive` takes each I2C write of the host, ``send`` gets each packet for the host.

    Thread-safe: the host link and the RF side run in their own threads.
    """

    def __init__(self, send: Callable[[bytes], None], flavour: Flavour = PN7150, *, max_data: int = 255,
                 credits: int = 1, segment: int = 255, rf_timeout: float = 30.0) -> None:
        if not 1 <= max_data <= 255 or not 1 <= segment <= 255:
            raise ValueError("payload sizes are 1 to 255")
        self.send = send
        self.flavour = flavour
        self.max_data = max_data
        self.initial_credits = credits
        self.segment = segment
        self.rf_timeout = rf_timeout
        self.withhold_credits = False
        self._lock = threading.Condition()
        self.log: list[str] = []
        self.power_on()

    # --- power ---

    def power_on(self) -> None:
        """VEN pulsed: the chip starts from nothing (its configuration included)."""
        with self._lock:
            self.core = "off"  # off -> reset -> ready
            self.rf = "idle"  # idle, discovery, listen_active, listen_sleep
            self.config: dict[int, bytes] = dict(_CONFIG_DEFAULTS)
            self.mappings: dict[int, tuple[int, int]] = {}  # protocol -> (mode, interface)
            self.routes: list[tuple[int, bytes]] = []  # (type, value)
            self.discovering: list[int] = []
            self.proprietary = False
            self._segments = bytearray()
            self._segment_head: tuple[int, int] | None = None
            self.credits = 0
            self._commands: list[bytes] = []  # C-APDUs from the reader, not yet answered
            self._awaiting = False
            self._answer_parts = bytearray()
            self._answer: bytes | None = None
            self._generation = 0
            self.log.append("power on")
            self._lock.notify_all()

    # --- the host link ---

    def receive(self, write: bytes) -> None:
        """One I2C write from the host."""
        with self._lock:
            data = bytes(write)
            if len(data) < 3 or len(data) != 3 + data[2]:
                self._generic_error(STATUS_SYNTAX_ERROR, f"a write of {len(data)} bytes is no packet")
                return
            mt = data[0] >> 5
            if mt == MT_DATA:
                self._data(data)
            elif mt == MT_CMD:
                self._command_segment(data)
            else:
                self._generic_error(STATUS_SYNTAX_ERROR, f"the host sent a packet of type {mt}")
            self._lock.notify_all()

    def _out(self, packet: bytes) -> None:
        self.send(packet)

    def _generic_error(self, status: int, why: str) -> None:
        self.log.append(f"generic error {status:02X}: {why}")
        self._out(ctrl(MT_NTF, GID_CORE, 0x07, bytes((status,))))

    def _interface_error(self, status: int, conn: int, why: str) -> None:
        self.log.append(f"interface error {status:02X}: {why}")
        self._out(ctrl(MT_NTF, GID_CORE, 0x08, bytes((status, conn))))

    def _rsp(self, gid: int, oid: int, payload: bytes) -> None:
        self._out(ctrl(MT_RSP, gid, oid, payload))

    def _status(self, gid: int, oid: int, status: int, why: str = "") -> None:
        if status:
            self.log.append(f"status {status:02X} to {gid:X}/{oid:02X}: {why}")
        self._rsp(gid, oid, bytes((status,)))

    def _command_segment(self, data: bytes) -> None:
        gid, oid = data[0] & 0x0F, data[1] & 0x3F
        if self._segment_head is not None and self._segment_head != (gid, oid):
            self._segments.clear()
            self._segment_head = None
            self._generic_error(STATUS_SYNTAX_ERROR, "a segmented command interrupted by another")
            return
        self._segments += data[3:]
        if data[0] & PBF:
            self._segment_head = (gid, oid)
            return
        payload = bytes(self._segments)
        self._segments.clear()
        self._segment_head = None
        self.log.append(f"cmd {gid:X}/{oid:02X}")
        self._command(gid, oid, payload)

    def _command(self, gid: int, oid: int, p: bytes) -> None:
        if (gid, oid) == (GID_CORE, 0x00):
            return self._core_reset(p)
        if self.core == "off":
            self.log.append(f"before CORE_RESET: {gid:X}/{oid:02X} not taken")
            return None  # after power-up the chip waits for CORE_RESET_CMD
        if (gid, oid) == (GID_CORE, 0x01):
            return self._core_init(p)
        known = {GID_CORE: (0x02,), GID_RF: (0x00, 0x01, 0x03, 0x06), GID_PROP: (0x02,), GID_NFCEE: ()}
        if gid not in known:
            return self._status(gid, oid, STATUS_UNKNOWN_GID, "unknown GID")
        if oid not in known[gid]:
            return self._status(gid, oid, STATUS_UNKNOWN_OID, "unknown OID")
        if self.core != "ready":
            return self._status(gid, oid, STATUS_NOT_INITIALIZED, "before CORE_INIT")
        handler = {
            (GID_CORE, 0x02): self._set_config,
            (GID_PROP, 0x02): self._proprietary_act,
            (GID_RF, 0x00): self._discover_map,
            (GID_RF, 0x01): self._routing,
            (GID_RF, 0x03): self._discover,
            (GID_RF, 0x06): self._deactivate,
        }[(gid, oid)]
        return handler(p)

    def _core_reset(self, p: bytes) -> None:
        if len(p) != 1 or p[0] > 1:
            return self._status(GID_CORE, 0x00, STATUS_SYNTAX_ERROR, "CORE_RESET_CMD takes one byte, 00 or 01")
        self._end_tap()
        self.rf = "idle"
        self.discovering = []
        if p[0] == 1:
            self.config = dict(_CONFIG_DEFAULTS)
            self.mappings = {}
            self.routes = []
        self.core = "reset"
        if self.flavour.version < 0x20:
            self._rsp(GID_CORE, 0x00, bytes((STATUS_OK, self.flavour.version, p[0])))
        else:
            self._rsp(GID_CORE, 0x00, bytes((STATUS_OK,)))
            info = b"\x50\x12\x00\x01"
            self._out(ctrl(MT_NTF, GID_CORE, 0x00, bytes((0x02, p[0], 0x20, 0x04, len(info))) + info))
        return None

    def _core_init(self, p: bytes) -> None:
        if self.core == "ready":
            return self._status(GID_CORE, 0x01, STATUS_SEMANTIC_ERROR, "CORE_INIT_CMD twice")
        want = 0 if self.flavour.version < 0x20 else 2
        if len(p) != want:
            return self._status(GID_CORE, 0x01, STATUS_SYNTAX_ERROR,
                                f"CORE_INIT_CMD of {len(p)} bytes (NCI {self.flavour.version >> 4}: {want})")
        self.core = "ready"
        # The values the tables leave to the chip are illustrative (as in tests/vectors/nfc/).
        if self.flavour.version < 0x20:
            features = b"\x03\x1e\x03\x00"
            interfaces = b"\x01\x02\x03\x80"  # Frame, ISO-DEP, NFC-DEP, NXP's
            body = bytes((len(interfaces),)) + interfaces + b"\x01" + b"\x02\x00" + bytes((self.flavour.max_ctrl,))
            body += b"\x01\x00" + b"\x04" + b"\x41\x12\x01\x10"  # large parameters; manufacturer NXP, its info
        else:
            features = b"\x1a\x1e\x03\x00"
            body = b"\x01" + b"\x02\x00" + bytes((self.flavour.max_ctrl,)) + b"\xff\x01" + b"\x00\x3c"
            body += b"\x02" + b"\x01\x00" + b"\x02\x00"  # two RF interfaces (Frame, ISO-DEP), no extensions
        self._rsp(GID_CORE, 0x01, bytes((STATUS_OK,)) + features + body)
        return None

    def _set_config(self, p: bytes) -> None:
        entries: list[tuple[int, bytes]] = []
        i = 1
        while len(p) >= 1 and i < len(p):
            if i + 2 > len(p) or i + 2 + p[i + 1] > len(p):
                break
            entries.append((p[i], p[i + 2:i + 2 + p[i + 1]]))
            i += 2 + p[i + 1]
        if not p or i != len(p) or len(entries) != p[0]:
            return self._status(GID_CORE, 0x02, STATUS_SYNTAX_ERROR, "CORE_SET_CONFIG_CMD does not parse")
        invalid = [pid for pid, value in entries if len(value) not in _CONFIG_LENGTHS.get(pid, ())]
        if invalid:
            self.log.append(f"invalid parameters {bytes(invalid).hex()}")
            return self._rsp(GID_CORE, 0x02, bytes((STATUS_INVALID_PARAM, len(invalid), *invalid)))
        for pid, value in entries:
            self.config[pid] = bytes(value)
        return self._rsp(GID_CORE, 0x02, b"\x00\x00")

    def _proprietary_act(self, p: bytes) -> None:
        if p:
            return self._status(GID_PROP, 0x02, STATUS_SYNTAX_ERROR, "NCI_PROPRIETARY_ACT_CMD has no payload")
        self.proprietary = True
        return self._rsp(GID_PROP, 0x02, bytes((STATUS_OK,)) + self.flavour.firmware)

    def _rf_idle_only(self, oid: int) -> bool:
        if self.rf == "idle":
            return True
        status = STATUS_DISCOVERY_ALREADY_STARTED if oid == 0x03 and self.rf == "discovery" else STATUS_SEMANTIC_ERROR
        self._status(GID_RF, oid, status, f"in RF state {self.rf}")
        return False

    def _discover_map(self, p: bytes) -> None:
        if not self._rf_idle_only(0x00):
            return None
        if not p or len(p) != 1 + 3 * p[0] or p[0] == 0:
            return self._status(GID_RF, 0x00, STATUS_SYNTAX_ERROR, "RF_DISCOVER_MAP_CMD does not parse")
        maps = [p[1 + 3 * k:4 + 3 * k] for k in range(p[0])]
        if any(not 1 <= m[1] <= 3 or m[2] > 0x05 for m in maps):
            return self._status(GID_RF, 0x00, STATUS_INVALID_PARAM, "mode or RF interface")
        for proto, mode, interface in maps:
            self.mappings[proto] = (mode, interface)
        return self._status(GID_RF, 0x00, STATUS_OK)

    def _routing(self, p: bytes) -> None:
        if not self._rf_idle_only(0x01):
            return None
        routes: list[tuple[int, bytes]] = []
        i = 2
        while i + 2 <= len(p) and i + 2 + p[i + 1] <= len(p):
            routes.append((p[i] & 0x0F, p[i + 2:i + 2 + p[i + 1]]))  # NCI 2.0: b7-b4 qualify the entry
            i += 2 + p[i + 1]
        if len(p) < 2 or p[0] > 1 or i != len(p) or len(routes) != p[1]:
            return self._status(GID_RF, 0x01, STATUS_SYNTAX_ERROR, "RF_SET_LISTEN_MODE_ROUTING_CMD does not parse")
        if any(kind > 0x03 or len(value) < 3 for kind, value in routes):
            return self._status(GID_RF, 0x01, STATUS_INVALID_PARAM, "routing entry")
        self.routes = routes
        return self._status(GID_RF, 0x01, STATUS_OK)

    def _discover(self, p: bytes) -> None:
        if not self._rf_idle_only(0x03):
            return None
        if not p or len(p) != 1 + 2 * p[0] or p[0] == 0:
            return self._status(GID_RF, 0x03, STATUS_SYNTAX_ERROR, "RF_DISCOVER_CMD does not parse")
        configs = [(p[1 + 2 * k], p[2 + 2 * k]) for k in range(p[0])]
        if any(not 1 <= freq <= 10 for _, freq in configs):
            return self._status(GID_RF, 0x03, STATUS_INVALID_PARAM, "discovery frequency")
        self.discovering = [mode for mode, _ in configs]
        self.rf = "discovery"
        self._status(GID_RF, 0x03, STATUS_OK)
        self.log.append("discovery")
        return None

    def _deactivate(self, p: bytes) -> None:
        if len(p) != 1 or p[0] > 3:
            return self._status(GID_RF, 0x06, STATUS_SYNTAX_ERROR, "RF_DEACTIVATE_CMD takes one byte, 00 to 03")
        if self.rf == "idle":
            return self._status(GID_RF, 0x06, STATUS_SEMANTIC_ERROR, "RF_DEACTIVATE_CMD in RF idle")
        if self.rf == "discovery":
            if p[0] != 0:
                return self._status(GID_RF, 0x06, STATUS_SEMANTIC_ERROR, "only idle from discovery")
            self.rf = "idle"
            return self._status(GID_RF, 0x06, STATUS_OK)
        self._status(GID_RF, 0x06, STATUS_OK)
        self._end_tap()
        self.rf = {0: "idle", 3: "discovery"}.get(p[0], "listen_sleep")
        self._out(ctrl(MT_NTF, GID_RF, 0x06, bytes((p[0], 0x00))))
        return None

    # --- data from the host ---

    def _data(self, data: bytes) -> None:
        conn, n = data[0] & 0x0F, data[2]
        if conn != 0 or self.rf != "listen_active":
            return self._interface_error(STATUS_SEMANTIC_ERROR, conn, f"data on connection {conn} in {self.rf}")
        if self.credits == 0:
            return self._interface_error(STATUS_REJECTED, conn, "data packet without credit")
        if n > self.max_data:
            return self._interface_error(STATUS_MESSAGE_SIZE_EXCEEDED, conn, f"{n} bytes of data, at most "
                                         f"{self.max_data}")
        if not self._awaiting:
            return self._interface_error(STATUS_REJECTED, conn, "data with no C-APDU to answer")
        if self.credits != 0xFF:
            self.credits -= 1
        self._answer_parts += data[3:]
        if not data[0] & PBF:
            self._answer = bytes(self._answer_parts)
            self._answer_parts.clear()
            self._awaiting = False
        if self.credits != 0xFF and not self.withhold_credits:
            self.credits += 1
            self._out(ctrl(MT_NTF, GID_CORE, 0x06, b"\x01\x00\x01"))
        return None

    def give_credit(self) -> None:
        """One credit for the host now (after ``withhold_credits``)."""
        with self._lock:
            self.credits += 1
            self._out(ctrl(MT_NTF, GID_CORE, 0x06, b"\x01\x00\x01"))

    def inject(self, packet: bytes) -> None:
        """A packet on the line towards the host as if the chip had sent it (a malformed one, for tests)."""
        with self._lock:
            self.log.append(f"inject {packet.hex()}")
            self._out(bytes(packet))

    # --- the RF side ---

    def listening(self) -> Listening | None:
        """What the RF side announces, or None when the chip does not listen as an ISO-DEP card for the DH."""
        with self._lock:
            return self._listening()

    def _listening(self) -> Listening | None:
        if self.rf != "discovery" or LISTEN_A_PASSIVE not in self.discovering:
            return None
        mode, interface = self.mappings.get(PROTOCOL_ISO_DEP, (0, 0))
        if not mode & 0x02 or interface != INTERFACE_ISO_DEP:
            return None
        routed = any(value[0] == DH and value[1] & 0x01 and
                     ((kind == 0x01 and value[2] == PROTOCOL_ISO_DEP) or (kind == 0x00 and value[2] == 0x00))
                     for kind, value in self.routes)
        sel = self.config[0x32][0]
        if not routed or not sel & 0x20:
            return None
        uid = self.config[0x33] or b"\x08" + os.urandom(3)
        sens_res = bytes((self.config[0x30][0], self.config[0x31][0]))
        return Listening(sens_res, sel, uid, self.config[0x59])

    def wait_listening(self, timeout: float) -> Listening | None:
        with self._lock:
            self._lock.wait_for(lambda: self._listening() is not None, timeout)
            return self._listening()

    def rf_activate(self, rats: bytes) -> bool:
        """A reader sent RATS (and got the ATS): RF_INTF_ACTIVATED_NTF. False when the chip does not listen."""
        with self._lock:
            if self.rf == "listen_sleep":
                self.rf = "discovery"  # woken (WUPA) and activated again
            if self._listening() is None:
                self.log.append("RATS while not listening")
                return False
            self.rf = "listen_active"
            self._generation += 1
            self.credits = self.initial_credits
            rats_param = rats[1] if len(rats) > 1 else 0x00
            payload = bytes((0x01, INTERFACE_ISO_DEP, PROTOCOL_ISO_DEP, LISTEN_A_PASSIVE, self.max_data,
                             self.initial_credits, 0x00, LISTEN_A_PASSIVE, 0x00, 0x00, 0x01, rats_param))
            self.log.append("activated")
            self._out(ctrl(MT_NTF, GID_RF, 0x05, payload))
            self._lock.notify_all()
            return True

    def rf_command_begin(self, apdu: bytes) -> None:
        """A C-APDU from the reader: to the host in data packets; :meth:`rf_response` gives the answer."""
        with self._lock:
            if self.rf != "listen_active":
                raise CardRemoved(f"the NCI chip is not activated ({self.rf})")
            self._answer = None
            self._answer_parts.clear()
            self._awaiting = True
            data = bytes(apdu)
            for at in range(0, len(data), self.segment):
                part = data[at:at + self.segment]
                last = at + self.segment >= len(data)
                self._out(bytes((MT_DATA << 5 | (0 if last else PBF), 0x00, len(part))) + part)

    def rf_response(self) -> bytes | None:
        """The host's whole R-APDU to the last C-APDU, or None (not yet)."""
        with self._lock:
            answer, self._answer = self._answer, None
            return answer

    def rf_command(self, apdu: bytes) -> bytes:
        """A C-APDU from the reader, answered when the host has given the R-APDU; CardRemoved when it does not."""
        with self._lock:
            generation = self._generation
            self.rf_command_begin(apdu)
            done = self._lock.wait_for(
                lambda: self._answer is not None or self.rf != "listen_active" or self._generation != generation,
                self.rf_timeout)
            answer, self._answer = self._answer, None
            if answer is None:
                raise CardRemoved("the host gave no R-APDU" if done else "the host gave no R-APDU in time")
            return answer

    def rf_deactivate(self, sleep: bool = False) -> None:
        """The reader let go: S(DESELECT) (``sleep``: the chip goes to listen sleep) or the field went."""
        with self._lock:
            if self.rf not in ("listen_active", "listen_sleep"):
                return
            self._end_tap()
            if sleep and self.rf == "listen_active":
                self.rf = "listen_sleep"
                self._out(ctrl(MT_NTF, GID_RF, 0x06, b"\x01\x01"))  # sleep mode, endpoint request
            else:
                self.rf = "discovery"
                self._out(ctrl(MT_NTF, GID_RF, 0x06, b"\x03\x02"))  # discovery, RF link loss
            self.log.append("deactivated")
            self._lock.notify_all()

    def rf_released(self) -> None:
        self.rf_deactivate()

    def _end_tap(self) -> None:
        self._awaiting = False
        self._answer_parts.clear()
        self._generation += 1
        self.credits = 0
        self._lock.notify_all()

    def wait_for_log(self, line: str, after: int, timeout: float) -> bool:
        """Wait until ``line`` is in :attr:`log` more than ``after`` times (for tests)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.log.count(line) > after, timeout)


class MemoryLink:
    """The I2C link in memory: ``firmware_bus`` is the driver's bus, ``ven`` pulses the chip's VEN line."""

    def __init__(self, flavour: Flavour = PN7150, **chip_options: Any) -> None:
        self._cond = threading.Condition()
        self._packets: list[bytes] = []
        self._at = 0
        self.taps: list[Callable[[str, bytes], None]] = []  # spies: ("host"|"chip", packet)
        self.chip = NciChip(self._chip_sends, flavour, **chip_options)
        self.firmware_bus = _FirmwareBus(self)

    def _chip_sends(self, packet: bytes) -> None:
        for spy in self.taps:
            spy("chip", packet)
        with self._cond:
            self._packets.append(bytes(packet))
            self._cond.notify_all()

    def ven(self) -> None:
        with self._cond:
            self._packets.clear()
            self._at = 0
        self.chip.power_on()

    def wait(self, timeout: float) -> bool:
        """Wait until the chip holds a packet for the host (IRQ high), at most ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._packets), timeout)

    @property
    def irq(self) -> bool:
        with self._cond:
            return bool(self._packets)


class _FirmwareBus:
    def __init__(self, link: MemoryLink) -> None:
        self.link = link

    def write(self, buf: Any) -> None:
        data = bytes(buf)
        for spy in self.link.taps:
            spy("host", data)
        self.link.chip.receive(data)

    def readinto(self, buf: Any, timeout_ms: int = 0) -> int:
        link = self.link
        with link._cond:
            if not link._packets and timeout_ms:
                link._cond.wait_for(lambda: bool(link._packets), timeout_ms / 1000)
            if not link._packets:
                return 0
            packet = link._packets[0]
            n = min(len(buf), len(packet) - link._at)
            buf[:n] = packet[link._at:link._at + n]
            link._at += n
            if link._at >= len(packet):
                link._packets.pop(0)
                link._at = 0
            return n


class NciSimulator(RfSimulator):
    """The chip's RF side on nfcpy (``udp:HOST:PORT``), in a thread."""

    def __init__(self, chip: NciChip, target: str, *, fsci: int = 8, fwi: int = 14, idle_timeout: float = 10.0) -> None:
        super().__init__(ChipRf(chip, target, fsci, fwi, idle_timeout=idle_timeout), name="nci-rf")
