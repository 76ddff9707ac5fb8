"""ISO/IEC 14443 on both sides of the field: frame sizes, CRC_A, RATS and the
ATS, the block PCB coding, PPS.

The reader side (``nfc:`` transport) and the card side (the emulator's
ISO-DEP engine, :mod:`emvkit.terminal.emulator.isodep`) share these. Clause
numbers are those of ISO/IEC 14443-4:2008 unless ISO/IEC 14443-3 is named.
"""

from __future__ import annotations

from dataclasses import dataclass

from emvkit.terminal.iso7816 import parse_atr

__all__ = [
    "EDC_LENGTH",
    "FRAME_SIZES",
    "HLTA",
    "PCB_BLOCK_NUMBER",
    "PCB_CHAINING",
    "PCB_CID",
    "PCB_NAD",
    "PCB_R_ACK",
    "PCB_S_DESELECT",
    "PPS0_FIXED",
    "PPS0_PPS1_FOLLOWS",
    "PPSS",
    "RATS",
    "S_DESELECT",
    "S_WTX",
    "Ats",
    "block_kind",
    "crc_a",
    "frame_size",
    "historical_bytes_from_atr",
]

# §5.2.3 / §5.1: FSCI and FSDI 0..8 code these frame sizes (PCB up to and including EDC).
FRAME_SIZES = (16, 24, 32, 40, 48, 64, 96, 128, 256)
RATS = 0xE0  # §5.1: start byte of RATS
HLTA = b"\x50\x00"  # ISO/IEC 14443-3 §6.3.3: HLTA (before RATS, the card is still a layer-3 card)
EDC_LENGTH = 2  # §7.1.3: the epilogue, CRC_A

# §7.1.1.1 PCB coding: which bits are fixed for each block type.
PCB_CHAINING = 0x10  # I-block: more blocks follow; R-block: 1 = NAK
PCB_CID = 0x08
PCB_NAD = 0x04
PCB_BLOCK_NUMBER = 0x01
PCB_R_ACK = 0xA2  # R(ACK), block number 0, no CID
PCB_S_DESELECT = 0xC2  # S(DESELECT), no CID (§8)
S_DESELECT = 0x00  # S-block b6-b5: DESELECT
S_WTX = 0x30  # S-block b6-b5: WTX
# §5.3: PPSS = 1101 + CID; PPS0 b5 = PPS1 follows, b1 = 1, the others 0.
PPSS = 0xD0
PPS0_PPS1_FOLLOWS = 0x10
PPS0_FIXED = 0x01


def block_kind(pcb: int) -> str | None:
    """"I", "R" or "S" for a valid PCB (§7.1.1.1), None for an invalid coding."""
    if pcb & 0xE2 == 0x02:  # I-block: 00 0 C CID NAD 1 bn
        return "I"
    if pcb & 0xE6 == 0xA2:  # R-block: 10 1 NAK CID 0 1 bn
        return "R"
    if pcb & 0xC7 == 0xC2:  # S-block: 11 xx CID 0 1 0
        return "S"
    return None


def frame_size(index: int) -> int:
    """Frame size in bytes of an FSCI or FSDI (§5.1, §5.2.3); the RFU values 9-F count as 256."""
    return FRAME_SIZES[min(index, 8)]


def crc_a(data: bytes) -> bytes:
    """CRC_A of ``data`` as sent on the air, least significant byte first (ISO/IEC 14443-3 §6.2.4, Annex B).

    CRC-16/CCITT reflected (polynomial 0x8408), initial value 0x6363, no final XOR.
    """
    crc = 0x6363
    for byte in data:
        byte ^= crc & 0xFF
        byte = (byte ^ (byte << 4)) & 0xFF
        crc = (crc >> 8) ^ (byte << 8) ^ (byte << 3) ^ (byte >> 4)
    return bytes((crc & 0xFF, crc >> 8))


def historical_bytes_from_atr(atr: bytes) -> bytes:
    """The historical bytes of a PC/SC Part 3 pseudo-ATR ``3B 8n 80 01 <historical bytes> TCK``.

    They are the ATS historical bytes of the card the ATR stands for (§5.2.7).
    Raises :class:`emvkit.terminal.iso7816.ATRError` for a malformed ATR.
    """
    return parse_atr(atr).historical_bytes


@dataclass(frozen=True)
class Ats:
    """An Answer To Select (§5.2): format byte T0, interface bytes TA(1), TB(1), TC(1), historical bytes."""

    fsci: int = 2
    ta: int | None = 0x00
    tb: int | None = 0x80
    tc: int | None = 0x02
    historical: bytes = b""

    @property
    def fsc(self) -> int:
        return frame_size(self.fsci)

    @property
    def fwi(self) -> int:
        """FWI (§5.2.5): TB(1) b8-b5; 4 when TB(1) is absent."""
        return 4 if self.tb is None else self.tb >> 4

    @property
    def fwt(self) -> float:
        """Frame waiting time in seconds (§7.2): 256 * 16 / fc * 2**FWI."""
        return 4096 / 13.56e6 * (1 << self.fwi)

    @property
    def cid_supported(self) -> bool:
        return self.tc is not None and bool(self.tc & 0x02)

    def to_bytes(self) -> bytes:
        t0 = self.fsci
        body = bytearray()
        for bit, value in ((0x10, self.ta), (0x20, self.tb), (0x40, self.tc)):
            if value is not None:
                t0 |= bit
                body.append(value)
        ats = bytes((t0,)) + bytes(body) + self.historical
        return bytes((len(ats) + 1,)) + ats  # TL counts itself, not the EDC (§5.2.2)

    @classmethod
    def parse(cls, data: bytes) -> Ats:
        """Parse an ATS as received (TL first, no CRC_A); raises ValueError when malformed."""
        data = bytes(data)
        if not data or data[0] != len(data):
            raise ValueError(f"ATS length byte {data[:1].hex() or 'missing'} does not match its {len(data)} bytes")
        if len(data) == 1:
            return cls(fsci=2, ta=None, tb=None, tc=None)  # §5.2.3: T0 absent, defaults apply
        t0 = data[1]
        if t0 & 0x80:
            raise ValueError(f"ATS format byte T0 {t0:02X} has b8 set")
        pos = 2
        values: list[int | None] = []
        for bit in (0x10, 0x20, 0x40):
            if t0 & bit:
                if pos >= len(data):
                    raise ValueError("ATS ends inside its interface bytes")
                values.append(data[pos])
                pos += 1
            else:
                values.append(None)
        return cls(fsci=t0 & 0x0F, ta=values[0], tb=values[1], tc=values[2], historical=data[pos:])
