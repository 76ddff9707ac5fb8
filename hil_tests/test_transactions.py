"""Transactions that go the way they should: approvals, online requests,
declines, and every terminal limit at its boundary (EMV Contactless Book B
§3.1.1: floor limit exceeded when amount > floor; CVM required and
contactless not allowed when amount >= limit), for kernels 2, 3 and 7.

Default terminal (terminal/kernel/default_terminal.toml): floor 30.00, CVM
required limit 50.00, contactless transaction limit 150.00.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emvkit.hil.dut import KERNEL_CARDS, Dut, card_risk, transact
from emvkit.terminal.bitmaps import CTQ_BITS, TSI_BITS, TTQ_BITS, TVR_BITS, is_set
from emvkit.terminal.config_files import load_config
from emvkit.terminal.errors import TransportError
from emvkit.terminal.iso7816 import INS_GENERATE_AC
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.outcome import Cvm, Outcome
from emvkit.terminal.perso.builtin import load_builtin
from emvkit.terminal.session import Tap
from emvkit.terminal.transport.mpy import find_micropython

ALL_CARDS = [*KERNEL_CARDS, pytest.param("wearable", 3, id="wearable-k3")]
TC, ARQC, AAC = b"\x40", b"\x80", b"\x00"


def tvr(tap: Tap, name: str) -> bool:
    return is_set(tap.result.tvr, TVR_BITS, name)


def ttq(tap: Tap, name: str) -> bool:
    """A bit of the TTQ the reader sent (kernels 3 and 7)."""
    return is_set(tap.result.data[0x9F66], TTQ_BITS, name)


def generate_ac_p1(tap: Tap) -> int:
    """P1 of the (only) GENERATE AC: the cryptogram asked for, plus 10 when CDA is requested."""
    commands = [e.command for e in tap.trace.exchanges if e.command[1] == INS_GENERATE_AC]
    assert len(commands) == 1, f"{len(commands)} GENERATE AC commands"
    return commands[0][2]


def offline_only_config() -> TerminalConfig:
    """An attended offline-only terminal (9F35 23): no online PIN, high limits, TTQ offline-only reader."""
    config = load_config()
    config.terminal_type = 0x23
    config.applications = [
        dataclasses.replace(app, floor_limit=10000, cvm_required_limit=10000, cvm_capability_cvm_required=0x20,
                            ttq=bytes.fromhex("3A004000"))  # EMV mode, contact chip, offline only, signature
        for app in config.applications
    ]
    return config


# --- Approved, online, declined -----------------------------------------------------------


@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_offline_approval(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(1234, card=card)
    r = tap.result
    assert r.outcome.outcome is Outcome.APPROVED
    assert r.kernel == kernel
    assert r.cid == TC and len(r.cryptogram) == 8
    assert (r.oda, r.oda_result) == ("CDA" if kernel == 2 else "fDDA", "successful")
    assert r.tvr == bytes(5)
    assert is_set(r.tsi, TSI_BITS, "ODA_PERFORMED")
    assert r.outcome.cvm is Cvm.NO_CVM
    assert r.outcome.data_record_present and not r.outcome.receipt
    if kernel == 2:
        assert r.data[0x9F34] == bytes.fromhex("1F0302")  # No CVM required, successful
        assert is_set(r.tsi, TSI_BITS, "TERMINAL_RISK_MANAGEMENT_PERFORMED")
        assert generate_ac_p1(tap) == 0x50  # TC with CDA
    else:
        assert not ttq(tap, "ONLINE_CRYPTOGRAM_REQUIRED") and not ttq(tap, "CVM_REQUIRED")


@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_online_request(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(4000, card=card)
    r = tap.result
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST
    assert r.kernel == kernel
    assert r.cid == ARQC and len(r.cryptogram) == 8
    assert r.outcome.cvm is Cvm.NO_CVM
    if kernel == 2:
        assert r.tvr == bytes.fromhex("0000008000")  # floor limit exceeded, nothing else
        assert generate_ac_p1(tap) == 0x90  # ARQC with CDA
        assert (r.oda, r.oda_result) == ("CDA", "successful")
    else:
        assert ttq(tap, "ONLINE_CRYPTOGRAM_REQUIRED")
        # The default TTQ does not ask for ODA on online authorisations.
        assert r.oda == "not performed" and tvr(tap, "ODA_NOT_PERFORMED")


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_offline_only_terminal_card_declines_above_its_offline_limit(dut: Dut, card: str, kernel: int) -> None:
    """The card's single offline limit (profile "risk") on a terminal that cannot go online: AAC."""
    limit = card_risk(card)["single_offline_limit"]
    config = offline_only_config()
    within = dut.tap(limit, card=card, config=config)
    assert within.result.outcome.outcome is Outcome.APPROVED and within.result.cid == TC
    over = dut.tap(limit + 1, card=card, config=config)
    r = over.result
    assert r.outcome.outcome is Outcome.DECLINED
    assert r.cid == AAC
    assert r.kernel == kernel
    if kernel == 2:
        assert r.tvr == bytes(5)  # the terminal had no objection: the card declined
        assert generate_ac_p1(over) == 0x50  # the terminal asked for a TC with CDA
    else:
        assert ttq(over, "OFFLINE_ONLY_READER") and not ttq(over, "ONLINE_CRYPTOGRAM_REQUIRED")
        assert r.outcome.cvm is Cvm.NA


