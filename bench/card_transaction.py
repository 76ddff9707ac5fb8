"""Card-side time per transaction, per scheme, on CPython and MicroPython.

Replays each scheme's full transaction (PPSE, SELECT, GPO, every record of
the AFL, GENERATE AC where the kernel asks for one) on the card application
and prints the median time and the share spent in RSA, first on CPython,
then on the MicroPython unix port (the token's interpreter).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emvkit.firmware import tlv  # noqa: E402
from emvkit.terminal.perso.builtin import profile_path  # noqa: E402
from emvkit.terminal.transport import open_transport  # noqa: E402
from emvkit.terminal.transport.mpy import find_micropython  # noqa: E402
from tests.cardutil import PPSE_SELECT, generate_ac, gpo, read_record, select, terminal_data  # noqa: E402

CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403")
CASES = [
    ("visa", "A0000000031010", "qVSDC offline, fDDA"),
    ("mastercard", "A0000000041010", "GENERATE AC TC with CDA"),
    ("unionpay", "A000000333010101", "qPBOC offline, fDDA v01"),
    ("wearable", "A0000000031010", "qVSDC token, fDDA"),
    ("unionpay-sm", "A000000333010101", "qPBOC offline, SM2 fDDA, SM4"),
]


def commands_for(name: str, aid: str) -> list[bytes]:
    """The C-APDUs of one transaction, as a kernel would send them."""
    out = [PPSE_SELECT, select(bytes.fromhex(aid))]
    with open_transport(f"emu:{name}?rng=counting") as card:
        card.transmit(out[0])
        fci = tlv.decode(card.transmit(out[1])[:-2])
        pdol = tlv.find_value(fci, 0x9F38, b"") or b""
        # DF69 01: the terminal supports the SM suite (only unionpay-sm asks).
        out.append(gpo(tlv.build_dol(pdol, {**terminal_data(), 0xDF69: b"\x01"})))
        response = tlv.flatten(tlv.decode(card.transmit(out[-1])[:-2]))
    afl = response[0x94]
    for i in range(0, len(afl), 4):
        out += [read_record(afl[i] >> 3, n) for n in range(afl[i + 1], afl[i + 2] + 1)]
    if 0x9F26 not in response:
        out.append(generate_ac(0x50, tlv.build_dol(CDOL1, terminal_data())))  # TC with CDA
    return out


def run_loop(interpreter: list[str], profile: Path, commands: list[bytes], runs: int) -> dict[str, list[float]]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([c.hex() for c in commands], f)
    try:
        env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT}", PYTHONPATH=str(ROOT))
        args = [*interpreter, str(ROOT / "bench/portable/card_loop.py"), str(profile), f.name, str(runs)]
        done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    finally:
        os.unlink(f.name)
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "50"))
    print(f"card-side time per transaction, median of {runs} runs (RSA share in brackets)")
    print(f"{'card':11} {'transaction':28} {'APDUs':>5} {'CPython ms':>16} {'MicroPython ms':>18}")
    for name, aid, what in CASES:
        commands = commands_for(name, aid)
        cells = []
        for interpreter in ([sys.executable], [find_micropython()]):
            r = run_loop(interpreter, profile_path(name), commands, runs)
            total, rsa = statistics.median(r["total_ms"]), statistics.median(r["rsa_ms"])
            cells.append(f"{total:7.2f} ({rsa / total:4.0%})")
        print(f"{name:11} {what:28} {len(commands):5} {cells[0]:>16} {cells[1]:>18}")


if __name__ == "__main__":
    main()
