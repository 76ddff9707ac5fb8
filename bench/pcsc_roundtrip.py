"""What the emvkit stack adds to a PC/SC round trip: raw pyscard beside the pcsc: transport and Channel.

Starts a private pcscd (emvkit.terminal.emulator.pcscd) and the real emvkit Visa card
behind vpcd in a process of its own (``emvkit emulate --vpcd``: in a thread
of this process the card would compete with the terminal for the GIL and blur
the comparison), points this process's libpcsclite at the daemon
(PCSCLITE_CSOCK_NAME, before the first PC/SC call), then times SELECT PPSE
through four paths on the same card, taking turns call by call so that drift
hits all of them alike:

- raw: ``smartcard.scard.SCardTransmit`` on a handle of its own, the APDU a prepared list;
- transport: ``PcscTransport.transmit(bytes)``;
- channel: ``Channel(PcscTransport).transmit(bytes)`` (parsing, 61xx/6Cxx handling), the stack's API;
- traced: ``Channel(TraceTransport(PcscTransport))``, as ``run_transaction`` uses it.

Goal: the channel path's median adds less than 20% to raw's.

    .venv/bin/python bench/pcsc_roundtrip.py [--count 2000]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emvkit.terminal.apdu import Channel
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.emulator.pcscd import PrivatePcscd
from emvkit.terminal.transport.pcsc import PcscOptions, PcscTransport, wait_for_card
from emvkit.terminal.transport.trace import TraceTransport

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
GOAL_OVERHEAD = 0.20


def summary(samples: list[float]) -> tuple[float, float]:
    """Median and 95th percentile, in milliseconds."""
    return statistics.median(samples), statistics.quantiles(samples, n=20, method="inclusive")[18]


def measure(paths: dict[str, Callable[[], None]], count: int, warmup: int = 50) -> dict[str, list[float]]:
    """Milliseconds per call for each path, ``count`` calls each.

    The paths take turns call by call (A B C D, then B C D A, ...), so that the
    scheduling state of the moment (which core each of the three processes
    runs on changes the round trip by 2-3x here) hits all of them alike.
    """
    for call in paths.values():
        for _ in range(warmup):
            call()
    names = list(paths)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for i in range(count):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            call = paths[name]
            started = clock()
            call()
            samples[name].append((clock() - started) * 1000)
    return samples


def paths_through_pcscd(reader_name: str) -> tuple[dict[str, Callable[[], None]], Callable[[], None]]:
    """The four ways to send SELECT PPSE, and a function that closes what they opened."""
    from smartcard import scard

    transport = PcscTransport(PcscOptions(reader=reader_name))
    transport.open()
    channel = Channel(transport)
    traced = Channel(TraceTransport(transport))
    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    rv, handle, protocol = scard.SCardConnect(context, reader_name, scard.SCARD_SHARE_SHARED,
                                              scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    if rv != scard.SCARD_S_SUCCESS:
        raise RuntimeError(f"SCardConnect: {scard.SCardGetErrorMessage(rv)}")
    apdu = list(SELECT_PPSE)

    def raw() -> None:
        rv, response = scard.SCardTransmit(handle, protocol, apdu)
        if rv != scard.SCARD_S_SUCCESS or response[-2:] != [0x90, 0x00]:
            raise RuntimeError(f"SCardTransmit: {scard.SCardGetErrorMessage(rv)}")

    def through_transport() -> None:
        if transport.transmit(SELECT_PPSE)[-2:] != b"\x90\x00":
            raise RuntimeError("SELECT PPSE failed")

    def through_channel() -> None:
        if channel.transmit(SELECT_PPSE).sw != 0x9000:
            raise RuntimeError("SELECT PPSE failed")

    def through_trace() -> None:
        if traced.transmit(SELECT_PPSE).sw != 0x9000:
            raise RuntimeError("SELECT PPSE failed")

    def close() -> None:
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)
        transport.close()

    paths = {"raw": raw, "transport": through_transport, "channel": through_channel, "traced": through_trace}
    return paths, close


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="SELECTs to time per path (default 2000)")
    args = parser.parse_args(argv)

    card = open_card("visa")

    def card_in_process() -> None:
        card.process(SELECT_PPSE)

    in_process = measure({"card": card_in_process}, args.count)["card"]
    with PrivatePcscd() as pcscd:
        os.environ.update(pcscd.env)  # before this process's first PC/SC call
        emulator = subprocess.Popen(
            [sys.executable, "-m", "terminal", "emulate", "--profile", "visa",
             "--vpcd", f"127.0.0.1:{pcscd.vpcd_port}"],
            stderr=subprocess.DEVNULL,
        )
        try:
            if wait_for_card(pcscd.reader_name, 10) is None:
                print("pcscd saw no card within 10 s", file=sys.stderr)
                return 1
            paths, close = paths_through_pcscd(pcscd.reader_name)
            try:
                samples = measure(paths, args.count)
            finally:
                close()  # before pcscd stops
        finally:
            emulator.send_signal(signal.SIGTERM)
            try:
                emulator.wait(5)
            except subprocess.TimeoutExpired:
                emulator.kill()
                emulator.wait()

    raw_median, _ = summary(samples["raw"])
    print(f"PC/SC round trip, {args.count} x SELECT PPSE per path, paths interleaved call by call "
          "(private pcscd, vpcd, the emvkit Visa card in its own process)")
    labels = {
        "raw": "pyscard SCardTransmit (baseline)",
        "transport": "PcscTransport.transmit",
        "channel": "Channel(PcscTransport).transmit",
        "traced": "Channel(TraceTransport(PcscTransport))",
    }
    for name, label in labels.items():
        median, p95 = summary(samples[name])
        added = 1000 * (median - raw_median)
        versus = "" if name == "raw" else f"  {100 * (median / raw_median - 1):+6.1f}% ({added:+.1f} us) vs raw"
        print(f"  {label:40} median {median:.4f} ms  p95 {p95:.4f} ms{versus}")
    median, p95 = summary(in_process)
    print(f"  {'card.process() in-process':40} median {median:.4f} ms  p95 {p95:.4f} ms")
    overhead = summary(samples["channel"])[0] / raw_median - 1
    verdict = "met" if overhead < GOAL_OVERHEAD else "MISSED"
    print(f"  goal: the stack (channel) adds < {GOAL_OVERHEAD:.0%} to raw: {overhead:+.1%}, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
