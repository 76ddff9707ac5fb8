"""APDU round trip over a pty with pyserial: the emvkit serial stack against two raw baselines, same run.

Every case puts the device on a pty master (its stdin/stdout) and opens the
slave, /dev/pts/N, with pyserial, as tests/test_serial.py does. A trivial card
answers a fixed R-APDU per C-APDU, so the card itself costs nothing and what is
measured is the link. For two exchanges (SELECT PPSE, 20 bytes out / 39 back;
a READ RECORD, 5 out / 188 back), three paths, timed in turn, one call each:

* raw framed exchange (the baseline of the goal, like raw pyscard and raw
  nfcpy on the other paths): the host writes the request's frame bytes,
  encoded beforehand, through pyserial and reads the answer up to its closing
  delimiter (the answer is known, so its length is: one pyserial read), with
  no emvkit layer on the host, against the SAME device as the stack;
* emvkit stack: ``Channel(serial: transport).transmit(CommandAPDU)``
  (framing, CRC, sequence numbers, retries) to that device;
* raw unframed echo: a peer on a pty of its own reads the C-APDU's exact byte
  count and writes the R-APDU back, no framing on either side; the host writes
  and reads those bytes through pyserial. What the framing itself costs is the
  stack against this.

The devices: ``firmware/devlink.py`` under MicroPython on a non-blocking pty
master (it reads what has arrived, one read a frame), the same on a blocking
master (it reads byte by byte while poll says more is there, as on a board's
USB CDC stdin), and the host emulator (``emvkit.terminal.emulator.serial_server.
PtyLinkServer``) under CPython; the raw echo peer runs under the same
interpreter as the device.

The paths take turns call by call because a pty round trip on this kind of
machine is bimodal (about 10-20 us or about 80 us, depending on how the kernel
schedules the pty's buffer work): timed in separate blocks, they would be
compared across modes.

Then a full Visa transaction (qVSDC with fDDA) over ``serial:`` to the firmware
with the real card, beside the same C-APDUs replayed on the card in-process
under MicroPython (``bench/portable/card_loop.py``): the difference is the
link's share. Goal: the stack adds under 20% to the raw framed exchange.

    .venv/bin/python bench/serial_roundtrip.py [--count 500] [--taps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402  (pyserial)

from emvkit.firmware import link  # noqa: E402
from emvkit.terminal.apdu import Channel, CommandAPDU  # noqa: E402
from emvkit.terminal.config_files import load_config  # noqa: E402
from emvkit.terminal.kernel.context import TransactionRequest  # noqa: E402
from emvkit.terminal.perso.builtin import profile_path  # noqa: E402
from emvkit.terminal.session import run_transaction  # noqa: E402
from emvkit.terminal.transport import open_transport  # noqa: E402
from emvkit.terminal.transport.mpy import find_micropython  # noqa: E402
from emvkit.terminal.transport.serial import SerialTransport  # noqa: E402

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
PPSE_FCI = bytes.fromhex("6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101") + b"\x90\x00"
READ_RECORD = bytes.fromhex("00B2021400")
RECORD = bytes.fromhex("70") + bytes((0x81, 183)) + bytes((i * 7 + 1) & 0xFF for i in range(183)) + b"\x90\x00"
EXCHANGES = [("SELECT PPSE", SELECT_PPSE, PPSE_FCI), ("READ RECORD", READ_RECORD, RECORD)]
GOAL = 1.20

# The raw echo peer: read the C-APDU's byte count, write the R-APDU; CPython and MicroPython alike.
# (The R-APDU comes in a file: the MicroPython unix port dies with "FATAL: uncaught NLR" when an
# argument after -c is a few hundred characters long.)
RAW_PEER = """
import sys
n = int(sys.argv[1])
with open(sys.argv[2]) as f:
    resp = bytes.fromhex(f.read())
inp = sys.stdin.buffer
out = sys.stdout.buffer
flush = getattr(out, "flush", None)
while True:
    try:
        data = inp.read(n)
    except OSError:
        break
    if not data or len(data) < n:
        break
    out.write(resp)
    if flush is not None:
        try:
            flush()
        except OSError:  # MicroPython: fsync() on a tty; its writes are unbuffered
            flush = None
