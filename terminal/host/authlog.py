"""The authorisation log: one row per message the host answered, in SQLite
or PostgreSQL.

Each row holds the time, the masked PAN (first 6 and last 4 digits, the PCI
DSS display rule), the keyed PAN hash (HMAC-SHA-256 under the host secret,
:mod:`emvkit.terminal.host.secret`), the PAN sequence number, amount,
currency, ATC, whether the ARQC verified (so the ATC is spent), response
code, reason, STAN, terminal id, MTI, the transmission time (DE 7) and when
the authorisation was reversed. Never the full PAN, an unkeyed PAN hash,
track 2 data, cryptograms or keys; reasons are scrubbed of anything that
looks like a PAN before they are stored.

**The database decides replays.** A card is its keyed PAN hash and PSN; a
unique index on (card, ATC) over the rows whose ATC is spent means a second
row spending the same ATC of the same card cannot exist: :meth:`AuthLog.record`
inserts with ``ON CONFLICT DO NOTHING`` and reports whether the row went in,
in the same transaction that would commit it. Two host processes on one
PostgreSQL database cannot both approve one ARQC.

**SQLite** (a file path): one writer per file, enforced by an exclusive
``flock`` on the database file held while the log is open; a second writer
is refused with one line. WAL with ``synchronous=FULL`` by default: a
committed row survives the machine losing power (``NORMAL``: it survives
the process dying, not an OS crash; cheaper). With ``group_commit`` set, rows
wait in one open transaction until :meth:`AuthLog.flush`; the TCP server
flushes once per event-loop pass *before* it sends that pass's answers. WAL
checkpoints run on a thread of their own. ``:memory:`` keeps the log in
memory.

**PostgreSQL** (a ``postgresql://`` URL, psycopg 3): the same table and
constraints; every row commits on its own (a group commit across processes
could deadlock on the unique index), so any number of host processes can
share the log. The replay window and velocity counts are then read from the
database for every request (:attr:`AuthLog.shared`).

Schema 1 logs (unkeyed PAN hashes, no unique index) cannot be upgraded in
place: the keyed hash needs the PANs, which the log never held. They are
refused with one line saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.tlvdump import mask_pan

__all__ = ["SYNCHRONOUS", "AuthLog", "CardHistory", "LogEntry", "is_postgres", "scrub"]

_SCHEMA_VERSION = 2
SYNCHRONOUS = ("FULL", "NORMAL")

_COLUMNS_SQL = """
    time          {real} NOT NULL,  -- Unix time, seconds
    pan_masked    TEXT,             -- 476173******0119
    pan_hmac      TEXT,             -- HMAC-SHA-256 of the PAN digits under the host secret, hex
    psn           TEXT,             -- PAN sequence number, 2 digits
    amount        BIGINT,           -- DE 4, minor units
    currency      TEXT,             -- DE 49, 3 digits
    atc           INTEGER,          -- 9F36
    atc_spent     INTEGER NOT NULL, -- 1: the ARQC verified, this ATC of this card is used up
    response_code TEXT NOT NULL,    -- DE 39
    reason        TEXT NOT NULL,
    stan          INTEGER,          -- DE 11
    terminal_id   TEXT,             -- DE 41
    mti           TEXT,             -- 0100, 0200, 0400, 0420
    transmitted   TEXT,             -- DE 7, MMDDhhmmss UTC
    reversed      {real}            -- Unix time the authorisation was reversed
"""
_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS authorisations_card_atc ON authorisations (pan_hmac, psn, atc) WHERE atc_spent = 1;
CREATE INDEX IF NOT EXISTS authorisations_by_card ON authorisations (pan_hmac, time);
"""
_SQLITE_SCHEMA = (f"CREATE TABLE IF NOT EXISTS authorisations (\n    id INTEGER PRIMARY KEY,"
                  f"{_COLUMNS_SQL.format(real='REAL')});" + _INDEXES)
_POSTGRES_SCHEMA = (f"CREATE TABLE IF NOT EXISTS authorisations (\n    id BIGSERIAL PRIMARY KEY,"
                    f"{_COLUMNS_SQL.format(real='DOUBLE PRECISION')});" + _INDEXES +
                    "CREATE TABLE IF NOT EXISTS emvkit_schema (version INTEGER NOT NULL);")
_COLUMNS = ("time", "pan_masked", "pan_hmac", "psn", "amount", "currency", "atc", "atc_spent", "response_code",
            "reason", "stan", "terminal_id", "mti", "transmitted", "reversed")
_INSERT = (f"INSERT INTO authorisations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
           "ON CONFLICT (pan_hmac, psn, atc) WHERE atc_spent = 1 DO NOTHING RETURNING id")
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM authorisations"

_PAN_LIKE = re.compile(r"\d{12,19}")
_SCHEMA_LOCK = 0x454D56  # PostgreSQL advisory lock: one process creates the schema


