"""What the card application costs on the Cortex-M token images, in instructions, under QEMU.

Builds both QEMU token images (``qemu_m3``: Cortex-M3 code; ``qemu_m0plus``:
ARMv6-M code, the RP2040's instruction set) with
:func:`emvkit.terminal.token.build.build` into ``build/bench-token/``, with the
device-side probe ``bench/portable/token_probe.py`` frozen in beside the
firmware, boots each under ``qemu-system-arm -icount shift=0`` and, for each
built-in card (visa, mastercard, unionpay, wearable; and unionpay-sm, the
UnionPay card with the SM suite, whose fDDA signature is SM2 over an SM3
digest, when asked with --cards: see DEFAULT_CARDS), replays on the device
the C-APDUs of one full contactless transaction at 12.34 EUR (an offline
approval with fDDA, or CDA for Mastercard), as the kernel sends them to
``emu:CARD?rng=counting`` on the host (pinned date, time and unpredictable
number, as ``bench/kernel_transaction.py``). The card on the device is
``Card(profile, rng=CountingRandom())``; its R-APDUs must equal the
emulator's byte for byte (a mismatch is printed and the exit status is 1).
The profile and the C-APDUs go to the probe as one JSON line on the UART.

With ``-icount shift=0`` QEMU executes one guest instruction per emulated
nanosecond, so a ``time.ticks_us()`` delta x 1000 is a count of instructions
(to 1,000 instructions: the tick is 1 us). The count does not depend on the
host's speed or load. It is not a cycle count: QEMU models no pipeline, no
wait states, no caches.

What it does depend on is the layout of MicroPython's heap: the transaction
allocates about 600 KB through a heap with about 110 KB free, so the garbage
collector runs several times (about 0.5 M instructions each), and how far the
allocator has to search for free blocks changes with fragmentation. The same
transaction from the same card state costs up to about a quarter more in one
layout than in another (the counts fall in two clusters, about 82 M and
92-100 M on the M3 image). So each transaction is run ``--runs`` times
(default 16), run k with a bytearray of k x 512 bytes allocated first, and
the figures are medians, with the smallest and largest run beside them.

Two starting points, per board and card:

* a later transaction of a running token (the main figures): the provider's
  DES key cache holds the schedules of the keys that the next transaction
  (ATC + 1) uses as well, i.e. the master keys'; a session key changes with
  the ATC, so its schedule is computed in every transaction;
* the first transaction after power-up: no key schedule cached.

Every run starts from the same card state (the profile's initial counters,
a new counting random source, the card reset, the key cache as said,
``gc.collect()``), so every run answers the same R-APDUs; those of the first
run of each starting point are compared with the emulator's here, the others
with the first on the device.

Per board and card the script prints:

* instructions per C-APDU kind (SELECT PPSE, SELECT AID, GPO, READ RECORD
  summed over the records, GENERATE AC; medians) and per transaction (median,
  min-max), for a later transaction, and the first after power-up's total;
* RSA (the private operation ``RSAPrivateKey.private``: the two CRT halves
  through ``provider.powmod`` and the public-exponent self-check), the SM2
  signature (``sm2.sign_digest``: k, [k]G through ``sm2.multiply``, r and s;
  the SM card only), SM3 (``SM3.update``/``digest``, ``sm3.sm3``), SHA-1
  (``provider.sha1``, which on this port calls ``_emvnative.sha1`` where the
  image has it, else the pure ``sha1.sha1``: no ``hashlib.sha1``) and
  DES/TDEA (the provider's DES entry points and the pure DES block
  functions), in instructions and as a share of the transaction,
  from one more run with those functions wrapped on the device (the outermost
  call of each group counted; the wrappers add a few thousand instructions a
  call); the entry points actually called, with their call counts;
* bytes allocated per transaction (``micropython.mem_total()`` before and
  after: bytes requested from the GC heap, garbage included; the same in every
  run);
* free heap needed: the least free heap (``gc.mem_free()`` after
  ``gc.collect()``, with the card built and idle, in a later transaction's
  state) with which the whole transaction still completes with the right
  R-APDUs, found by filling the rest of the heap with bytearrays and
  bisecting to ``--heap-step`` bytes (1 KB), then checked in
  ``--heap-layouts`` (3) more layouts (a bytearray of k x 512 bytes allocated
  before the heap is blocked) and raised by a step until the transaction
  completes in all of them; beside it the heap in use at rest
  (``gc.mem_alloc()`` then: the card object with its parsed profile and keys,
  the cached key schedules, the probe and its copies of the C-APDUs and
  R-APDUs) and what one ``gc.collect()`` costs at rest;
* an ESTIMATE of the card's time per transaction on a real core at 64, 133
  and 240 MHz with 1.0 and 1.5 cycles per instruction (instructions x CPI /
  clock; flash wait states and the like are not in it).

Needs a MicroPython source tree (``MPY_DIR`` or ``--mpy-dir``; building writes
mpy-cross into it), gcc-arm-none-eabi with newlib, and qemu-system-arm.
Without one of them the script says what is missing and exits 0 with no
figures. The first build of both images takes about a minute; then a rebuild
only re-freezes (about 1 s each). The two boards run in parallel, about 15 s.

    MPY_DIR=/path/to/micropython .venv/bin/python bench/token_cycles.py [--json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emvkit.firmware.payapp.rng import CountingRandom  # noqa: E402
from emvkit.terminal.config_files import load_config  # noqa: E402
from emvkit.terminal.iso7816 import INS_GET_PROCESSING_OPTIONS, INS_NAMES, INS_SELECT, PPSE  # noqa: E402
from emvkit.terminal.kernel.context import TransactionRequest  # noqa: E402
from emvkit.terminal.perso.builtin import load_builtin  # noqa: E402
from emvkit.terminal.session import run_transaction  # noqa: E402
from emvkit.terminal.token.boards import board  # noqa: E402
from emvkit.terminal.token.build import (  # noqa: E402
    BuildResult,
    NoSourceTree,
    NoToolchain,
    Progress,
    TokenBuildError,
    build,
    check_source,
    check_toolchain,
)
from emvkit.terminal.token.qemu import QEMU, QEMU_HINT, QemuError, QemuToken  # noqa: E402
from emvkit.terminal.transport.emu import from_url  # noqa: E402

BOARDS = ("qemu_m3", "qemu_m0plus")
BUILD_NAMES = {"qemu_m3": "MPS2_AN385", "qemu_m0plus": "MPS2_AN385-M0PLUS"}  # sys.implementation._build
CARDS = ("visa", "mastercard", "unionpay", "wearable", "unionpay-sm")
# Not the SM card by default: after its transactions the heap is too fragmented for the probe's 16 padded runs
# (docs/benchmarks.md, the SM card's section); measure it with --cards unionpay-sm --runs 4 --heap-step 0.
DEFAULT_CARDS = ("visa", "mastercard", "unionpay", "wearable")
DATE = datetime.date(2026, 6, 1)  # inside every built-in card's validity
TIME = datetime.time(12, 0, 0)
AMOUNT = 1234  # 12.34 EUR: below the floor limit, an offline approval with fDDA / CDA
EXPECTED = {"visa": "fDDA", "mastercard": "CDA", "unionpay": "fDDA", "wearable": "fDDA", "unionpay-sm": "fDDA"}
CLOCKS_MHZ = (64, 133, 240)
CPIS = (1.0, 1.5)
HEAP_STEP = 1024
HEAP_LAYOUTS = 3
RUNS = 16
OUT = ROOT / "build" / "bench-token"
PROBE = ROOT / "bench" / "portable" / "token_probe.py"
BOOT = "import token_probe; token_probe.main()"
MARK = b"@TP "
JOB_TIMEOUT = 170.0  # seconds for one card's figures (the heap search included)
GROUPS = ("rsa", "sha1", "des", "sm2", "sm3")
GROUP_NAMES = {"rsa": "RSA", "sha1": "SHA-1", "des": "DES", "sm2": "SM2 sign", "sm3": "SM3"}
MPY_HINT = ("set MPY_DIR (or --mpy-dir) to a MicroPython source tree with mpy-cross and ports/qemu, "
            "e.g. a copy of github.com/micropython/micropython (building writes mpy-cross into it)")


class BenchError(Exception):
    """The bench cannot go on (a build, QEMU or the probe failed)."""


# --- the transactions, on the host -----------------------------------------------------------


@dataclass
class Reference:
    """One transaction against the emulator: the C-APDUs and the R-APDUs the device must give."""

    card: str
    commands: list[bytes]
    responses: list[bytes]
    outcome: str


def reference(card: str) -> Reference:
    transport = from_url(f"emu:{card}?rng=counting")
    transport.open()
    try:
        request = TransactionRequest(amount=AMOUNT, date=DATE, time=TIME, random=CountingRandom())
        tap = run_transaction(transport, load_config(), request)
    finally:
        transport.close()
    r = tap.result
    outcome = f"{r.outcome.outcome.name}, {r.oda} {r.oda_result}"
    if r.outcome.outcome.name != "APPROVED" or r.oda != EXPECTED[card] or r.oda_result != "successful":
        raise BenchError(f"emu:{card} at {AMOUNT / 100:.2f}: expected APPROVED with {EXPECTED[card]}, got {outcome}")
    return Reference(card, [e.command for e in tap.trace.exchanges],
                     [e.response or b"" for e in tap.trace.exchanges], outcome)


def command_name(apdu: bytes) -> str:
    """What a C-APDU is, for the tables (READ RECORD without its record: they are summed)."""
    ins = apdu[1]
    if ins == INS_SELECT:
        return "SELECT PPSE" if apdu[5:5 + apdu[4]] == PPSE else "SELECT AID"
    if ins == INS_GET_PROCESSING_OPTIONS:
        return "GPO"  # short, for the table's column
    return INS_NAMES.get(ins, f"INS {ins:02X}")


def command_label(apdu: bytes) -> str:
    """command_name, with SFI and record for a READ RECORD."""
    name = command_name(apdu)
    return f"{name} SFI {apdu[3] >> 3} rec {apdu[2]}" if name == "READ RECORD" else name


# --- what is missing -------------------------------------------------------------------------


def missing(source: str | None) -> str | None:
    """A line saying what is missing and how to get it, or None when everything is there."""
    if not source:
        return f"no MicroPython source tree: {MPY_HINT}"
    try:
        check_source(Path(source), board(BOARDS[0]))
        check_toolchain()
    except (NoSourceTree, NoToolchain) as exc:
        return f"{exc}" + (f"; {MPY_HINT}" if isinstance(exc, NoSourceTree) else "")
    if shutil.which(QEMU) is None:
        return f"no {QEMU}: {QEMU_HINT}"
    return None


# --- building --------------------------------------------------------------------------------


def probe_manifest(out: Path) -> Path:
    """A manifest that freezes the probe as the top-level module token_probe."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "probe_manifest.py"
    path.write_text("# Written by bench/token_cycles.py: the probe beside the firmware.\n"
                    f"module('token_probe.py', base_path={str(PROBE.parent)!r})\n")
    return path