"""

# The firmware's dev link with a trivial card, under MicroPython.
STACK_PEER = """
import sys
import json
from emvkit.firmware import devlink
with open(sys.argv[1]) as f:
    table = dict((bytes.fromhex(k), bytes.fromhex(v)) for k, v in json.load(f).items())
class Card:
    def process(self, apdu):
        return table.get(bytes(apdu), b"\\x6d\\x00")
devlink.run(sys.stdin.buffer, sys.stdout.buffer, Card())
"""

# The firmware's dev link with the real card; RESET puts the card back to its personalised state,
# so every transaction is the same one (fresh offline counters, as card_loop.py replays it).
TRANSACTION_PEER = """
import sys
import json
from emvkit.firmware import devlink
from emvkit.firmware.payapp.card import Card
from emvkit.firmware.payapp.rng import CountingRandom
from emvkit.firmware.payapp.state import MemoryStore
with open(sys.argv[1]) as f:
    card = Card(json.load(f), rng=CountingRandom())
class FreshCard:
    profile = card.profile
    def process(self, apdu):
        return card.process(apdu)
    def power_on(self):
        card.power_on()
    def reset(self):
        card.store = MemoryStore()
        card.reset()
devlink.run(sys.stdin.buffer, sys.stdout.buffer, FreshCard())
"""

# The host emulator with the same trivial card, under CPython; stops when stdin closes.
SERVER_PEER = """
import json, sys, threading
from emvkit.terminal.emulator.serial_server import PtyLinkServer
with open(sys.argv[1]) as f:
    table = {bytes.fromhex(k): bytes.fromhex(v) for k, v in json.load(f).items()}
class Card:
    def process(self, apdu):
        return table.get(bytes(apdu), b"\\x6d\\x00")
server = PtyLinkServer(Card())
server.open()
print(server.path, flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), server.close()), daemon=True).start()
server.run()
"""

Exchange = Callable[[], None]


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def env() -> dict[str, str]:
    return dict(os.environ, MICROPYPATH=f".frozen:{ROOT}", PYTHONPATH=str(ROOT))


@contextmanager
def peer_on_pty(args: list[str], *, blocking: bool = True) -> Iterator[str]:
    """Run ``args`` with a pty master as stdin/stdout (non-blocking if asked); yield the slave's path."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, blocking)
    proc = subprocess.Popen(args, stdin=master, stdout=master, env=env(), cwd=ROOT)
    os.close(master)
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)  # the peer reads EIO once pyserial has closed too, and ends
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def host_server(table_file: str) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER_PEER, table_file], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@contextmanager
def raw_echo(interpreter: str, command: bytes, response: bytes) -> Iterator[Exchange]:
    """The raw echo peer on a pty of its own; yields one unframed exchange through pyserial."""
    with tempfile.NamedTemporaryFile("w", suffix=".hex") as answer:
        answer.write(response.hex())
        answer.flush()
        with peer_on_pty([interpreter, "-c", RAW_PEER, str(len(command)), answer.name]) as path:
            port = serial.serial_for_url(path, baudrate=115200, timeout=2)

            def exchange() -> None:
                port.write(command)
                if port.read(len(response)) != response:
                    raise RuntimeError("raw echo: wrong answer")

            try:
                yield exchange
            finally:
                port.close()


@contextmanager
def raw_framed(path: str, command: bytes, response: bytes) -> Iterator[Exchange]:
    """Frames encoded beforehand, through pyserial on ``path``, no emvkit layer; yields one exchange.

    Its sequence numbers run 128 ahead of the stack's (which take turns with it on the same
    device), so the device never takes one of its requests for a resend of the stack's last.
    """
    requests = [link.encode_frame(link.APDU_COMMAND, seq, command) for seq in range(256)]
    answers = [link.encode_frame(link.APDU_RESPONSE, seq, response) for seq in range(256)]
    port = serial.serial_for_url(path, baudrate=115200, timeout=2)
    seq = [128]

    def exchange() -> None:
        s = seq[0] = (seq[0] + 1) & 0xFF
        answer = answers[s]
        port.write(requests[s])
        if port.read(len(answer)) != answer:
            raise RuntimeError("raw framed exchange: wrong answer")

    try:
        yield exchange
    finally:
        port.close()


