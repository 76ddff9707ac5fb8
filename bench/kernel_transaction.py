"""Full contactless transactions in-process: throughput, host-side cost and air time.

Runs the whole transaction (Entry Point, kernel, offline data authentication
and the emulated card) through :func:`emvkit.terminal.session.run_transaction`
for each kernel on its built-in card: C-3 on ``emu:visa``, C-2 on
``emu:mastercard``, C-7 on ``emu:unionpay``, at 12.34 EUR (an offline approval
with fDDA or CDA) and at 40.00 EUR (above the 30.00 floor limit: an online
request). Every transaction is byte-for-byte the same: the card's random
source is pinned (``rng=counting``), the card's counters and random source are
reset before each transaction, and the request has a pinned date, time and
unpredictable number. A transaction whose outcome or ODA result differs from
the expected one stops the script.

1. Throughput: full transactions per second in one thread (kernel + card +
   ODA), each case run for ``BENCH_SECONDS`` (default 2 s); only
   ``run_transaction`` is timed (the bench's card reset, ~1 us, is not).
   Issue goal: >= 1,000 full fDDA/CDA transactions per second per core.
2. Host side: the card object is wrapped so the time inside ``card.process``
   is summed and subtracted from the transaction's time; what remains is
   Entry Point + kernel + ODA + driver and trace recording. The ODA share is
   the time inside the public functions of ``emvkit.terminal.kernel.oda``
   (monkeypatched within this script only; outermost call only). Medians per
   transaction, run for half of ``BENCH_SECONDS``; "host tx/s" is what one
   core would do if the card took no time. Issue goal: kernel overhead under
   1 ms.
3. The exchange on the air, from the recorded trace. Model (ISO/IEC 14443,
   Type A, 106 kbit/s, no PPS; activation - REQA, anticollision, RATS/ATS -
   not included):

   - one bit lasts 128/fc with fc = 13.56 MHz (9.44 us, 105.9 kbit/s);
   - every byte is 9 bits on the air (8 data bits + odd parity), both
     directions; every frame adds 2 bits (start and end of communication);
   - every ISO 14443-4 block carries PCB (1 byte) and CRC_A (2 bytes); no
     CID, no NAD; so a block has at most FS - 3 bytes of INF;
   - a C-APDU is chained into I-blocks of at most FSC = 32 bytes (FSCI 2, the
     card's default), i.e. 29 APDU bytes per block; an R-APDU (data + SW1 SW2)
     into I-blocks of at most FSD = 256 bytes (FSDI 8, what typical readers
     announce), i.e. 253 bytes per block;
   - every chained block but the last is acknowledged by an R(ACK) from the
     other side (PCB + CRC_A = 3 bytes);
   - no S(WTX), no retransmissions;
   - "air" is the bits on the air only; "+FDT" adds the minimum frame delay
     time 1172/fc (86.4 us) before every frame that follows another (PCD to
     PICC and PICC to PCD alike); "card" is the card's processing time,
     measured on the MicroPython unix port (x86) by replaying the same
     C-APDUs with ``bench/portable/card_loop.py``, median of 10 (a
     microcontroller is much slower: take it as a floor, not as the token's
     time; "n/a" without MicroPython); "total" = +FDT + card.

   The total is set against the 500 ms a tap is expected to stay well under.
   Typical exchanges of real cards (APDU count and total
   bytes only) are priced the same way, assuming 14-byte C-APDUs (one block
   each) and the remaining bytes split evenly among the R-APDUs; they are
   rough sanity lines.

Run: ``.venv/bin/python bench/kernel_transaction.py`` (``BENCH_SECONDS`` to
change the run time per case; the whole script takes ~20 s by default).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emvkit.firmware.crypto import provider  # noqa: E402
from emvkit.firmware.payapp.rng import CountingRandom  # noqa: E402
from emvkit.firmware.payapp.state import CardState, MemoryStore  # noqa: E402
from emvkit.terminal.config_files import load_config  # noqa: E402
from emvkit.terminal.errors import TransportError  # noqa: E402
from emvkit.terminal.kernel import oda  # noqa: E402
from emvkit.terminal.kernel.config import TerminalConfig  # noqa: E402
from emvkit.terminal.kernel.context import TransactionRequest  # noqa: E402
from emvkit.terminal.perso.builtin import profile_path  # noqa: E402
from emvkit.terminal.session import Tap, run_transaction  # noqa: E402
from emvkit.terminal.transport.emu import EmulatorTransport, from_url  # noqa: E402
from emvkit.terminal.transport.mpy import find_micropython  # noqa: E402
from emvkit.terminal.transport.trace import Exchange  # noqa: E402

DATE = datetime.date(2026, 6, 1)  # inside every built-in card's validity
TIME = datetime.time(12, 0, 0)
OFFLINE, ONLINE = 1234, 4000  # minor units: 12.34 EUR below the floor limit, 40.00 EUR above
BUDGET_MS = 500.0

# (kernel, card, amount, expected outcome, expected ODA)
CASES = [
    (3, "visa", OFFLINE, "APPROVED", "fDDA successful"),
    (3, "visa", ONLINE, "ONLINE_REQUEST", "not performed"),
    (2, "mastercard", OFFLINE, "APPROVED", "CDA successful"),
    (2, "mastercard", ONLINE, "ONLINE_REQUEST", "CDA successful"),
    (7, "unionpay", OFFLINE, "APPROVED", "fDDA successful"),
    (7, "unionpay", ONLINE, "ONLINE_REQUEST", "not performed"),
]

# Typical exchanges of real cards: (what, APDUs, total bytes).
TYPICAL = [
    ("Visa qVSDC online", 3, 270),
    ("Visa qVSDC offline fDDA", 6, 750),
    ("Mastercard online", 10, 1000),
    ("Mastercard offline CDA", 9, 1200),
]

# --- the air-time model (see the module docstring) ----------------------------------------

FC_HZ = 13.56e6
BIT_S = 128 / FC_HZ
BITS_PER_BYTE = 9
FRAME_BITS = 2  # start + end of communication
BLOCK_OVERHEAD = 3  # PCB + CRC_A
FSC = 32  # card's frame size (FSCI 2, default): C-APDUs are chained into these
FSD = 256  # reader's frame size (FSDI 8): R-APDUs are chained into these
FDT_S = 1172 / FC_HZ


@dataclass
class Air:
    frames: int = 0
    bytes_on_air: int = 0  # APDU bytes + block overhead + R(ACK)s

    @property
    def air_ms(self) -> float:
        return (self.bytes_on_air * BITS_PER_BYTE + self.frames * FRAME_BITS) * BIT_S * 1000.0

    @property
    def with_fdt_ms(self) -> float:
        return self.air_ms + max(self.frames - 1, 0) * FDT_S * 1000.0

    def add(self, command_len: int, response_len: int) -> None:
        """One APDU exchange: chained I-blocks each way, R(ACK) for every non-last block."""
        n_cmd = max(1, math.ceil(command_len / (FSC - BLOCK_OVERHEAD)))
        n_rsp = max(1, math.ceil(response_len / (FSD - BLOCK_OVERHEAD)))
        acks = (n_cmd - 1) + (n_rsp - 1)
        self.frames += n_cmd + n_rsp + acks
        self.bytes_on_air += command_len + response_len + BLOCK_OVERHEAD * (n_cmd + n_rsp + acks)


def air_of(exchanges: list[Exchange]) -> Air:
    air = Air()
    for e in exchanges:
        air.add(len(e.command), len(e.response or b""))
    return air


TYPICAL_COMMAND = 14  # bytes per C-APDU in the typical exchanges (one block; ours average 13-14)


def typical_air(apdus: int, total: int) -> Air:
    air = Air()
    each, extra = divmod(total - TYPICAL_COMMAND * apdus, apdus)
    for i in range(apdus):
        air.add(TYPICAL_COMMAND, each + (1 if i < extra else 0))
    return air


# --- the transaction and the card ---------------------------------------------------------


class TimedCard:
    """The card application with the time spent inside ``process`` summed up."""

    def __init__(self, card: Any) -> None:
        self.card = card
        self.seconds = 0.0

    def process(self, command: bytes) -> bytes:
        start = time.perf_counter()
        try:
            response: bytes = self.card.process(command)
        finally:
            self.seconds += time.perf_counter() - start
        return response

    def __getattr__(self, name: str) -> Any:  # power_on, profile, ...
        return getattr(self.card, name)


class OdaTimer:
    """Sums the time inside emvkit.terminal.kernel.oda's public functions while installed."""

    NAMES = ("recover_issuer_key", "recover_icc_key", "static_data_to_authenticate", "verify_ssad",
             "verify_dda", "verify_fdda", "verify_cda")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._saved: dict[str, Callable[..., Any]] = {}

    def _wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - start
        return timed

    def __enter__(self) -> OdaTimer:
        for name in self.NAMES:
            self._saved[name] = getattr(oda, name)
            setattr(oda, name, self._wrap(self._saved[name]))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, func in self._saved.items():
            setattr(oda, name, func)


