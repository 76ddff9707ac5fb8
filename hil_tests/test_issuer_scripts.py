"""Online approvals that reach the card: issuer authentication, the offline
counters reset, and issuer scripts (EMV Book 3 §10.9-§10.10, Book 2 §9.2).

The issuer host runs in-process as the taps' authoriser
(:class:`emvkit.terminal.host.issuer.IssuerHost` with the built-in cards'
keys), so an Online Request completes: kernel 2 sends the second GENERATE AC
with the ARPC, kernels 3 and 7 (the reader says "Issuer Update Processing
supported", TTQ byte 3 b8) send EXTERNAL AUTHENTICATE, and the scripts follow
(71 before the final GENERATE AC, 72 after it). A :class:`Network` between
terminal and host can change an answer on its way, as a network might.

Each scenario taps one fresh card at 10.00 until its lower consecutive offline
limit sends it online (5 taps for Visa, 3 for the others), then once or twice
more. Expected Issuer Script Results (9F5B), TVR and TSI values are written out
from Book 3 §10.10 and Book 4 Annex A.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from emvkit.firmware import tlv
from emvkit.hil.dut import KERNEL_CARDS, Dut, card_risk, transact
from emvkit.terminal.config_files import load_config
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.rules import Rules, ScriptRule
from emvkit.terminal.kernel.authorisation import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap

AMOUNT = 1000
ISSUER_UPDATE_TTQ = bytes.fromhex("3600C000")  # the default TTQ, plus byte 3 b8: Issuer Update Processing


def issuer_update_terminal() -> TerminalConfig:
    """The default terminal whose kernels 3 and 7 support Issuer Update Processing."""
    config = load_config()
    config.applications = [dataclasses.replace(a, ttq=ISSUER_UPDATE_TTQ) if a.kernel in (3, 7) else a
                           for a in config.applications]
    return config


@dataclass
class Network:
    """The authoriser of the taps: the issuer host, with each answer passed through ``change``."""

    host: IssuerHost
    change: Callable[[AuthorisationResponse], AuthorisationResponse] | None = None
    responses: list[AuthorisationResponse] = field(default_factory=list)

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        response = self.host.authorise(request)
        if self.change is not None:
            response = self.change(response)
        self.responses.append(response)
        return response


def host_with(*actions: str) -> IssuerHost:
    """The built-in issuer, attaching these script actions to every answer."""
    return IssuerHost(IssuerKeys.builtin(), Rules(scripts=tuple(ScriptRule(a) for a in actions)))


def drop_arpc(response: AuthorisationResponse) -> AuthorisationResponse:
    """No Issuer Authentication Data reaches the card: only a script can reset its counters."""
    return dataclasses.replace(response, issuer_authentication_data=None)


def wrong_script_mac(response: AuthorisationResponse) -> AuthorisationResponse:
    """The last byte of the first script command's MAC flipped (and no ARPC)."""
    (template,) = tlv.decode(response.issuer_scripts)
    assert template.children is not None
    children = list(template.children)
    first = next(i for i, c in enumerate(children) if c.tag == 0x86)
    command = bytearray(children[first].value)
    command[-1] ^= 0x01
    children[first] = tlv.TLV(0x86, bytes(command))
    scripts = tlv.encode_tlv(template.tag, b"".join(c.encode() for c in children))
    return drop_arpc(dataclasses.replace(response, issuer_scripts=scripts))


def taps_on_one_card(dut: Dut, card: str, network: Network, count: int) -> list[Tap]:
    dut.require(card=card, fresh_card=True)
    config = issuer_update_terminal()
    with dut.open(card=card) as transport:
        taps = [transact(transport, AMOUNT, config, authoriser=network) for _ in range(count)]
    for tap in taps:
        dut.note(transport.url, AMOUNT, tap)
    return taps


def went_online(tap: Tap) -> bool:
    return tap.result.authorisation is not None


def lower_limit(card: str) -> int:
    return card_risk(card)["lower_consecutive_offline_limit"]


# --- The counters reset by an online approval ----------------------------------------------------


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_online_approval_resets_the_offline_counters(dut: Dut, card: str, kernel: int) -> None:
    """The approval's ARPC verified by the card (second GENERATE AC on kernel 2, EXTERNAL
    AUTHENTICATE on kernels 3/7) resets its offline counters: the next taps are offline again."""
    limit = lower_limit(card)
    network = Network(IssuerHost.builtin())
    taps = taps_on_one_card(dut, card, network, limit + 3)
    assert [went_online(t) for t in taps] == [False] * limit + [True] + [False] * 2
    assert [t.result.outcome.outcome for t in taps] == [Outcome.APPROVED] * (limit + 3)
    online = taps[limit].result
    assert online.kernel == kernel
    assert online.tsi[0] & 0x10  # TSI byte 1 b5: issuer authentication performed
    assert not online.tvr[4] & 0x40  # TVR byte 5 b7: issuer authentication did not fail


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_wrong_arpc_leaves_the_offline_counters(dut: Dut, card: str, kernel: int) -> None:
    """The control: an ARPC the card does not verify resets nothing; the next tap goes online too."""
    def corrupt(response: AuthorisationResponse) -> AuthorisationResponse:
        arpc = bytearray(response.issuer_authentication_data or b"")
        arpc[0] ^= 0x01
        return dataclasses.replace(response, issuer_authentication_data=bytes(arpc))

    limit = lower_limit(card)
    taps = taps_on_one_card(dut, card, Network(IssuerHost.builtin(), corrupt), limit + 2)
    assert [went_online(t) for t in taps] == [False] * limit + [True, True]
    assert taps[limit].result.tvr[4] & 0x40  # TVR byte 5 b7: issuer authentication failed


# --- Issuer scripts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_reset_counters_script_makes_the_next_tap_offline(dut: Dut, card: str, kernel: int) -> None:
    """No ARPC reaches the card, so the script alone (72: PUT DATA of the counters, MACed with the
    scheme's secure-messaging session key) resets them."""
    limit = lower_limit(card)
    network = Network(host_with("reset-counters"), drop_arpc)
    taps = taps_on_one_card(dut, card, network, limit + 2)
    assert [went_online(t) for t in taps] == [False] * limit + [True, False]
    assert [n.tag for n in tlv.decode(network.responses[0].issuer_scripts)] == [0x72]
    online = taps[limit].result
    assert online.data[0x9F5B] == bytes.fromhex("2000000001")  # script 1: processing successful
    assert online.tsi[0] & 0x04  # TSI byte 1 b3: script processing performed
    assert online.tvr[4] & 0x30 == 0  # TVR byte 5 b6/b5: no script processing failed


@pytest.mark.parametrize(("card", "kernel"), KERNEL_CARDS)
def test_script_with_a_wrong_mac_is_refused(dut: Dut, card: str, kernel: int) -> None:
    """The card refuses a script command whose MAC does not verify (6988): the counters stay and the
    Issuer Script Results report the failure at command 1."""
    limit = lower_limit(card)
    taps = taps_on_one_card(dut, card, Network(host_with("reset-counters"), wrong_script_mac), limit + 2)
    assert [went_online(t) for t in taps] == [False] * limit + [True, True]
    online = taps[limit]
    puts = [e.response for e in online.trace.exchanges if e.command[1] == 0xDA]
    assert puts == [b"\x69\x88"]  # the first PUT DATA refused; the second command not sent
    assert online.result.data[0x9F5B] == bytes.fromhex("1100000001")  # failed, at command 1 of script 1
    assert online.result.tvr[4] == 0x10  # TVR byte 5 b5: script processing failed after the final GENERATE AC
    assert online.result.tsi[0] & 0x04
