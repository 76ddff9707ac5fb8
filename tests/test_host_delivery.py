"""Approvals the terminal may not have: an approval the TCP host answers is logged pending, confirmed by the
terminal's next message on that connection or its closing the connection, and unconfirmed when the link broke
before the terminal could read it, or when the host that answered it is gone (SQLite: at the next start;
PostgreSQL: any host, once the answering host's advisory lock is free). `emvkit host log` shows it."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from emvkit.terminal.host.authlog import CONFIRMED, PENDING, UNCONFIRMED, AuthLog, LogEntry
from emvkit.terminal.host.client import TcpAuthoriser
from emvkit.terminal.host.iso8583 import encode_request, frame
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.host.server import ServerThread
from tests.conftest import within
from tests.test_host_db import emvkit
from tests.test_iso8583 import mc_request

WAIT_S = 30  # an upper bound on waiting for the host's move, never a measured duration


def deliveries(log: AuthLog) -> list[str | None]:
    return [r.delivery for r in log.entries() if r.mti == "0100"]


def test_the_next_message_and_the_close_confirm_approvals(tmp_path: Path) -> None:
    with IssuerHost(IssuerKeys.builtin(), log=AuthLog(tmp_path / "host.sqlite")) as host, ServerThread(host) as server:
        with TcpAuthoriser(server.url) as client:
            assert client.authorise(mc_request(1)).response_code == "00"
            assert client.authorise(mc_request(2)).response_code == "00"
            assert deliveries(host.log)[0] in (PENDING, CONFIRMED)  # the second request confirms the first
        within(WAIT_S, "the close confirming the last approval").until(
            lambda: deliveries(host.log) == [CONFIRMED, CONFIRMED])
        assert host.authorise(mc_request(3)).response_code == "00"  # in-process: nothing to confirm
        within(WAIT_S, "the in-process row").until(lambda: deliveries(host.log) == [CONFIRMED, CONFIRMED, None])


def test_a_connection_reset_before_the_answer_is_read_leaves_it_unconfirmed(tmp_path: Path) -> None:
    with IssuerHost(IssuerKeys.builtin(), log=AuthLog(tmp_path / "host.sqlite")) as host, ServerThread(host) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
        sock.sendall(frame(encode_request(mc_request(1))))
        bound = within(WAIT_S, "the approval committed")
        bound.until(lambda: deliveries(host.log) == [PENDING])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, the answer unread
        within(WAIT_S, "the approval marked unconfirmed").until(lambda: deliveries(host.log) == [UNCONFIRMED])
        assert [r.response_code for r in host.log.entries()] == ["00"]  # it stands: only its delivery is in doubt
    done = emvkit("host", "log", "--db", str(tmp_path / "host.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "approved, unconfirmed" in done.stdout


def _pending_approval(log: AuthLog, atc: int) -> None:
    assert log.record(LogEntry(time=1.0, response_code="00", pan_masked="541333******0012", pan_hmac="ab" * 32,
                               psn="01", atc=atc, atc_spent=True, stan=atc, mti="0100",
                               delivery=PENDING)) is not None


def test_approvals_a_dead_sqlite_host_left_pending_are_unconfirmed_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    with AuthLog(db) as log:
        _pending_approval(log, 1)
        assert log.settled == 0
    with AuthLog(db) as log:
        assert log.settled == 1
        assert deliveries(log) == [UNCONFIRMED]


def test_postgres_settles_only_the_rows_of_hosts_that_are_gone(postgres_url: str, tmp_path: Path) -> None:
    secret, _ = HostSecret.open(tmp_path / "host.secret")
    alive = AuthLog(postgres_url, secret)
    try:
        _pending_approval(alive, 1)
        gone = AuthLog(postgres_url, secret)
        _pending_approval(gone, 2)
        gone.close()  # its connection, and so its run's advisory lock, is gone: as after kill -9
        with AuthLog(postgres_url, secret) as later:
            assert later.settled == 1
            assert [(r.atc, r.delivery) for r in later.entries()] == [(1, PENDING), (2, UNCONFIRMED)]
    finally:
        alive.close()
    done = emvkit("host", "log", "--db", postgres_url, "--last", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and "541333******0012" in lines[1]
    assert "approved, awaiting confirmation" in lines[1] and "approved, unconfirmed" in lines[2]