@contextmanager
def stack_channel(path: str, command: bytes, response: bytes) -> Iterator[Exchange]:
    """``Channel`` over the ``serial:`` transport on ``path``; yields one exchange through it."""
    transport = open_transport(f"serial:{path}")
    channel = Channel(transport)
    apdu = CommandAPDU.from_bytes(command)
    data, sw = response[:-2], (response[-2] << 8) | response[-1]

    def exchange() -> None:
        answer = channel.transmit(apdu)
        if answer.data != data or answer.sw != sw:
            raise RuntimeError("serial stack: wrong answer")

    try:
        yield exchange
    finally:
        transport.close()


def in_turn(paths: Sequence[Exchange], count: int, warmup: int = 50) -> list[list[float]]:
    """Milliseconds per call of each path, the paths taking turns call by call (the pty is bimodal).

    The order rotates from round to round, so that every path comes after every other one as often.
    """
    for _ in range(warmup):
        for path in paths:
            path()
    samples: list[list[float]] = [[] for _ in paths]
    clock = time.perf_counter
    order = list(range(len(paths)))
    for i in range(count):
        shift = i % len(order)
        for k in order[shift:] + order[:shift]:
            started = clock()
            paths[k]()
            samples[k].append((clock() - started) * 1000)
    return samples


def link_cases(count: int) -> None:
    micropython = find_micropython()
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "table.json"
        table.write_text(json.dumps({c.hex(): r.hex() for _, c, r in EXCHANGES}))
        script = Path(tmp) / "stack_peer.py"
        script.write_text(STACK_PEER)
        print(f"trivial card, {count} round trips per path, the three paths in turn (ms per APDU):")
        print("  echo = raw unframed echo, framed = raw framed exchange (pyserial, no emvkit), "
              "stack = Channel + serial: transport")
        print(f"  {'exchange':12} {'device':26} {'echo':>7} {'framed':>7} {'p95':>7} {'stack':>7} {'p95':>7}"
              f" {'stack/framed':>12} {'added':>7} {'stack/echo':>10}")
        devices: list[tuple[str, str, Callable[[ExitStack], str]]] = [
            ("MicroPython firmware", micropython,
             lambda stack: stack.enter_context(peer_on_pty([micropython, str(script), str(table)], blocking=False))),
            ("  same, blocking stdin", micropython,
             lambda stack: stack.enter_context(peer_on_pty([micropython, str(script), str(table)]))),
            ("CPython host server", sys.executable, lambda stack: stack.enter_context(host_server(str(table)))),
        ]
        for name, command, response in EXCHANGES:
            for device, interpreter, start in devices:
                with ExitStack() as stack:
                    echo = stack.enter_context(raw_echo(interpreter, command, response))
                    path = start(stack)
                    framed = stack.enter_context(raw_framed(path, command, response))
                    channel = stack.enter_context(stack_channel(path, command, response))
                    echo_ms, framed_ms, stack_ms = in_turn([echo, framed, channel], count)
                echo_med, framed_med, stack_med = (statistics.median(s) for s in (echo_ms, framed_ms, stack_ms))
                ratio = stack_med / framed_med
                verdict = "" if ratio < GOAL else "  (goal < 1.20 missed)"
                print(f"  {name:12} {device:26} {echo_med:7.4f} {framed_med:7.4f} {p95(framed_ms):7.4f} "
                      f"{stack_med:7.4f} {p95(stack_ms):7.4f} {ratio:12.2f} {stack_med - framed_med:7.4f} "
                      f"{stack_med / echo_med:10.2f}{verdict}")


