"""``SessionManager``: the asyncio driver around the pure core and a store.

It owns one deadline scheduler, the fan-out to attached channels, the cleanup
registry and the hooks, and it runs the end pipeline (see
:mod:`tether.runtime.ending`) for every session it is the claimant of.
Exactly one pipeline runs per session because only the store's single winner
of an end starts one; if the winner dies mid-pipeline, the store hands the
end to another node once its lease runs out, and the archive write is
idempotent, so the session is still archived once.

On a shared store (Redis) the manager is one node of several: a
:class:`~tether.runtime.cluster.Cluster` carries events and ends to the
connections other nodes hold, over an :class:`~tether.runtime.bus.EventBus`.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from tether.archive.base import Archiver
from tether.archive.journal import FileJournal
from tether.archive.recovery import RecoveryReport, recover
from tether.clock import Clock, SystemClock
from tether.core.choices import parse_choice
from tether.core.events import (
    Event,
    SessionActive,
    SessionConfig,
    SessionEndedEvent,
    SessionWarning,
    TranscriptAppended,
    close_code,
)
from tether.core.ids import log_ref, new_session_id, validate_user_id
from tether.core.jsonvalue import check_json_object
from tether.core.policy import Policy
from tether.core.session import Ended, Reactivated, SessionInfo, SessionRecord, Warned
from tether.core.transcript import Message, Role, check_content, parse_role
from tether.errors import (
    ArchiveError,
    ConfigError,
    InvalidInput,
    SessionEnded,
    SessionNotFound,
    StoreUnavailable,
    TetherError,
)
from tether.metrics.counters import SessionCounters
from tether.metrics.sink import MetricsSink, Tee
from tether.runtime.bus import EventBus, LocalBus
from tether.runtime.channel import Channel
from tether.runtime.cleanup import Cleanup, CleanupRegistry
from tether.runtime.cluster import Cluster, Held
from tether.runtime.ending import EndPipelines
from tether.runtime.fanout import Fanout
from tether.runtime.hooks import H, Hook, Hooks
from tether.runtime.keyed import KeyedLock
from tether.runtime.leases import EndLeases
from tether.runtime.outage import OutageGuard
from tether.runtime.scheduler import DeadlineScheduler
from tether.runtime.store_epoch import EpochWatch
from tether.runtime.tasks import TaskSet
from tether.store.base import Armed, Claim, EpochStore, NowaitTouch, SessionStore
from tether.store.memory import MemoryStore
from tether.types import EndReason, SessionId, SessionState, UserId

log = logging.getLogger("tether.runtime")
T = TypeVar("T")
END_BATCH = 64
"""``end_many`` yields to the loop after this many store calls."""
SHARED_POLL_INTERVAL = 5.0
"""On a shared store, the scheduler looks at the deadline index at least this often."""
EPOCH_INTERVAL = 5.0
"""On a shared store, how often the store's epoch is checked unless told otherwise."""


@dataclass(frozen=True, slots=True)
class ManagerMetrics:
    """What ``SessionManager.metrics()`` reports (the seeds' getMetrics, plus reasons)."""

    active: int
    total_created: int
    total_ended: int
    ended_by_reason: dict[EndReason, int]
    warnings: int
    extended_after_warning: int
    cleanup_failures: int
    hook_failures: int
    archive_failures: int
    journals_recovered: int
    oldest_age_s: float | None
    newest_age_s: float | None
    store_losses: int = 0
    """Times this node found the shared store had come back without its data."""
    sessions_lost: int = 0
    """Sessions this node ended (``error``) because the store lost them."""


