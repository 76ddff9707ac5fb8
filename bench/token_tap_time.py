"""A tap on the token through the simulated PN532: air time at 106 kbit/s plus the card's estimated time, per APDU.

For each built-in card (visa, mastercard, unionpay, wearable) and QEMU board (``qemu_m3``,
``qemu_m0plus``), one contactless transaction at 12.34 EUR (pinned date, time and unpredictable number,
the card's random source pinned: the C-APDUs of ``bench/token_cycles.py``) is tapped through the whole
chain: ``qemu:BOARD?card=CARD&rng=counting&front-end=pn532`` -> nfcpy's udp driver -> the simulated
PN532 -> UART1 -> the firmware's PN532 driver -> the card application. The reader's ISO/IEC 14443-4
blocks are recorded as nfcpy exchanges them (I-blocks chained at the negotiated FSC/FSD, R-blocks,
S(WTX) if any, the closing S(DESELECT)); the activation (REQA to ATS) is added from the frames it is
made of. The C-APDUs and R-APDUs must equal the emulator's (``emu:CARD?rng=counting``).

Air time, 106 kbit/s, from the bit timing (fc = 13.56 MHz, 1 etu = 128/fc = 9.44 us):

* a standard frame of n bytes (ISO/IEC 14443-3 §6.2.3.2: start of communication, each byte as 8 data
  bits and an odd parity bit, end of communication), CRC_A included (ISO/IEC 14443-3 §6.2.4; 2 bytes
  after every block and after SELECT, SAK, RATS, ATS): (1 + 9 n + 1) etu;
* REQA, a short frame (§6.2.3.1): start, 7 bits, end: 9 etu; the anticollision frames without CRC_A;
* the frame delay time PCD -> PICC (ISO/IEC 14443-3 §6.2.1.1), the least the card may take to answer:
  (9 x 128 + 84) / fc = 91.2 us when the last bit the reader sent is 1, (9 x 128 + 20) / fc = 86.4 us
  when it is 0 (the last bit is the parity bit of the frame's last byte);
* the frame delay time PICC -> PCD (ISO/IEC 14443-3 §6.2.1.2): at least 1172 / fc = 86.4 us before the
  reader's next frame.

So one block exchange costs frame(PCD) + FDT(PCD->PICC) + frame(PICC) + FDT(PICC->PCD) on the air; the
card's own processing is not air time and is counted beside it.

The card's time per C-APDU is an ESTIMATE: the instructions the card application executes for that
C-APDU on the board, counted by ``bench/token_cycles.py``'s probe under ``qemu-system-arm -icount
shift=0`` (its machinery imported from there: the probe image, one transaction from power-up, median
of ``--runs``), at 133 MHz with 1.0 cycle per instruction. Not in it: the PN532 driver's own work and
the host link (UART/I2C/SPI) between MCU and chip, the chip's latency, the reader's. The frame and
frame-delay timing is :mod:`emvkit.terminal.timeline`'s (``emvkit trace show``'s air model, which
derives the blocks from the APDU sizes; this bench prices the blocks that were exchanged).

Needs what ``bench/token_cycles.py`` needs (``MPY_DIR`` or ``--mpy-dir``, gcc-arm-none-eabi,
qemu-system-arm) and nfcpy; without them it says what is missing in one line and exits 0.

    MPY_DIR=/path/to/micropython .venv/bin/python bench/token_tap_time.py [--json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.token_cycles import (  # noqa: E402
    AMOUNT,
    BOARDS,
    CARDS,
    DATE,
    TIME,
    BenchError,
    Reference,
    Session,
    build_images,
    card_figures,
    command_label,
    estimate_ms,
    machine,
    missing,
    qemu_version,
    reference,
    run_board,
)
from emvkit.firmware.payapp.rng import CountingRandom  # noqa: E402
from emvkit.terminal.config_files import load_config  # noqa: E402
from emvkit.terminal.errors import EmvkitError  # noqa: E402
from emvkit.terminal.iso14443 import EDC_LENGTH, PCB_CHAINING, S_WTX, Ats, block_kind, crc_a  # noqa: E402
from emvkit.terminal.kernel.context import TransactionRequest  # noqa: E402
from emvkit.terminal.session import run_transaction  # noqa: E402
from emvkit.terminal.timeline import FDT_PCD_PICC, FDT_PICC_PCD, etu_s, frame_pair_s, frame_s  # noqa: E402
from emvkit.terminal.token.build import TokenBuildError, build  # noqa: E402
from emvkit.terminal.transport.qemu import QemuTransport  # noqa: E402
from emvkit.terminal.transport.qemu import from_url as qemu_from_url  # noqa: E402

ETU = etu_s(106)  # s, one bit at 106 kbit/s: 128/fc
MHZ = 133
CPI = 1.0
BUDGET_MS = 500.0
RUNS = 3
TOKEN_IMAGES = ROOT / "build" / "token"


# --- the air time --------------------------------------------------------------------------------


def exchange_s(command: bytes, response: bytes, crc: bool = True) -> float:
    """One frame from the reader and the card's answer, with both frame delay times."""
    sent = command + (crc_a(command) if crc else b"")
    got = len(response) + (EDC_LENGTH if crc else 0)
    return frame_pair_s(sent, got, 106)