class Case:
    def __init__(self, kernel: int, card: str, amount: int, outcome: str, oda_result: str,
                 config: TerminalConfig) -> None:
        self.kernel, self.name, self.amount = kernel, card, amount
        self.expected = (outcome, oda_result)
        self.config = config
        self.url = f"emu:{card}?rng=counting"
        base = from_url(self.url)
        self.card: Any = cast(Any, base.card)  # emvkit.firmware.payapp.card.Card
        self.timed = TimedCard(base.card)
        self.plain = base
        self.wrapped = EmulatorTransport(self.timed, base.faults, url=self.url,
                                         historical=getattr(self.card.profile, "atr_historical", b""))
        self.plain.open()
        self.wrapped.open()

    @property
    def label(self) -> str:
        return f"C-{self.kernel} {self.name} {self.amount / 100:.2f}"

    def reset_card(self) -> None:
        """A fresh card: initial counters (no offline-limit drift), pinned random restarted."""
        self.card.store = MemoryStore(CardState.from_dict(self.card.profile.initial_state))
        self.card.rng = CountingRandom()
        self.card.reset()

    def request(self) -> TransactionRequest:
        return TransactionRequest(amount=self.amount, date=DATE, time=TIME, random=CountingRandom())

    def prepare(self) -> TransactionRequest:
        """Bench bookkeeping before a transaction (~1 us, not timed): fresh card, fresh request."""
        self.reset_card()
        return self.request()

    def run(self, transport: EmulatorTransport) -> Tap:
        return run_transaction(transport, self.config, self.prepare())

    def check(self, tap: Tap) -> None:
        r = tap.result
        got = (r.outcome.outcome.name, f"{r.oda} {r.oda_result}".strip())
        if got != self.expected:
            raise SystemExit(f"{self.label}: expected {self.expected}, got {got} ({r.error})")


