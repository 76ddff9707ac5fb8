"""Group commit on the TCP host: the loop inserts the rows waiting, a thread of its own commits them, and no
answer leaves before its row is committed; the rows that arrive while a commit is in flight form the next batch,
in which a replayed ARQC conflicting on the unique (card, ATC) index is answered 63 without failing the others."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emvkit.terminal.host.authlog import AuthLog, LogEntry
from emvkit.terminal.host.iso8583 import decode_response, encode_request, frame
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.host.server import ServerThread
from tests.conftest import within
from tests.test_iso8583 import mc_request

WAIT_S = 30  # an upper bound on waiting for the host's move, never a measured duration


class GatedCommits:
    """Holds every COMMIT of a log until the test opens the gate for it."""

    def __init__(self, log: AuthLog, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)
        original = log.commit

        def commit() -> None:
            self.entered.release()
            assert self.gate.acquire(timeout=WAIT_S), "the test never opened the gate"
            original()

        monkeypatch.setattr(log, "commit", commit)

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT_S), "no commit began"

    def open(self) -> None:
        self.gate.release()


@pytest.fixture(params=["sqlite", "postgresql"])
def gated(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[IssuerHost, ServerThread, GatedCommits]]:
    if request.param == "sqlite":
        log = AuthLog(tmp_path / "host.sqlite")
    else:
        log = AuthLog(request.getfixturevalue("postgres_url"), HostSecret.open(tmp_path / "host.secret")[0])
    host = IssuerHost(IssuerKeys.builtin(), log=log)
    commits = GatedCommits(host.log, monkeypatch)
    server = ServerThread(host).start()
    try:
        yield host, server, commits
    finally:
        for _ in range(8):
            commits.open()  # whatever still waits may finish
        server.stop()
        host.close()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the host closed the connection"
        data += chunk
    return data


def read_answer(sock: socket.socket) -> str:
    """One framed answer's response code (the next answer stays unread)."""
    size = int.from_bytes(read_exactly(sock, 2), "big")
    return decode_response(read_exactly(sock, size))[0].response_code


def committed_codes(log: AuthLog) -> list[str]:
    """What another connection sees: only committed rows."""
    if log.shared:
        with AuthLog(log.path, log.secret, readonly=True) as reader:
            return [r.response_code for r in reader.entries()]
    with AuthLog(log.path, readonly=True) as reader:
        return [r.response_code for r in reader.entries()]


def test_no_answer_leaves_before_its_row_is_committed(gated: tuple[IssuerHost, ServerThread, GatedCommits],
                                                       tmp_path: Path) -> None:
    host, server, commits = gated
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as sock:
        sock.sendall(frame(encode_request(mc_request(1))))
        commits.wait_entered()  # the row is inserted, its COMMIT is held
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing was sent
        assert committed_codes(host.log) == []
        sock.setblocking(True)
        sock.settimeout(WAIT_S)
        commits.open()
        assert read_answer(sock) == "00"
        assert committed_codes(host.log) == ["00"]  # committed before it was sent


def test_rows_arriving_during_a_commit_form_one_batch_where_a_replay_fails_only_itself(
        gated: tuple[IssuerHost, ServerThread, GatedCommits], monkeypatch: pytest.MonkeyPatch) -> None:
    host, server, commits = gated
    events: list[tuple[str, int | None, bool]] = []
    insert, inserted = host.log.insert, host.log.inserted

    def spy_insert(entry: LogEntry) -> Any:
        events.append(("insert", entry.atc, host.log.shared and host.log._db.pgconn.pipeline_status != 0))
        return insert(entry)

    def spy_inserted(sent: Any) -> int | None:
        events.append(("inserted", None, False))
        return inserted(sent)

    monkeypatch.setattr(host.log, "insert", spy_insert)
    monkeypatch.setattr(host.log, "inserted", spy_inserted)
    first, second = (socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) for _ in range(2))
    with first, second:
        first.sendall(frame(encode_request(mc_request(1))))
        commits.wait_entered()  # batch 1 (ATC 1) is committing: what arrives now waits for batch 2
        before = server.server.writer.batches
        # ATC 2 twice (the same ARQC: a replay) and ATC 3, on two connections, while batch 1 is held.
        replayed = frame(encode_request(mc_request(2)))
        second.sendall(replayed + frame(encode_request(mc_request(3, stan=2))))
        first.sendall(replayed)
        writer = server.server.writer
        within(WAIT_S, "the three requests decided and waiting").until(lambda: len(writer._waiting) == 3)
        commits.open()
        assert read_answer(first) == "00"  # ATC 1
        commits.wait_entered()  # batch 2 holds every row that waited
        commits.open()
        answers = sorted([read_answer(second), read_answer(second), read_answer(first)])
        assert answers == ["00", "00", "63"]  # the replay conflicts on the index; the other two stand
        assert server.server.writer.batches == before + 2
        rows = host.log.entries()
        assert sorted((r.atc, r.response_code) for r in rows) == [(1, "00"), (2, "00"), (2, "63"), (3, "00")]
    # Batch 2 sends its three rows before it reads the first outcome (on PostgreSQL in one pipeline: one
    # round trip). SQLite: the host's own cache saw the replay when deciding, so its row is a 63 already.
    # PostgreSQL: another host may have spent the ATC, so the index decides, and the 63 row follows.
    shared = host.log.shared
    sent = [("insert", 2, shared), ("insert", 2, shared), ("insert", 3, shared)]
    read = [("inserted", None, False)] * 3
    if shared:
        read[1:2] = [("inserted", None, False), ("insert", 2, True), ("inserted", None, False)]
    assert events[2:] == sent + read
