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
the process dying, not an OS crash; cheaper). WAL checkpoints run on a
thread of their own. ``:memory:`` keeps the log in memory.

**Group commit.** Outside :meth:`AuthLog.batch` every row commits on its own
(the in-process host). The TCP server's writer
(:mod:`emvkit.terminal.host.groupcommit`) inserts many requests' rows in one
:meth:`AuthLog.batch` (one transaction, one fsync) and sends their answers
after it commits. Reads for the decision (:meth:`AuthLog.card_ref`,
:meth:`AuthLog.card_history`) go through a connection of their own, so they
never wait for a commit.

**PostgreSQL** (a ``postgresql://`` URL, psycopg 3): the same table and
constraints; any number of host processes can share the log, each with one
transaction per batch. The replay window and velocity counts are then read
from the database for every request (:attr:`AuthLog.shared`).

**Delivery.** An approval the TCP server answers is logged ``pending``
(:data:`PENDING`); the server marks it ``confirmed`` when the terminal shows
it read the answer (its next message on that connection, or its closing the
connection) and ``unconfirmed`` when the answer could not reach it (the
connection broke first). Opening the log as its writer marks the approvals
left ``pending`` by a host that is gone ``unconfirmed``
(:meth:`AuthLog.settle_dead_hosts`): a SQLite log has one writer, so all of
them; in PostgreSQL each host holds an advisory lock named by its run
number while it runs, and only the rows of runs whose lock is free are
settled.

Schema 1 logs (unkeyed PAN hashes, no unique index) cannot be upgraded in
place: the keyed hash needs the PANs, which the log never held. They are
refused with one line saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import sqlite3
import threading
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.tlvdump import mask_pan

__all__ = ["CONFIRMED", "PENDING", "SYNCHRONOUS", "UNCONFIRMED", "AuthLog", "CardHistory", "LogEntry",
           "is_postgres", "scrub"]

_SCHEMA_VERSION = 3
PENDING, CONFIRMED, UNCONFIRMED = "pending", "confirmed", "unconfirmed"
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
    reversed      {real},           -- Unix time the authorisation was reversed
    delivery      TEXT,             -- approvals answered over TCP: pending, confirmed, unconfirmed
    run           INTEGER           -- the host run that answered it (PostgreSQL: its advisory lock)
"""
# Schema 2 -> 3: the delivery of approvals.
_UPGRADE_2 = ("ALTER TABLE authorisations ADD COLUMN delivery TEXT",
              "ALTER TABLE authorisations ADD COLUMN run INTEGER")
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
            "reason", "stan", "terminal_id", "mti", "transmitted", "reversed", "delivery", "run")
_INSERT = (f"INSERT INTO authorisations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
           "ON CONFLICT (pan_hmac, psn, atc) WHERE atc_spent = 1 DO NOTHING RETURNING id")
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM authorisations"

# A card's spent ATCs from the highest down to the replay window, then its
# approvals (not reversed) since a time: kind 0 rows give an ATC, kind 1 a time.
_CARD_HISTORY = (
    "SELECT 0, atc, NULL FROM authorisations WHERE pan_hmac = ? AND psn = ? AND atc_spent = 1 AND atc >= "
    "(SELECT MAX(atc) FROM authorisations WHERE pan_hmac = ? AND psn = ? AND atc_spent = 1) - ? "
    "UNION ALL SELECT 1, NULL, time FROM authorisations WHERE pan_hmac = ? AND response_code = '00' "
    "AND reversed IS NULL AND mti IN ('0100', '0200') AND time >= ?")
_PAN_LIKE = re.compile(r"\d{12,19}")
_SCHEMA_LOCK = 0x454D56  # PostgreSQL advisory lock: one process creates the schema
_RUN_LOCK = 0x454D57  # PostgreSQL advisory locks (_RUN_LOCK, run): the host runs alive


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
    delivery: str | None = None
    run: int | None = None
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
        self.secret_created = False
        self.run = secrets.randbelow(2**31 - 1) + 1  # this host run (PostgreSQL: its advisory lock)
        self.settled = 0  # approvals of hosts that are gone, marked unconfirmed on opening
        self._lock = threading.Lock()  # the writing connection
        self._read_lock = self._lock  # the reading connection (its own lock when it is another one)
        self._lock_fd: int | None = None
        self._checkpointer: _Checkpointer | None = None
        self._select = _SELECT
        # A commit that waits for the disk (or, in PostgreSQL, for the server's WAL flush).
        self.commit_waits = self.shared or (self.path != ":memory:" and synchronous.upper() == "FULL")
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
        self._reader: Any
        if self.shared:
            self._db = _connect_postgres(self.path, readonly)
            self._reader = self._db
            if not readonly:
                self._db.execute("SELECT pg_advisory_lock(%s, %s)", (_RUN_LOCK, self.run))
                self._reader = _connect_postgres(self.path, True)
                self._read_lock = threading.Lock()
        else:
            self._db = self._connect_sqlite(synchronous.upper(), readonly)
            self._reader = self._db
            if not readonly and self.path != ":memory:":
                self._reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                               check_same_thread=False)
                self._read_lock = threading.Lock()
        if not readonly:
            self.settled = self.settle_dead_hosts()

    # --- opening ---

    def _connect_sqlite(self, synchronous: str, readonly: bool) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        if readonly:
            if not Path(self.path).is_file():
                raise ConfigError(f"{self.path}: no such authorisation log")
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                 check_same_thread=False)
            if _check_sqlite_version(db, self.path) == 2:  # read beside a host of the older schema
                self._select = _SELECT.replace("delivery, run", "NULL, NULL")
            return db
        if not memory:
            self._lock_fd = _lock_writer(Path(self.path))
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if _check_sqlite_version(db, self.path) == 2:
                for statement in _UPGRADE_2:
                    db.execute(statement)
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

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            if self.shared:
                return list(self._reader.execute(sql.replace("?", "%s"), params).fetchall())
            return list(self._reader.execute(sql, params).fetchall())

    # --- writing ---

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every row written in the block (group commit):
        committed when the block ends, rolled back when it raises. Only the
        thread that opened it may write in it."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self) -> None:
        """Open the transaction the next rows go into (:meth:`commit` ends it)."""
        with self._lock:
            self._db.execute("BEGIN")

    def commit(self) -> None:
        """Commit the open transaction (SQLite FULL, PostgreSQL: the fsync).
        It may run on another thread than the one that wrote the rows, once
        that one is done with them. When it fails, the rows are rolled back."""
        with self._lock:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    self._db.execute("ROLLBACK")
                raise

    def rollback(self) -> None:
        with self._lock:
            self._db.execute("ROLLBACK")

    def record(self, entry: LogEntry) -> int | None:
        """Append one row; its id. None, and nothing written, when the row
        spends an ATC its card has already spent (a replay: the unique index
        says so)."""
        return self.inserted(self.insert(entry))

    def insert(self, entry: LogEntry) -> Any:
        """Send the INSERT of one row; :meth:`inserted` gives its outcome. Inside
        :meth:`pipeline` (PostgreSQL) the statements sent are queued and go to
        the server together, at the first :meth:`inserted`."""
        row = (entry.time, entry.pan_masked, entry.pan_hmac, entry.psn, entry.amount, entry.currency, entry.atc,
               int(entry.atc_spent), entry.response_code, scrub(entry.reason), entry.stan,
               None if entry.terminal_id is None else scrub(entry.terminal_id), entry.mti, entry.transmitted,
               entry.reversed, entry.delivery, self.run if entry.delivery else None)
        with self._lock:
            return self._execute(_INSERT, row)

    def inserted(self, sent: Any) -> int | None:
        """The id of the row :meth:`insert` sent, or None when the unique index refused it."""
        with self._lock:
            found = sent.fetchall()
        return int(found[0][0]) if found else None

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """PostgreSQL: the statements of the block are sent without waiting
        for each answer (psycopg's pipeline mode), so a batch of inserts
        costs one round trip to the server, not one each. SQLite: nothing
        to save, the block runs as it is."""
        if not self.shared:
            yield
            return
        with self._db.pipeline():
            yield

    def mark_reversed(self, row_id: int, when: float) -> bool:
        """Mark an authorisation reversed; False when it already was."""
        with self._lock:
            cursor = self._execute("UPDATE authorisations SET reversed = ? WHERE id = ? AND reversed IS NULL",
                                   (when, row_id))
            return bool(cursor.rowcount)

    def mark_delivery(self, row_ids: Collection[int], delivery: str) -> None:
        """Set the delivery of approvals still ``pending`` (:data:`CONFIRMED`
        or :data:`UNCONFIRMED`)."""
        if not row_ids:
            return
        marks = ", ".join("?" * len(row_ids))
        with self._lock:
            self._execute(f"UPDATE authorisations SET delivery = ? WHERE delivery = '{PENDING}' AND id IN ({marks})",
                          (delivery, *row_ids))

    def settle_dead_hosts(self) -> int:
        """Mark ``unconfirmed`` the approvals a host that is gone left
        ``pending``; how many."""
        with self._lock:
            if not self.shared:
                return int(self._db.execute(f"UPDATE authorisations SET delivery = '{UNCONFIRMED}' "
                                            f"WHERE delivery = '{PENDING}'").rowcount)
            settled = 0
            runs = [r[0] for r in self._db.execute(
                f"SELECT DISTINCT run FROM authorisations WHERE delivery = '{PENDING}'").fetchall()]
            for run in runs:
                if run == self.run or not self._db.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                                           (_RUN_LOCK, run)).fetchone()[0]:
                    continue  # that host is alive
                try:
                    settled += self._db.execute(f"UPDATE authorisations SET delivery = '{UNCONFIRMED}' "
                                                f"WHERE delivery = '{PENDING}' AND run = %s", (run,)).rowcount
                finally:
                    self._db.execute("SELECT pg_advisory_unlock(%s, %s)", (_RUN_LOCK, run))
            return settled

    # --- reading ---

    def card_ref(self, pan_hashes: Sequence[str]) -> str:
        """The hash a card is logged under: the newest of ``pan_hashes`` (one
        per host secret key, newest first) that has rows, else the newest."""
        if len(pan_hashes) > 1:
            marks = ", ".join("?" * len(pan_hashes))
            found = {r[0] for r in self._read(
                f"SELECT DISTINCT pan_hmac FROM authorisations WHERE pan_hmac IN ({marks})", pan_hashes)}
            for h in pan_hashes:
                if h in found:
                    return h
        return pan_hashes[0]

    def card_history(self, pan_hmac: str, psn: str, atc_window: int, approvals_since: float) -> CardHistory:
        """The replay window and recent approvals of one card, from the
        committed rows (one query: PostgreSQL hosts read it per request)."""
        rows = self._read(_CARD_HISTORY, (pan_hmac, psn, pan_hmac, psn, atc_window, pan_hmac, approvals_since))
        history = CardHistory()
        spent = [atc for kind, atc, _ in rows if kind == 0]
        if spent:
            history.highest_atc = max(spent)
            history.spent_atcs = set(spent)
        history.approvals = deque(sorted(when for kind, _, when in rows if kind == 1))
        return history

    def spent(self, pan_hmac: str, psn: str, atc: int) -> LogEntry | None:
        """The row that spent this ATC of this card, if any (in the writer's
        transaction: a row of the open batch counts)."""
        with self._lock:
            row = self._execute(f"{self._select} WHERE pan_hmac = ? AND psn = ? AND atc = ? AND atc_spent = 1",
                                (pan_hmac, psn, atc)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, pan_hashes: Iterable[str] | None = None, last: int | None = None) -> list[LogEntry]:
        """Every committed row (or one card's, by its hashes), oldest first;
        ``last``: only the newest so many."""
        query, params = self._select, list(pan_hashes or ())
        if params:
            query += f" WHERE pan_hmac IN ({', '.join('?' * len(params))})"
        if last is not None:
            query = f"SELECT * FROM ({query} ORDER BY id DESC LIMIT {int(last)}) AS newest"
        return [_entry(r) for r in self._read(query + " ORDER BY id", params)]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok"); "ok" for PostgreSQL."""
        if self.shared:
            return "ok"
        return str(self._read("PRAGMA integrity_check")[0][0])

    # --- closing ---

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._lock:
            if self._db is None:
                return
            if self._reader is not self._db:
                self._reader.close()
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
                    mti=r[13], transmitted=r[14], reversed=r[15], delivery=r[16], run=r[17])


def _check_sqlite_version(db: sqlite3.Connection, path: str) -> int:
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not an authorisation log ({exc})") from None
    if version == 1:
        raise ConfigError(f"{path}: an authorisation log of schema 1 (unkeyed PAN hashes) cannot be upgraded, "
                          "since the keyed hash needs the PANs it never held; move it aside and start a new log")
    if version not in (0, 2, _SCHEMA_VERSION):
        raise ConfigError(f"{path}: authorisation log schema {version} is not supported ({_SCHEMA_VERSION})")
    return int(version)


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
                elif row[0] == 2:
                    for statement in _UPGRADE_2:
                        db.execute(statement.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
                    db.execute("UPDATE emvkit_schema SET version = %s", (_SCHEMA_VERSION,))
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
