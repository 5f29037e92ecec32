"""The transcript's journal policy: when a session's journal opens, grows, shrinks and goes.

Chosen once, when the manager is built: :class:`Unjournaled` (no journal: the
store alone holds the transcript until the archive) or :class:`Journaled` (a
per-node :class:`~tether.archive.journal.FileJournal`, for a store of this
node's own). The journal's end, its removal once the archive is durable, is
the end pipeline's (``tether.runtime.ending``).

A journal that refuses a write makes the session unable to keep its promise
(an acknowledged message is durable), so the session ends with ``error``;
its archive then holds every acknowledged message, from the store.
"""

from __future__ import annotations

import logging
from typing import Any

from tether.archive.journal import FileJournal
from tether.archive.recovery import RecoveryReport, recover
from tether.clock import Clock
from tether.core.ids import log_ref
from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.errors import ArchiveError
from tether.metrics.sink import MetricsSink
from tether.runtime.ending import EndPipelines
from tether.runtime.gateway import StoreGateway
from tether.types import EndReason, SessionId

log = logging.getLogger("tether.runtime")


class Unjournaled:
    """No journal: every step is a no-op."""

    async def recover(self) -> RecoveryReport | None:
        """Archive what an unclean stop left (nothing to do here)."""
        return None

    async def begin(self, info: SessionInfo) -> None:
        """A session started."""

    def config(self, session_id: SessionId, config: dict[str, Any]) -> None:
        """The session's config changed."""

    async def append(self, message: Message, session_id: SessionId) -> None:
        """A message was stored; return once it is durable."""

    async def aclose(self) -> None:
        """The manager closes."""


class Journaled(Unjournaled):
    """A per-node journal of every session started here."""

    def __init__(
        self,
        journal: FileJournal,
        *,
        store: StoreGateway,
        ends: EndPipelines,
        metrics: MetricsSink,
        clock: Clock,
    ) -> None:
        self._journal = journal
        self._store = store
        self._ends = ends
        self._metrics = metrics
        self._clock = clock

    async def recover(self) -> RecoveryReport | None:
        """Archive the journals an unclean stop left, before anything starts."""
        archiver = self._ends.archiver
        if archiver is None:
            return None
        report = await recover(self._journal.paths, archiver)
        self._metrics.journals_recovered(report.recovered)
        return report

    async def begin(self, info: SessionInfo) -> None:
        """Journal the new session; if the disk refuses, end it and tell the caller."""
        try:
            await self._journal.begin(info.id, info.user, info.kind, info.created_at, info.config)
        except ArchiveError:
            claim = await self._store.end(info.id, EndReason.ERROR)
            if claim is not None:
                self._ends.start(claim)
            raise

    def config(self, session_id: SessionId, config: dict[str, Any]) -> None:
        """Journal the session's new config."""
        self._journal.config(session_id, config, self._clock.now())

    async def append(self, message: Message, session_id: SessionId) -> None:
        """Make the message durable under the journal's fsync policy (the acknowledgement).

        A session the journal does not know (started before a restart) is not journaled.
        """
        if not self._journal.knows(session_id):
            return
        try:
            await self._journal.append(session_id, message)
        except ArchiveError:
            await self._refused(session_id, message.seq)
            raise

    async def _refused(self, session_id: SessionId, seq: int) -> None:
        """Unstore a message the journal refused, and end the session with ``error``.

        The caller is told the message failed, so it must not reach the
        archive. And after a failed write or flush the journal can no longer
        vouch for what it holds (a failed fsync may have dropped earlier
        pages), so the session cannot keep its promise and ends.
        """
        await self._store.retract(session_id, seq)
        claim = await self._store.end(session_id, EndReason.ERROR)
        if claim is not None:
            log.error("journal refused a message; ending session=%s", log_ref(session_id))
            self._ends.start(claim)

    async def aclose(self) -> None:
        """Flush and close the journal."""
        await self._journal.aclose()
