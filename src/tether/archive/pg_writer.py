"""``PgRowWriter``: archive rows written in batches by one thread, off the event loop.

When thousands of sessions end at once, the work per archive (JSON-encoding
its config and messages, adapting its parameters, reading the server's
answers) would run on the event loop and delay every heartbeat there. Here
one writer thread with its own connection does all of it: it takes every
dialog queued so far (up to ``max_batch``), encodes them, sends them with one
pipelined ``executemany`` in one transaction, commits, and only then tells
each caller. The event loop only queues a dialog and awaits its future (the
same shape as :mod:`tether.archive.group_writer` for files). psycopg releases
the GIL while it waits on the network, so the loop keeps running meanwhile.

A batch PostgreSQL refuses as data (one bad row) is retried row by row, so
one row never fails its neighbours. A lost connection fails the batch (each
caller gets an ``ArchiveError`` and keeps its journal) and the next batch
connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from tether.archive import pg_rows
from tether.archive.base import ArchivedDialog
from tether.errors import ArchiveError, TetherError


@dataclass(slots=True)
class _Job:
    dialog: ArchivedDialog
    done: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class PgRowWriter:
    """Inserts archive rows (first writer wins) in batches, from a thread of its own."""

    def __init__(
        self,
        url: str,
        *,
        max_batch: int,
        connect_timeout: float,
        reason: Callable[[BaseException], str],
    ) -> None:
        self._url = url
        self._max_batch = max(1, max_batch)
        self._connect_timeout = max(1, round(connect_timeout))
        self._reason = reason
        self._lock = threading.Condition(threading.Lock())
        self._jobs: list[_Job] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self.batches = 0
        """Transactions committed (for benches and tests: rows per commit)."""

    async def write(self, dialog: ArchivedDialog) -> None:
        """Insert ``dialog``'s row unless its session has one; returns once committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._stopping:
                raise ArchiveError("the archive is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tether-pg-archive", daemon=True
                )
                self._thread.start()
            self._jobs.append(_Job(dialog, done, loop))
            self._lock.notify()
        await done

    async def aclose(self) -> None:
        """Write what is queued, close the connection and stop the thread."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
            thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._jobs and not self._stopping:
                        self._lock.wait()
                    batch = self._jobs[: self._max_batch]
                    del self._jobs[: self._max_batch]
                if not batch:
                    return  # stopping, and nothing left
                self._batch(batch)
        finally:
            if self._conn is not None:
                self._conn.close()

    def _batch(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[_Job, BaseException | None]] = []
        try:
            self._write(batch, outcomes)
        except Exception as exc:  # a bug, not PostgreSQL: fail the rest, keep the thread
            told = {id(job) for job, _ in outcomes}
            error = ArchiveError(f"archive write failed: {exc!r}")
            outcomes += [(job, error) for job in batch if id(job) not in told]
        finally:
            _settle_all(outcomes)

    def _write(self, batch: list[_Job], outcomes: list[tuple[_Job, BaseException | None]]) -> None:
        rows: list[tuple[Any, ...]] = []
        ready: list[_Job] = []
        for job in batch:
            try:
                rows.append(pg_rows.to_row(job.dialog))
                ready.append(job)
            except TetherError as exc:
                outcomes.append((job, exc))
        if not ready:
            return
        try:
            self._insert(rows)
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            if len(ready) == 1:
                outcomes.append((ready[0], self._refused(exc)))
                return
            for job, row in zip(ready, rows, strict=True):  # one bad row fails only itself
                try:
                    self._insert([row])
                except psycopg.Error as one:
                    outcomes.append((job, self._refused(one)))
                    self._drop_if_broken()
                    continue
                outcomes.append((job, None))
            return
        except (psycopg.Error, OSError) as exc:
            self._drop_if_broken()
            error = ArchiveError(f"PostgreSQL archive write failed: {self._reason(exc)}")
            for job in ready:
                outcomes.append((job, error))
            return
        for job in ready:
            outcomes.append((job, None))

    def _refused(self, exc: BaseException) -> ArchiveError:
        return ArchiveError(f"PostgreSQL refused this archive: {self._reason(exc)}")

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, connect_timeout=self._connect_timeout)
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.executemany(pg_rows.INSERT, rows)
        self.batches += 1

    def _drop_if_broken(self) -> None:
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            self._conn = None


def _settle_all(outcomes: list[tuple[_Job, BaseException | None]]) -> None:
    """Resolve each job's future on its own loop: one callback per loop, not per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, BaseException | None]]] = {}
    for job, error in outcomes:
        by_loop.setdefault(job.loop, []).append((job, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is gone
            loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[_Job, BaseException | None]]) -> None:
    for job, error in settled:
        if job.done.done():
            continue
        if error is None:
            job.done.set_result(None)
        else:
            job.done.set_exception(error)
