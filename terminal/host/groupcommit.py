"""Group commit: the host's one writer of the authorisation log.

The TCP server decides each request on its event loop (checks, ARQC, rules,
ARPC: :meth:`~emvkit.terminal.host.issuer.IssuerHost.decide`) and hands the
writing to :class:`GroupCommit`, a thread that takes every job waiting, runs
them in one :meth:`~emvkit.terminal.host.authlog.AuthLog.batch` (one
transaction, one fsync) and only then gives their results back to be sent.
So no answer leaves for a row that is not committed, each insert's conflict
on the unique (card, ATC) index still decides its own request's answer (a
conflicting row does not fail the others: ``ON CONFLICT DO NOTHING``), and
while one batch waits for the disk the loop decides the next requests.

Within a batch the rows that may spend an ATC are written in (card, ATC)
order, so two PostgreSQL hosts whose batches share cards wait on each other's
index entries in one order and never deadlock; a deadlock or serialisation
failure PostgreSQL reports anyway is retried. A batch that cannot be
committed fails as a whole: none of its answers is sent.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from emvkit.terminal.host.authlog import AuthLog

__all__ = ["GroupCommit", "Job"]

log = logging.getLogger("emvkit.host")

_RETRIES = 3
_TRANSIENT = ("DeadlockDetected", "SerializationFailure")


class Job(Protocol):
    """Work for the writer: ``run()`` writes rows (inside the batch) and
    returns the result to hand back; ``order`` places it in the batch."""

    @property
    def order(self) -> tuple[Any, ...]: ...

    def run(self) -> Any: ...


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg")


class GroupCommit:
    """The writer thread. ``done(jobs, results)`` is called on the writer
    thread after each batch, ``results`` None when the batch was not
    committed."""

    def __init__(self, log_: AuthLog, done: Callable[[Sequence[Job], list[Any] | None], None]) -> None:
        self.log = log_
        self.done = done
        self.batches = 0  # committed batches (for benches and tests)
        self._waiting: list[Job] = []
        self._busy = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="emvkit-host-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            self._waiting.append(job)
            self._cond.notify_all()

    def drain(self) -> None:
        """Return once every job submitted so far is written and handed back."""
        with self._cond:
            self._cond.wait_for(lambda: not self._waiting and not self._busy)

    def stop(self) -> None:
        """Write what is waiting, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._stopping)
                if not self._waiting:
                    return
                jobs, self._waiting = self._waiting, []
                self._busy = True
            try:
                self.done(jobs, self._commit(jobs))
            except Exception:
                log.exception("fault while handing back answers")
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _commit(self, jobs: Sequence[Job]) -> list[Any] | None:
        order = sorted(range(len(jobs)), key=lambda i: (jobs[i].order, i))
        for attempt in range(1, _RETRIES + 1):
            results: list[Any] = [None] * len(jobs)
            try:
                with self.log.batch():
                    for i in order:
                        results[i] = self._one(jobs[i])
            except Exception as exc:
                if type(exc).__name__ in _TRANSIENT and attempt < _RETRIES:
                    log.warning("batch of %d rows retried: %s", len(jobs), type(exc).__name__)
                    continue
                # Not recorded, so not answered: the terminals see a broken link.
                log.exception("cannot commit the authorisation log; %d answers not sent", len(jobs))
                return None
            self.batches += 1
            return results
        return None

    @staticmethod
    def _one(job: Job) -> Any:
        try:
            return job.run()
        except Exception as exc:
            if _is_database_error(exc):
                raise  # the transaction is broken: the batch fails
            log.exception("fault while answering a message; closing the connection")
            return None