@pytest.mark.card("mastercard")
def test_terminal_action_code_denial_declines(dut: Dut) -> None:
    """Kernel 2 terminal action analysis (Book 3 §10.7): a TVR bit in TAC-Denial asks for an AAC."""
    config = load_config()
    config.applications = [dataclasses.replace(a, tac_denial=bytes.fromhex("0000008000")) for a in config.applications]
    below = dut.tap(1234, config=config)
    assert below.result.outcome.outcome is Outcome.APPROVED
    tap = dut.tap(4000, config=config)
    r = tap.result
    assert r.outcome.outcome is Outcome.DECLINED
    assert tvr(tap, "FLOOR_LIMIT_EXCEEDED")
    assert generate_ac_p1(tap) == 0x00  # AAC, no CDA
    assert r.cid == AAC


def test_magstripe_only_card_on_kernel_2_ends_after_gpo(dut: Dut, profile_dir: Path) -> None:
    """Book C-2 S3.16-S3.18 and S3.90: a card whose AIP (0000) lacks "EMV mode supported", on a
    kernel 2 without mag-stripe mode, ends with End Application ("Insert, swipe or try another
    card") after GET PROCESSING OPTIONS: no record read, no GENERATE AC."""
    doc = load_builtin("mastercard")
    for app in doc["applications"]:
        app["aip"] = "0000"
    card = profile_dir / "magstripe-only.json"
    card.write_text(json.dumps(doc))
    card.chmod(0o600)  # the profile holds the card's keys
    tap = dut.tap(1234, card=card)
    r = tap.result
    assert [e.command[1] for e in tap.trace.exchanges] == [0xA4, 0xA4, 0xA8]  # PPSE, SELECT, GPO
    assert r.kernel == 2 and r.outcome.outcome is Outcome.END_APPLICATION
    assert r.outcome.ui_message == "Insert, swipe or try another card"
    assert "AIP 0000" in r.error and "card data missing" not in r.error
    control = dut.tap(1234, card="mastercard")  # the same card with its AIP 1D80 (EMV mode) is approved
    assert control.result.outcome.outcome is Outcome.APPROVED


# --- Limits at their boundaries -------------------------------------------------------------


@pytest.mark.parametrize("amount", [15000, 15001, 99999])
@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_contactless_transaction_limit(dut: Dut, card: str, kernel: int, amount: int) -> None:
    tap = dut.tap(amount, card=card)
    r = tap.result
    assert r.outcome.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert tap.apdus == 0
    assert r.outcome.alternate_interface == "contact chip"
    assert r.steps[0].name == "pre-processing"


