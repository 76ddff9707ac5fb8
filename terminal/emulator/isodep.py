"""The card (PICC) side of ISO/IEC 14443-4, Type A: frames in, frames out, no I/O.

:class:`IsoDepCard` is the protocol engine of an emulated contactless card
after ISO/IEC 14443-3 anticollision and selection (SAK with bit 6, 0x20, set:
"compliant with ISO/IEC 14443-4"). Clause numbers below are those of
ISO/IEC 14443-4:2008.

* Activation (§5): RATS (§5.1) is answered with the ATS (§5.2) built from
  :class:`IsoDepConfig`; a PPS request (§5.3) directly after the ATS with a
  PPS response (§5.4).
* Half-duplex block transmission (§7): I-blocks with block numbering
  (§7.5.3, rules C-E) and chaining both ways (§7.5.2): a C-APDU longer than
  the card's FSC arrives in chained I-blocks, each acknowledged by R(ACK); an
  R-APDU longer than the reader's FSD (from the RATS) leaves in chained
  I-blocks, each released by the reader's R(ACK). R(ACK)/R(NAK) follow the
  PICC rules 10-13 of §7.5.4: the last block is sent again when the block
  number equals the card's own, an R(NAK) with the other number is answered
  by R(ACK) (the reader's presence check).
* Deactivation (§8): S(DESELECT) is answered and the card enters HALT.

Invalid blocks are ignored, as rule 10 asks (the card stays in receive mode):
a wrong PCB coding, a CID that is not ours (§7.1.1.2), a NAD (not supported,
§7.1.1.3), a frame longer than FSC, a bad CRC_A when frames carry one, an
unsolicited S(WTX) response. The card never sends S(WTX): the emulated card
answers well within the frame waiting time it announces.

The epilogue field (§7.1.3) is CRC_A (ISO/IEC 14443-3 §6.2.4). nfcpy's
``udp`` driver carries frames without it (its datagrams hold only PCB, CID
and INF), so by default frames here have no CRC_A; with ``IsoDepConfig(edc=
True)`` every frame in and out carries it. Frame sizes always count the two
EDC bytes, as on the air: a block carries at most FSC - 3 bytes of INF
without CID.

A session::

    card = IsoDepCard(IsoDepConfig(historical=b"..."))
    event = card.receive(frame)          # Reply, Command or Ignored
    if isinstance(event, Command):
        reply = card.respond(app.process(event.apdu))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.iso14443 import (
    EDC_LENGTH,
    FRAME_SIZES,
    HLTA,
    PCB_BLOCK_NUMBER,
    PCB_CHAINING,
    PCB_CID,
    PCB_NAD,
    PCB_R_ACK,
    PCB_S_DESELECT,
    PPS0_FIXED,
    PPS0_PPS1_FOLLOWS,
    PPSS,
    RATS,
    S_DESELECT,
    S_WTX,
    Ats,
    block_kind,
    crc_a,
    frame_size,
)

__all__ = [
    "Command",
    "Event",
    "Ignored",
    "IsoDepCard",
    "IsoDepConfig",
    "Reply",
    "State",
]

_MAX_APDU = 4 + 3 + 65535 + 3  # an extended-length case 4 C-APDU, the longest there is


@dataclass(frozen=True)
class IsoDepConfig:
    """What the card announces in its ATS, and how it frames blocks.

    ``fsci`` (FSC, the largest frame the card accepts: 2 = 32 bytes), ``fwi``
    (frame waiting time: 8 = 77 ms; EMVCo readers accept up to 7 = 39 ms;
    nfcpy waits FWT + 3.6 ms before it retries), ``sfgi`` (start-up frame guard
    time), ``ta`` (TA(1): 00 = 106 kbit/s only), ``cid_supported`` (TC(1) b2),
    ``historical`` (at most 15 bytes: the pseudo-ATR's), ``max_frame`` (the
    largest frame the card sends: it chains its R-APDU below
    ``min(FSD, max_frame)``), ``edc`` (frames carry CRC_A).
    """

    fsci: int = 2
    fwi: int = 8
    sfgi: int = 0
    ta: int = 0x00
    cid_supported: bool = True
    historical: bytes = b""
    max_frame: int = 256
    edc: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.fsci <= 8:
            raise ConfigError(f"FSCI {self.fsci} is outside 0..8")
        if not 0 <= self.fwi <= 14 or not 0 <= self.sfgi <= 14:
            raise ConfigError(f"FWI {self.fwi} and SFGI {self.sfgi} must be within 0..14 (§5.2.5)")
        if not 0 <= self.ta <= 0xFF or self.ta & 0x08:
            raise ConfigError(f"TA(1) {self.ta:#x} is not a byte with b4 = 0 (§5.2.4)")
        if len(self.historical) > 15:
            raise ConfigError(f"{len(self.historical)} historical bytes: at most 15 fit in the pseudo-ATR")
        if not FRAME_SIZES[0] <= self.max_frame <= FRAME_SIZES[-1]:
            raise ConfigError(f"max_frame {self.max_frame} is outside {FRAME_SIZES[0]}..{FRAME_SIZES[-1]}")

    @property
    def ats(self) -> Ats:
        return Ats(fsci=self.fsci, ta=self.ta, tb=self.fwi << 4 | self.sfgi,
                   tc=0x02 if self.cid_supported else 0x00, historical=self.historical)


class State(Enum):
    """Where the card is in ISO/IEC 14443-4 (§5 activation, §7 protocol, §8 deactivation)."""

    IDLE = "waiting for RATS"  # selected at layer 3 (ISO/IEC 14443-3 ACTIVE state)
    ACTIVE = "ISO-DEP"  # ATS sent: blocks are exchanged
    HALT = "halted"  # after S(DESELECT) (or HLTA before RATS): silent until the next activation


@dataclass(frozen=True)
class Reply:
    """Send ``frame`` to the reader."""

    frame: bytes


@dataclass(frozen=True)
class Command:
    """A complete C-APDU arrived: pass the card application's R-APDU to :meth:`IsoDepCard.respond`."""

    apdu: bytes


