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

Batched, off the event loop: one writer thread (:mod:`tether.archive.pg_writer`)
takes every archive queued while a batch is being written into the next one,
up to :data:`MAX_BATCH` rows in one transaction, sent by ``executemany`` in
libpq's pipeline mode (one round trip, one commit, one WAL flush for the lot).
Ten thousand sessions ending at once cost a few dozen commits, not ten
thousand, and the event loop only queues dialogs. Reads go through a small
async connection pool.

The driver is psycopg 3 (with its connection pool): the PostgreSQL project's
own maintained adapter, fully typed, async, with pipeline mode.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from tether.archive import pg_rows
from tether.archive.base import ArchivedDialog, ArchiveSummary
from tether.archive.pg_writer import PgRowWriter
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
        self._writer = PgRowWriter(
            url, max_batch=max_batch, connect_timeout=timeout, reason=_reason
        )
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._closed = False

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
        if not self._opened:
            await self.open()
        await self._writer.write(dialog)
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
        await self._writer.aclose()
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


def _reason(exc: BaseException) -> str:
    """One line about ``exc``, without the connection string (it may carry a password)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