def activation_s(uid: bytes, ats: bytes, rats: bytes) -> float:
    """REQA/ATQA, ANTICOLLISION/UID CLn, SELECT/SAK, RATS/ATS (ISO/IEC 14443-3 §6.3, -4 §5)."""
    bcc = bytes((uid[0] ^ uid[1] ^ uid[2] ^ uid[3],))
    reqa = 9 * ETU + FDT_PCD_PICC[0] + frame_s(2, 106) + FDT_PICC_PCD  # 26 as a short frame (7 bits); ATQA
    anticollision = exchange_s(b"\x93\x20", uid + bcc, crc=False)
    select = exchange_s(b"\x93\x70" + uid + bcc, b"\x20")
    return reqa + anticollision + select + exchange_s(rats, ats)


def block_name(frame: bytes) -> str:
    """I, I+ (chaining), R, R- (NAK), W (S(WTX)), D (S(DESELECT)), ? for anything else."""
    kind = block_kind(frame[0]) if frame else None
    if kind == "I":
        return "I+" if frame[0] & PCB_CHAINING else "I"
    if kind == "R":
        return "R-" if frame[0] & PCB_CHAINING else "R"
    if kind == "S":
        return "W" if frame[0] & 0x30 == S_WTX else "D"
    return "?"


# --- one tap through the chain ------------------------------------------------------------------------


@dataclass
class AirApdu:
    command: bytes
    response: bytes
    blocks: list[tuple[bytes, bytes]] = field(default_factory=list)  # (reader's frame, card's frame)

    @property
    def air_s(self) -> float:
        return sum(exchange_s(c, r) for c, r in self.blocks)

    def notation(self) -> str:
        return " ".join(f"{block_name(c)}>{block_name(r)}" for c, r in self.blocks)


@dataclass
class AirTap:
    board: str
    card: str
    ats: bytes
    uid: bytes
    fsc: int
    fsd: int
    apdus: list[AirApdu]
    deselect_s: float
    activation_s: float