def scrub(text: str) -> str:
    """``text`` with every run of 12 to 19 digits masked like a PAN."""
    return _PAN_LIKE.sub(lambda m: mask_pan(m.group(0)), text)


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class LogEntry:
    time: float
    response_code: str
    reason: str = ""
    pan_masked: str | None = None
    pan_hmac: str | None = None
    psn: str | None = None
    amount: int | None = None
    currency: str | None = None
    atc: int | None = None
    atc_spent: bool = False
    stan: int | None = None
    terminal_id: str | None = None
    mti: str | None = None
    transmitted: str | None = None
    reversed: float | None = None
    id: int | None = None


@dataclass
class CardHistory:
    """What the log knows about one card: the ATCs it has spent (the highest
    and those within the replay window below it) and its recent approvals
    (not reversed)."""

    highest_atc: int = -1
    spent_atcs: set[int] = field(default_factory=set)
    approvals: deque[float] = field(default_factory=deque)


class AuthLog:
    """The authorisation log; ``db`` is a SQLite file, ``:memory:`` or a
    ``postgresql://`` URL. ``secret``: the host secret of the keyed PAN hash
    (default: ``DB.secret`` beside a SQLite file, created 0600 on first use;
    a fresh key in memory for ``:memory:``; required for PostgreSQL).
    ``readonly``: for reading the log beside a running host (no lock, no
    secret needed)."""

    def __init__(self, db: str | Path = ":memory:", secret: HostSecret | None = None,
                 synchronous: str = "FULL", readonly: bool = False) -> None:
        self.path = str(db)
        self.shared = is_postgres(self.path)
        self.group_commit = False
        self.secret_created = False
        self._open_transaction = False
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._checkpointer: _Checkpointer | None = None
        if synchronous.upper() not in SYNCHRONOUS:
            raise ConfigError(f"synchronous must be {' or '.join(SYNCHRONOUS)}, not {synchronous!r}")
        if secret is None and not readonly:
            if self.path == ":memory:":
                secret = HostSecret.ephemeral()
            elif self.shared:
                raise ConfigError("a PostgreSQL log needs the host secret file (--secret)")
            else:
                secret, self.secret_created = HostSecret.open(self.path + ".secret")
        self.secret = secret
        self._db: Any
        if self.shared:
            self._db = _connect_postgres(self.path, readonly)
        else:
            self._db = self._connect_sqlite(synchronous.upper(), readonly)

    # --- opening ---

    def _connect_sqlite(self, synchronous: str, readonly: bool) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        if readonly:
            if not Path(self.path).is_file():
                raise ConfigError(f"{self.path}: no such authorisation log")
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                 check_same_thread=False)
            _check_sqlite_version(db, self.path)
            return db
        if not memory:
            self._lock_fd = _lock_writer(Path(self.path))
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            _check_sqlite_version(db, self.path)
            db.executescript(_SQLITE_SCHEMA)
            if not memory:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={synchronous}")
                # Checkpoints copy the WAL into the database and fsync: a thread
                # of its own does them, so the writer never waits for one.
                db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self._unlock()
            raise ConfigError(f"{self.path}: not an authorisation log ({exc})") from None
        except ConfigError:
            self._unlock()
            raise
        if not memory:
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()
        return db

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.shared:
            return self._db.execute(sql.replace("?", "%s"), params)
        return self._db.execute(sql, params)

    # --- writing ---

    def record(self, entry: LogEntry) -> bool:
        """Append one row. False, and nothing written, when the row spends an
        ATC its card has already spent (a replay: the unique index says so)."""
        row = (entry.time, entry.pan_masked, entry.pan_hmac, entry.psn, entry.amount, entry.currency, entry.atc,
               int(entry.atc_spent), entry.response_code, scrub(entry.reason), entry.stan,
               None if entry.terminal_id is None else scrub(entry.terminal_id), entry.mti, entry.transmitted,
               entry.reversed)
        with self._lock:
            if self.group_commit and not self.shared and not self._open_transaction:
                self._db.execute("BEGIN")
                self._open_transaction = True
            return bool(self._execute(_INSERT, row).fetchall())

    def flush(self) -> None:
        """Commit the rows held back by ``group_commit``."""
        with self._lock:
            self._commit()

    def _commit(self) -> None:
        if self._open_transaction:
            self._open_transaction = False
            self._db.execute("COMMIT")

    def mark_reversed(self, row_id: int, when: float) -> bool:
        """Mark an authorisation reversed; False when it already was."""
        with self._lock:
            if self.group_commit and not self.shared and not self._open_transaction:
                self._db.execute("BEGIN")
                self._open_transaction = True
            cursor = self._execute("UPDATE authorisations SET reversed = ? WHERE id = ? AND reversed IS NULL",
                                   (when, row_id))
            return bool(cursor.rowcount)

    # --- reading ---

    def card_ref(self, pan_hashes: Sequence[str]) -> str:
        """The hash a card is logged under: the newest of ``pan_hashes`` (one
        per host secret key, newest first) that has rows, else the newest."""
        if len(pan_hashes) > 1:
            marks = ", ".join("?" * len(pan_hashes))
            with self._lock:
                found = {r[0] for r in self._execute(
                    f"SELECT DISTINCT pan_hmac FROM authorisations WHERE pan_hmac IN ({marks})", pan_hashes)}
            for h in pan_hashes:
                if h in found:
                    return h
        return pan_hashes[0]

    def card_history(self, pan_hmac: str, psn: str, atc_window: int, approvals_since: float) -> CardHistory:
        """The replay window and recent approvals of one card, from the rows."""
        with self._lock:
            highest = self._execute(
                "SELECT MAX(atc) FROM authorisations WHERE pan_hmac = ? AND psn = ? AND atc_spent = 1",
                (pan_hmac, psn)).fetchone()[0]
            history = CardHistory()
            if highest is not None:
                history.highest_atc = highest
                history.spent_atcs = {row[0] for row in self._execute(
                    "SELECT atc FROM authorisations WHERE pan_hmac = ? AND psn = ? AND atc_spent = 1 AND atc >= ?",
                    (pan_hmac, psn, highest - atc_window))}
            history.approvals = deque(row[0] for row in self._execute(
                "SELECT time FROM authorisations WHERE pan_hmac = ? AND response_code = '00' AND reversed IS NULL "
                "AND mti IN ('0100', '0200') AND time >= ? ORDER BY time", (pan_hmac, approvals_since)))
        return history

    def spent(self, pan_hmac: str, psn: str, atc: int) -> LogEntry | None:
        """The row that spent this ATC of this card, if any."""
        with self._lock:
            row = self._execute(f"{_SELECT} WHERE pan_hmac = ? AND psn = ? AND atc = ? AND atc_spent = 1",
                                (pan_hmac, psn, atc)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, pan_hashes: Iterable[str] | None = None, last: int | None = None) -> list[LogEntry]:
        """Every row (or one card's, by its hashes), oldest first; ``last``:
        only the newest so many."""
        query, params = _SELECT, list(pan_hashes or ())
        if params:
            query += f" WHERE pan_hmac IN ({', '.join('?' * len(params))})"
        if last is not None:
            query = f"SELECT * FROM ({query} ORDER BY id DESC LIMIT {int(last)}) AS newest"
        with self._lock:
            rows = self._execute(query + " ORDER BY id", params).fetchall()
        return [_entry(r) for r in rows]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok"); "ok" for PostgreSQL."""
        if self.shared:
            return "ok"
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    # --- closing ---

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._lock:
            if self._db is None:
                return
            self._commit()
            if self.path != ":memory:" and not self.shared and self._lock_fd is not None:
                with contextlib.suppress(sqlite3.DatabaseError):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> AuthLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entry(r: Sequence[Any]) -> LogEntry:
    return LogEntry(id=r[0], time=r[1], pan_masked=r[2], pan_hmac=r[3], psn=r[4], amount=r[5], currency=r[6],
                    atc=r[7], atc_spent=bool(r[8]), response_code=r[9], reason=r[10], stan=r[11], terminal_id=r[12],
                    mti=r[13], transmitted=r[14], reversed=r[15])