class SessionManager:
    """Starts, watches, warns, ends and cleans up sessions.

    Use it as an async context manager (or call :meth:`open` and
    :meth:`aclose`)::

        async with SessionManager(policy=Policy(idle_timeout=300)) as manager:
            session = await manager.start("alice", kind="interview")
            await manager.add_cleanup(session.id, media_stream.aclose)
            await manager.activity(session.id)

    Closing the manager ends every live session with ``server_shutdown`` and
    waits for their pipelines. On a shared store it ends nothing: the other
    nodes go on serving the sessions, so it closes its own connections with
    1001 (their clients reconnect elsewhere and resume), finishes the
    pipelines it runs, and leaves the deployment.

    ``bus`` defaults to the store's (Redis pub/sub for a Redis store).
    ``ack_timeout`` bounds how long an end waits for other nodes to confirm
    they closed the session's connections; ``poll_interval`` caps the
    scheduler's sleep on a shared store (see ``docs/operations.md``).
    ``epoch_interval`` is how often a shared store's epoch is checked, so a
    store that came back without its data is noticed within it (see
    ``tether.runtime.store_epoch``; default 5 s).
    """

    def __init__(
        self,
        store: SessionStore | None = None,
        *,
        policy: Policy | None = None,
        clock: Clock | None = None,
        max_sessions_per_user: int | None = 5,
        cleanup_timeout: float = 10.0,
        close_timeout: float = 5.0,
        claim_batch: int = 1000,
        max_concurrent_ends: int = 256,
        metrics: MetricsSink | None = None,
        id_factory: Callable[[], SessionId] = new_session_id,
        journal: FileJournal | None = None,
        archiver: Archiver | None = None,
        bus: EventBus | None = None,
        ack_timeout: float | None = None,
        poll_interval: float | None = None,
        epoch_interval: float | None = None,
    ) -> None:
        if max_sessions_per_user is not None and max_sessions_per_user < 1:
            raise InvalidInput("max_sessions_per_user must be at least 1 (or None for no limit)")
        if journal is not None and archiver is None:
            # A journal is only ever removed once its archive is durable, so
            # without an archiver every journal would stay forever.
            raise ConfigError("a journal needs an archiver to hand ended sessions to")
        shared = store is not None and store.shared
        if journal is not None and shared:
            # On a shared store the transcript is durable in the store, and a
            # node's journal sees only the messages appended through it, while
            # its start-up recovery would archive sessions still live elsewhere.
            raise ConfigError(
                "a journal is per node: on a shared store (Redis) pass journal=None, "
                "the store keeps the transcript"
            )
        self.journal = journal
        self.recovery: RecoveryReport | None = None
        """What start-up recovery did (``None`` without a journal)."""
        self.store: SessionStore = store if store is not None else MemoryStore()
        self.policy = policy if policy is not None else Policy()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.max_sessions_per_user = max_sessions_per_user
        self._counters = SessionCounters()
        self._metrics: MetricsSink = (
            self._counters if metrics is None else Tee(self._counters, metrics)
        )
        self._id_factory = id_factory
        # Bound once: the two hottest calls skip attribute lookups, and skip a
        # coroutine altogether on stores that can touch without waiting.
        self._store_touch = self.store.touch
        self._touch_nowait = (
            self.store.touch_nowait if isinstance(self.store, NowaitTouch) else None
        )
        self._now = self.clock.now
        self._tasks = TaskSet()
        self._fanout = Fanout(
            self._tasks, self.clock, on_drop=self._on_channel_dropped, close_timeout=close_timeout
        )
        self._cleanups = CleanupRegistry(
            self.clock, timeout=cleanup_timeout, on_failure=self._metrics.cleanup_failed
        )
        self._hooks = Hooks(self._metrics.hook_failed)
        self._outage = OutageGuard(self.store, self.clock)
        self._scheduler = DeadlineScheduler(
            self.store,
            self.clock,
            self._dispatch,
            batch=claim_batch,
            max_sleep=(poll_interval or SHARED_POLL_INTERVAL) if shared else None,
            outage=self._outage,
        )
        self._leases = EndLeases(self.store, self.clock, renew=shared)
        self._ending = EndPipelines(
            store=self.store,
            clock=self.clock,
            tasks=self._tasks,
            fanout=self._fanout,
            cleanups=self._cleanups,
            hooks=self._hooks,
            metrics=self._metrics,
            leases=self._leases,
            archiver=archiver,
            journal=journal,
            limit=max_concurrent_ends,
        )
        if bus is None and shared:
            # Imported here: a memory-only deployment never loads the Redis client.
            from tether.runtime.store_bus import bus_for

            bus = bus_for(self.store)
        self.bus: EventBus = bus if bus is not None else LocalBus()
        self.store_epoch = (
            EpochWatch(
                self.store,
                self.clock,
                interval=epoch_interval or EPOCH_INTERVAL,
                on_loss=self._end_lost_sessions,
            )
            if shared and isinstance(self.store, EpochStore)
            else None
        )
        """This node's watch on the shared store's epoch (``None`` on a store of its own)."""
        self._cluster = (
            Cluster(
                store=self.store,
                bus=self.bus,
                clock=self.clock,
                fanout=self._fanout,
                cleanups=self._cleanups,
                tasks=self._tasks,
                poke=self._scheduler.poke,
                outage=self._outage,
                epoch=self.store_epoch,
                ending_here=lambda sid: self._ending.pending(sid) is not None,
                ack_timeout=ack_timeout if ack_timeout is not None else 2 * close_timeout + 1,
            )
            if shared
            else None
        )
        self._ending.cluster = self._cluster
        self._starting = KeyedLock()
        self._open = False
        self._closing = False

    @property
    def archiver(self) -> Archiver | None:
        """Where ended sessions' transcripts go (``None``: nowhere)."""
        return self._ending.archiver

    @archiver.setter
    def archiver(self, archiver: Archiver | None) -> None:
        self._ending.archiver = archiver

    # -- lifecycle of the manager -------------------------------------------------

    async def open(self) -> None:
        """Recover journals left by an unclean stop, then start the deadline scheduler."""
        if self._open:
            return
        self._open = True
        if self.journal is not None and self.archiver is not None:
            self.recovery = await recover(self.journal.paths, self.archiver)
            self._metrics.journals_recovered(self.recovery.recovered)
        if self._cluster is not None:
            await self._cluster.open()
        if self.store_epoch is not None:
            await self.store_epoch.check()  # first use: seeds or learns the epoch
            self.store_epoch.start()
        self._scheduler.start()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End every live session with ``server_shutdown`` and wait for all pipelines.

        On a shared store: end nothing, close this node's connections with
        1001, finish the pipelines running here, and leave the deployment.
        """
        if self._closing:
            return
        self._closing = True
        await self._scheduler.stop()
        self._ending.stop()
        if self.store_epoch is not None:
            await self.store_epoch.stop()
        if self._cluster is not None:
            await self._cluster.release_connections()
            await self._tasks.join()
            await self._leases.aclose()
            await self._cluster.aclose()
        else:
            live = await self.store.list()
            await self.end_many([info.id for info in live], EndReason.SERVER_SHUTDOWN)
            await self._tasks.join()
            await self._leases.aclose()
        await self.store.aclose()
        if self.journal is not None:
            await self.journal.aclose()
        if self.archiver is not None:
            await self.archiver.aclose()

    async def wait_idle(self) -> None:
        """Return once every due transition is applied and every background task finished.

        Meant for tests. Channel writers count as background tasks, so a
        channel whose sends are held blocks this; use ``tether.testing.settle``
        there instead.
        """
        while True:
            await self._scheduler.wait_idle()
            await self._leases.wait_idle()
            if self._cluster is not None:
                await self._cluster.wait_idle()
                await self.bus.flush()
            if self.store_epoch is not None:
                await self.store_epoch.wait_idle()
            if not self._tasks:
                return
            await self._tasks.join()

    async def _halt(self) -> None:
        """Stop dead, as a killed process would: no ends, no goodbyes (``testing.crash``)."""
        self._closing = True
        await self._scheduler.stop()
        self._ending.stop()
        if self.store_epoch is not None:
            await self.store_epoch.stop()
        if self._cluster is not None:
            await self._cluster.halt()
        await self._leases.aclose()
        await self._tasks.cancel_all()
        await self.store.aclose()
        if self.archiver is not None:
            await self.archiver.aclose()

    # -- hooks ----------------------------------------------------------------------

    def on_started(self, hook: H) -> H:
        """Register ``hook(session)`` for every start; usable as a decorator."""
        self._hooks.started.append(hook)
        return hook

    def on_warning(self, hook: H) -> H:
        """Register ``hook(session)`` for every warning (``session.warning`` says which)."""
        self._hooks.warning.append(hook)
        return hook

    def on_active(self, hook: H) -> H:
        """Register ``hook(session)`` for every warning cleared by activity."""
        self._hooks.active.append(hook)
        return hook

    def on_ended(self, hook: H) -> H:
        """Register ``hook(session)`` after each end pipeline (``session.end_reason`` says why).

        At least once, not exactly once: if the node running an end's pipeline
        dies after its hooks ran but before the end was completed in the
        store, the node that takes the end over (after the end lease) runs the
        pipeline again, hooks included. Make ended hooks idempotent, keyed on
        ``session.id``. (Retries of a failed archive do not run them again.)
        """
        self._hooks.ended.append(hook)
        return hook

    # -- commands -------------------------------------------------------------------

    async def start(
        self,
        user: str,
        *,
        kind: str = "chat",
        config: dict[str, Any] | None = None,
        policy: Policy | None = None,
        present: bool = False,
    ) -> SessionInfo:
        """Start a session for ``user``; beyond the per-user limit the oldest is ``replaced``.

        ``present``: the caller is a client that signals presence and
        attaches next (a WebSocket's ``start``). Its presence clock runs from
        the start, as if it had sent a heartbeat, so a session whose client
        never gets attached (its node died in between) ends ``client_gone``
        after ``presence_timeout`` rather than lingering until ``idle_timeout``.
        """
        return await self._start(
            user, kind=kind, config=config, policy=policy, reuse=False, present=present
        )

    async def get_or_start(
        self,
        user: str,
        *,
        kind: str = "chat",
        config: dict[str, Any] | None = None,
        policy: Policy | None = None,
    ) -> SessionInfo:
        """The user's live session of ``kind`` (the newest), or a new one started for it.

        Atomic per user: concurrent first calls (on this node, or on several
        nodes sharing a store) all get the one session the first of them
        started. ``config`` and ``policy`` apply only to a session this call
        starts. A session whose clock has run out is not handed out: its end
        is applied and a new one starts. What an HTTP-only app calls on each
        request (see :class:`~tether.service.SessionActivityMiddleware`).
        """
        async with self._starting.hold(user):
            return await self._start(
                user, kind=kind, config=config, policy=policy, reuse=True, present=False
            )

    async def _start(
        self,
        user: str,
        *,
        kind: str,
        config: dict[str, Any] | None,
        policy: Policy | None,
        reuse: bool,
        present: bool,
    ) -> SessionInfo:
        self._check_open()
        user_id = validate_user_id(user)
        if not isinstance(kind, str) or not kind or len(kind) > 64:
            raise InvalidInput("kind must be a non-empty string of at most 64 characters")
        if config is not None:
            check_json_object(config, "config")
        record = SessionRecord(
            self._id_factory(),
            user_id,
            kind,
            policy if policy is not None else self.policy,
            self.clock.now(),
            dict(config) if config else None,
        )
        record.ever_heartbeat = present  # see start(): its presence clock runs from now
        created = await self.store.create(
            record, max_per_user=self.max_sessions_per_user, reuse=reuse
        )
        for replaced in created.replaced:
            self._ending.start(replaced)
        if created.reused:
            return created.session
        if self.journal is not None:
            await self._begin_journal(created.session)
        self._scheduler.poke(created.armed_at)
        self._metrics.session_started(kind)
        log.info("session started session=%s kind=%s", log_ref(record.id), kind)
        self._emit(self._hooks.started, created.session)
        return created.session

    async def _begin_journal(self, info: SessionInfo) -> None:
        """Journal the new session; if the disk refuses, end it and tell the caller."""
        assert self.journal is not None
        try:
            await self.journal.begin(info.id, info.user, info.kind, info.created_at, info.config)
        except ArchiveError:
            claim = await self._write(lambda now: self.store.end(info.id, EndReason.ERROR, now))
            if claim is not None:
                self._ending.start(claim)
            raise

    # activity() and heartbeat() are the hottest calls: on a store with
    # touch_nowait they create no coroutine beyond their own, and the rare case
    # (a transition) is a plain call.

    async def activity(self, session_id: SessionId) -> None:
        """User activity: refreshes presence and the idle clock, clears an idle warning."""
        if self._touch_nowait is not None:
            claim = self._touch_nowait(session_id, self._now(), activity=True)
        else:
            claim = await self._touch(session_id, activity=True)
        if claim is not None:
            self._touched(claim)

    async def heartbeat(self, session_id: SessionId) -> None:
        """A sign of presence only: never postpones the idle end."""
        if self._touch_nowait is not None:
            claim = self._touch_nowait(session_id, self._now(), activity=False)
        else:
            claim = await self._touch(session_id, activity=False)
        if claim is not None:
            self._touched(claim)

    def _touched(self, claim: Claim | Armed) -> None:
        """Apply a transition a touch decided; raise if it was the end."""
        if isinstance(claim, Armed):  # a first heartbeat started the presence clock
            self._scheduler.poke(claim.at)
            return
        self._dispatch([claim])
        if isinstance(claim.transition, Ended):
            raise SessionEnded(claim.transition.reason)
        if claim.session.next_deadline is not None:
            self._scheduler.poke(claim.session.next_deadline.at)

    async def _touch(self, session_id: SessionId, *, activity: bool) -> Claim | Armed | None:
        """A touch on a store that may be unavailable (see :meth:`_write`)."""
        if self._outage.pending:
            await self._outage.resume()
        try:
            return await self._store_touch(session_id, self._now(), activity=activity)
        except StoreUnavailable:
            self._outage.noticed()
            raise

    async def _write(self, write: Callable[[float], Awaitable[T]]) -> T:
        """Run ``write(now)`` on the store for a client.

        After a store outage this node first resumes presence (see
        ``tether.runtime.outage``), so no write ends a session whose presence
        ran out while nobody could reach the store; a write that fails
        because the store is unavailable records the outage. If the write
        found the session's end already due, the scheduler claims it now.
        """
        if self._outage.pending:
            await self._outage.resume()
        try:
            return await write(self.clock.now())
        except SessionEnded:
            self._scheduler.poke()
            raise
        except StoreUnavailable:
            self._outage.noticed()
            raise

    async def attach(self, session_id: SessionId, channel: Channel) -> SessionInfo:
        """Attach ``channel``: it holds presence and receives the session's events.

        It gets ``session.config`` at once, and the warning in force, if any.
        """
        self._check_open()
        info = await self._write(lambda now: self.store.attach(session_id, now))
        self._fanout.add(session_id, channel)
        self._fanout.send(session_id, SessionConfig(info.config), channel)
        if info.warning is not None:
            self._fanout.send(session_id, self._warning_event(info.warning), channel)
        if self._cluster is not None:
            if self._cluster.attached(info):
                try:
                    await self._cluster.mirror(info)
                except StoreUnavailable:
                    # The attach stands (the store counts it); only the copy
                    # kept against a store loss misses the earlier messages.
                    self._outage.noticed()
                except SessionNotFound:
                    pass  # gone since the attach: the epoch check ends it as lost
            ended = self._cluster.ended_here(session_id)
            if ended is not None:
                # It ended on another node while this attach was on its way,
                # and that node's Close came first: close this channel too.
                reason, archive_id = ended
                self._fanout.send(session_id, SessionEndedEvent(reason, archive_id), channel)
                await self._fanout.close_all(session_id, close_code(reason), reason.value)
        return info

    async def detach(self, session_id: SessionId, channel: Channel) -> None:
        """Detach ``channel``; when it was the last, the presence clock starts."""
        if self._fanout.remove(session_id, channel):
            if self._cluster is not None:
                self._cluster.detached(session_id)
            await self._release_connection(session_id)

    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        """Replace the session's config and send it to every attached channel."""
        check_json_object(config, "config")
        info = await self.store.update_config(session_id, config)
        if self.journal is not None:
            self.journal.config(session_id, info.config, self.clock.now())
        self._broadcast(session_id, SessionConfig(info.config))
        return info

    async def update_policy(self, session_id: SessionId, policy: Policy) -> None:
        """Replace the session's timeouts; a shorter one takes effect at once."""
        armed = await self._write(lambda now: self.store.update_policy(session_id, policy, now))
        if armed is not None:
            self._scheduler.poke(armed)

    async def append(
        self,
        session_id: SessionId,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append a transcript message and send it to every attached channel.

        A ``user`` message is also activity. Returns the stored message with
        its sequence number once it is durable in the journal (if there is
        one) under its fsync policy: the return is the acknowledgement.
        """
        parsed = parse_role(role)
        check_content(content, metadata)
        if parsed is Role.USER:
            await self.activity(session_id)
        message = await self._write(
            lambda now: self.store.append(session_id, parsed, content, metadata, now)
        )
        if self.journal is not None and self.journal.knows(session_id):
            try:
                await self.journal.append(session_id, message)
            except ArchiveError:
                await self._journal_failed(session_id, message.seq)
                raise
        self._broadcast(session_id, TranscriptAppended(message))
        return message

    async def _journal_failed(self, session_id: SessionId, seq: int) -> None:
        """Unstore a message the journal refused, and end the session with ``error``.

        The caller is told the message failed, so it must not reach the
        archive. And after a failed write or flush the journal can no longer
        vouch for what it holds (a failed fsync may have dropped earlier
        pages), so the session cannot keep its promise and ends; its archive
        holds every acknowledged message, from the store.
        """
        await self.store.retract(session_id, seq)
        claim = await self.store.end(session_id, EndReason.ERROR, self.clock.now())
        if claim is not None:
            log.error("journal refused a message; ending session=%s", log_ref(session_id))
            self._ending.start(claim)

    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        """The session's messages with ``seq > after``, oldest first."""
        return await self.store.transcript(session_id, after=after, limit=limit)

    async def end(self, session_id: SessionId, reason: EndReason = EndReason.CLIENT_ENDED) -> bool:
        """End the session and wait for its pipeline.

        Returns ``True`` if this call ended it, ``False`` if it had already
        ended (in which case it still waits for a pipeline running here).
        """
        reason = parse_choice(EndReason, reason, "end reason")
        claim = await self._write(lambda now: self.store.end(session_id, reason, now))
        done = self._ending.start(claim) if claim is not None else self._ending.pending(session_id)
        if done is not None:
            await asyncio.shield(done)
        return claim is not None

    async def end_many(
        self, session_ids: Iterable[SessionId], reason: EndReason = EndReason.CLIENT_ENDED
    ) -> int:
        """End many sessions and wait for their pipelines; returns how many this call ended.

        Unlike gathering :meth:`end` calls, this keeps the event loop
        responsive however many there are: the store is asked in small
        batches with a yield between them, and the pipelines run a bounded
        number at a time. Unknown and already ended sessions are skipped.
        """
        reason = parse_choice(EndReason, reason, "end reason")
        waiting: builtins.list[asyncio.Future[None]] = []
        ended = 0
        for n, session_id in enumerate(session_ids, 1):
            try:
                claim = await self._write(functools.partial(self.store.end, session_id, reason))
            except SessionNotFound:
                continue
            if claim is not None:
                ended += 1
                waiting.append(self._ending.start(claim))
            elif (done := self._ending.pending(session_id)) is not None:
                waiting.append(done)
            if n % END_BATCH == 0:
                await asyncio.sleep(0)
        if waiting:
            await asyncio.shield(asyncio.gather(*waiting))
        return ended

    async def add_cleanup(self, session_id: SessionId, callback: Cleanup) -> None:
        """Run ``await callback()`` when the session ends (newest first, time-bounded).

        Raises :class:`~tether.errors.SessionEnded` if the session has already
        ended: the caller must then release the resource itself.
        """
        info = await self.get(session_id)
        if info.state is SessionState.ENDED:
            raise SessionEnded(info.end_reason or EndReason.ERROR)
        self._cleanups.add(session_id, callback)

    # -- queries ----------------------------------------------------------------------

    async def get(self, session_id: SessionId) -> SessionInfo:
        """The session, or :class:`~tether.errors.SessionNotFound`."""
        info = await self.store.get(session_id)
        if info is None:
            raise SessionNotFound()
        return info

    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        """Live sessions, oldest first, optionally one user's or in one state."""
        return await self.store.list(user=user, state=state)

    async def metrics(self) -> ManagerMetrics:
        """Live count, totals by reason, and the ages of the oldest and newest session."""
        stats = await self.store.stats()
        counts = self._counters.snapshot()
        now = self.clock.now()
        return ManagerMetrics(
            active=stats.live,
            total_created=counts.total_created,
            total_ended=counts.total_ended,
            ended_by_reason=counts.ended_by_reason,
            warnings=counts.warnings,
            extended_after_warning=counts.extended_after_warning,
            cleanup_failures=counts.cleanup_failures,
            hook_failures=counts.hook_failures,
            archive_failures=counts.archive_failures,
            journals_recovered=counts.journals_recovered,
            store_losses=0 if self.store_epoch is None else self.store_epoch.losses,
            sessions_lost=0 if self.store_epoch is None else self.store_epoch.sessions_lost,
            oldest_age_s=None if stats.oldest_created_at is None else now - stats.oldest_created_at,
            newest_age_s=None if stats.newest_created_at is None else now - stats.newest_created_at,
        )

    def connections(self, session_id: SessionId) -> int:
        """Channels attached to the session on this node."""
        return self._fanout.count(session_id)

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise TetherError("the session manager is shutting down")

    def _warning_event(self, warned: Warned) -> SessionWarning:
        left = max(0.0, warned.ends_at - self.clock.now())
        return SessionWarning(warned.reason, left, warned.ends_at)

    def _dispatch(self, claims: builtins.list[Claim]) -> None:
        """Apply the effects of transitions this node won."""
        for claim in claims:
            info, transition = claim.session, claim.transition
            event: Event
            if isinstance(transition, Ended):
                self._ending.start(claim)
                continue
            if isinstance(transition, Warned):
                event = self._warning_event(transition)
                self._metrics.session_warned(transition.reason)
                hooks = self._hooks.warning
            else:
                assert isinstance(transition, Reactivated)
                event = SessionActive()
                self._metrics.session_reactivated()
                hooks = self._hooks.active
            self._broadcast(info.id, event)
            self._emit(hooks, info)

    def _emit(self, hooks: builtins.list[Hook], info: SessionInfo) -> None:
        # No task at all when nothing listens: starts are a hot path.
        if hooks:
            self._tasks.spawn(self._hooks.emit(hooks, info), name="tether-hook")

    def _broadcast(self, session_id: SessionId, event: Event) -> None:
        """Send ``event`` to the session's channels here and on every other node."""
        self._fanout.send(session_id, event)
        if self._cluster is not None:
            self._cluster.sent(session_id, event)
            self._cluster.publish(session_id, event)

    async def _end_lost_sessions(self) -> None:
        """The store came back empty: end, as lost, each session held here that it forgot.

        A session it still knows (started after the loss, whatever this
        node's channel saw first) is left alone. Raises
        :class:`~tether.errors.StoreError` if the store fails meanwhile: the
        epoch watch calls again, and only what is still held is looked at.
        """
        assert self._cluster is not None
        assert self.store_epoch is not None
        cluster, watch = self._cluster, self.store_epoch

        async def end_if_lost(held: Held) -> None:
            session_id = held.info.id
            if self._ending.pending(session_id) is not None:
                return  # its end pipeline runs here and tells its channels
            if await self.store.get(session_id) is not None:
                return
            cluster.forget(session_id)
            watch.sessions_lost += 1
            await self._ending.end_lost(held)

        results = await asyncio.gather(
            *(end_if_lost(held) for held in cluster.held()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _on_channel_dropped(self, session_id: SessionId, channel: Channel) -> None:
        if self._cluster is not None:
            self._cluster.detached(session_id)
        self._tasks.spawn(self._release_connection(session_id))

    async def _release_connection(self, session_id: SessionId) -> None:
        armed = await self.store.detach(session_id, self.clock.now())
        if armed is not None:
            self._scheduler.poke(armed)
