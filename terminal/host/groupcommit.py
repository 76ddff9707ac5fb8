"""Group commit: the host's one writer of the authorisation log.

The TCP server decides each request on its event loop (checks, ARQC, rules,
ARPC: :meth:`~emvkit.terminal.host.issuer.IssuerHost.decide`) and hands the
writing to :class:`GroupCommit`. While no commit is in flight, the loop
opens a transaction and inserts every row waiting (each insert is a few
microseconds of page-cache work on SQLite; on PostgreSQL every ``INSERT`` of
the batch is sent before the first answer is read, in one pipeline, so the
batch costs one round trip); only the ``COMMIT``, the fsync, goes to a
thread of its own, and while the disk works the loop decides the next
requests. (A commit that does not wait for the disk, SQLite
``synchronous=NORMAL`` or ``:memory:``, runs on the loop: handing it to a
thread would cost more than it takes.) When the commit returns, the
batch's results are handed back on the loop and the rows that waited
meanwhile form the next batch. So no
answer leaves for a row that is not committed, each insert's conflict on the
unique (card, ATC) index still decides its own request's answer (a
conflicting row does not fail the others: ``ON CONFLICT DO NOTHING``), and
the commit thread takes the GIL twice per batch rather than at every SQL
call (with the inserts on a thread of their own, each one waited for the
deciding loop to give the GIL back).

Within a batch the rows that may spend an ATC are written in (card, ATC)
order, so two PostgreSQL hosts whose batches share cards wait on each other's
index entries in one order and never deadlock; a deadlock or serialisation
failure PostgreSQL reports anyway is retried. A batch that cannot be
committed fails as a whole: none of its answers is sent.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """The writer, driven from one event loop: :meth:`submit` a job, and
    ``done(jobs, results)`` is called on the loop after its batch commits,
    ``results`` None when the batch was not committed."""

    def __init__(self, log_: AuthLog, done: Callable[[Sequence[Job], list[Any] | None], None]) -> None:
        self.log = log_
        self.done = done
        self.batches = 0  # committed batches (for benches and tests)
        self.rows = 0  # jobs in them
        self._waiting: list[Job] = []
        self._committing = False
        self._scheduled = False
        self._stopped = False
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="emvkit-host-commit")

    def start(self) -> None:
        """Bind to the running loop (call from it)."""
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, job: Job) -> None:
        """Queue a job (on the loop); it goes into the next batch."""
        if self._stopped:
            log.debug("a write after the writer stopped is dropped")  # pending rows: settled at the next start
            return
        self._waiting.append(job)
        assert self._idle is not None and self._loop is not None, "start() first"
        self._idle.clear()
        if not self._committing and not self._scheduled:
            # After the callbacks already due, so the frames read in this pass join the batch.
            self._scheduled = True
            self._loop.call_soon(self._flush)

    async def drain(self) -> None:
        """Return once every job submitted so far is committed and handed back."""
        assert self._idle is not None, "start() first"
        await self._idle.wait()

    async def stop(self) -> None:
        """Write what is waiting, then end the commit thread."""
        if self._idle is not None:
            await self.drain()
        self._stopped = True
        self._committer.shutdown(wait=True)

    def _flush(self) -> None:
        self._scheduled = False
        if self._committing:
            return
        if not self._waiting:
            assert self._idle is not None
            self._idle.set()
            return
        jobs, self._waiting = self._waiting, []
        self._committing = True
        self._write(jobs, 1)

    def _write(self, jobs: list[Job], attempt: int) -> None:
        """Insert the rows of ``jobs`` in one open transaction, then hand the COMMIT to the thread.
        Every job's INSERT is sent before the first answer is read, so on PostgreSQL (pipeline mode)
        the batch costs one round trip to the server rather than one per row."""
        order = sorted(range(len(jobs)), key=lambda i: (jobs[i].order, i))
        results: list[Any] = [None] * len(jobs)
        try:
            try:
                with self.log.pipeline():
                    self.log.begin()
                    sent = [i for i in order if self._send(jobs[i])]
                    for i in sent:
                        results[i] = self._one(jobs[i])
            except BaseException:
                self.log.rollback()
                raise
        except Exception as exc:
            self._failed(jobs, results, attempt, exc)
            return
        if self.log.commit_waits:
            self._committer.submit(self._commit, jobs, results, attempt)
        else:
            self._commit(jobs, results, attempt)  # no fsync to wait for: two thread hops would cost more

    def _commit(self, jobs: list[Job], results: list[Any], attempt: int) -> None:
        """On the commit thread (or the loop, when the commit does not wait
        for the disk): COMMIT, then hand the outcome to the loop."""
        error: BaseException | None = None
        try:
            self.log.commit()
        except BaseException as exc:
            error = exc
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._committed, jobs, results, attempt, error)

    def _committed(self, jobs: list[Job], results: list[Any], attempt: int, exc: BaseException | None) -> None:
        if exc is not None:
            self._failed(jobs, results, attempt, exc)
            return
        self.batches += 1
        self.rows += len(jobs)
        self._hand_back(jobs, results)

    def _failed(self, jobs: list[Job], results: list[Any], attempt: int, exc: BaseException) -> None:
        if type(exc).__name__ in _TRANSIENT and attempt < _RETRIES:
            log.warning("batch of %d rows retried: %s", len(jobs), type(exc).__name__)
            self._write(jobs, attempt + 1)
            return
        # Not recorded, so not answered: the terminals see a broken link.
        log.error("cannot commit the authorisation log; %d answers not sent", len(jobs),
                  exc_info=(type(exc), exc, exc.__traceback__))
        self._hand_back(jobs, None)

    def _hand_back(self, jobs: list[Job], results: list[Any] | None) -> None:
        try:
            self.done(jobs, results)
        except Exception:
            log.exception("fault while handing back answers")
        self._committing = False
        self._flush()

    @staticmethod
    def _send(job: Job) -> bool:
        """Send the job's row ahead (jobs that can); False when that failed for this job alone."""
        send = getattr(job, "send", None)
        if send is None:
            return True
        try:
            send()
        except Exception as exc:
            if _is_database_error(exc):
                raise  # the transaction is broken: the batch fails
            log.exception("fault while answering a message; closing the connection")
            return False
        return True

    @staticmethod
    def _one(job: Job) -> Any:
        try:
            return job.run()
        except Exception as exc:
            if _is_database_error(exc):
                raise  # the transaction is broken: the batch fails
            log.exception("fault while answering a message; closing the connection")
            return None
