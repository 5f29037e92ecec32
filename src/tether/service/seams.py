"""Test seams of ``tether serve``: settings meant for tests only, off by default.

``TETHER_TEST_ARCHIVE_HOLD`` (:func:`held_archive`): every archive write, once
durable, is held that long before the end pipeline goes on. A test sets it on
one node, ends sessions there and SIGKILLs the node during the hold: the
archives are written, the ends not completed, and the other nodes must take
the ends over after ``TETHER_END_LEASE`` without a second archive. At its
default, ``0``, the archiver is used as it is.
"""

from __future__ import annotations

import asyncio
import builtins

from tether.archive.base import ArchivedDialog, ArchiveFinder, Archiver, ArchiveSummary


class HeldArchiver:
    """An archiver whose every write is followed by a wait of ``hold`` seconds (tests only)."""

    def __init__(self, inner: Archiver, hold: float) -> None:
        self._inner = inner
        self._hold = hold

    async def archive(self, dialog: ArchivedDialog) -> str:
        """Archive through the wrapped archiver, then hold."""
        archive_id = await self._inner.archive(dialog)
        await asyncio.sleep(self._hold)
        return archive_id

    async def list(
        self, user: str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[ArchiveSummary]:
        return await self._inner.list(user, limit=limit, offset=offset)

    async def read(self, user: str, archive_id: str) -> ArchivedDialog:
        return await self._inner.read(user, archive_id)

    async def find(self, user: str, session_id: str) -> ArchivedDialog | None:
        """The wrapped archiver's ``find``, when it has one."""
        if isinstance(self._inner, ArchiveFinder):
            return await self._inner.find(user, session_id)
        return None

    async def open(self) -> None:
        """The wrapped archiver's ``open`` (PostgreSQL connects), when it has one."""
        opener = getattr(self._inner, "open", None)
        if opener is not None:
            await opener()

    async def aclose(self) -> None:
        await self._inner.aclose()


def held_archive(archiver: Archiver, hold: float) -> Archiver:
    """``archiver`` itself, or with ``hold > 0`` (tests only) a :class:`HeldArchiver` around it."""
    return HeldArchiver(archiver, hold) if hold > 0 else archiver
