"""Kernel 2 rules that Book C-2 states apart from Book B and Book 3: the CVM
required limit compared "greater than", and CDA in the second GENERATE AC
(requested, verified, and a bad signature declining), against the emulated
Mastercard card and the issuer host simulator. The mag-stripe-only card is a
scripted session (tests/vectors/cards/mastercard_magstripe_only.apdu)."""

from __future__ import annotations

import datetime

import pytest

from emvkit.firmware import tlv
from emvkit.terminal.bitmaps import TVR_BITS, is_set
from emvkit.terminal.config_files import load_config
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Cvm, Outcome
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.scripted import ScriptedTransport

DATE = datetime.date(2026, 1, 15)
TIME = datetime.time(9, 30, 0)
GENERATE_AC = 0xAE
CDA_REQUESTED = 0x10  # GENERATE AC P1 b5


def request(amount: int) -> TransactionRequest:
    return TransactionRequest(amount=amount, date=DATE, time=TIME, random=lambda n: bytes.fromhex("5A17C3E9")[:n]
                              if n == 4 else bytes(n))


def tap(amount: int, config: TerminalConfig | None = None, host: IssuerHost | None = None,
        url: str = "emu:mastercard") -> Tap:
    with open_transport(url) as card:
        return run_transaction(card, config or load_config(), request(amount), authoriser=host)


def generate_ac_commands(t: Tap) -> list[bytes]:
    return [e.command for e in t.trace.exchanges if e.command[1] == GENERATE_AC]


def mastercard_iad_cvr(iad: bytes) -> bytes:
    return iad[2:8]  # Mastercard IAD: DKI, CVN, CVR (6 bytes), ...


# --- the CVM required limit: "greater than" in Book C-2 (S456.30, CVM.2) --------------------


@pytest.mark.parametrize(("amount", "cvm", "cvm_results"), [
    (4999, Cvm.NO_CVM, "1F0302"),
    (5000, Cvm.NO_CVM, "1F0302"),  # at the limit: not above it, so the no-CVM capability (08)
    (5001, Cvm.ONLINE_PIN, "420300"),  # above it: online PIN (CVM List 42 03, capability 60)
], ids=["49.99", "50.00", "50.01"])
def test_cvm_required_only_above_the_reader_cvm_required_limit(amount: int, cvm: Cvm, cvm_results: str) -> None:
    r = tap(amount).result
    assert r.kernel == 2 and r.outcome.outcome is Outcome.ONLINE_REQUEST
    assert r.outcome.cvm is cvm
    assert r.data[0x9F34] == bytes.fromhex(cvm_results)


def test_kernel_3_keeps_book_b_at_the_limit() -> None:
    # Book B pre-processing (kernels 3 and 7): an amount equal to the limit requires a CVM.
    r = tap(5000, url="emu:visa").result
    assert r.kernel == 3 and r.outcome.cvm is Cvm.ONLINE_PIN


# --- CDA in the second GENERATE AC ----------------------------------------------------------


def test_cda_requested_and_verified_in_the_second_generate_ac() -> None:
    with IssuerHost.builtin() as host:
        t = tap(4000, host=host)
    r = t.result
    assert r.outcome.outcome is Outcome.APPROVED, r.error
    first, second = generate_ac_commands(t)
    assert first[2] == 0x80 | CDA_REQUESTED  # ARQC + CDA
    assert second[2] == 0x40 | CDA_REQUESTED  # TC + CDA
    assert r.oda == "CDA" and r.oda_result == "successful"
    assert [s.detail for s in r.steps if s.name == "second GENERATE AC"] == ["asked for TC + CDA, the card returned TC"]
    assert [s.name for s in r.steps].count("CDA successful") == 2
    # The AC comes out of the verified signature, not from a 9F26 in the response.
    last = tlv.flatten(tlv.decode(t.trace.exchanges[-1].response[:-2]))  # type: ignore[index]
    assert 0x9F26 not in last and 0x9F4B in last
    assert r.cid == b"\x40" and len(r.cryptogram) == 8
    # The card says so in its CVR (M/Chip CVR byte 2 b6: CDA performed in the second GENERATE AC).
    assert mastercard_iad_cvr(last[0x9F10])[1] & 0x20


def test_no_cda_in_the_second_generate_ac_when_the_terminal_does_not_do_cda() -> None:
    config = load_config()
    config.capabilities = bytes.fromhex("E068C0")  # 9F33 byte 3 without CDA
    with IssuerHost.builtin() as host:
        t = tap(4000, config=config, host=host)
    assert t.result.outcome.outcome is Outcome.APPROVED
    assert [c[2] for c in generate_ac_commands(t)] == [0x80, 0x40]
    last = tlv.flatten(tlv.decode(t.trace.exchanges[-1].response[:-2]))  # type: ignore[index]
    assert not mastercard_iad_cvr(last[0x9F10])[1] & 0x20
    assert t.result.oda == "not performed"


def test_no_cda_with_an_aac_in_the_second_generate_ac() -> None:
    from emvkit.terminal.host.keys import IssuerKeys
    from emvkit.terminal.host.rules import Rules
    with IssuerHost(IssuerKeys.builtin(), Rules(max_amount=3500)) as host:
        t = tap(4000, host=host)
    assert t.result.outcome.outcome is Outcome.DECLINED
    assert [c[2] for c in generate_ac_commands(t)] == [0x80 | CDA_REQUESTED, 0x00]


def test_bad_cda_signature_in_the_second_generate_ac_declines() -> None:
    """The recorded approved tap, replayed with the second GENERATE AC's SDAD altered
    (its last byte flipped): the kernel must not approve on it."""
    with IssuerHost.builtin() as host:
        recorded = tap(4000, host=host)
    assert recorded.result.outcome.outcome is Outcome.APPROVED
    steps: list[tuple[bytes, bytes | None]] = [(e.command, e.response) for e in recorded.trace.exchanges]
    command, response = steps[-1]
    assert command[1] == GENERATE_AC and response is not None
    nodes = tlv.decode(response[:-2])
    sdad = tlv.find(nodes, 0x9F4B)
    assert sdad is not None
    sdad.value = sdad.value[:-1] + bytes((sdad.value[-1] ^ 0x01,))
    steps[-1] = (command, tlv.encode(nodes) + response[-2:])
    with IssuerHost.builtin() as host, ScriptedTransport(steps) as card:
        r = run_transaction(card, load_config(), request(4000), authoriser=host).result
        assert card.finished
    assert r.outcome.outcome is Outcome.DECLINED
    assert r.error == "CDA failed in the second GENERATE AC"
    assert r.oda == "CDA" and r.oda_result.startswith("sdad_")
    assert is_set(r.tvr, TVR_BITS, "CDA_FAILED")
