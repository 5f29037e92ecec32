"""End pipelines: what happens, once per ended session, on the node that won its end.

The store decides an end exactly once and hands it, with a lease and a
fence, to one node. That node runs the pipeline here: stop the session's
work (its session-owned tasks cancelled and awaited, bounded; its streaming
replies cut, what they streamed stored ``partial`` through the late-write
window of :mod:`tether.runtime.late_writes`), archive the transcript,
tell every attached client (here and, through the cluster, on other nodes)
and close them with the reason's close code, run cleanups, count, call the
``on_ended`` hooks, then complete the end in the store. If the node dies
first, the lease runs out and another node runs it again; the archive write
is idempotent, so the session is still archived once.

A failed archive does not complete the end: the archive alone is retried
here with a backoff while the lease is kept, and the end completes once it is
written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from tether.archive.base import ArchivedDialog, Archiver
from tether.archive.journal import FileJournal
from tether.clock import Clock, TimerHandle
from tether.core.events import SessionEndedEvent, close_code
from tether.core.ids import log_ref
from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.metrics.sink import MetricsSink
from tether.runtime.cleanup import CleanupRegistry
from tether.runtime.cluster import Held
from tether.runtime.fanout import Fanout
from tether.runtime.hooks import Hooks
from tether.runtime.late_writes import LateWrites
from tether.runtime.leases import EndLeases
from tether.runtime.pipelines import PipelineQueue, Running
from tether.runtime.tasks import TaskSet
from tether.store.base import Claim, SessionStore
from tether.types import EndReason, SessionId, SessionState

log = logging.getLogger("tether.runtime")
ARCHIVE_RETRY_FIRST = 1.0
"""Seconds before the first retry of an archive write that failed; each retry doubles it."""
ARCHIVE_RETRY_MAX = 60.0
"""The longest wait between two retries of a failed archive write."""
LOST_NOTE = (
    "the store came back without its data; this transcript is the copy kept by the node "
    "that held the session's connections"
)
"""The note on the archive of a session the store lost (see ``tether.runtime.store_epoch``)."""


StopWork = Callable[[SessionId, EndReason], Awaitable[object]]
"""Cancel the session's tasks and cut its replies (before the archive)."""


async def _no_work(session_id: SessionId, reason: EndReason) -> None:
    return None


class EndAnnouncer(Protocol):
    """Tells the other nodes of an end run here (the cluster, on a shared store)."""

    async def announce_end(
        self,
        session_id: SessionId,
        reason: EndReason,
        archive_id: str | None,
        holders: tuple[str, ...],
    ) -> None:
        """Announce the end; return once the ``holders`` closed their channels (bounded)."""
        ...