def throughput(case: Case, seconds: float) -> tuple[float, int]:
    """Transactions per second of run_transaction alone (the bench's card reset is not timed)."""
    count, busy = 0, 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        request = case.prepare()
        start = time.perf_counter()
        run_transaction(case.plain, case.config, request)
        busy += time.perf_counter() - start
        count += 1
    return count / busy, count


def host_side(case: Case, seconds: float) -> dict[str, float]:
    total, card, host, oda_share = [], [], [], []
    with OdaTimer() as timer:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            request = case.prepare()
            case.timed.seconds = timer.seconds = 0.0
            start = time.perf_counter()
            run_transaction(case.wrapped, case.config, request)
            elapsed = time.perf_counter() - start
            total.append(elapsed)
            card.append(case.timed.seconds)
            host.append(elapsed - case.timed.seconds)
            oda_share.append(timer.seconds)
    us = 1e6
    return {
        "total_us": statistics.median(total) * us,
        "card_us": statistics.median(card) * us,
        "host_us": statistics.median(host) * us,
        "oda_us": statistics.median(oda_share) * us,
        "runs": len(total),
    }


def micropython_card_ms(case: Case, tap: Tap, runs: int) -> float | None:
    """Median card time of this transaction's C-APDUs on the MicroPython unix port."""
    try:
        interpreter = find_micropython()
    except TransportError:  # no MicroPython: the column shows n/a
        return None
    commands = [e.command.hex() for e in tap.trace.exchanges]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(commands, f)
    try:
        env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT}", PYTHONPATH=str(ROOT))
        args = [interpreter, str(ROOT / "bench/portable/card_loop.py"), str(profile_path(case.name)), f.name,
                str(runs)]
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        return None
    result: dict[str, list[float]] = json.loads(done.stdout)
    return statistics.median(result["total_ms"])