def build_images(source: Path, boards: list[str], log: Callable[[str], None]) -> dict[str, BuildResult]:
    manifest = probe_manifest(OUT)
    images = {}
    for name in boards:
        def progress(p: Progress, name: str = name) -> None:
            if p.event == "done":
                log(f"{name}: {p.stage} {p.seconds:.1f} s")

        try:
            images[name] = build(source, name, OUT, extra_manifest=manifest, progress=progress)
        except TokenBuildError as exc:
            raise BenchError(f"building {name}: {exc}") from exc
    return images


# --- talking to the probe --------------------------------------------------------------------


class Probe:
    """The probe's line protocol on a QemuToken's UART."""

    def __init__(self, token: QemuToken) -> None:
        self.token = token
        self.buffer = b""
        self.other: list[str] = []  # lines that were not the probe's

    def send(self, message: dict[str, Any]) -> None:
        self.token.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, _, self.buffer = self.buffer.partition(b"\n")
                line = line.rstrip(b"\r")
                if line.startswith(MARK):
                    message: dict[str, Any] = json.loads(line[len(MARK):])
                    if "error" in message:
                        raise BenchError(f"the probe failed: {message['error']}")
                    return message
                if line.strip():
                    self.other.append(line.decode(errors="replace"))
            if b"\x04" in self.buffer:  # the raw REPL: the program has ended; its error follows
                end = time.monotonic() + 2.0
                while self.buffer.count(b"\x04") < 2 and time.monotonic() < end:
                    self.buffer += self.token.read(0.2)
                self.other += self.buffer.decode(errors="replace").replace("\r", "").split("\n")
                raise BenchError(f"the probe stopped: {self.tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no answer from the probe within {timeout:.0f} s: {self.tail()}")
            chunk = self.token.read(min(left, 1.0))
            if not chunk and not self.token.running:
                raise BenchError(f"QEMU ended: {self.token.last_output()}")
            self.buffer += chunk

    def tail(self) -> str:
        text = " | ".join(line.strip().replace("\x04", "") for line in self.other[-6:] if line.strip())
        return text or "(no output)"


