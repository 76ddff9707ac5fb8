"""Cards that misbehave: status words at each step, malformed responses,
the card torn away at every APDU, and a sweep of every fault. Whatever the
card does, a transaction ends with an Outcome value; no exception leaves
``run_transaction`` (ARCHITECTURE.md: EMV outcomes are values).

Faults are injected by ``emu:`` (``tear``, ``sw``, ``corrupt``, ``latency``);
malformed responses come from a ``scripted:`` card made from a transaction
recorded on the DUT with one response broken, so they run on every DUT.
"""

from __future__ import annotations

import pytest

from emvkit.firmware import tlv
from emvkit.hil.dut import KERNEL_CARDS, Dut, Script, card_applications, primitive_tags, replay, select_command
from emvkit.terminal import iso7816
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap
from emvkit.terminal.transport.scripted import Pattern

ALL_CARDS = [*KERNEL_CARDS, pytest.param("wearable", 3, id="wearable-k3")]
AMOUNT = 1234
# The commands every kernel sends, which the fault sweeps target.
INS_NAMES = {ins: iso7816.INS_NAMES[ins] for ins in (iso7816.INS_SELECT, iso7816.INS_GET_PROCESSING_OPTIONS,
                                                       iso7816.INS_READ_RECORD, iso7816.INS_GENERATE_AC)}


def last_sw(tap: Tap) -> bytes:
    response = tap.trace.exchanges[-1].response
    assert response is not None
    return response[-2:]


def step_names(tap: Tap) -> list[str]:
    return [s.name for s in tap.result.steps]


# --- A status word other than 9000 ---------------------------------------------------------------


@pytest.mark.faults("sw")
@pytest.mark.parametrize(("fault", "error", "apdus"), [
    ("sw=A4:6A82", "SELECT PPSE: 6A82", 1),
    ("sw=A8:6F00", "GET PROCESSING OPTIONS: card answered 6F00", 3),
    ("sw=B2:6A83", "READ RECORD SFI 1 record 1: card answered 6A83", 4),
], ids=["select-6A82", "gpo-6F00", "read-record-6A83"])
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_status_word_ends_the_application(dut: Dut, card: str, kernel: int, fault: str, error: str,
                                          apdus: int) -> None:
    tap = dut.tap(AMOUNT, card=card, faults=fault)
    r = tap.result
    assert r.outcome.outcome is Outcome.END_APPLICATION
    assert error in r.error
    assert tap.apdus == apdus
    assert last_sw(tap) == bytes.fromhex(fault[-4:])
    assert r.kernel == (None if apdus == 1 else kernel)


@pytest.mark.faults("sw=A8:6985")
@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_gpo_conditions_not_satisfied_selects_next_then_ends(dut: Dut, card: str, kernel: int) -> None:
    """Book C-2 §3.3 / C-3 §5.2: 6985 to GPO is Select Next; with no candidate left, End Application."""
    tap = dut.tap(AMOUNT, card=card)
    apps = card_applications(card)
    assert tap.result.outcome.outcome is Outcome.END_APPLICATION
    assert step_names(tap).count("Select Next") == len(apps)
    selects = [e.command for e in tap.trace.exchanges if e.command[1] == 0xA4][1:]
    assert selects == [select_command(aid) for aid in apps], "each candidate, best priority first"
    assert tap.apdus == 1 + 2 * len(apps)
    assert step_names(tap)[-1] == "final selection"


@pytest.mark.faults("sw=AE:6985")
@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_generate_ac_refused(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(AMOUNT, card=card)
    r = tap.result
    if kernel == 2:
        assert r.outcome.outcome is Outcome.END_APPLICATION
        assert "GENERATE AC: card answered 6985" in r.error
        assert tap.trace.exchanges[-1].command[1] == 0xAE and last_sw(tap) == b"\x69\x85"
    else:  # qVSDC / qPBOC: the cryptogram comes with GPO, no GENERATE AC is sent
        assert r.outcome.outcome is Outcome.APPROVED
        assert all(e.command[1] != 0xAE for e in tap.trace.exchanges)


# --- Malformed responses (scripted from a recording on the DUT) -----------------------------------


def truncated(response: bytes | None) -> bytes:
    """The response with the last byte of its data cut off: the outer template announces one byte more."""
    assert response is not None and response[-2:] == b"\x90\x00"
    return response[:-3] + b"\x90\x00"


@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_malformed_response_at_each_step(dut: Dut, card: str, kernel: int) -> None:
    script = dut.record(card, AMOUNT)
    assert script.tap.result.outcome.outcome is Outcome.APPROVED
    others = card_applications(card)[1:]
    for index, (command, response) in enumerate(script.steps):
        ins = script.command(index)[1]
        what = f"step {index} ({INS_NAMES[ins]})"
        steps = [*script.steps[:index], (command, truncated(response))]
        if index == 1:  # the application's FCI: Entry Point tries the card's other applications
            steps += [(select_command(aid), b"\x6a\x82") for aid in others]
        tap, scripted = replay(steps, AMOUNT)
        r = tap.result
        assert scripted.finished, f"{what}: the kernel went on after a malformed response"
        assert r.outcome.outcome is Outcome.END_APPLICATION, what
        if index == 1:
            assert r.error == "no application could be selected", what
            assert any(s.detail.startswith("failed (9000)") for s in r.steps), what
        else:
            assert "malformed" in r.error, f"{what}: {r.error}"


def with_fci_pdol(script: Script, pdol: bytes) -> list[tuple[Pattern | bytes, bytes | None]]:
    """PPSE and SELECT as recorded, but the application's FCI carries this PDOL."""
    fci = tlv.decode(script.response_data(1))
    node = tlv.find(fci, 0x9F38)
    assert node is not None
    node.value = pdol
    return [script.steps[0], (script.steps[1][0], tlv.encode(fci) + b"\x90\x00")]


@pytest.mark.parametrize(("card", "kernel"), [p for p in KERNEL_CARDS if p.values[1] != 2])
def test_malformed_pdol_ends_the_application(dut: Dut, card: str, kernel: int) -> None:
    script = dut.record(card, AMOUNT)
    steps = with_fci_pdol(script, bytes.fromhex("9F66049F"))  # the second tag is cut short
    try:
        tap, _ = replay(steps, AMOUNT)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} escaped run_transaction: {exc}")
    assert tap.result.outcome.outcome is Outcome.END_APPLICATION