@dataclass(frozen=True)
class Ignored:
    """Nothing to send: the frame was invalid or not for this card (§7.5.4 rule 10: stay in receive mode)."""

    reason: str


Event = Reply | Command | Ignored


class IsoDepCard:
    """The PICC protocol engine of one activation: from RATS (or the first block) to S(DESELECT).

    A new activation (after the reader switched the field off, or after HALT)
    needs a new engine, or :meth:`reset`.
    """

    def __init__(self, config: IsoDepConfig | None = None) -> None:
        self.config = config or IsoDepConfig()
        self.reset()

    def reset(self) -> None:
        """Back to the state after ISO/IEC 14443-3 selection: waiting for RATS."""
        self.state = State.IDLE
        self.fsd = FRAME_SIZES[0]  # the reader's frame size, from RATS FSDI
        self.cid = 0
        self.dsi = self.dri = 0  # bit rate divisors agreed by PPS (0: 106 kbit/s)
        self.block_number = 1  # §7.5.3 rule C
        self._pps_allowed = False
        self._with_cid = False  # the reader's last block carried a CID: ours carry it too (§7.1.1.2)
        self._received = bytearray()  # a chained C-APDU so far
        self._to_send = b""  # what is left of a chained R-APDU
        self._last_block: bytes | None = None  # for re-transmission (rule 11), without EDC
        self._pending = False  # a Command is out, waiting for respond()

    @property
    def ats(self) -> bytes:
        """The ATS this card sends (without CRC_A); historical bytes cut to fit the reader's FSD (§5.2.2)."""
        ats = self.config.ats
        room = max(0, self.fsd - EDC_LENGTH - len(ats.to_bytes()) + len(ats.historical))
        if room < len(ats.historical):
            ats = Ats(ats.fsci, ats.ta, ats.tb, ats.tc, ats.historical[:room])
        return ats.to_bytes()

    @property
    def awaiting_response(self) -> bool:
        return self._pending

    # --- input ---------------------------------------------------------------------------------

    def receive(self, frame: bytes) -> Event:
        """Take one frame from the reader; say what to do."""
        frame = bytes(frame)
        if self.config.edc:
            if len(frame) < 1 + EDC_LENGTH or crc_a(frame[:-EDC_LENGTH]) != frame[-EDC_LENGTH:]:
                return Ignored("CRC_A error")
            frame = frame[:-EDC_LENGTH]
        if not frame:
            return Ignored("empty frame")
        if self.state is State.IDLE:
            return self._activation(frame)
        if self.state is State.HALT:
            return Ignored("halted: only a new activation wakes the card")
        if self._pps_allowed:
            self._pps_allowed = False  # §5.3: PPS only as the first frame after the ATS
            if frame[0] & 0xF0 == PPSS:
                return self._pps(frame)
        return self._block(frame)

    def activated_without_rats(self, fsdi: int = 8) -> None:
        """The reader chip answered RATS itself (nfcpy's PN53x drivers do): start in ISO-DEP state.

        The RATS is not passed on by those drivers, so ``fsdi`` is assumed (8 = 256 bytes, what
        PN53x readers announce).
        """
        self.reset()
        self.fsd = frame_size(fsdi)
        self.state = State.ACTIVE

    def _activation(self, frame: bytes) -> Event:
        """§5.1: RATS = E0, PARAM (b8-b5 FSDI, b4-b1 CID); §5.6.1: anything else is not for layer 4."""
        if frame == HLTA:
            self.state = State.HALT
            return Ignored("HLTA: halted")
        if len(frame) != 2 or frame[0] != RATS:
            return Ignored(f"waiting for RATS, got a {len(frame)}-byte frame starting {frame[0]:02X}")
        cid = frame[1] & 0x0F
        if cid == 0x0F:
            return Ignored("RATS with CID 15 (RFU)")
        if cid != 0 and not self.config.cid_supported:
            return Ignored(f"RATS assigns CID {cid} but the card does not support CID")
        self.fsd = frame_size(frame[1] >> 4)
        self.cid = cid
        self.state = State.ACTIVE
        self.block_number = 1
        self._pps_allowed = True
        return self._send(self.ats, record=False)

    def _pps(self, frame: bytes) -> Event:
        """§5.3 PPS request (PPSS, PPS0, [PPS1]); §5.4: the response is PPSS."""
        if frame[0] & 0x0F != self.cid:
            return Ignored(f"PPS for CID {frame[0] & 0x0F}")
        if len(frame) < 2 or frame[1] & ~PPS0_PPS1_FOLLOWS & 0xFF != PPS0_FIXED:
            return Ignored("malformed PPS0")
        follows = bool(frame[1] & PPS0_PPS1_FOLLOWS)
        if len(frame) != 2 + follows:
            return Ignored("PPS request of the wrong length")
        dsi = dri = 0
        if follows:
            pps1 = frame[2]
            if pps1 & 0xF0:
                return Ignored(f"PPS1 {pps1:02X} has RFU bits set")
            dsi, dri = pps1 >> 2 & 0x03, pps1 & 0x03
            if not self._bit_rates_allowed(dsi, dri):
                return Ignored(f"PPS asks for DSI {dsi}, DRI {dri}: not offered in TA(1) {self.config.ta:02X}")
        self.dsi, self.dri = dsi, dri
        return self._send(frame[:1], record=False)

    def _bit_rates_allowed(self, dsi: int, dri: int) -> bool:
        """§5.2.4 TA(1): b7-b5 DS (card to reader: 212/424/848), b3-b1 DR (reader to card), b8 same D."""
        ta = self.config.ta
        if ta & 0x80 and dsi != dri:
            return False
        return (dsi == 0 or bool(ta & (0x08 << dsi))) and (dri == 0 or bool(ta & (1 << (dri - 1))))

    def _block(self, frame: bytes) -> Event:
        pcb = frame[0]
        kind = block_kind(pcb)
        if kind is None:
            return Ignored(f"invalid PCB {pcb:02X}")
        header = 1
        if pcb & PCB_CID:
            if not self.config.cid_supported:
                return Ignored("block with CID, which the card does not support (§7.1.1.2)")
            if len(frame) < 2 or frame[1] & 0x0F != self.cid:
                return Ignored(f"block for another CID ({frame[1:2].hex() or 'missing'})")
            header = 2
        elif self.cid != 0:
            return Ignored(f"block without CID, but the card has CID {self.cid}")
        if kind == "I" and pcb & PCB_NAD:
            return Ignored("block with NAD, which the card does not support (§7.1.1.3)")
        if len(frame) + EDC_LENGTH > self.config.ats.fsc:
            return Ignored(f"{len(frame) + EDC_LENGTH}-byte frame exceeds FSC {self.config.ats.fsc}")
        self._with_cid = bool(pcb & PCB_CID)
        inf = frame[header:]
        if kind == "I":
            return self._i_block(pcb, inf)
        if kind == "R":
            return Ignored("R-block with an information field") if inf else self._r_block(pcb)
        return self._s_block(pcb, inf)

    def _i_block(self, pcb: int, inf: bytes) -> Event:
        """§7.5.3 rule D: toggle, then acknowledge a chained block (§7.5.2, rule 2) or hand on the C-APDU."""
        if self._pending:
            return Ignored("I-block while the card is still processing a command")
        number = pcb & PCB_BLOCK_NUMBER
        if number == self.block_number:
            # Note to rule D: a block number the reader should have toggled means a repeated block.
            return Ignored(f"I-block with the card's own block number {number}")
        self.block_number = number
        self._to_send = b""  # a new command ends whatever chained response was left
        if len(self._received) + len(inf) > _MAX_APDU:
            self._received.clear()
            return Ignored("chained C-APDU longer than any APDU")
        self._received += inf
        if pcb & PCB_CHAINING:
            return self._send(self._r_ack())
        apdu = bytes(self._received)
        self._received.clear()
        self._pending = True
        return Command(apdu)

    def _r_block(self, pcb: int) -> Event:
        """§7.5.4 rules 11-13 and §7.5.3 rule E."""
        number = pcb & PCB_BLOCK_NUMBER
        nak = bool(pcb & PCB_CHAINING)
        if self._pending:
            return Ignored("R-block while the card is still processing a command")
        if number == self.block_number:
            if self._last_block is None:
                return Ignored("R-block asks to repeat a block, but none was sent yet")
            return self._send(self._last_block, record=False)  # rule 11
        if nak:
            return self._send(self._r_ack(), record=False)  # rule 12
        if not self._to_send:
            return Ignored("R(ACK) with the other block number while not chaining")
        self.block_number = number  # rule E
        return self._send(self._next_i_block())  # rule 13

    def _s_block(self, pcb: int, inf: bytes) -> Event:
        """§8: S(DESELECT) request -> S(DESELECT) response, HALT; §7.3: S(WTX) responses only answer ours."""
        if pcb & 0x30 == S_DESELECT:
            if inf:
                return Ignored("S(DESELECT) with an information field")
            self.state = State.HALT
            self._to_send = b""
            self._received.clear()
            return self._send(self._prologue(PCB_S_DESELECT), record=False)
        if pcb & 0x30 == S_WTX:
            return Ignored("S(WTX) response, but the card never asks for more time")
        return Ignored(f"S-block {pcb:02X} of an RFU kind")

    # --- output --------------------------------------------------------------------------------

    def respond(self, response_apdu: bytes) -> Reply:
        """The card application's R-APDU for the last :class:`Command`: its first (or only) I-block."""
        if not self._pending:
            raise RuntimeError("respond() without a Command to answer")
        self._pending = False
        self._to_send = bytes(response_apdu)
        return self._send(self._next_i_block())

    def handle(self, frame: bytes, process: Callable[[bytes], bytes]) -> bytes | None:
        """:meth:`receive`, with ``process`` answering a complete C-APDU: the frame to send, or None."""
        event = self.receive(frame)
        if isinstance(event, Command):
            event = self.respond(process(event.apdu))
        return event.frame if isinstance(event, Reply) else None

    def _prologue(self, pcb: int) -> bytes:
        if self._with_cid:
            return bytes((pcb | PCB_CID, self.cid))
        return bytes((pcb,))

    def _r_ack(self) -> bytes:
        return self._prologue(PCB_R_ACK | self.block_number)

    def _next_i_block(self) -> bytes:
        """The next I-block of the R-APDU: at most min(FSD, max_frame) bytes with EDC (§7.5.2)."""
        limit = min(self.fsd, self.config.max_frame) - EDC_LENGTH - 1 - self._with_cid
        chunk, self._to_send = self._to_send[:limit], self._to_send[limit:]
        pcb = 0x02 | self.block_number | (PCB_CHAINING if self._to_send else 0)
        return self._prologue(pcb) + chunk

    def _send(self, frame: bytes, *, record: bool = True) -> Reply:
        if record:
            self._last_block = frame
        if self.config.edc:
            frame += crc_a(frame)
        return Reply(frame)