@dataclass
class Session:
    """One board's run: the image, the probe's greeting, each card's figures."""

    board: str
    image: BuildResult
    hello: dict[str, Any] = field(default_factory=dict)
    cards: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    seconds: float = 0.0
    error: BaseException | None = None


def run_board(session: Session, refs: dict[str, Reference], runs: int, step: int, layouts: int,
              log: Callable[[str], None]) -> None:
    """Boot the image (in this thread: QEMU ends with the thread that started it) and run every card."""
    started = time.monotonic()
    try:
        with QemuToken(session.image.elf, session.board, icount=True) as token:
            token.boot(BOOT)
            probe = Probe(token)
            session.hello = probe.receive(30)
            if session.hello.get("build") != BUILD_NAMES[session.board]:
                raise BenchError(f"{session.board}: the image says it is {session.hello.get('build')!r}")
            for card, ref in refs.items():
                t0 = time.monotonic()
                probe.send({"op": "card", "name": card, "profile": load_builtin(card),
                            "commands": [c.hex() for c in ref.commands], "runs": runs, "step": step,
                            "layouts": layouts})
                parts: dict[str, list[dict[str, Any]]] = {}
                while True:
                    part = probe.receive(JOB_TIMEOUT)
                    if part.get("part") == "done":
                        break
                    parts.setdefault(str(part.get("part")), []).append(part)
                session.cards[card] = parts
                log(f"{session.board}: {card} {time.monotonic() - t0:.1f} s")
            probe.send({"op": "quit"})
            probe.receive(10)
    except (BenchError, QemuError, OSError, ValueError) as exc:
        session.error = exc
    session.seconds = time.monotonic() - started


