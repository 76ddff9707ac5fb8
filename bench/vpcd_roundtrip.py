"""APDU round trip through PC/SC: pyscard -> pcscd -> vpcd -> VpcdBridge -> a trivial card.

Starts a private pcscd (emvkit.terminal.emulator.pcscd), runs the bridge in a thread
of this process, points this process's libpcsclite at the private daemon
(PCSCLITE_CSOCK_NAME, set before the first PC/SC call) and times N SELECT PPSE
commands, beside the same card's ``process()`` called in-process. Goal: median
under 0.3 ms through pcscd.

    .venv/bin/python bench/vpcd_roundtrip.py [--count 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emvkit.terminal.emulator.pcscd import PrivatePcscd
from emvkit.terminal.emulator.vpcd import VpcdBridge

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
PPSE_FCI = bytes.fromhex("6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101")
GOAL_MEDIAN_MS = 0.3


class TrivialCard:
    """Answers SELECT PPSE with a fixed FCI and 9000, anything else with 6D00."""

    def __init__(self) -> None:
        self.powered_on = threading.Event()

    def power_on(self) -> None:
        self.powered_on.set()

    def process(self, command_apdu: bytes) -> bytes:
        if command_apdu == SELECT_PPSE:
            return PPSE_FCI + b"\x90\x00"
        return b"\x6d\x00"


def time_calls(call: Callable[[], object], count: int, warmup: int = 20) -> list[float]:
    """Milliseconds per call, ``count`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18]
    return f"median {statistics.median(samples):.4f} ms, p95 {p95:.4f} ms"


def measure_through_pcscd(card: TrivialCard, reader_name: str, count: int) -> tuple[list[float], list[float]]:
    """Time SELECT PPSE with the thin SWIG layer, then with pyscard's object API, on one card handle."""
    from smartcard import scard
    from smartcard.System import readers

    reader = next(r for r in readers() if str(r) == reader_name)
    connection = reader.createConnection()
    try:
        connection.connect()
        apdu, answer = list(SELECT_PPSE), [*PPSE_FCI, 0x90, 0x00]
        handle, protocol = connection.component.hcard, connection.component.getProtocol()
        pci = scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0

        def transmit_low_level() -> None:
            status, response = scard.SCardTransmit(handle, pci, apdu)
            if status != scard.SCARD_S_SUCCESS or response != answer:
                raise RuntimeError(f"SCardTransmit: {scard.SCardGetErrorMessage(status)} {response}")

        def transmit_high_level() -> None:
            data, sw1, sw2 = connection.transmit(apdu)
            if [*data, sw1, sw2] != answer:
                raise RuntimeError(f"unexpected answer {data} {sw1:02X}{sw2:02X}")

        return time_calls(transmit_low_level, count), time_calls(transmit_high_level, count)
    finally:
        connection.release()  # disconnects too; before pcscd stops, or __del__ complains


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="SELECTs to time (default 500)")
    args = parser.parse_args(argv)

    card = TrivialCard()
    with PrivatePcscd() as pcscd:
        os.environ.update(pcscd.env)  # before this process's first PC/SC call
        bridge = VpcdBridge(card, port=pcscd.vpcd_port)
        thread = threading.Thread(target=bridge.run, name="vpcd-bridge", daemon=True)
        thread.start()
        try:
            if not card.powered_on.wait(5):
                print("pcscd did not power the virtual card within 5 s", file=sys.stderr)
                return 1
            low_level, high_level = measure_through_pcscd(card, pcscd.reader_name, args.count)
        finally:
            bridge.close()
            thread.join(2)
    in_process = time_calls(lambda: card.process(SELECT_PPSE), args.count)

    median = statistics.median(low_level)
    print(f"vpcd round trip, {args.count} x SELECT PPSE (private pcscd, bridge in a thread)")
    print(f"  pyscard scard.SCardTransmit -> pcscd -> vpcd -> bridge -> card: {summary(low_level)}")
    print(f"  pyscard CardConnection.transmit, same path:                    {summary(high_level)}")
    print(f"  card.process() in-process:                                     {summary(in_process)}")
    verdict = "met" if median < GOAL_MEDIAN_MS else "MISSED"
    print(f"  goal: median < {GOAL_MEDIAN_MS} ms through pcscd: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
