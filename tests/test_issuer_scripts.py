"""Issuer scripts and offline counter resets, end to end: the built-in host
attaches scripts whose MACs pyemv verifies (an independent implementation of
EMV Book 2 §9.2), the kernel delivers them, the emulated card applies them.
Expected 9F5B/TVR/TSI values are written out by hand from Book 3 §10.10 and
Book 4 Annex A."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from pyemv import kd
from pyemv import sm as pyemv_sm

from emvkit.firmware import tlv
from emvkit.terminal.config_files import load_config
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.rules import Rules, ScriptRule
from emvkit.terminal.kernel.authorisation import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.transport import open_transport
from tests.cardutil import profile

ISSUER_UPDATE_TTQ = bytes.fromhex("3600C000")  # TTQ byte 3 b8: Issuer Update Processing supported


def config(ttq: bytes = ISSUER_UPDATE_TTQ) -> TerminalConfig:
    cfg = load_config()
    return replace(cfg, applications=[replace(a, ttq=ttq) if a.kernel in (3, 7) else a for a in cfg.applications])


@dataclass
class Recorder:
    """An authoriser in front of the host: keeps each request and answer; can
    change the answer (drop the ARPC, corrupt a script) as a network might."""

    host: IssuerHost
    change: object = None
    requests: list[AuthorisationRequest] = field(default_factory=list)
    responses: list[AuthorisationResponse] = field(default_factory=list)

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        response = self.host.authorise(request)
        if callable(self.change):
            response = self.change(response)
        self.requests.append(request)
        self.responses.append(response)
        return response


def host_with(*actions: str) -> IssuerHost:
    return IssuerHost(IssuerKeys.builtin(), Rules(scripts=tuple(ScriptRule(a) for a in actions)))


def taps(transport, cfg: TerminalConfig, authoriser: Recorder, n: int, amount: int = 1000) -> list[Tap]:
    return [run_transaction(transport, cfg, TransactionRequest(amount=amount), authoriser=authoriser)
            for _ in range(n)]


def commands(scripts: bytes) -> list[tuple[int, bytes, list[bytes]]]:
    out = []
    for node in tlv.decode(scripts):
        ident = next(c.value for c in node.children if c.tag == 0x9F18)
        out.append((node.tag, ident, [c.value for c in node.children if c.tag == 0x86]))
    return out


# --- the host's scripts: MACs that pyemv verifies ------------------------------------------------


@pytest.mark.parametrize("name", ["visa", "mastercard", "unionpay"])
def test_script_macs_verify_with_pyemv(name: str) -> None:
    recorder = Recorder(host_with("block", "reset-counters"))
    with open_transport(f"emu:{name}") as transport:
        run_transaction(transport, config(), TransactionRequest(amount=6000), authoriser=recorder)
    request, response = recorder.requests[0], recorder.responses[0]
    secrets = profile(name)["secrets"]
    imk_smi = bytes.fromhex(secrets["imk_smi"])
    derive = kd.derive_icc_mk_b if secrets["derivation"] == "B" else kd.derive_icc_mk_a
    mk_smi = derive(imk_smi, secrets["pan"], secrets["psn"])
    atc, arqc = request.icc_data[0x9F36], request.icc_data[0x9F26]
    # Visa: Visa's secure messaging session key (ATC); the others: EMV CSK, R = ARQC.
    sk = kd.derive_visa_sm_sk(mk_smi, atc) if name == "visa" else kd.derive_common_sk(mk_smi, arqc)
    found = commands(response.issuer_scripts)
    assert [(t, i) for t, i, _ in found] == [(0x71, b"\x00\x00\x00\x01"), (0x72, b"\x00\x00\x00\x02")]
    headers = [c[:4] for _, _, cs in found for c in cs]
    assert headers == [bytes.fromhex("841E0000"), bytes.fromhex("04DADF50"), bytes.fromhex("04DADF51")]
    for _, _, cs in found:
        for command in cs:
            header, data, mac = command[:5], command[5:-8], command[-8:]
            assert header[4] == len(data) + 8
            assert pyemv_sm.generate_command_mac(sk, header + atc + arqc + data) == mac


def test_no_imk_smi_no_scripts() -> None:
    doc = profile("visa")
    del doc["secrets"]["imk_smi"]
    host = IssuerHost(IssuerKeys.from_profiles([doc]), Rules(scripts=(ScriptRule("block"),)))
    recorder = Recorder(host)
    with open_transport("emu:visa") as transport:
        tap = run_transaction(transport, config(), TransactionRequest(amount=6000), authoriser=recorder)
    assert recorder.responses[0].issuer_scripts == b""
    assert 0x9F5B not in tap.result.data


# --- counters: reset on online approval, reset by script ---------------------------------------


@pytest.mark.parametrize(("name", "limit"), [("visa", 5), ("unionpay", 3)])
def test_online_approval_resets_the_counters(name: str, limit: int) -> None:
    # The lower consecutive offline limit sends a tap online; the approval's
    # ARPC, checked by EXTERNAL AUTHENTICATE, resets the card's counters.
    recorder = Recorder(IssuerHost.builtin())
    with open_transport(f"emu:{name}") as transport:
        results = [t.result for t in taps(transport, config(), recorder, limit + 3)]
    cids = [r.cid for r in results]
    assert cids == [b"\x40"] * limit + [b"\x80"] + [b"\x40"] * 2
    online = results[limit]
    assert online.outcome.outcome is Outcome.APPROVED
    assert online.tsi[0] & 0x10  # issuer authentication performed
    assert not online.tvr[4] & 0x40  # issuer authentication did not fail


def test_without_issuer_update_the_counters_stay() -> None:
    # The reader does not support Issuer Update Processing (the default TTQ):
    # nothing tells the card about the approval, every later tap goes online.
    recorder = Recorder(IssuerHost.builtin())
    with open_transport("emu:visa") as transport:
        cids = [t.result.cid for t in taps(transport, config(bytes.fromhex("36004000")), recorder, 7)]
    assert cids == [b"\x40"] * 5 + [b"\x80"] * 2


def test_a_wrong_arpc_leaves_the_counters() -> None:
    def corrupt(response: AuthorisationResponse) -> AuthorisationResponse:
        iad = bytearray(response.issuer_authentication_data or b"")
        iad[0] ^= 1
        return replace(response, issuer_authentication_data=bytes(iad))

    with open_transport("emu:visa") as transport:
        results = [t.result for t in taps(transport, config(), Recorder(IssuerHost.builtin(), corrupt), 7)]
    assert [r.cid for r in results] == [b"\x40"] * 5 + [b"\x80"] * 2
    assert results[5].tvr[4] & 0x40  # TVR byte 5 b7: issuer authentication failed
    assert results[5].outcome.outcome is Outcome.APPROVED  # the issuer approved; the card only keeps its counters


def drop_arpc(response: AuthorisationResponse) -> AuthorisationResponse:
    return replace(response, issuer_authentication_data=None)


def test_reset_counters_script_makes_the_next_tap_offline() -> None:
    # No ARPC reaches the card (so EXTERNAL AUTHENTICATE resets nothing): the
    # script alone resets the counters.
    with open_transport("emu:visa") as transport:
        results = [t.result for t in taps(transport, config(), Recorder(host_with("reset-counters"), drop_arpc), 7)]
    assert [r.cid for r in results] == [b"\x40"] * 5 + [b"\x80", b"\x40"]
    online = results[5]
    assert online.data[0x9F5B] == bytes.fromhex("2000000001")  # successful, script 1
    assert online.tsi[0] & 0x04  # TSI byte 1 b3: script processing performed
    assert online.tvr[4] & 0x30 == 0


def test_a_script_with_a_wrong_mac_is_refused() -> None:
    def corrupt(response: AuthorisationResponse) -> AuthorisationResponse:
        (template,) = tlv.decode(response.issuer_scripts)
        children = list(template.children)
        first = next(i for i, c in enumerate(children) if c.tag == 0x86)
        command = bytearray(children[first].value)
        command[-1] ^= 0x01  # the last byte of the first command's MAC
        children[first] = tlv.TLV(0x86, bytes(command))
        scripts = tlv.encode_tlv(0x72, b"".join(c.encode() for c in children))
        return drop_arpc(replace(response, issuer_scripts=scripts))

    with open_transport("emu:visa") as transport:
        results = [t.result for t in taps(transport, config(), Recorder(host_with("reset-counters"), corrupt), 7)]
        # the counters were not reset: the next tap goes online again
        assert [r.cid for r in results] == [b"\x40"] * 5 + [b"\x80", b"\x80"]
    online = results[5]
    # The first PUT DATA answered 6988: the script failed at its command 1,
    # the second command was not sent.
    assert online.data[0x9F5B] == bytes.fromhex("1100000001")
    assert online.tvr[4] == 0x10  # TVR byte 5 b5: script processing failed after the final GENERATE AC
    assert online.tsi[0] & 0x04
    iad = results[6].data[0x9F10]
    assert iad[6] == 0x08  # CVR byte 4: no script command processed, script processing failed


# --- application block ----------------------------------------------------------------------


def test_block_on_visa_ends_the_next_tap() -> None:
    recorder = Recorder(host_with("block"))
    with open_transport("emu:visa") as transport:
        first = run_transaction(transport, config(), TransactionRequest(amount=6000), authoriser=recorder).result
        second = run_transaction(transport, config(), TransactionRequest(amount=1000), authoriser=recorder).result
    assert first.outcome.outcome is Outcome.APPROVED
    assert first.data[0x9F5B] == bytes.fromhex("2000000001")
    # SELECT of the blocked application answers 6283: Entry Point drops it.
    assert second.outcome.outcome is Outcome.END_APPLICATION
    assert any("6283" in s.detail for s in second.steps)


def test_block_on_mastercard_before_the_final_generate_ac() -> None:
    recorder = Recorder(host_with("block"))
    with open_transport("emu:mastercard") as transport:
        first = run_transaction(transport, config(), TransactionRequest(amount=6000), authoriser=recorder).result
    # 71: the card blocks itself, then declines the second GENERATE AC.
    assert first.data[0x9F5B] == bytes.fromhex("2000000001")
    assert first.cid == b"\x00"
    assert first.outcome.outcome is Outcome.DECLINED