# --- the figures -----------------------------------------------------------------------------


def instructions(ticks: int) -> int:
    return ticks * 1000  # -icount shift=0: 1 us of emulated time = 1,000 instructions


def estimate_ms(count: int, mhz: int, cpi: float) -> float:
    return count * cpi / (mhz * 1e3)


def median(values: list[int]) -> int:
    return int(statistics.median(values))


def run_figures(ref: Reference, plain: dict[str, Any], wrapped: list[dict[str, Any]]) -> dict[str, Any]:
    """One starting point ("first" or "later") of one card on one board: medians over the runs."""
    runs: list[list[int]] = plain["ticks"]
    alloc: list[int] | None = plain["alloc"][0] if plain["alloc"] is not None else None
    responses = [bytes.fromhex(r) for r in plain["responses"]]
    shares = [w["shares"] for w in wrapped]
    n = len(ref.commands)
    by_command = [[median([s["by_command"][i][k] for s in shares]) for k in range(len(GROUPS))] for i in range(n)]
    commands = []
    for i, apdu in enumerate(ref.commands):
        commands.append({
            "command": command_label(apdu),
            "apdu": apdu.hex(),
            "instructions": instructions(median([run[i] for run in runs])),
            "allocated": None if alloc is None else alloc[i],
            **{f"{g}_instructions": instructions(by_command[i][k]) for k, g in enumerate(GROUPS)},
        })
    totals = [instructions(sum(run)) for run in runs]
    wrapped_total = median([s["total"] for s in shares])
    groups = {g: median([s["groups"][g] for s in shares]) for g in GROUPS}
    rsa_at = max(range(n), key=lambda i: by_command[i][0])
    mismatches = [
        {"command": command_label(apdu), "expected": want.hex(), "got": got.hex()}
        for apdu, want, got in zip(ref.commands, ref.responses, responses, strict=True) if want != got
    ]
    if not plain["same"]:
        mismatches.append({"command": "(a repeated run)", "expected": "the same R-APDUs", "got": "others"})
    return {
        "instructions": median(totals),
        "min": min(totals),
        "max": max(totals),
        "runs": totals,
        "commands": commands,
        "rsa_command": commands[rsa_at]["command"] if by_command[rsa_at][0] else None,
        "wrapped_instructions": instructions(wrapped_total),
        "wrapped_runs": [instructions(s["total"]) for s in shares],
        "shares": {g: {"instructions": instructions(groups[g]), "share": groups[g] / wrapped_total} for g in GROUPS},
        "calls": {name: {"calls": c[0], "instructions": instructions(median([s["calls"][name][1] for s in shares]))}
                  for name, c in sorted(shares[0]["calls"].items())},
        "allocated": None if alloc is None else sum(alloc),
        "mismatches": mismatches,
    }


