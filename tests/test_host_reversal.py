"""Reversals (0400/0420): the host marks the authorisation reversed, answers an unknown one 25, logs every
one; the terminal reverses what it could not use; `emvkit host log` shows it all, masked."""

from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path

import iso8583

from emvkit.terminal.config_files import load_config
from emvkit.terminal.host.api import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.host.client import TcpAuthoriser
from emvkit.terminal.host.iso8583 import SPEC, decode_response, encode_reversal, frame, transmission_time
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.reversal import Reversal
from emvkit.terminal.host.server import ServerThread, answer
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from tests.test_host import online
from tests.test_host_db import emvkit


def reverse(host: IssuerHost, reversal: Reversal) -> tuple[str, str]:
    reply = answer(host, encode_reversal(reversal))
    assert reply is not None
    doc, _ = iso8583.decode(reply, SPEC)
    return doc["t"], doc["39"]


def test_a_reversal_marks_the_approval_and_a_repeat_is_acknowledged() -> None:
    host = IssuerHost.builtin()
    tx = online("visa")
    assert host.authorise(tx.request).response_code == "00"
    reversal = Reversal(tx.request, "1127031633", "no answer within 5 s", stan=8)
    assert reverse(host, reversal) == ("0410", "00")
    assert reverse(host, reversal.repeated(9)) == ("0430", "00")
    approval, first, repeat = host.log.entries()
    assert approval.reversed is not None and approval.response_code == "00"
    assert (first.mti, first.stan, first.atc, first.pan_masked) == ("0400", 8, 1, "476173******0119")
    assert "reversed" in first.reason and "no answer within 5 s" in first.reason
    assert (repeat.mti, repeat.response_code) == ("0420", "00") and "already reversed" in repeat.reason


def test_a_reversal_of_an_unknown_authorisation_is_answered_25_and_logged() -> None:
    host = IssuerHost.builtin()
    tx = online("mastercard")
    assert reverse(host, Reversal(tx.request, "1127031633", "timeout", stan=3)) == ("0410", "25")
    host.authorise(tx.request)
    other_stan = dataclasses.replace(tx.request, stan=tx.request.stan + 1)  # the card and ATC, another STAN
    assert reverse(host, Reversal(other_stan, "1127031633", "timeout", stan=4)) == ("0410", "25")
    rows = host.log.entries()
    assert [(r.mti, r.response_code) for r in rows] == [("0400", "25"), ("0100", "00"), ("0400", "25")]
    assert rows[1].reversed is None


def test_a_reversed_approval_no_longer_counts_for_velocity() -> None:
    from emvkit.terminal.host.keys import IssuerKeys
    from emvkit.terminal.host.rules import Rules
    from tests.test_host import next_online

    host = IssuerHost(IssuerKeys.builtin(), Rules(velocity_count=1, velocity_window_s=3600))
    tx = online("unionpay")
    assert host.authorise(tx.request).response_code == "00"
    assert reverse(host, Reversal(tx.request, "1127031633", "card declined", stan=2)) == ("0410", "00")
    assert host.authorise(next_online(tx, "unionpay").request).response_code == "00"


class _WrongArpc:
    """An issuer whose approvals carry a damaged ARPC: the card declines after the approval."""

    def __init__(self, host: IssuerHost) -> None:
        self.host = host

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        response = self.host.authorise(request)
        iad = bytearray(response.issuer_authentication_data or b"")
        iad[0] ^= 1
        return dataclasses.replace(response, issuer_authentication_data=bytes(iad), icc_data={0x91: bytes(iad)})

    def reverse(self, request: AuthorisationRequest, reason: str) -> AuthorisationResponse:
        return self.host.reverse(request, reason)


def test_the_terminal_reverses_an_approval_the_card_declined() -> None:
    host = IssuerHost.builtin()
    with open_transport("emu:mastercard") as transport:
        tap = run_transaction(transport, load_config(), TransactionRequest(amount=6000), _WrongArpc(host))
    assert tap.result.outcome.outcome is Outcome.DECLINED
    assert tap.result.authorisation is not None and tap.result.authorisation.approved
    approval, reversal = host.log.entries()
    assert approval.reversed is not None
    assert (reversal.mti, reversal.response_code) == ("0400", "00")
    assert "the card declined after the issuer approved" in reversal.reason


