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

This class is the facade: its parts are built once by
:func:`tether.runtime.wiring.build` (the deployment chosen once, the one
store gateway, the journal policy), and each command here is the short
sequence of their calls.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from tether.archive.base import Archiver
from tether.archive.journal import FileJournal
from tether.archive.recovery import RecoveryReport
from tether.clock import Clock
from tether.core.choices import parse_choice
from tether.core.events import SessionConfig, TranscriptAppended
from tether.core.ids import log_ref, new_session_id, validate_user_id
from tether.core.jsonvalue import check_json_object
from tether.core.policy import Policy
from tether.core.session import Ended, SessionInfo, SessionRecord
from tether.core.transcript import Message, Role, check_content, parse_role
from tether.errors import InvalidInput, SessionEnded, SessionNotFound, TetherError
from tether.metrics.sink import MetricsSink
from tether.runtime.bus import EventBus
from tether.runtime.channel import Channel
from tether.runtime.cleanup import Cleanup, CleanupHandle
from tether.runtime.cluster import Cluster
from tether.runtime.conversation import ConversationCommands
from tether.runtime.hooks import HookRegistration
from tether.runtime.keyed import KeyedLock
from tether.runtime.manager_metrics import ManagerMetrics
from tether.runtime.store_epoch import EpochWatch
from tether.runtime.wiring import EPOCH_INTERVAL, SHARED_POLL_INTERVAL, Options, Parts, build
from tether.store.base import Armed, Claim, SessionStore
from tether.types import EndReason, SessionId, SessionState, UserId

__all__ = ["EPOCH_INTERVAL", "SHARED_POLL_INTERVAL", "ManagerMetrics", "SessionManager"]

log = logging.getLogger("tether.runtime")
END_BATCH = 64
"""``end_many`` yields to the loop after this many store calls."""


