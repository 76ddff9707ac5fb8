"""kill -9 of `emvkit host serve` under load, three times: every approval a terminal received is in the log
(approved, not reversed); every approval the log holds that no terminal received has been reversed (the
terminals' 0400/0420) or is marked unconfirmed; the approvals the killed hosts left pending are unconfirmed once
the host is back, none stays pending; the SQLite file passes `PRAGMA integrity_check`."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bench.host_load import Card, issuer_keys
from emvkit.terminal.errors import TransportError
from emvkit.terminal.host.api import AuthorisationRequest
from emvkit.terminal.host.authlog import CONFIRMED, UNCONFIRMED, AuthLog
from emvkit.terminal.host.client import TcpAuthoriser
from emvkit.terminal.host.secret import HostSecret
from tests.conftest import ROOT
from tests.test_host_db import _CLI

TERMINALS = 4
KILLS = 3
APPROVALS_PER_ROUND = 150
WAIT_S = 120  # upper bound on waiting for an event, never a measured duration


def start_host(db: Path, keys: Path, port: int = 0) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", _CLI, "host", "serve", "--port", str(port), "--db", str(db),
                             "--keys", str(keys)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on tcp://127.0.0.1:" in line, line
    return proc, int(line.split("listening on tcp://127.0.0.1:", 1)[1].split()[0])


def test_kill_9_under_load_loses_no_approval_and_leaves_none_unreconciled(tmp_path: Path) -> None:
    rng = random.Random(9)
    keys = issuer_keys(rng)
    key_file, db = tmp_path / "keys.json", tmp_path / "host.sqlite"
    keys.save(key_file)
    proc, port = start_host(db, key_file)
    url = f"tcp://127.0.0.1:{port}"
    host_up, stop = threading.Event(), threading.Event()
    host_up.set()
    received: list[AuthorisationRequest] = []  # approvals the terminals got
    progress = threading.Condition()
    pending: list[int] = []

    def terminal(n: int) -> None:
        cards = [Card(k, random.Random(n * 100 + i)) for i, k in enumerate(list(keys) * 3)]
        client = TcpAuthoriser(url, timeout=10)
        stan = 0
        while not stop.is_set():
            stan += 1
            request = cards[stan % len(cards)].next_request(100_000 + stan, f"T{n:07d}")
            try:
                response = client.authorise(request)
            except TransportError:
                host_up.wait(WAIT_S)  # the host is down: wait until it is back
                continue
            if response.response_code == "00":
                with progress:
                    received.append(request)
                    progress.notify_all()
        client.close()  # the last pending reversals go now
        pending.append(len(client.pending))

    threads = [threading.Thread(target=terminal, args=(n,), daemon=True) for n in range(TERMINALS)]
    for t in threads:
        t.start()
    try:
        for round_ in range(1, KILLS + 1):
            with progress:
                target = round_ * APPROVALS_PER_ROUND
                assert progress.wait_for(lambda: len(received) >= target, WAIT_S)  # noqa: B023
            host_up.clear()
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT_S)
            proc, _ = start_host(db, key_file, port)
            host_up.set()
        with progress:
            assert progress.wait_for(lambda: len(received) >= (KILLS + 1) * APPROVALS_PER_ROUND, WAIT_S)
        stop.set()
        for t in threads:
            t.join(WAIT_S)
        proc.send_signal(signal.SIGTERM)
        proc.wait(WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert pending == [0] * TERMINALS  # every reversal acknowledged

    secret = HostSecret.load(tmp_path / "host.sqlite.secret")
    with AuthLog(db, readonly=True) as log:
        assert log.integrity_check() == "ok"
        rows = log.entries()
    approvals = {(r.terminal_id, r.stan): r for r in rows if r.mti == "0100" and r.response_code == "00"}
    got = {(q.terminal_id, q.stan) for q in received}
    for request in received:  # each received approval is logged, for its card and ATC, and stands
        row = approvals.get((request.terminal_id, request.stan))
        assert row is not None, f"approval {request.terminal_id}/{request.stan} missing from the log"
        assert row.pan_hmac == secret.pan_hash(request.pan)
        assert row.atc == int.from_bytes(request.icc_data[0x9F36], "big")
        assert row.reversed is None
    assert {row.delivery for row in approvals.values()} <= {CONFIRMED, UNCONFIRMED}  # none left pending
    unreceived = [row for key, row in approvals.items() if key not in got]
    assert all(row.reversed is not None or row.delivery == UNCONFIRMED for row in unreceived), unreceived
    # the terminals reverse what they did not get, so here every one is reversed too
    assert all(row.reversed is not None for row in unreceived), unreceived
    unconfirmed = [row for row in approvals.values() if row.delivery == UNCONFIRMED]
    reversals = [r for r in rows if r.mti in ("0400", "0420")]
    assert len(reversals) >= len(unreceived)
    print(f"{len(received)} approvals received, {len(unreceived)} logged approvals not received (all reversed), "
          f"{len(unconfirmed)} unconfirmed ({sum(r.reversed is not None for r in unconfirmed)} of them reversed), "
          f"{len(reversals)} reversals, {KILLS} kills")