@pytest.mark.parametrize(("card", "kernel"), [p for p in KERNEL_CARDS if p.values[1] != 2])
def test_card_cannot_overwrite_terminal_data(dut: Dut, card: str, kernel: int) -> None:
    """Book 3 Annex A: 5F2A is terminal-sourced. A card that returns it in a record does not change it."""
    script = dut.record(card, AMOUNT)
    steps = list(script.steps)
    last = len(steps) - 1
    record = tlv.decode(script.response_data(last))[0]
    steps[last] = (steps[last][0], tlv.encode_tlv(0x70, record.value + tlv.encode_tlv(0x5F2A, b"\x09"))
                   + b"\x90\x00")
    try:
        tap, _ = replay(steps, AMOUNT)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} escaped run_transaction: {exc}")
    assert tap.result.data[0x5F2A] == bytes.fromhex("0978")
    assert tap.result.outcome.outcome in (Outcome.APPROVED, Outcome.END_APPLICATION)


# --- The card torn away ------------------------------------------------------------------------------


@pytest.mark.faults("tear")
@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_card_torn_away_at_each_apdu(dut: Dut, card: str, kernel: int) -> None:
    complete = dut.tap(AMOUNT, card=card)
    assert complete.result.outcome.outcome is Outcome.APPROVED
    for tear in range(complete.apdus):
        tap = dut.tap(AMOUNT, card=card, faults=f"tear={tear}")
        r = tap.result
        assert r.outcome.outcome is Outcome.TRY_AGAIN, f"tear={tear}"
        assert (r.outcome.start, r.outcome.ui_message) == ("B", "Present card again"), f"tear={tear}"
        assert "card removed" in step_names(tap), f"tear={tear}"
        assert tap.apdus == tear + 1 and tap.trace.exchanges[-1].response is None, f"tear={tear}"
    after = dut.tap(AMOUNT, card=card, faults=f"tear={complete.apdus}")
    assert after.result.outcome.outcome is Outcome.APPROVED, "torn after the last APDU: nothing lost"


@pytest.mark.faults("latency=2")
@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_slow_card_is_still_approved(dut: Dut, card: str, kernel: int) -> None:
    tap = dut.tap(AMOUNT, card=card)
    assert tap.result.outcome.outcome is Outcome.APPROVED
    assert tap.result.oda_result == "successful"


# --- Every fault, every kernel ----------------------------------------------------------------------

SWEEP_SWS = ("6A82", "6985", "6F00", "6A83", "6700", "6D00", "6E00", "6A81", "6283", "6300", "6100", "6C10", "9000")
SWEEP_AMOUNTS = (1234, 4000, 6000)  # offline, online, online with CVM


@pytest.mark.faults("tear", "sw", "corrupt", "latency")
@pytest.mark.parametrize(("card", "kernel"), ALL_CARDS)
def test_no_exception_escapes_any_fault(dut: Dut, card: str, kernel: int) -> None:
    reference = dut.tap(AMOUNT, card=card)
    responses = [e.response for e in reference.trace.exchanges if e.response is not None]
    faults = [f"tear={n}" for n in range(reference.apdus + 1)]
    faults += [f"sw={ins:02X}:{sw}" for ins in INS_NAMES for sw in SWEEP_SWS]
    faults += [f"corrupt={tlv.tag_hex(tag)}" for tag in sorted(primitive_tags(responses))]
    faults += ["latency=1"]
    escaped: list[str] = []
    outcomes: set[Outcome] = set()
    for fault in faults:
        for amount in SWEEP_AMOUNTS:
            try:
                tap = dut.tap(amount, card=card, faults=fault)
            except Exception as exc:
                escaped.append(f"{fault} at {amount}: {type(exc).__name__}: {exc}")
                continue
            r = tap.result
            outcomes.add(r.outcome.outcome)
            tc = r.cid[:1] != b"" and r.cid[0] & 0xC0 == 0x40  # b8-b7: the cryptogram type
            if r.outcome.outcome is Outcome.APPROVED and not (tc and r.oda_result == "successful"):
                escaped.append(f"{fault} at {amount}: approved offline with CID {r.cid.hex()}, ODA {r.oda_result}")
    assert not escaped, "\n".join(escaped)
    assert len(faults) > 60
    assert {Outcome.APPROVED, Outcome.ONLINE_REQUEST, Outcome.END_APPLICATION, Outcome.TRY_AGAIN} <= outcomes