@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_just_below_contactless_transaction_limit(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(14999, card=card)
    assert tap.result.outcome.outcome is Outcome.ONLINE_REQUEST
    assert tap.result.outcome.cvm is Cvm.ONLINE_PIN
    assert tap.result.kernel == kernel
    assert tap.apdus > 0


@pytest.mark.parametrize(("amount", "cvm_required"), [(4999, False), (5000, True), (5001, True)],
                         ids=["49.99", "50.00", "50.01"])
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_cvm_required_limit(dut: Dut, card: str, kernel: int, amount: int, cvm_required: bool) -> None:
    tap = dut.tap(amount, card=card)
    r = tap.result
    if kernel == 2 and amount == 5000:
        cvm_required = False  # Book C-2 compares "greater than" (S456.30), Book B "greater than or equal"
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST  # above the floor limit either way
    assert r.outcome.cvm is (Cvm.ONLINE_PIN if cvm_required else Cvm.NO_CVM)
    if kernel == 2:
        # CVM List 42 03 (online PIN if supported, else next), then 1E 03, 1F 03 (Book 3 §10.5).
        assert r.data[0x9F34] == (bytes.fromhex("420300") if cvm_required else bytes.fromhex("1F0302"))
        assert tvr(tap, "ONLINE_PIN_ENTERED") is cvm_required
        assert is_set(r.tsi, TSI_BITS, "CARDHOLDER_VERIFICATION_PERFORMED")
    else:
        assert ttq(tap, "CVM_REQUIRED") is cvm_required


@pytest.mark.parametrize(("amount", "exceeded"), [(3000, False), (3001, True)], ids=["30.00", "30.01"])
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_floor_limit(dut: Dut, card: str, kernel: int, amount: int, exceeded: bool) -> None:
    tap = dut.tap(amount, card=card)
    r = tap.result
    assert r.outcome.outcome is (Outcome.ONLINE_REQUEST if exceeded else Outcome.APPROVED)
    assert r.cid == (ARQC if exceeded else TC)
    assert r.outcome.cvm is Cvm.NO_CVM
    if kernel == 2:
        assert tvr(tap, "FLOOR_LIMIT_EXCEEDED") is exceeded
        assert generate_ac_p1(tap) & 0xC0 == (0x80 if exceeded else 0x40)
    else:
        assert ttq(tap, "ONLINE_CRYPTOGRAM_REQUIRED") is exceeded


# --- The card's own risk management ---------------------------------------------------------


@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_card_goes_online_after_its_lower_consecutive_offline_limit(dut: Dut, card: str, kernel: int) -> None:
    dut.require(card=card, fresh_card=True)
    limit = card_risk(card)["lower_consecutive_offline_limit"]
    with dut.open(card=card) as transport:
        taps = [transact(transport, 1000) for _ in range(limit + 1)]
    approved, last = taps[:-1], taps[-1]
    assert [t.result.outcome.outcome for t in approved] == [Outcome.APPROVED] * limit
    assert [t.result.atc for t in taps] == [n.to_bytes(2, "big") for n in range(1, limit + 2)]
    assert last.result.outcome.outcome is Outcome.ONLINE_REQUEST
    assert last.result.cid == ARQC
    if kernel == 2:
        assert generate_ac_p1(last) & 0xC0 == 0x40  # the terminal asked for a TC; the card went online
        assert not tvr(last, "FLOOR_LIMIT_EXCEEDED")
    else:
        assert not ttq(last, "ONLINE_CRYPTOGRAM_REQUIRED")


# --- The wearable -------------------------------------------------------------------------------


@pytest.mark.card("wearable", cdcvm=True)
def test_wearable_after_on_device_cvm(dut: Dut) -> None:
    tap = dut.tap(9500)
    r = tap.result
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST
    assert r.outcome.cvm is Cvm.CONFIRMATION_CODE_VERIFIED
    assert is_set(r.data[0x9F6C], CTQ_BITS, "CONSUMER_DEVICE_CVM_PERFORMED")
    assert ttq(tap, "CONSUMER_DEVICE_CVM_SUPPORTED") and ttq(tap, "CVM_REQUIRED")


@pytest.mark.card("wearable")
def test_wearable_without_on_device_cvm_asks_for_online_pin(dut: Dut) -> None:
    tap = dut.tap(9500)
    r = tap.result
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST
    assert r.outcome.cvm is Cvm.ONLINE_PIN
    assert not is_set(r.data[0x9F6C], CTQ_BITS, "CONSUMER_DEVICE_CVM_PERFORMED")


# --- The CLI on the emulator and on the firmware ------------------------------------------------


def emvkit_tap(reader: str, amount: str) -> dict[str, Any]:
    cli = Path(sys.executable).parent / "emvkit"
    assert cli.exists(), f"{cli} is missing: run `make test`, which installs emvkit into the venv"
    done = subprocess.run([str(cli), "tap", "--reader", reader, "--json", "--amount", amount, "--host", "none"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"emvkit tap --reader {reader}: {done.stderr.strip()}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(("card", "amount", "outcome"), [
    ("visa", "12.34", "Approved"), ("mastercard", "12.34", "Approved"), ("unionpay", "12.34", "Approved"),
    ("wearable", "12.34", "Approved"), ("visa", "60.00", "Online Request"), ("mastercard", "60.00", "Online Request"),
])
def test_cli_tap_on_firmware_matches_emulator(card: str, amount: str, outcome: str) -> None:
    """`emvkit tap --reader mpy:CARD` and `emu:CARD` agree (independent of --dut: it compares the two)."""
    try:
        find_micropython()
    except TransportError as exc:
        pytest.skip(f"needs the MicroPython unix port (emvkit[micropython]): {exc}")
    emu = emvkit_tap(f"emu:{card}", amount)
    mpy = emvkit_tap(f"mpy:{card}", amount)
    assert emu["outcome"] == outcome
    keys = ("outcome", "kernel", "aid", "cid", "tvr", "tsi", "oda", "oda_result", "cvm", "apdus")
    assert {k: mpy[k] for k in keys} == {k: emu[k] for k in keys}