def tap_on_air(board: str, card: str, image: Path, ref: Reference) -> AirTap:
    """One transaction through the chain, the blocks each C-APDU took on the air."""
    transport = qemu_from_url(f"qemu:{board}?card={card}&rng=counting&front-end=pn532&image={image}")
    assert isinstance(transport, QemuTransport)
    frames: list[tuple[bytes, bytes]] = []
    with transport:
        air, chip = transport.air, transport.chip
        assert air is not None and chip is not None
        tag = getattr(air, "tag")  # noqa: B009 (nfcpy's Type4ATag: its clf carries every block)
        clf = tag.clf
        exchange: Callable[[Any, float], Any] = clf.exchange

        def recording(data: Any, timeout: float) -> Any:
            response = exchange(data, timeout)
            frames.append((bytes(data), bytes(response or b"")))
            return response

        armed = chip.link.chip.armed
        uid = armed.uid if armed is not None else b""
        clf.exchange = recording
        request = TransactionRequest(amount=AMOUNT, date=DATE, time=TIME, random=CountingRandom())
        done = run_transaction(transport, load_config(), request)
        del clf.exchange
        ats = getattr(air, "ats")  # noqa: B009
    if len(uid) != 4:
        raise BenchError(f"{board} {card}: the chip was not armed with a 4-byte UID ({uid.hex()})")
    fsc, fsd = Ats.parse(ats).fsc, 256  # FSD: nfcpy's RATS asks FSDI 8
    commands = [e.command for e in done.trace.exchanges]
    responses = [e.response or b"" for e in done.trace.exchanges]
    if commands != ref.commands or responses != ref.responses:
        raise BenchError(f"{board} {card}: the tap through the chain exchanged other APDUs than the emulator")
    apdus = [AirApdu(c, r) for c, r in zip(commands, responses, strict=True)]
    i = 0
    for command, response in frames:  # the blocks of one C-APDU end with an I-block without chaining back
        apdus[min(i, len(apdus) - 1)].blocks.append((command, response))
        if block_kind(response[0]) == "I" and not response[0] & PCB_CHAINING:
            i += 1
    deselect = exchange_s(b"\xc2", b"\xc2")  # the nfc: transport's close (ISO/IEC 14443-4 §8)
    return AirTap(board, card, ats, uid, fsc, fsd, apdus, deselect, activation_s(uid, ats, b"\xe0\x80"))


# --- the card's instructions, by token_cycles' probe ------------------------------------------------------