class SessionManager(HookRegistration, ConversationCommands):
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

    ``barge_in``: what a user message does to a reply streaming in its
    session, ``"cancel"`` (cut it, stored partial) or ``"keep"``.
    ``max_session_tasks`` bounds :meth:`spawn` per session. The hooks are
    registered by :class:`~tether.runtime.hooks.HookRegistration`'s methods,
    the conversation (tasks, replies, app events) by
    :class:`~tether.runtime.conversation.ConversationCommands`'.
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
        barge_in: str = "cancel",
        max_session_tasks: int = 64,
    ) -> None:
        parts = build(
            store,
            Options(
                policy=policy,
                clock=clock,
                max_sessions_per_user=max_sessions_per_user,
                cleanup_timeout=cleanup_timeout,
                close_timeout=close_timeout,
                claim_batch=claim_batch,
                max_concurrent_ends=max_concurrent_ends,
                metrics=metrics,
                journal=journal,
                archiver=archiver,
                bus=bus,
                ack_timeout=ack_timeout,
                poll_interval=poll_interval,
                epoch_interval=epoch_interval,
                barge_in=barge_in,
                max_session_tasks=max_session_tasks,
            ),
            on_drop=self._on_channel_dropped,
            append=self.append,
            lookup=self.get,
            set_busy=self.set_busy,
        )
        self.max_sessions_per_user = max_sessions_per_user
        self.journal = journal
        self.recovery: RecoveryReport | None = None
        """What start-up recovery did (``None`` without a journal)."""
        self._id_factory = id_factory
        self._starting = KeyedLock()
        self._open = False
        self._closing = False
        self._adopt(parts)

    def _adopt(self, parts: Parts) -> None:
        """Hold the parts the factory built (see :mod:`tether.runtime.wiring`)."""
        self.store: SessionStore = parts.store
        self.policy = parts.policy
        self.clock: Clock = parts.clock
        self.bus: EventBus = parts.deployment.bus
        self._counters = parts.counters
        self._metrics = parts.metrics
        self._tasks = parts.tasks
        self._fanout = parts.fanout
        self._cleanups = parts.cleanups
        self._hooks = parts.hooks
        self._store = parts.gateway
        self._scheduler = parts.scheduler
        self._leases = parts.leases
        self._deployment = parts.deployment
        self._ending = parts.ends
        self._effects = parts.effects
        self._transcripts = parts.transcripts
        self._session_tasks = parts.session_tasks
        self._replies = parts.replies
        self._broadcast = parts.effects.broadcast
        self._observers: set[Channel] = set()  # attached channels that hold no presence
        # Bound once: the two hottest calls skip attribute lookups.
        self._touch_nowait = parts.gateway.touch_nowait
        self._now = self.clock.now

    @property
    def store_epoch(self) -> EpochWatch | None:
        """This node's watch on the shared store's epoch (``None`` on a store of its own)."""
        return self._deployment.store_epoch

    @property
    def _cluster(self) -> Cluster | None:
        """The link to the other nodes (``None`` on a store of this node's own)."""
        return self._deployment.cluster

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
        self.recovery = await self._transcripts.recover()
        await self._deployment.open(self._ending)
        self._scheduler.start(self._effects.dispatch)

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
        await self._deployment.stop_watching()
        await self._deployment.leave(self._end_all)
        await self._session_tasks.cancel_all()  # a shared node ended nothing: stop them here
        await self._tasks.join()
        await self._leases.aclose()
        await self._deployment.aclose()
        await self.store.aclose()
        await self._transcripts.aclose()
        if self.archiver is not None:
            await self.archiver.aclose()

    async def _end_all(self) -> None:
        live = await self._store.list()
        await self.end_many([info.id for info in live], EndReason.SERVER_SHUTDOWN)

    async def wait_idle(self) -> None:
        """Return once every due transition is applied and every background task finished.

        Meant for tests. Channel writers count as background tasks, so a
        channel whose sends are held blocks this; use ``tether.testing.settle``
        there instead.
        """
        while True:
            await self._scheduler.wait_idle()
            await self._leases.wait_idle()
            await self._deployment.wait_idle()
            if not self._tasks:
                return
            await self._tasks.join()

    async def _halt(self) -> None:
        """Stop dead, as a killed process would: no ends, no goodbyes (``testing.crash``)."""
        self._closing = True
        await self._scheduler.stop()
        self._ending.stop()
        await self._deployment.halt()
        await self._leases.aclose()
        await self._session_tasks.cancel_all()
        await self._tasks.cancel_all()
        await self.store.aclose()
        if self.archiver is not None:
            await self.archiver.aclose()

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
        created = await self._store.create(
            record, max_per_user=self.max_sessions_per_user, reuse=reuse
        )
        for replaced in created.replaced:
            self._ending.start(replaced)
        if created.reused:
            return created.session
        await self._transcripts.begin(created.session)
        self._metrics.session_started(kind)
        log.info("session started session=%s kind=%s", log_ref(record.id), kind)
        self._effects.emit(self._hooks.started, created.session)
        return created.session

    # activity() and heartbeat() are the hottest calls: on a store with
    # touch_nowait they create no coroutine beyond their own, and the rare case
    # (a transition) is a plain call.

    async def activity(self, session_id: SessionId) -> None:
        """User activity: refreshes presence and the idle clock, clears an idle warning."""
        if self._touch_nowait is not None:
            claim = self._touch_nowait(session_id, self._now(), activity=True)
        else:
            claim = await self._store.touch(session_id, activity=True)
        if claim is not None:
            self._touched(claim)
        if self._hooks.changed:  # the hottest call: no call at all when nothing listens
            self._hooks.session_changed(session_id)

    async def heartbeat(self, session_id: SessionId) -> None:
        """A sign of presence only: never postpones the idle end."""
        if self._touch_nowait is not None:
            claim = self._touch_nowait(session_id, self._now(), activity=False)
        else:
            claim = await self._store.touch(session_id, activity=False)
        if claim is not None:
            self._touched(claim)

    async def set_busy(self, session_id: SessionId, busy: bool) -> None:
        """Open (``busy``) or close one busy mark: idle does not run out while any is open.

        No idle warning and no ``idle_timeout`` while busy; when the last mark
        closes, the idle clock counts again from then. Marks nest (a reply and
        speech may overlap); a close with none open does nothing. Opening one
        clears an idle warning (``session.active``). ``max_duration`` still applies.
        """
        claim = await self._store.set_busy(session_id, busy=busy)
        if claim is not None:
            self._touched(claim)
        self._hooks.session_changed(session_id)

    def _touched(self, claim: Claim | Armed) -> None:
        """Apply a transition a touch decided; raise if it was the end."""
        if isinstance(claim, Armed):  # a first heartbeat, or a busy time's end
            self._store.arm(claim.at)
            return
        self._effects.dispatch([claim])
        if isinstance(claim.transition, Ended):
            raise SessionEnded(claim.transition.reason)
        if claim.session.next_deadline is not None:
            self._store.arm(claim.session.next_deadline.at)

    async def attach(
        self, session_id: SessionId, channel: Channel, *, observer: bool = False
    ) -> SessionInfo:
        """Attach ``channel``: it holds presence and receives the session's events.

        It gets ``session.config`` at once, the warning in force, if any, and
        the text so far of each reply streaming here. An ``observer`` channel
        only receives: it holds no presence, so a session nobody else is
        attached to still ends ``client_gone`` while it watches.
        """
        self._check_open()
        if observer:
            info = await self.get(session_id)
            if info.end_reason is not None:
                raise SessionEnded(info.end_reason)
            self._observers.add(channel)
        else:
            info = await self._store.attach(session_id)
        self._fanout.add(session_id, channel)
        self._hooks.session_changed(session_id)
        self._fanout.send(session_id, SessionConfig(info.config), channel)
        if info.warning is not None:
            event = self._effects.warning_event(info.warning)
            self._fanout.send(session_id, event, channel)
        for delta in self._replies.resume_events(session_id):
            self._fanout.send(session_id, delta, channel)
        await self._deployment.attached(info, channel, self._store)
        return info

    async def detach(self, session_id: SessionId, channel: Channel) -> None:
        """Detach ``channel``; when it was the last, the presence clock starts."""
        if self._fanout.remove(session_id, channel):
            self._deployment.detached(session_id)
            if channel in self._observers:
                self._observers.discard(channel)
                return
            await self._release_connection(session_id)

    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        """Replace the session's config and send it to every attached channel."""
        check_json_object(config, "config")
        info = await self._store.update_config(session_id, config)
        self._transcripts.config(session_id, info.config)
        self._effects.broadcast(session_id, SessionConfig(info.config))
        self._hooks.session_changed(session_id)
        self._reconfigured(info)
        return info

    async def update_policy(self, session_id: SessionId, policy: Policy) -> None:
        """Replace the session's timeouts; a shorter one takes effect at once."""
        await self._store.update_policy(session_id, policy)

    async def append(
        self,
        session_id: SessionId,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append a transcript message and send it to every attached channel.

        Any role: this is the server side (clients are held to ``user`` at
        the edge). A ``user`` message is also activity, cuts a reply
        streaming in the session (``barge_in="cancel"``) and, once durable,
        runs the ``on_message`` hooks (the ``early`` ones as soon as it is
        stored, overlapping the journal's flush). Returns the stored message
        with its sequence number once it is durable in the journal (if there
        is one) under its fsync policy: the return is the acknowledgement. While the
        session's end stops its work (before the archive), a non-user
        message is still taken, for the archive (``tether.runtime.late_writes``).
        """
        parsed = parse_role(role)
        check_content(content, metadata)
        if parsed is Role.USER:
            await self.activity(session_id)
            await self._replies.user_spoke(session_id)
        try:
            message = await self._store.append(session_id, parsed, content, metadata)
        except SessionEnded:
            if parsed is Role.USER or not self._ending.late.accepts(session_id):
                raise
            message = self._ending.late.append(session_id, parsed, content, metadata, self._now())
        if parsed is Role.USER:
            await self._publish_heard(session_id, message)
        else:
            await self._publish(session_id, message)
        return message

    async def _publish(self, session_id: SessionId, message: Message) -> None:
        """Make a stored message durable, then send it to the session's connections."""
        await self._transcripts.append(message, session_id)
        self._effects.broadcast(session_id, TranscriptAppended(message))
        self._hooks.session_changed(session_id)

    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        """The session's messages with ``seq > after``, oldest first."""
        return await self._store.transcript(session_id, after=after, limit=limit)

    async def end(self, session_id: SessionId, reason: EndReason = EndReason.CLIENT_ENDED) -> bool:
        """End the session and wait for its pipeline.

        Returns ``True`` if this call ended it, ``False`` if it had already
        ended (in which case it still waits for a pipeline running here).
        """
        reason = parse_choice(EndReason, reason, "end reason")
        claim = await self._store.end(session_id, reason)
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
                claim = await self._store.end(session_id, reason)
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

    async def add_cleanup(self, session_id: SessionId, callback: Cleanup) -> CleanupHandle:
        """Run ``await callback()`` when the session ends (newest first, time-bounded).

        Returns a handle: ``handle.remove()`` (or :meth:`remove_cleanup`)
        unregisters it once the resource was released some other way.
        Raises :class:`~tether.errors.SessionEnded` if the session has already
        ended: the caller must then release the resource itself.
        """
        info = await self.get(session_id)
        if info.state is SessionState.ENDED:
            raise SessionEnded(info.end_reason or EndReason.ERROR)
        return self._cleanups.add(session_id, callback)

    # -- queries ----------------------------------------------------------------------

    async def get(self, session_id: SessionId) -> SessionInfo:
        """The session, or :class:`~tether.errors.SessionNotFound`."""
        info = await self._store.get(session_id)
        if info is None:
            raise SessionNotFound()
        return info

    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        """Live sessions, oldest first, optionally one user's or in one state."""
        return await self._store.list(user=user, state=state)

    async def metrics(self) -> ManagerMetrics:
        """Live count, totals by reason, and the ages of the oldest and newest session."""
        stats = await self._store.stats()
        return ManagerMetrics.of(
            stats, self._counters.snapshot(), self._deployment.losses, self.clock.now()
        )

    def connections(self, session_id: SessionId) -> int:
        """Channels attached to the session on this node."""
        return self._fanout.count(session_id)

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise TetherError("the session manager is shutting down")

    def _on_channel_dropped(self, session_id: SessionId, channel: Channel) -> None:
        self._deployment.detached(session_id)
        if channel in self._observers:
            self._observers.discard(channel)
            return
        self._tasks.spawn(self._release_connection(session_id))

    async def _release_connection(self, session_id: SessionId) -> None:
        """A connection left: the store counts it, and whoever listens hears of it."""
        await self._store.detach(session_id)
        self._hooks.session_changed(session_id)