def test_the_client_reverses_over_tcp_when_the_card_declines(tmp_path: Path) -> None:
    with IssuerHost.builtin() as host, ServerThread(host) as server, TcpAuthoriser(server.url) as client:
        tx = online("visa")
        assert client.authorise(tx.request).response_code == "00"
        client.reverse(tx.request, "the card declined after the issuer approved")
        assert client.pending == []
        approval, reversal = host.log.entries()
    assert approval.reversed is not None and (reversal.mti, reversal.response_code) == ("0400", "00")
    assert reversal.terminal_id == "TERM0001" and reversal.stan == 1  # its own STAN: the request had 7


def test_a_lost_answer_is_reversed_when_the_host_is_back() -> None:
    """The host answers nothing (its answer lost on the way): the client's reversal waits, pending, and
    goes as an 0420 before the next request once the host answers again."""
    host = IssuerHost.builtin()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        taken: list[socket.socket] = []
        client = TcpAuthoriser(f"tcp://127.0.0.1:{port}", timeout=0.5)

        def swallow() -> None:  # reads the request and the first reversal, answers neither
            for _ in range(2):
                conn, _ = silent.accept()
                taken.append(conn)
                conn.recv(4096)

        thread = threading.Thread(target=swallow, daemon=True)
        thread.start()
        tx = online("mastercard")
        host.authorise(tx.request)  # what the host did before the answer was lost
        try:
            client.authorise(tx.request)
        except Exception as exc:
            assert "no answer within 0.5 s" in str(exc)
        thread.join(10)
        assert [r.mti for r in client.pending] == ["0400"]
    for conn in taken:
        conn.close()
    with ServerThread(host, port=port):
        from tests.test_host import next_online

        assert client.authorise(next_online(tx, "mastercard").request).response_code == "00"
        assert client.pending == []
    client.close()
    rows = host.log.entries()
    assert [(r.mti, r.response_code) for r in rows] == [("0100", "00"), ("0420", "00"), ("0100", "00")]
    assert rows[0].reversed is not None and rows[2].reversed is None


def test_host_log_shows_approvals_declines_and_reversals_masked(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    tx = online("visa")
    with IssuerHost.builtin(str(db)) as host:
        host.authorise(tx.request)
        host.authorise(tx.request)
        host.reverse(tx.request, "the card declined after the issuer approved")
        host.apply_reversal(Reversal(online("mastercard").request, transmission_time(), "timeout", stan=5))
        shown = emvkit("host", "log", "--db", str(db))  # beside the open writer
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 5
    assert "approved, reversed" in lines[1] and "476173******0119" in lines[1]
    assert "declined 63 security violation" in lines[2]
    assert "reversal matched" in lines[3] and "0400" in lines[3]
    assert "reversal 25 unable to locate record" in lines[4] and "541333******0012" in lines[4]
    assert tx.request.pan not in shown.stdout
    last = emvkit("host", "log", "--db", str(db), "--last", "1")
    assert len(last.stdout.splitlines()) == 2 and "reversal 25" in last.stdout
    missing = emvkit("host", "log", "--db", str(tmp_path / "none.sqlite"))
    assert (missing.returncode, missing.stderr.count("\n")) == (2, 1) and "no such authorisation log" in missing.stderr


def test_a_reversal_answer_decodes_for_the_client() -> None:
    host = IssuerHost.builtin()
    tx = online("unionpay")
    host.authorise(tx.request)
    reply = answer(host, encode_reversal(Reversal(tx.request, "1127031633", "timeout", stan=77)))
    assert reply is not None and frame(reply)[2:] == reply
    response, stan = decode_response(reply, ("0410",))
    assert (response.response_code, stan) == ("00", 77)