class EndPipelines:
    """Runs the end pipeline of each end this node won, a bounded number at a time."""

    def __init__(
        self,
        *,
        store: SessionStore,
        clock: Clock,
        tasks: TaskSet,
        fanout: Fanout,
        cleanups: CleanupRegistry,
        hooks: Hooks,
        metrics: MetricsSink,
        leases: EndLeases,
        archiver: Archiver | None,
        journal: FileJournal | None,
        limit: int,
        announcer: EndAnnouncer | None = None,
        running: Running | None = None,
        stop_work: StopWork = _no_work,
    ) -> None:
        self._store = store
        self._clock = clock
        self._tasks = tasks
        self._fanout = fanout
        self._cleanups = cleanups
        self._hooks = hooks
        self._metrics = metrics
        self._leases = leases
        self.archiver = archiver
        self.journal = journal
        self._queue = PipelineQueue(tasks, self._run_pipeline, limit=limit, running=running)
        self._announcer = announcer
        self._stop_work = stop_work
        self.late = LateWrites()
        """Appends between an end and its archive (a cut reply's ``finally``)."""
        # Ends whose archive failed, waiting for a retry here (its timer, or None while it runs).
        self._archive_retries: dict[SessionId, TimerHandle | None] = {}
        # Sessions the store lost whose archive failed: only this node has their transcript.
        self._lost_retries: dict[SessionId, TimerHandle] = {}
        self._closing = False

    def pending(self, session_id: SessionId) -> asyncio.Future[None] | None:
        """The pipeline running (or queued) here for the session, if any."""
        return self._queue.pending(session_id)

    def start(self, claim: Claim) -> asyncio.Future[None]:
        """Run the end's pipeline here (once: a re-claim of a running one adopts its fence)."""
        self._leases.hold(claim)
        running = self._queue.pending(claim.session.id)
        if running is not None:
            return running
        if claim.session.id in self._archive_retries:
            # Its pipeline ran here and its archive is being retried here: the
            # re-claim (the lease ran out meanwhile) only adopts the new fence.
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self._queue.submit(claim.session)

    async def _run_pipeline(self, info: SessionInfo) -> None:
        """The end pipeline, then its completion in the store (not if cancelled: a node dying).

        If the archive failed, the end is not completed: the archive alone is
        retried here with a backoff, and the end completes once it is written
        (or, if this node stops or dies first, the end's lease runs out and
        another node, or this one restarted, takes the end over).
        """
        archived = True
        try:
            archived = await self._end_pipeline(info)
        except Exception:
            # A bug, not an expected failure (those are reported inside); a
            # re-run elsewhere would meet it again, so the end still completes.
            log.exception("end pipeline crashed session=%s", log_ref(info.id))
        if archived:
            await self._leases.complete(info.id)
        else:
            self._archive_later(info, ARCHIVE_RETRY_FIRST)

    def _archive_later(self, info: SessionInfo, delay: float) -> None:
        """Retry the session's archive in ``delay`` seconds, keeping its end open meanwhile."""
        if self._closing:
            self._archive_retries.pop(info.id, None)
            self._leases.release(info.id)  # left open: another node or the next start-up
            return

        def fire() -> None:
            self._archive_retries[info.id] = None
            self._tasks.spawn(self._archive_again(info, delay), name="tether-archive-retry")

        self._archive_retries[info.id] = self._clock.call_later(delay, fire)

    async def _archive_again(self, info: SessionInfo, delay: float) -> None:
        if self._closing or not self._leases.holds(info.id):
            self._archive_retries.pop(info.id, None)
            return
        _, archived = await self._archive(info, info.end_reason or EndReason.ERROR)
        if archived:
            self._archive_retries.pop(info.id, None)
            log.info("archive written on a retry session=%s", log_ref(info.id))
            await self._leases.complete(info.id)
        else:
            self._archive_later(info, min(2 * delay, ARCHIVE_RETRY_MAX))

    def stop(self) -> None:
        """Stop retrying archives (closing): their ends stay open, their journals on disk."""
        self._closing = True
        for lost in self._lost_retries.values():
            lost.cancel()
        if self._lost_retries:
            log.error(
                "stopping with the archives of %d session(s) the store lost unwritten: "
                "their transcripts are gone",
                len(self._lost_retries),
            )
            self._lost_retries.clear()
        for session_id, timer in list(self._archive_retries.items()):
            if timer is not None:
                timer.cancel()
                del self._archive_retries[session_id]
                self._leases.release(session_id)

    async def _end_pipeline(self, info: SessionInfo) -> bool:
        """Archive, notify, close, clean up, count, call hooks: once per ended session.

        The session's work stops first, so what it writes as it stops is
        archived. The archive comes next so that ``session.ended`` can name
        it, and the journal goes only once the archive is durable.
        Connections on other nodes are told and closed at the same time as
        this node's. Returns whether the archive was written (or there is no
        archiver).
        """
        reason = info.end_reason or EndReason.ERROR
        self.late.open(info.id, info.message_count)
        try:
            await self._stop_work(info.id, reason)
        finally:
            self.late.close(info.id)
        archive_id, archived = await self._archive(info, reason)
        self._fanout.send(info.id, SessionEndedEvent(reason, archive_id))
        closing = self._fanout.close_all(info.id, close_code(reason), reason.value)
        if self._announcer is None:
            await closing
        else:
            holders = self._leases.holders(info.id)
            await asyncio.gather(
                closing, self._announcer.announce_end(info.id, reason, archive_id, holders)
            )
        await self._cleanups.run(info.id)
        duration = (info.ended_at or self._clock.now()) - info.created_at
        self._metrics.session_ended(reason, duration)
        log.info(
            "session ended session=%s reason=%s duration=%.1fs",
            log_ref(info.id),
            reason.value,
            duration,
        )
        await self._hooks.emit(self._hooks.ended, info)
        return archived

    async def end_lost(self, held: Held) -> None:
        """End a session the store lost (it came back empty) from what this node held of it.

        The same pipeline as an end, with reason ``error``, except that
        nothing reads or writes the store: the transcript archived is the
        node's mirror of it, and there is no end to complete. Each node ends
        only the sessions it holds channels of; the archive is idempotent per
        session, so two nodes holding the same one still write it once.
        """
        reason = EndReason.ERROR
        now = self._clock.now()
        info = held.info._replace(state=SessionState.ENDED, ended_at=now, end_reason=reason)
        await self._stop_work(info.id, reason)  # the store is gone: what they write is lost
        archive_id, archived = await self._archive(info, reason, held.messages)
        if not archived:
            self._archive_lost_later(info, held.messages, ARCHIVE_RETRY_FIRST)
        self._fanout.send(info.id, SessionEndedEvent(reason, archive_id))
        await self._fanout.close_all(info.id, close_code(reason), reason.value)
        await self._cleanups.run(info.id)
        self._metrics.session_ended(reason, now - info.created_at)
        log.warning(
            "session ended session=%s reason=error: the store lost it; %d message(s) archived",
            log_ref(info.id),
            len(held.messages),
        )
        await self._hooks.emit(self._hooks.ended, info)

    def _archive_lost_later(
        self, info: SessionInfo, messages: tuple[Message, ...], delay: float
    ) -> None:
        """Retry a lost session's archive from this node's copy, with a backoff, until written.

        Nothing in the store holds such an end open, so the copy stays here
        until the archive is written (or the node stops: then it is gone).
        """

        def fire() -> None:
            self._lost_retries.pop(info.id, None)
            self._tasks.spawn(
                self._archive_lost_again(info, messages, delay), name="tether-archive-retry"
            )

        if not self._closing:
            self._lost_retries[info.id] = self._clock.call_later(delay, fire)

    async def _archive_lost_again(
        self, info: SessionInfo, messages: tuple[Message, ...], delay: float
    ) -> None:
        _, archived = await self._archive(info, EndReason.ERROR, messages)
        if archived:
            log.info("archive written on a retry session=%s", log_ref(info.id))
        else:
            self._archive_lost_later(info, messages, min(2 * delay, ARCHIVE_RETRY_MAX))

    async def _archive(
        self,
        info: SessionInfo,
        reason: EndReason,
        held: tuple[Message, ...] | None = None,
    ) -> tuple[str | None, bool]:
        """Archive the ended session; its archive id (if any) and whether nothing failed.

        The transcript is the store's, or ``held`` when the store lost it.
        """
        if self.archiver is None:
            return None, True
        try:
            messages = await self._store.transcript(info.id) if held is None else held
            messages = [*messages, *self.late.kept(info.id)]
            archive_id = await self.archiver.archive(
                ArchivedDialog(
                    session_id=info.id,
                    user=info.user,
                    kind=info.kind,
                    config=info.config,
                    started_at=info.created_at,
                    ended_at=info.ended_at or self._clock.now(),
                    end_reason=reason,
                    messages=tuple(messages),
                    notes=() if held is None else (LOST_NOTE,),
                )
            )
            self.late.archived(info.id)
            if self.journal is not None:
                await self.journal.remove(info.id)
        except Exception as exc:
            # Whatever went wrong, the pipeline goes on: clients must still be
            # told and closed. The journal stays on disk for the next start-up.
            self._metrics.archive_failed()
            log.error("archive failed session=%s (retried): %r", log_ref(info.id), exc)
            return None, False
        return archive_id, True