def transaction_case(taps: int) -> None:
    micropython = find_micropython()
    config = load_config()
    profile = profile_path("visa")
    per_tap: list[float] = []  # ms inside transmit() per transaction
    apdus = 0
    commands: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "transaction_peer.py"
        script.write_text(TRANSACTION_PEER)
        with peer_on_pty([micropython, str(script), str(profile)], blocking=False) as path:
            transport = open_transport(f"serial:{path}")
            assert isinstance(transport, SerialTransport)
            try:
                for i in range(taps + 3):
                    transport.reset()
                    tap = run_transaction(transport, config, TransactionRequest(amount=1234))
                    if tap.result.outcome.outcome.name != "APPROVED":
                        raise RuntimeError(f"transaction {i}: {tap.result.outcome.outcome}")
                    if i < 3:
                        continue  # warm-up
                    per_tap.append(sum(e.elapsed_ms for e in tap.trace.exchanges))
                    apdus = len(tap.trace.exchanges)
                    commands = [e.command for e in tap.trace.exchanges]
                retransmissions = transport.retransmissions
            finally:
                transport.close()

    # The same C-APDUs on the card alone, in-process under MicroPython.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([c.hex() for c in commands], f)
    try:
        done = subprocess.run([micropython, str(ROOT / "bench/portable/card_loop.py"), str(profile), f.name,
                               str(taps)], capture_output=True, text=True, env=env(), check=True)
    finally:
        os.unlink(f.name)
    card_ms = json.loads(done.stdout)["total_ms"]

    serial_median = statistics.median(per_tap)
    card_median = statistics.median(card_ms)
    link_ms = serial_median - card_median
    print(f"\nVisa qVSDC + fDDA, {apdus} APDUs, {taps} transactions over serial: -> firmware/devlink.py (MicroPython)")
    print(f"  time in transmit() per transaction: median {serial_median:.3f} ms, p95 {p95(per_tap):.3f} ms")
    print(f"  the card alone (same C-APDUs, in-process, MicroPython): median {card_median:.3f} ms")
    print(f"  link share: {link_ms:.3f} ms per transaction, {link_ms / apdus:.4f} ms per APDU "
          f"({link_ms / serial_median:.0%} of the time); retransmissions: {retransmissions}")


# The device's work per APDU without any I/O: DevLink.receive (decode, dispatch, encode the answer).
DEVICE_COST = """
import sys, time
from emvkit.firmware import devlink, link
class Card:
    def process(self, apdu):
        return ANSWER
ANSWER = bytes.fromhex("6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A00000000310108701019000")
dev = devlink.DevLink(Card(), devlink.pseudo_atr())
dev.receive(link.encode_frame(link.POWER_ON, 0), lambda b: None)
cmd = bytes.fromhex("00A404000E325041592E5359532E444446303100")
frames = [link.encode_frame(link.APDU_COMMAND, i, cmd) for i in range(1, 256)]
try:
    now, diff = time.ticks_us, time.ticks_diff
except AttributeError:
    now, diff = (lambda: int(time.perf_counter() * 1e6)), (lambda a, b: a - b)
best = None
for _ in range(12):
    t0 = now()
    for f in frames:
        dev.receive(f, lambda b: None)
    us = diff(now(), t0) / len(frames)
    best = us if best is None or us < best else best
print(best)
"""


def codec_costs() -> None:
    """CPU per SELECT PPSE exchange, without I/O, on each side of the link (best of a few rounds)."""
    answer = PPSE_FCI
    count = 5000
    writer = link.FrameWriter()
    wire = link.encode_frame(link.APDU_RESPONSE, 1, answer)
    decoder = link.Decoder()
    encode_us = decode_us = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for i in range(count):
            writer.encode(link.APDU_COMMAND, i & 0xFF, SELECT_PPSE)
        encode_us = min(encode_us, (time.perf_counter() - started) / count * 1e6)
        started = time.perf_counter()
        for _ in range(count):
            decoder.feed(wire)
        decode_us = min(decode_us, (time.perf_counter() - started) / count * 1e6)
    device = {}
    for name, interpreter in (("MicroPython", find_micropython()), ("CPython", sys.executable)):
        done = subprocess.run([interpreter, "-c", DEVICE_COST], capture_output=True, text=True, env=env(), check=True)
        device[name] = float(done.stdout.strip())
    print("\nlink CPU per SELECT PPSE exchange, no I/O (us):")
    print(f"  host (CPython): encode the command {encode_us:.1f}, decode the answer {decode_us:.1f}")
    print(f"  device: decode + dispatch + encode the answer: MicroPython {device['MicroPython']:.1f}, "
          f"CPython {device['CPython']:.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="round trips per path and case (default 500)")
    parser.add_argument("--taps", type=int, default=30, help="full transactions (default 30)")
    args = parser.parse_args(argv)
    link_cases(args.count)
    codec_costs()
    transaction_case(args.taps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
