"""APDU round trip over nfcpy's udp RF link: raw nfcpy beside the emvkit stack, in one session.

An :class:`emvkit.terminal.emulator.nfc_listener.NfcListener` serves a trivial card
(SELECT PPSE -> a fixed FCI) in a child process on a free UDP port (in a
thread of this process the two would share the GIL, and the figures swing
between ~40 and ~120 us with how the threads land on cores);
``nfc:udp:127.0.0.1:PORT`` activates it (RATS/ATS, ISO-DEP), then N SELECT
PPSE commands are timed two ways, alternating command by command so that both
see the same machine state:

(a) raw nfcpy: ``tag.transceive(apdu)`` on the transport's ``Type4ATag``;
(b) the emvkit stack: ``Channel(transport).transmit(CommandAPDU)`` (APDU
    encoding and parsing, status-word handling, the transport's error
    mapping) over the same tag.

Both include the listener's work (ISO-DEP engine and card) and nfcpy's udp
driver on both sides. Goal: (b) adds under 20% to (a) at the median.

    .venv/bin/python bench/nfc_roundtrip.py [--count 2000] [--frame 256]

``--frame 32`` makes the card chain its 39-byte R-APDU over two I-blocks
(an R(ACK) and a second round trip per APDU).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import threading
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emvkit.terminal.apdu import Channel, CommandAPDU
from emvkit.terminal.emulator.nfc_listener import NfcListener
from emvkit.terminal.endpoints import free_udp_port
from emvkit.terminal.transport.nfc import NfcTransport

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
PPSE_FCI = bytes.fromhex("6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101")
ANSWER = PPSE_FCI + b"\x90\x00"
GOAL_RATIO = 1.20


class TrivialCard:
    """Answers SELECT PPSE with a fixed FCI and 9000, anything else with 6D00."""

    def process(self, command_apdu: bytes) -> bytes:
        return ANSWER if command_apdu == SELECT_PPSE else b"\x6d\x00"


def serve(port: int, frame: int, ready: EventType, stop: EventType) -> None:
    """The child process: the listener in a thread, until ``stop``."""
    listener = NfcListener(TrivialCard(), f"udp:127.0.0.1:{port}?frame={frame}", idle_timeout=60)
    done = threading.Event()
    thread = threading.Thread(target=listener.run, args=(done,), name="nfc-listener")
    thread.start()
    if listener.wait_listening(5):
        ready.set()
    stop.wait(120)
    done.set()
    thread.join(5)


def summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=20, method="inclusive")[18]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=2000, help="APDUs per way (default 2000)")
    parser.add_argument("--frame", type=int, default=256, help="largest frame the card sends (default 256)")
    args = parser.parse_args()

    port = free_udp_port()
    context = multiprocessing.get_context("fork")
    ready, stop = context.Event(), context.Event()
    child = context.Process(target=serve, args=(port, args.frame, ready, stop), name="nfc-listener")
    child.start()
    raw_ms: list[float] = []
    stack_ms: list[float] = []
    try:
        if not ready.wait(10):
            print("listener did not start", file=sys.stderr)
            return 1
        transport = NfcTransport(f"udp:127.0.0.1:{port}", url=f"nfc:udp:127.0.0.1:{port}")
        with transport:
            tag = transport.tag
            channel = Channel(transport)
            command = CommandAPDU.from_bytes(SELECT_PPSE)
            clock = time.perf_counter
            for i in range(args.count + 100):  # the first 100 warm up
                started = clock()
                raw = bytes(tag.transceive(SELECT_PPSE))
                between = clock()
                stack = channel.transmit(command)
                ended = clock()
                if raw != ANSWER or stack.data != PPSE_FCI:
                    raise SystemExit("wrong answer")
                if i >= 100:
                    raw_ms.append((between - started) * 1000)
                    stack_ms.append((ended - between) * 1000)
    finally:
        stop.set()
        child.join(10)
        if child.is_alive():
            child.kill()

    raw_median, raw_p95 = summary(raw_ms)
    stack_median, stack_p95 = summary(stack_ms)
    ratio = stack_median / raw_median
    blocks = -(-len(ANSWER) // (min(args.frame, 256) - 3))
    print(f"ISO-DEP over nfcpy udp: SELECT PPSE ({len(SELECT_PPSE)} bytes) -> {len(ANSWER)}-byte R-APDU in "
          f"{blocks} I-block(s) (card frames <= {args.frame} bytes), {len(raw_ms)} APDUs per way")
    print(f"(a) raw nfcpy tag.transceive   median {raw_median:.4f} ms   p95 {raw_p95:.4f} ms")
    print(f"(b) emvkit Channel + nfc:udp    median {stack_median:.4f} ms   p95 {stack_p95:.4f} ms")
    print(f"stack / raw: median {ratio:.3f} (+{(ratio - 1) * 100:.1f}%), p95 {stack_p95 / raw_p95:.3f}; "
          f"goal < {GOAL_RATIO:.2f}: {'met' if ratio < GOAL_RATIO else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
