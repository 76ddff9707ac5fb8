"""TLV decode throughput: emvkit beside pyemv and python-emv on one corpus.

Run with ``make bench`` (which builds .venv-bench holding pyemv and python-emv,
whose dependency pins clash with emvkit's). Prints objects/s and MB/s per
parser over the inputs each parser decodes, best of several rounds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tlv_corpus import corpus
from emvkit.firmware import tlv


def count_objects(nodes: list[tlv.TLV]) -> int:
    return sum(1 + (count_objects(n.children) if n.children is not None else 0) for n in nodes)


def measure(decode: Callable[[bytes], object], inputs: list[bytes], rounds: int = 7, min_time: float = 0.3) -> float:
    """Best seconds per pass over all inputs."""
    best = float("inf")
    for _ in range(rounds):
        passes = 0
        start = time.perf_counter()
        while True:
            for data in inputs:
                decode(data)
            passes += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / passes)
    return best


def parsers() -> dict[str, Callable[[bytes], object]]:
    out: dict[str, Callable[[bytes], object]] = {"emvkit emvkit.firmware.tlv.decode": tlv.decode}
    try:
        import pyemv.tlv

        out["pyemv.tlv.decode"] = pyemv.tlv.decode
    except ImportError:
        print("pyemv not installed: skipped (run `make bench`)")
    try:
        from emv.protocol.structures import TLV as EmvTLV

        out["python-emv TLV.unmarshal"] = EmvTLV.unmarshal
    except ImportError:
        print("python-emv not installed: skipped (run `make bench`)")
    return out


def main() -> None:
    items = corpus()
    inputs = [data for _, data in items]
    objects = sum(count_objects(tlv.decode(d)) for d in inputs)
    size = sum(len(d) for d in inputs)
    print(f"corpus: {len(inputs)} card responses, {size} bytes, {objects} data objects")
    print(f"{'parser':32} {'objects/s':>12} {'MB/s':>8} {'us/response':>12}")
    for name, decode in parsers().items():
        accepted = []
        for data in inputs:
            try:
                decode(data)
                accepted.append(data)
            except Exception:  # a rival parser failing on valid input
                pass
        secs = measure(decode, accepted)
        n_obj = sum(count_objects(tlv.decode(d)) for d in accepted)
        n_bytes = sum(len(d) for d in accepted)
        note = "" if len(accepted) == len(inputs) else f"  (parsed {len(accepted)}/{len(inputs)})"
        print(f"{name:32} {n_obj / secs:12,.0f} {n_bytes / secs / 1e6:8.2f} {secs / len(accepted) * 1e6:12.2f}{note}")


if __name__ == "__main__":
    main()