def card_instructions(source: Path, boards: list[str], refs: dict[str, Reference], runs: int,
                      log: Callable[[str], None]) -> dict[str, dict[str, list[int]]]:
    """Per board and card, the instructions per C-APDU of a transaction from power-up (medians)."""
    images = build_images(source, boards, log)
    sessions = {name: Session(name, images[name]) for name in boards}
    threads = [threading.Thread(target=run_board, args=(s, refs, runs, 0, 0, log), name=f"qemu-{s.board}")
               for s in sessions.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in sessions.values():
        if s.error is not None:
            raise BenchError(f"{s.board}: {s.error}")
    out: dict[str, dict[str, list[int]]] = {}
    for name, s in sessions.items():
        out[name] = {}
        for card, ref in refs.items():
            figures = card_figures(ref, s.cards[card])
            if figures["mismatches"]:
                raise BenchError(f"{name} {card}: the probe's R-APDUs differ from the emulator's")
            out[name][card] = [c["instructions"] for c in figures["first"]["commands"]]
    return out


# --- the report ------------------------------------------------------------------------------------------


def rows(tap: AirTap, counts: list[int]) -> dict[str, Any]:
    commands = []
    for apdu, count in zip(tap.apdus, counts, strict=True):
        air_ms, card_ms = apdu.air_s * 1e3, estimate_ms(count, MHZ, CPI)
        commands.append({"command": command_label(apdu.command), "c_bytes": len(apdu.command),
                         "r_bytes": len(apdu.response), "blocks": apdu.notation(), "block_count": len(apdu.blocks),
                         "air_ms": round(air_ms, 3), "instructions": count, "card_ms": round(card_ms, 3),
                         "total_ms": round(air_ms + card_ms, 3)})
    air = tap.activation_s * 1e3 + tap.deselect_s * 1e3 + sum(c["air_ms"] for c in commands)
    card = sum(c["card_ms"] for c in commands)
    return {"ats": tap.ats.hex().upper(), "uid": tap.uid.hex().upper(), "fsc": tap.fsc, "fsd": tap.fsd,
            "activation_ms": round(tap.activation_s * 1e3, 3), "deselect_ms": round(tap.deselect_s * 1e3, 3),
            "commands": commands, "air_ms": round(air, 2), "card_ms": round(card, 2),
            "total_ms": round(air + card, 2), "within_budget": air + card < BUDGET_MS}


def print_card(board: str, card: str, f: dict[str, Any]) -> None:
    print(f"\n{board} {card}: UID {f['uid']}, ATS {f['ats']}, FSC {f['fsc']} / FSD {f['fsd']} bytes")
    print(f"  {'command':26}{'C':>5}{'R':>5}  {'blocks (reader>card)':24}{'air ms':>9}{'card ms':>9}{'total':>9}")
    print(f"  {'activation (REQA..ATS)':26}{'':>5}{'':>5}  {'':24}{f['activation_ms']:9.2f}{'':>9}"
          f"{f['activation_ms']:9.2f}")
    for c in f["commands"]:
        print(f"  {c['command']:26}{c['c_bytes']:5}{c['r_bytes']:5}  {c['blocks']:24}{c['air_ms']:9.2f}"
              f"{c['card_ms']:9.2f}{c['total_ms']:9.2f}")
    print(f"  {'S(DESELECT)':26}{'':>5}{'':>5}  {'D>D':24}{f['deselect_ms']:9.2f}{'':>9}{f['deselect_ms']:9.2f}")
    verdict = "under" if f["within_budget"] else "OVER"
    print(f"  {'tap':26}{'':>5}{'':>5}  {'':24}{f['air_ms']:9.2f}{f['card_ms']:9.2f}{f['total_ms']:9.2f}"
          f"  {verdict} {BUDGET_MS:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR"),
                        help="MicroPython source tree (default: $MPY_DIR)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"probe runs per card; medians (default {RUNS})")
    parser.add_argument("--cards", default=",".join(CARDS), help=f"comma-separated (default {','.join(CARDS)})")
    parser.add_argument("--boards", default=",".join(BOARDS), help=f"comma-separated (default {','.join(BOARDS)})")
    args = parser.parse_args()
    cards = [c for c in args.cards.split(",") if c]
    boards = [b for b in args.boards.split(",") if b]
    for c in cards:
        if c not in CARDS:
            parser.error(f"unknown card {c!r}: one of {', '.join(CARDS)}")
    for b in boards:
        if b not in BOARDS:
            parser.error(f"unknown board {b!r}: one of {', '.join(BOARDS)}")

    def log(text: str) -> None:
        print(f"token_tap_time: {text}", file=sys.stderr, flush=True)

    why = missing(args.mpy_dir)
    if why is None:
        try:
            import nfc  # noqa: F401
        except ModuleNotFoundError:
            why = "no nfcpy: pip install 'emvkit[nfc]'"
    if why is not None:
        print(json.dumps({"skipped": why}) if args.json else f"token_tap_time: skipped: {why}")
        return 0

    started = time.monotonic()
    source = Path(args.mpy_dir)
    try:
        refs = {card: reference(card) for card in cards}
        taps: dict[str, dict[str, AirTap]] = {}
        for name in boards:
            image = build(source, name, TOKEN_IMAGES).elf
            taps[name] = {card: tap_on_air(name, card, image, refs[card]) for card in cards}
            log(f"{name}: tapped {', '.join(cards)} through the PN532 chain")
        counts = card_instructions(source, boards, refs, args.runs, log)
    except (BenchError, EmvkitError, TokenBuildError) as exc:
        print(f"token_tap_time: {exc}", file=sys.stderr)
        return 1
    figures = {name: {card: rows(taps[name][card], counts[name][card]) for card in cards} for name in boards}
    seconds = time.monotonic() - started

    if args.json:
        print(json.dumps({
            "bench": "token_tap_time", "date": datetime.date.today().isoformat(), "machine": machine(),
            "qemu": qemu_version(), "amount": AMOUNT, "clock_mhz": MHZ, "cpi": CPI, "budget_ms": BUDGET_MS,
            "etu_us": round(ETU * 1e6, 3), "seconds": round(seconds, 1), "boards": figures,
        }, indent=1))
    else:
        print("A tap through the simulated PN532: air time at 106 kbit/s (ISO/IEC 14443-2/-3 bit timing, "
              "minimum frame delay times) plus the card's time, per APDU")
        print(f"date {datetime.date.today()}; {machine()}; {qemu_version()}")
        print(f"card ms: ESTIMATE, instructions under -icount shift=0 (a transaction from power-up, median of "
              f"{args.runs}) at {MHZ} MHz, CPI {CPI}; not in it: the PN532 driver and host link, chip and reader "
              "latency")
        for name in boards:
            for card in cards:
                print_card(name, card, figures[name][card])
        print(f"\ntime: {seconds:.0f} s")
    over = [(n, c) for n, cs in figures.items() for c, f in cs.items() if not f["within_budget"]]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
