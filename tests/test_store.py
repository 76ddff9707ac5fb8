"""The portable store (firmware/store.py) beyond tests/portable/store_cases.py.

store_cases.py runs on CPython and under the MicroPython unix port through
tests/test_portable.py: power cuts at every byte of a Visa and a Mastercard
transaction and at 1,000 random points of a run, torn writes, damaged slots,
the CRC-32 fallback, bad content. Here: that those cases replay what the
kernel really sends, the littlefs power cuts (MicroPython only), and the size
of a full card state.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys

import pytest

from emvkit.firmware import tlv
from emvkit.firmware.payapp.profile import Profile
from emvkit.firmware.payapp.rng import CountingRandom
from emvkit.firmware.payapp.state import CardState
from emvkit.firmware.store import STATE_SLOT_SIZE, encode_record, encode_state
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.perso.builtin import load_builtin
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.trace import TraceTransport
from tests.conftest import ROOT, venv_tool

PORTABLE = ROOT / "tests" / "portable"
sys.path.insert(0, str(PORTABLE))

import store_cases  # noqa: E402  (tests/portable, on sys.path above)

# --- the transactions the portable power-cut cases replay ---


@pytest.mark.parametrize("name", ["visa", "mastercard"])
def test_the_portable_cases_replay_what_the_kernel_sends(name: str) -> None:
    with TraceTransport(open_transport(f"emu:{name}?rng=counting")) as card:
        request = TransactionRequest(amount=1234, date=datetime.date(2026, 1, 2), time=datetime.time(12),
                                     random=CountingRandom())
        run_transaction(card, load_config(), request)
        sent = [e.command.hex().upper() for e in card.exchanges]
    assert sent == store_cases._TRANSACTIONS[name]


# --- littlefs under the MicroPython unix port ---


def test_power_cuts_on_littlefs_under_micropython() -> None:
    module = PORTABLE / "littlefs_store.py"
    cases = len(re.findall(r"^def test_", module.read_text(), re.MULTILINE))
    env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT}:{PORTABLE}")
    result = subprocess.run([venv_tool("micropython"), str(PORTABLE / "run.py"), "littlefs_store"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=PORTABLE)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1] == f"{cases} passed, 0 failed", result.stdout
    assert cases >= 3



# --- sizes ---


@pytest.mark.parametrize("name", ["visa", "mastercard", "unionpay", "wearable"])
def test_a_full_state_fits_a_quarter_of_a_state_slot(name: str) -> None:
    # The largest state a built-in card can reach: every counter at its widest, the log full.
    app = Profile(load_builtin(name)).applications[0]
    state = CardState(atc=0xFFFF, last_online_atc=0xFFFF, consecutive_offline=0xFFFFFFFF,
                      offline_amount=999999999999, pin_try_counter=255,
                      log=[bytes(tlv.dol_length(app.log_format))] * app.log_records)
    size = len(encode_record(0xFFFFFFFF, encode_state(state)))
    assert app.log_records == 10 and size < STATE_SLOT_SIZE // 4, size