# --- the report -------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} "
            f"{platform.machine()}; {os.cpu_count()} CPU(s), {usable} usable; {cpu}; "
            f"crypto backend: {provider.backend()}")


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "2"))
    config = load_config()
    cases = [Case(k, card, amount, outcome, oda_result, config) for k, card, amount, outcome, oda_result in CASES]
    print("Full in-process contactless transactions (Entry Point + kernel + ODA + emulated card)")
    print(f"machine: {machine()}")
    print(f"pinned: card rng=counting (reset per transaction), date {DATE}, time {TIME}, counting UN; "
          f"{seconds:g} s per case, one thread")

    taps = {}
    for case in cases:
        tap = case.run(case.plain)
        case.check(tap)
        taps[case.label] = tap

    print()
    print("1. throughput, one thread (goal: >= 1,000 fDDA/CDA transactions/s per core)")
    print(f"   {'case':24} {'outcome':15} {'ODA':16} {'tx/s':>8} {'ms/tx':>7} {'runs':>6}  goal")
    for case in cases:
        rate, count = throughput(case, seconds)
        r = taps[case.label].result
        goal = "-" if case.amount == ONLINE else ("met" if rate >= 1000 else "not met")
        oda_text = f"{r.oda} {'ok' if r.oda_result == 'successful' else ''}".strip()
        print(f"   {case.label:24} {r.outcome.outcome.name:15} {oda_text:16} {rate:8.0f} {1000 / rate:7.3f} "
              f"{count:6}  {goal}")

    print()
    print("2. time per transaction, medians in us: host = total - card (Entry Point + kernel + ODA + driver/trace);")
    print("   ODA = inside emvkit.terminal.kernel.oda (goal: host side under 1,000 us)")
    print(f"   {'case':24} {'total':>8} {'card':>8} {'host':>8} {'ODA':>8} {'ODA %':>6} {'host-ODA':>9} "
          f"{'host tx/s':>9} {'runs':>6}  goal")
    for case in cases:
        h = host_side(case, seconds / 2)
        share = h["oda_us"] / h["host_us"] if h["host_us"] else 0.0
        goal = "met" if h["host_us"] < 1000 else "not met"
        print(f"   {case.label:24} {h['total_us']:8.0f} {h['card_us']:8.0f} {h['host_us']:8.0f} {h['oda_us']:8.0f} "
              f"{share:6.0%} {h['host_us'] - h['oda_us']:9.0f} {1e6 / h['host_us']:9.0f} {int(h['runs']):6}  {goal}")

    print()
    print(f"3. on the air, ISO 14443 Type A at 106 kbit/s, FSC {FSC} / FSD {FSD}, no CID/NAD, activation excluded")
    print(f"   (budget {BUDGET_MS:.0f} ms; card = MicroPython unix port on this CPU, replaying the same C-APDUs)")
    print(f"   {'case':24} {'APDUs':>5} {'C-APDU B':>8} {'R-APDU B':>8} {'total B':>7} {'frames':>6} "
          f"{'air ms':>7} {'+FDT ms':>8} {'card ms':>8} {'total ms':>8} {'of budget':>9}")
    for case in cases:
        tap = taps[case.label]
        ex = tap.trace.exchanges
        sent = sum(len(e.command) for e in ex)
        received = sum(len(e.response or b"") for e in ex)
        air = air_of(ex)
        card_ms = micropython_card_ms(case, tap, runs=10)
        full = air.with_fdt_ms + (card_ms or 0.0)
        card_text = f"{card_ms:8.2f}" if card_ms is not None else f"{'n/a':>8}"
        print(f"   {case.label:24} {tap.apdus:5} {sent:8} {received:8} {tap.bytes_exchanged:7} {air.frames:6} "
              f"{air.air_ms:7.2f} {air.with_fdt_ms:8.2f} {card_text} {full:8.2f} {full / BUDGET_MS:9.1%}")
    print(f"   typical exchanges of real cards ({TYPICAL_COMMAND}-byte C-APDUs, the rest split evenly among R-APDUs):")
    for what, apdus, total in TYPICAL:
        air = typical_air(apdus, total)
        print(f"   {what:24} {apdus:5} {'':8} {'':8} {total:7} {air.frames:6} {air.air_ms:7.2f} "
              f"{air.with_fdt_ms:8.2f} {'':8} {air.with_fdt_ms:8.2f} {air.with_fdt_ms / BUDGET_MS:9.1%}")


if __name__ == "__main__":
    main()
