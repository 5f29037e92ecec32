"""``PgArchive``: archives as rows of one PostgreSQL table, shared by every node.

Set ``TETHER_ARCHIVE_URL=postgresql://...`` and every node writes its ended
sessions to the same table (:mod:`tether.archive.pg_rows`), so a user's
archives can be listed and read from any node, whichever node ended them.

Exactly once: the row is keyed by the session id and written with
``INSERT ... ON CONFLICT DO NOTHING``, so two nodes (or a retry after a
crash) racing to archive one session leave one row, the first writer's.

Durable before acknowledged: :meth:`PgArchive.archive` returns only after
the transaction holding the row has committed, so the caller's journal
(which keeps the end durable until then) is dropped only after that.

Batched: every archive queued while a batch is being written goes into the
next one, up to :data:`MAX_BATCH` rows in one transaction, sent by
``executemany`` in libpq's pipeline mode (one round trip, one commit, one
WAL flush for the lot). Ten thousand sessions ending at once cost a few dozen
commits, not ten thousand, and the event loop only encodes rows.

The driver is psycopg 3 (with its connection pool): the PostgreSQL project's
own maintained adapter, fully typed, async, with pipeline mode.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from tether.archive import pg_rows
from tether.archive.base import ArchivedDialog, ArchiveSummary
from tether.core.ids import validate_archive_id, validate_session_id, validate_user_id
from tether.errors import ArchiveError, ArchiveNotFound, InvalidInput

log = logging.getLogger("tether.archive")

MAX_BATCH = 500
"""Rows per transaction at most: large enough that 10k ends take ~20 commits,
small enough that one batch's encoding never holds the event loop for long."""
CONNECT_TIMEOUT_S = 5.0
"""How long an archive or a read waits for a connection before it fails (and is retried)."""
SCHEMA_LOCK = 0x7465746865720001
"""Advisory lock key: nodes starting together create the table one at a time."""


@dataclass(slots=True)
class _Job:
    row: tuple[Any, ...]
    done: asyncio.Future[None]


class PgArchive:
    """The :class:`~tether.archive.base.Archiver` that keeps archives in PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = MAX_BATCH,
        pool_size: int = 4,
        timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self._url, self._pool_size, self._timeout = url, max(2, pool_size), timeout
        self._pool = self._new_pool()
        self._max_batch = max(1, max_batch)
        self._jobs: list[_Job] = []
        self._writer: asyncio.Task[None] | None = None
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._closed = False
        self.batches = 0
        """Transactions committed (for benches and tests: rows per commit)."""

    async def open(self) -> None:
        """Connect and create the table if it is missing; :class:`ArchiveError` if that fails.

        Called by the service at start-up (so a wrong URL stops it at once),
        and by any first use otherwise.
        """
        async with self._open_lock:
            if self._opened:
                return
            if self._closed:
                raise ArchiveError("the archive is closed")
            try:
                await self._pool.open(wait=True, timeout=self._timeout)
                async with self._pool.connection() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    await conn.execute(pg_rows.SCHEMA)
            except (psycopg.Error, OSError) as exc:
                await self._pool.close()
                self._pool = self._new_pool()  # a closed pool cannot be opened again
                raise ArchiveError(f"PostgreSQL archive unavailable: {_reason(exc)}") from None
            self._opened = True

    def _new_pool(self) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            timeout=self._timeout,
            name="tether-archive",
        )

    async def archive(self, dialog: ArchivedDialog) -> str:
        """Write ``dialog``'s row unless the session has one; returns once it is committed."""
        row = pg_rows.to_row(dialog)
        if not self._opened:
            await self.open()
        if self._closed:
            raise ArchiveError("the archive is closed")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches(), name="tether-pg-archive")
        await done
        return dialog.archive_id

    async def list(
        self, user: str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[ArchiveSummary]:
        """The user's archives, newest start first (archive ids sort by start stamp)."""
        if limit < 0 or offset < 0:
            raise InvalidInput("limit and offset must not be negative")
        rows = await self._fetch(
            f"SELECT {pg_rows.SUMMARY_COLUMNS} FROM {pg_rows.TABLE} WHERE user_id = %s "
            "ORDER BY archive_id DESC, session_id LIMIT %s OFFSET %s",
            (validate_user_id(user), limit, offset),
        )
        return [pg_rows.summary_from_row(r) for r in rows]

    async def read(self, user: str, archive_id: str) -> ArchivedDialog:
        """One archive of ``user``; :class:`ArchiveNotFound` if the user has none by that id."""
        rows = await self._fetch(
            f"SELECT {pg_rows.COLUMNS} FROM {pg_rows.TABLE} "
            "WHERE user_id = %s AND archive_id = %s ORDER BY session_id LIMIT 1",
            (validate_user_id(user), validate_archive_id(archive_id)),
        )
        if not rows:
            raise ArchiveNotFound()
        return pg_rows.dialog_from_row(rows[0])

    async def find(self, user: str, session_id: str) -> ArchivedDialog | None:
        """The user's archive of ``session_id``, or ``None``."""
        rows = await self._fetch(
            f"SELECT {pg_rows.COLUMNS} FROM {pg_rows.TABLE} WHERE session_id = %s AND user_id = %s",
            (validate_session_id(session_id), validate_user_id(user)),
        )
        return pg_rows.dialog_from_row(rows[0]) if rows else None

    async def aclose(self) -> None:
        """Write what is queued, then close the connections."""
        self._closed = True
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._pool.close()

    # -- reads ------------------------------------------------------------------

    async def _fetch(self, query: str, params: Sequence[Any]) -> builtins.list[tuple[Any, ...]]:
        if not self._opened:
            await self.open()
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(query, params)
                return await cursor.fetchall()
        except (psycopg.Error, OSError) as exc:
            raise ArchiveError(f"PostgreSQL archive read failed: {_reason(exc)}") from None

    # -- the writer task -----------------------------------------------------------

    async def _write_batches(self) -> None:
        """Write queued rows, a batch per transaction, until the queue is empty."""
        while self._jobs:
            batch = self._jobs[: self._max_batch]
            del self._jobs[: self._max_batch]
            try:
                await self._insert([job.row for job in batch])
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError):
                if len(batch) == 1:
                    _settle(batch, ArchiveError("PostgreSQL refused this archive"))
                    continue
                # One bad row must not fail its neighbours: write them one by one.
                await self._write_each(batch)
                continue
            except (psycopg.Error, OSError) as exc:
                _settle(batch, ArchiveError(f"PostgreSQL archive write failed: {_reason(exc)}"))
                continue
            except BaseException as exc:
                _settle(batch, ArchiveError(f"archive write interrupted: {exc!r}"))
                raise
            self.batches += 1
            _settle(batch, None)
            await asyncio.sleep(0)  # let the next ends queue up into one batch

    async def _write_each(self, batch: builtins.list[_Job]) -> None:
        for job in batch:
            try:
                await self._insert([job.row])
            except (psycopg.Error, OSError) as exc:
                _settle([job], ArchiveError(f"PostgreSQL refused this archive: {_reason(exc)}"))
                continue
            self.batches += 1
            _settle([job], None)

    async def _insert(self, rows: builtins.list[tuple[Any, ...]]) -> None:
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            await cursor.executemany(pg_rows.INSERT, rows)


def _settle(jobs: Sequence[_Job], error: BaseException | None) -> None:
    for job in jobs:
        if job.done.done():
            continue
        if error is None:
            job.done.set_result(None)
        else:
            job.done.set_exception(error)


def _reason(exc: BaseException) -> str:
    """One line about ``exc``, without the connection string (it may carry a password)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
