"""The authorisation log as the judge of replays: the unique (card, ATC) index in SQLite and PostgreSQL,
one writer per SQLite file, keyed PAN hashes under a rotatable host secret, old logs refused."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import emvkit.terminal.host.issuer as issuer_module
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.authlog import AuthLog
from emvkit.terminal.host.client import TcpAuthoriser
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.rules import Rules
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.host.server import ServerThread
from tests.conftest import ROOT
from tests.test_host import next_online, online

_CLI = ("import sys, emvkit.terminal.cli as c\n"
        "c.COMMANDS += [n for n in ('host',) if n not in c.COMMANDS]\n"
        "sys.exit(c.main(sys.argv[1:]))\n")


def emvkit(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _CLI, *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


# --- the unique index decides ---


def test_the_database_declines_a_replay_the_cache_lets_through(monkeypatch: pytest.MonkeyPatch) -> None:
    host = IssuerHost.builtin()
    tx = online("visa")
    assert host.authorise(tx.request).response_code == "00"
    # Without the in-process window check, only the unique index stands between a replay and an approval.
    monkeypatch.setattr(issuer_module, "_check_atc", lambda history, atc, window: None)
    replayed = host.authorise(tx.request)
    assert (replayed.response_code, replayed.issuer_authentication_data) == ("63", None)
    assert [(r.response_code, r.atc_spent) for r in host.log.entries()] == [("00", True), ("63", False)]
    assert host.authorise(next_online(tx, "visa").request).response_code == "00"


def test_the_unique_index_is_in_the_file(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    with IssuerHost.builtin(str(db)) as host:
        host.authorise(online("mastercard").request)
    with sqlite3.connect(db) as raw:
        sql = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'authorisations_card_atc'").fetchone()[0]
        assert "UNIQUE INDEX" in sql and "(pan_hmac, psn, atc) WHERE atc_spent = 1" in sql
        row = raw.execute("SELECT time, pan_masked, pan_hmac, psn, amount, currency, atc, atc_spent, "
                          "response_code, reason, stan, terminal_id, mti FROM authorisations").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            raw.execute("INSERT INTO authorisations (time, pan_masked, pan_hmac, psn, amount, currency, atc, "
                        "atc_spent, response_code, reason, stan, terminal_id, mti) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


def test_synchronous_full_by_default_and_normal_on_request(tmp_path: Path) -> None:
    with AuthLog(tmp_path / "a.sqlite") as log:
        assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with AuthLog(tmp_path / "b.sqlite", synchronous="normal") as log:
        assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with pytest.raises(ConfigError, match="FULL or NORMAL"):
        AuthLog(tmp_path / "c.sqlite", synchronous="OFF")


# --- one writer per SQLite file ---


def test_a_second_writer_on_one_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    with AuthLog(db):
        with pytest.raises(ConfigError, match="another host process is writing"):
            AuthLog(db)
        with AuthLog(db, readonly=True) as reader:  # `emvkit host log` reads beside the writer
            assert reader.entries() == []
    with AuthLog(db):  # the lock went with the first
        pass


def test_a_second_host_serve_on_one_file_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    with IssuerHost.builtin(str(db)):
        done = emvkit("host", "serve", "--port", "0", "--db", str(db))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "another host process is writing this authorisation log" in done.stderr
    assert done.stdout == ""


def test_a_schema_1_log_is_refused_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE authorisations (id INTEGER PRIMARY KEY, pan_sha256 TEXT)")
        raw.execute("PRAGMA user_version=1")
    done = emvkit("host", "serve", "--port", "0", "--db", str(db))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "schema 1 (unkeyed PAN hashes) cannot be upgraded" in done.stderr
    assert "move it aside and start a new log" in done.stderr


# --- the keyed PAN hash and its secret ---


def test_the_secret_is_created_0600_beside_the_log_and_holds_no_pan(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    with IssuerHost.builtin(str(db)) as host:
        tx = online("unionpay")
        host.authorise(tx.request)
        row = host.log.entries()[0]
    secret_file = tmp_path / "host.sqlite.secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    secret = HostSecret.load(secret_file)
    assert row.pan_hmac == secret.pan_hash(tx.request.pan)
    assert row.pan_hmac != hashlib.sha256(tx.request.pan.encode()).hexdigest()
    assert tx.request.pan.encode() not in secret_file.read_bytes()
    assert secret.keys[1].hex() not in repr(secret)


def test_a_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "host.secret"
    HostSecret.open(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"accessible to other users \(mode 0644\); run: chmod 600"):
        HostSecret.load(path)
    link = tmp_path / "link.secret"
    os.chmod(path, 0o600)
    link.symlink_to(path)
    with pytest.raises(ConfigError, match="cannot read the host secret"):
        HostSecret.load(link)


def test_rotation_keeps_cards_and_blocked_pans_of_the_old_key(tmp_path: Path) -> None:
    db, path = tmp_path / "host.sqlite", tmp_path / "host.secret"
    secret, created = HostSecret.open(path)
    assert created
    visa, mastercard = online("visa"), online("mastercard")
    rules = Rules().blocking(secret, mastercard.request.pan)  # a blocked list made under key 1
    with IssuerHost(IssuerKeys.builtin(), rules, AuthLog(db, secret)) as host:
        assert host.authorise(visa.request).response_code == "00"
    rotated = secret.rotate()
    assert rotated.current == 2 and HostSecret.load(path).keys == rotated.keys
    with IssuerHost(IssuerKeys.builtin(), rules, AuthLog(db, HostSecret.load(path))) as host:
        assert host.authorise(visa.request).response_code == "63"  # the card is still known: a replay
        assert host.authorise(next_online(visa, "visa").request).response_code == "00"
        assert host.authorise(mastercard.request).response_code == "62"  # still blocked
        hashes = {r.pan_hmac for r in host.log.entries() if r.pan_masked == "476173******0119"}
    assert hashes == {secret.pan_hash(visa.request.pan)}  # the card kept the hash it was first logged under


def test_host_secret_cli_hash_and_rotate(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    with IssuerHost.builtin(str(db)):
        pass
    hashed = emvkit("host", "secret", "hash", "--db", str(db), stdin="5413330089010012\n\n")
    assert hashed.returncode == 0, hashed.stderr
    secret = HostSecret.load(tmp_path / "host.sqlite.secret")
    assert hashed.stdout == f"{secret.pan_hash('5413330089010012')}  # 541333******0012\n"
    bad = emvkit("host", "secret", "hash", "--db", str(db), stdin="1234\n")
    assert (bad.returncode, bad.stderr.count("\n")) == (2, 1) and "line 1: a PAN is 12 to 19 digits" in bad.stderr
    rotated = emvkit("host", "secret", "rotate", "--db", str(db))
    assert rotated.returncode == 0 and "key 2 is current, 1 older kept" in rotated.stdout
    assert HostSecret.load(tmp_path / "host.sqlite.secret").keys[1] == secret.keys[1]


def test_host_secret_hash_on_a_new_host_creates_the_secret_the_host_then_uses(tmp_path: Path) -> None:
    db, path = tmp_path / "host.sqlite", tmp_path / "host.sqlite.secret"
    hashed = emvkit("host", "secret", "hash", "--db", str(db), stdin="5413330089010012\n")
    assert hashed.returncode == 0, hashed.stderr
    assert hashed.stderr == f"host secret:      {path} (created, mode 0600)\n"
    assert path.stat().st_mode & 0o777 == 0o600
    secret = HostSecret.load(path)
    assert hashed.stdout == f"{secret.pan_hash('5413330089010012')}  # 541333******0012\n"
    again = emvkit("host", "secret", "hash", "--db", str(db), stdin="5413330089010012\n")
    assert (again.stdout, again.stderr) == (hashed.stdout, "")  # the same secret, not a new one
    with IssuerHost.builtin(str(db)) as host:
        assert host.log.secret.keys == secret.keys


@pytest.mark.parametrize(("args", "words"), [
    (["--idle-timeout", "nan"], "--idle-timeout must be more than 0"),
    (["--frame-timeout", "0"], "--frame-timeout must be more than 0"),
    (["--max-connections", "0"], "--max-connections must be 1..65535"),
    (["--db", "postgresql://nobody@/x"], "--secret FILE is required with a PostgreSQL log"),
])
def test_bad_serve_options_are_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    done = emvkit("host", "serve", "--port", "0", "--db", str(tmp_path / "h.sqlite"), *args)
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert words in done.stderr


# --- PostgreSQL: one log, any number of hosts ---


def test_postgres_log_has_the_same_constraint(postgres_url: str, tmp_path: Path) -> None:
    secret, _ = HostSecret.open(tmp_path / "host.secret")
    tx = online("visa")
    with IssuerHost(IssuerKeys.builtin(), log=AuthLog(postgres_url, secret)) as first, \
            IssuerHost(IssuerKeys.builtin(), log=AuthLog(postgres_url, secret)) as second:
        assert first.log.shared and second.log.shared
        assert first.authorise(tx.request).response_code == "00"
        replayed = second.authorise(tx.request)  # another host, the same database
        assert (replayed.response_code, replayed.issuer_authentication_data) == ("63", None)
        assert second.authorise(next_online(tx, "visa").request).response_code == "00"
        assert [r.response_code for r in first.log.entries()] == ["00", "63", "00"]


def test_a_replay_storm_on_two_postgres_hosts_is_approved_once(postgres_url: str, tmp_path: Path) -> None:
    secret, _ = HostSecret.open(tmp_path / "host.secret")
    hosts = [IssuerHost(IssuerKeys.builtin(), log=AuthLog(postgres_url, secret)) for _ in range(2)]
    transactions = [online("mastercard")]
    for _ in range(19):
        transactions.append(next_online(transactions[-1], "mastercard"))
    codes: list[list[str]] = [[], []]
    try:
        with ServerThread(hosts[0]) as a, ServerThread(hosts[1]) as b:
            barrier = threading.Barrier(2)

            def terminal(n: int, url: str) -> None:
                with TcpAuthoriser(url) as client:
                    for tx in transactions:
                        barrier.wait(10)  # every ARQC to both hosts at once
                        codes[n].append(client.authorise(tx.request).response_code)

            threads = [threading.Thread(target=terminal, args=(n, s.url)) for n, s in enumerate((a, b))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        pairs = sorted(zip(*codes, strict=True))
        assert len(pairs) == len(transactions)
        assert all(sorted(p) == ["00", "63"] for p in pairs), pairs
        rows = hosts[0].log.entries()
        assert sum(r.response_code == "00" for r in rows) == len(transactions)
    finally:
        for host in hosts:
            host.close()


def test_postgres_needs_a_reachable_server(tmp_path: Path) -> None:
    secret, _ = HostSecret.open(tmp_path / "host.secret")
    with pytest.raises(ConfigError, match="cannot connect to the PostgreSQL log"):
        AuthLog(f"postgresql://nobody:pw@/x?host={tmp_path}&port=1", secret)