def card_figures(ref: Reference, raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One card on one board, as the report and --json give it: a later transaction's figures
    at the top level, the first transaction after power-up under "first"."""
    later = run_figures(ref, raw["later"][0], raw["later_shares"])
    first = run_figures(ref, raw["first"][0], raw["first_shares"])
    heap = raw["heap"][0]
    figures: dict[str, Any] = {
        "transaction": ref.outcome,
        "apdus": len(ref.commands),
        **later,
        "first": first,
        "kept_key_schedules": heap["kept_keys"],
        "gc_collect_at_rest": instructions(heap["collect"]),
        "estimate_ms": {f"{mhz}MHz_cpi{cpi:.1f}": round(estimate_ms(later["instructions"], mhz, cpi), 2)
                        for mhz in CLOCKS_MHZ for cpi in CPIS},
    }
    figures["mismatches"] = [*later["mismatches"], *({**m, "run": "first"} for m in first["mismatches"])]
    if "needed" in heap:
        figures["heap"] = {"free_needed": heap["needed"], "free_failed": heap["failed"], "runs": heap["runs"],
                           "in_use_at_rest": heap["at_rest"], "total": heap["total"], "step": heap["step"]}
    return figures


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), {cpu}"


def qemu_version() -> str:
    done = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout.splitlines() or ["?"])[0]


# --- the report ------------------------------------------------------------------------------


def millions(count: int | None) -> str:
    return "-" if count is None else f"{count / 1e6:.2f}"


def kb(count: int | None) -> str:
    return "-" if count is None else f"{count / 1024:.1f}"


def print_board(name: str, session: Session, figures: dict[str, dict[str, Any]]) -> None:
    hello = session.hello
    print(f"\n{name}: {board(name).cpu} code, image {hello.get('build')}, text {session.image.text:,} B, "
          f"GC heap {hello.get('heap_total', 0):,} B ({hello.get('heap_used', 0):,} B in use when the probe "
          f"starts); SHA-1 {hello.get('sha1')}, DES {hello.get('des')}, RSA {hello.get('powmod')}(), "
          f"SM2 {hello.get('sm2')}, SM3 {hello.get('sm3')}")
    width = 15
    values = list(figures.values())

    def row(label: str, cells: list[str]) -> None:
        print(f"  {label:34}" + "".join(f"{c:>{width}}" for c in cells))

    runs = len(values[0]["runs"]) if values else 0
    print(f"  a later transaction (master-key schedules cached), millions of instructions, "
          f"medians of {runs} runs (heap layouts):")
    row("", list(figures))
    kinds: list[str] = []
    for f in values:
        for c in f["commands"]:
            kind = command_name(bytes.fromhex(c["apdu"]))
            if kind not in kinds:
                kinds.append(kind)
    for kind in kinds:
        cells = []
        for f in values:
            hits = [c for c in f["commands"] if command_name(bytes.fromhex(c["apdu"])) == kind]
            text = millions(sum(c["instructions"] for c in hits)) if hits else "-"
            cells.append(f"{len(hits)}x {text}" if len(hits) > 1 else text)
        row(kind, cells)
    row("transaction", [millions(f["instructions"]) for f in values])
    row("  min-max of the runs", [f"{f['min'] / 1e6:.2f}-{f['max'] / 1e6:.2f}" for f in values])
    row("  first after power-up", [millions(f["first"]["instructions"]) for f in values])
    row("    min-max of its runs", [f"{f['first']['min'] / 1e6:.2f}-{f['first']['max'] / 1e6:.2f}" for f in values])
    row("RSA is in", [f["rsa_command"] or "-" for f in values])
    for g in GROUPS:
        row(f"{GROUP_NAMES[g]} (wrapped runs)",
            [f"{millions(f['shares'][g]['instructions'])} {f['shares'][g]['share']:4.0%}" for f in values])
    row("rest of the card", [f"{1 - sum(f['shares'][g]['share'] for g in GROUPS):.0%}" for f in values])
    row("  DES, first after power-up",
        [f"{millions(f['first']['shares']['des']['instructions'])} {f['first']['shares']['des']['share']:4.0%}"
         for f in values])
    row("allocated, KB", [kb(f["allocated"]) for f in values])
    row("  first after power-up", [kb(f["first"]["allocated"]) for f in values])
    row("free heap needed, KB", [kb(f["heap"]["free_needed"]) if "heap" in f else "-" for f in values])
    row("one gc.collect() at rest, M", [millions(f["gc_collect_at_rest"]) for f in values])
    row("heap in use at rest, KB", [kb(f["heap"]["in_use_at_rest"]) if "heap" in f else "-" for f in values])
    called: dict[str, list[str]] = {}
    for f in values:
        for entry, c in f["calls"].items():
            called.setdefault(entry, []).append(str(c["calls"]))
    print(f"  crypto entry points called in a later transaction ({' / '.join(figures)}):")
    for entry, counts in called.items():
        print(f"    {entry:32} {' / '.join(counts)}")


def print_estimates(figures: dict[str, dict[str, dict[str, Any]]]) -> None:
    print("\nESTIMATE, not a measurement: the card's time per transaction on a real core, "
          "instructions x CPI / clock (no flash wait states, no link or radio time)")
    cols = [(mhz, cpi) for mhz in CLOCKS_MHZ for cpi in CPIS]
    print(f"  {'board':12} {'card':11}" + "".join(f"{f'{mhz} MHz CPI {cpi:.1f}':>17}" for mhz, cpi in cols))
    for name, cards in figures.items():
        for card, f in cards.items():
            print(f"  {name:12} {card:11}"
                  + "".join(f"{estimate_ms(f['instructions'], mhz, cpi):>14.1f} ms" for mhz, cpi in cols))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR"),
                        help="MicroPython source tree (default: $MPY_DIR)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--heap-step", type=int, default=HEAP_STEP,
                        help=f"resolution of the free-heap search in bytes (default {HEAP_STEP}; 0 skips it)")
    parser.add_argument("--heap-layouts", type=int, default=HEAP_LAYOUTS,
                        help=f"more heap layouts the free-heap figure must hold in (default {HEAP_LAYOUTS})")
    parser.add_argument("--runs", type=int, default=RUNS,
                        help=f"plain runs per card and starting point, each with another heap layout; "
                             f"medians (default {RUNS})")
    parser.add_argument("--cards", default=",".join(DEFAULT_CARDS),
                        help=f"comma-separated, of {','.join(CARDS)} (default {','.join(DEFAULT_CARDS)})")
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
        print(f"token_cycles: {text}", file=sys.stderr, flush=True)

    why = missing(args.mpy_dir)
    if why is not None:
        line = f"token_cycles: skipped: {why}"
        print(json.dumps({"skipped": why}) if args.json else line)
        return 0

    started = time.monotonic()
    try:
        refs = {card: reference(card) for card in cards}
        t0 = time.monotonic()
        images = build_images(Path(args.mpy_dir), boards, log)
        build_seconds = time.monotonic() - t0
    except BenchError as exc:
        print(f"token_cycles: {exc}", file=sys.stderr)
        return 1

    sessions = {name: Session(name, images[name]) for name in boards}
    threads = [threading.Thread(target=run_board, args=(s, refs, args.runs, args.heap_step, args.heap_layouts, log),
                                name=f"qemu-{s.board}") for s in sessions.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [s for s in sessions.values() if s.error is not None]
    for s in failed:
        print(f"token_cycles: {s.board}: {s.error}", file=sys.stderr)
    if failed:
        return 1

    figures = {name: {card: card_figures(refs[card], s.cards[card]) for card in cards}
               for name, s in sessions.items()}
    total_seconds = time.monotonic() - started
    mismatches = [(name, card, m) for name, cs in figures.items() for card, f in cs.items() for m in f["mismatches"]]
    checked = 2 * sum(len(refs[c].commands) for c in cards) * len(sessions)  # first and later runs, checked here

    if args.json:
        print(json.dumps({
            "bench": "token_cycles",
            "date": datetime.date.today().isoformat(),
            "machine": machine(),
            "qemu": qemu_version(),
            "icount": "shift=0: instructions = ticks_us delta x 1000",
            "amount": AMOUNT,
            "seconds": {"total": round(total_seconds, 1), "build": round(build_seconds, 1),
                        **{name: round(s.seconds, 1) for name, s in sessions.items()}},
            "boards": {name: {"cpu": board(name).cpu, "build": s.hello.get("build"), "text": s.image.text,
                              "bss": s.image.bss, "heap_total": s.hello.get("heap_total"),
                              "heap_used_at_start": s.hello.get("heap_used"),
                              "mem_stats": s.hello.get("mem_stats"), "sha1": s.hello.get("sha1"),
                              "des": s.hello.get("des"), "powmod": s.hello.get("powmod"),
                              "sm2": s.hello.get("sm2"), "sm3": s.hello.get("sm3"),
                              "cards": figures[name]} for name, s in sessions.items()},
        }, indent=1))
    else:
        print("Card application on the token images under QEMU (mps2-an385, -icount shift=0): "
              "instructions counted, not timed")
        print(f"date {datetime.date.today()}; {machine()}; {qemu_version()}")
        print(f"each card: one contactless transaction at {AMOUNT / 100:.2f} EUR "
              f"(C-APDUs from the kernel against emu:CARD?rng=counting), Card(profile, rng=CountingRandom())")
        for card in cards:
            print(f"  {card:11} {len(refs[card].commands)} C-APDUs, {refs[card].outcome}")
        for name, s in sessions.items():
            print_board(name, s, figures[name])
        print("\n  instructions = ticks_us() delta x 1000 (to 1,000 instructions), not cycles;")
        print("  runs: run k holds a bytearray of k x 512 B allocated first, so each sees another heap layout;")
        print("  RSA / SHA-1 / DES / SM2 sign / SM3: millions of instructions and share of the transaction, "
              "medians of half as many")
        print("    runs with the crypto entry points wrapped (outermost call per group);")
        print("    RSA = RSAPrivateKey.private (CRT powmods + self-check); SM2 sign = sm2.sign_digest ([k]G, r, s);")
        print("  allocated = micropython.mem_total() delta over the transaction (bytes requested, garbage included);")
        if args.heap_step:
            print(f"  free heap needed = least gc.mem_free() (after gc.collect(), card built and idle, rest of the "
                  f"heap blocked) with which the transaction completes, to {args.heap_step} B,")
            print(f"    in {args.heap_layouts + 1} heap layouts;")
        else:
            print("  free heap needed: not searched (--heap-step 0);")
        print("  heap in use at rest = gc.mem_alloc() then (card with parsed profile and keys, key schedules, probe, "
              "C/R-APDUs).")
        print_estimates(figures)
        print(f"\nR-APDUs: {checked - len(mismatches)} of {checked} equal the emulator's byte for byte "
              "(first and later runs)")
        print(f"time: {total_seconds:.0f} s (build {build_seconds:.0f} s; "
              + ", ".join(f"{name} {s.seconds:.0f} s" for name, s in sessions.items()) + ", in parallel)")
    for name, card, m in mismatches:
        print(f"MISMATCH {name} {card} {m.get('run', 'later')} {m['command']}: expected {m['expected']}, "
              f"got {m['got']}", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