def _check_sqlite_version(db: sqlite3.Connection, path: str) -> None:
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not an authorisation log ({exc})") from None
    if version == 1:
        raise ConfigError(f"{path}: an authorisation log of schema 1 (unkeyed PAN hashes) cannot be upgraded, "
                          "since the keyed hash needs the PANs it never held; move it aside and start a new log")
    if version not in (0, _SCHEMA_VERSION):
        raise ConfigError(f"{path}: authorisation log schema {version} is not supported ({_SCHEMA_VERSION})")


def _lock_writer(path: Path) -> int:
    """Create the file (0600: masked PANs, keyed hashes) and hold an exclusive
    flock on it: one writing host per SQLite file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open the authorisation log ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(f"{path}: another host process is writing this authorisation log (one writer per "
                          "SQLite file; several hosts share a PostgreSQL log)") from None
    return fd


def _connect_postgres(url: str, readonly: bool) -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError("a PostgreSQL log needs psycopg: pip install 'emvkit[postgres]'") from None
    try:
        db = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot connect to the PostgreSQL log ({scrub(first)})") from None
    try:
        if not readonly:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                db.execute(_POSTGRES_SCHEMA)
                row = db.execute("SELECT version FROM emvkit_schema").fetchone()
                if row is None:
                    db.execute("INSERT INTO emvkit_schema VALUES (%s)", (_SCHEMA_VERSION,))
                elif row[0] != _SCHEMA_VERSION:
                    raise ConfigError(f"PostgreSQL authorisation log schema {row[0]} is not supported")
    except psycopg.Error as exc:
        db.close()
        raise ConfigError(f"the PostgreSQL log: {str(exc).strip().splitlines()[0]}") from None
    except ConfigError:
        db.close()
        raise
    return db


class _Checkpointer(threading.Thread):
    """Moves committed WAL frames into the database file once a second, on a
    connection of its own (PASSIVE: never blocks the writer)."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        super().__init__(name="emvkit-authlog-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            while not self._halt.wait(self.interval):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or gone: the next pass, or close(), checkpoints
        finally:
            db.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
