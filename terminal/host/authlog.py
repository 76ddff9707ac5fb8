"""The authorisation log: one SQLite row per request the host answered.

Each row holds the time, the masked PAN (first 6 and last 4 digits, the PCI
DSS display rule) and the SHA-256 of the PAN for look-ups, amount, currency,
ATC, whether the ARQC verified (so the ATC is spent), response code, reason,
STAN, terminal id and MTI. Never the full PAN, track 2 data, cryptograms or
keys; reasons are scrubbed of anything that looks like a PAN before they are
stored.

The log is also the host's memory: the ATC replay window and the velocity
counts are read back from it (:meth:`AuthLog.card_history`), so they survive
a restart. A file database uses WAL with ``synchronous=NORMAL``: a committed
row survives the host process dying (not the machine losing power, which
would need an fsync per commit). By default every :meth:`record` commits
before it returns. With ``group_commit`` set, rows wait in one open
transaction until :meth:`flush`; the TCP server flushes once per event-loop
pass *before* it sends the answers of that pass, so no answer ever leaves
for a row that is not committed (group commit), at a fraction of the cost
of a commit per row. WAL checkpoints (which fsync) run on a thread of their
own, once a second, so the writer never stalls on one. The default path
``:memory:`` keeps the log in memory (the in-process host of tests and
``emvkit tap``). One host process per database file: the replay window is
also cached in that process.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.tlvdump import mask_pan

__all__ = ["AuthLog", "CardHistory", "LogEntry", "scrub"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS authorisations (
    id            INTEGER PRIMARY KEY,
    time          REAL NOT NULL,     -- Unix time, seconds
    pan_masked    TEXT,              -- 476173******0119
    pan_sha256    TEXT,              -- hex SHA-256 of the PAN digits
    amount        INTEGER,           -- DE 4, minor units
    currency      TEXT,              -- DE 49, 3 digits
    atc           INTEGER,           -- 9F36
    atc_spent     INTEGER NOT NULL,  -- 1: the ARQC verified, this ATC is used up
    response_code TEXT NOT NULL,     -- DE 39
    reason        TEXT NOT NULL,
    stan          INTEGER,           -- DE 11
    terminal_id   TEXT,              -- DE 41
    mti           TEXT
);
CREATE INDEX IF NOT EXISTS authorisations_by_card ON authorisations (pan_sha256, atc);
"""
_COLUMNS = ("time", "pan_masked", "pan_sha256", "amount", "currency", "atc", "atc_spent", "response_code",
            "reason", "stan", "terminal_id", "mti")
_INSERT = f"INSERT INTO authorisations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"

_PAN_LIKE = re.compile(r"\d{12,19}")


def scrub(text: str) -> str:
    """``text`` with every run of 12 to 19 digits masked like a PAN."""
    return _PAN_LIKE.sub(lambda m: mask_pan(m.group(0)), text)


@dataclass(frozen=True)
class LogEntry:
    time: float
    response_code: str
    reason: str = ""
    pan_masked: str | None = None
    pan_sha256: str | None = None
    amount: int | None = None
    currency: str | None = None
    atc: int | None = None
    atc_spent: bool = False
    stan: int | None = None
    terminal_id: str | None = None
    mti: str | None = None


@dataclass
class CardHistory:
    """What the log knows about one card: the ATCs it has spent (the highest
    and those within the replay window below it) and its recent approvals."""

    highest_atc: int = -1
    spent_atcs: set[int] = field(default_factory=set)
    approvals: deque[float] = field(default_factory=deque)


class AuthLog:
    """SQLite authorisation log; ``path`` is a file or ``:memory:``."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self.group_commit = False
        self._open_transaction = False
        self._lock = threading.Lock()
        if self.path != ":memory:":
            _create_private(Path(self.path))
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.executescript(_SCHEMA)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                # Checkpoints copy the WAL into the database and fsync: a few
                # milliseconds every few hundred rows if the writer did them
                # (SQLite's auto-checkpoint), so a thread of its own does them.
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise ConfigError(f"{self.path}: authorisation log schema {version} is not supported")
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not an authorisation log ({exc})") from None
        self._checkpointer: _Checkpointer | None = None
        if self.path != ":memory:":
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()

    def record(self, entry: LogEntry) -> None:
        """Append one row (committed before this returns)."""
        row = (entry.time, entry.pan_masked, entry.pan_sha256, entry.amount, entry.currency, entry.atc,
               int(entry.atc_spent), entry.response_code, scrub(entry.reason), entry.stan,
               None if entry.terminal_id is None else scrub(entry.terminal_id), entry.mti)
        with self._lock:
            if not self.group_commit:
                self._db.execute(_INSERT, row)
                return
            if not self._open_transaction:
                self._db.execute("BEGIN")
                self._open_transaction = True
            self._db.execute(_INSERT, row)

    def flush(self) -> None:
        """Commit the rows held back by ``group_commit``."""
        with self._lock:
            self._commit()

    def _commit(self) -> None:
        if self._open_transaction:
            self._open_transaction = False
            self._db.execute("COMMIT")

    def card_history(self, pan_hash: str, atc_window: int, approvals_since: float) -> CardHistory:
        """The replay window and recent approvals of one card, from the rows."""
        with self._lock:
            highest = self._db.execute(
                "SELECT MAX(atc) FROM authorisations WHERE pan_sha256 = ? AND atc_spent = 1", (pan_hash,)
            ).fetchone()[0]
            history = CardHistory()
            if highest is not None:
                history.highest_atc = highest
                history.spent_atcs = {row[0] for row in self._db.execute(
                    "SELECT atc FROM authorisations WHERE pan_sha256 = ? AND atc_spent = 1 AND atc >= ?",
                    (pan_hash, highest - atc_window))}
            history.approvals = deque(row[0] for row in self._db.execute(
                "SELECT time FROM authorisations WHERE pan_sha256 = ? AND response_code = '00' AND time >= ? "
                "ORDER BY time", (pan_hash, approvals_since)))
        return history

    def entries(self, pan_hash: str | None = None) -> list[LogEntry]:
        """Every row (or one card's), oldest first."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM authorisations"
        params: tuple[str, ...] = ()
        if pan_hash is not None:
            query += " WHERE pan_sha256 = ?"
            params = (pan_hash,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [LogEntry(time=r[0], pan_masked=r[1], pan_sha256=r[2], amount=r[3], currency=r[4], atc=r[5],
                         atc_spent=bool(r[6]), response_code=r[7], reason=r[8], stan=r[9], terminal_id=r[10],
                         mti=r[11]) for r in rows]

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._lock:
            self._commit()
            if self.path != ":memory:":
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.DatabaseError:
                    pass
            self._db.close()

    def __enter__(self) -> AuthLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def _create_private(path: Path) -> None:
    # The log is cardholder-data adjacent (masked PANs, PAN hashes): make
    # it readable by its owner only, like the key files.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the authorisation log ({exc.strerror})") from None
