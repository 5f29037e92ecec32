"""This node's part in a deployment of several nodes sharing one store.

A :class:`Cluster` exists only when the manager's store is shared (Redis).
It keeps the node's connections in step with decisions made elsewhere:

* **events**: what this node decides for a session (config, warning,
  message) goes to its own channels directly and to the other nodes over
  the :class:`~tether.runtime.bus.EventBus`; what they publish reaches this
  node's channels the same way;
* **ends**: the node that ends a session publishes :class:`Close` naming the
  nodes that held its connections (the store records them per node) and
  waits, bounded, for each one's :class:`Ack`, sent once its channels are
  closed: ``manager.end()`` returns when the sockets are closed everywhere;
* **catching up**: pub/sub forgets what a disconnected subscriber missed, so
  after the bus reconnects the node re-reads from the store every session it
  holds channels or cleanups for, and sends what changed (config, warning
  state, messages after the last one delivered) or closes the ended ones;
* **store loss**: before catching up it checks the store's epoch (see
  ``tether.runtime.store_epoch``), and it mirrors the transcript of every
  session it holds channels of, so that a store that came back empty still
  leaves each of those sessions an archive;
* **presence**: the node keeps its registration alive (``keepalive`` every
  third of the node lease); if it was given up for dead meanwhile (a long
  pause), its connections were released, so it attaches them again; a
  keepalive that fails tells the node's outage guard, and after the bus
  reconnects the node resumes presence before catching up (see
  ``tether.runtime.outage``);
* **leaving**: a stopping node ends nothing. It closes its channels with
  1001 so their clients reconnect to another node and resume, and
  deregisters, which starts the presence clock of what it held.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Container
from dataclasses import dataclass

from tether.clock import Clock
from tether.core.events import (
    CLOSE_CODES,
    Event,
    SessionActive,
    SessionConfig,
    SessionEndedEvent,
    SessionWarning,
    TranscriptAppended,
    close_code,
)
from tether.core.ids import log_ref
from tether.core.session import SessionInfo, Warned
from tether.core.transcript import Message
from tether.errors import SessionEnded, SessionNotFound, StoreError
from tether.runtime.bus import Ack, BusMessage, Close, EventBus, Poke, Publish
from tether.runtime.cleanup import CleanupRegistry
from tether.runtime.fanout import Fanout
from tether.runtime.leases import Periodic
from tether.runtime.outage import OutageGuard
from tether.runtime.store_epoch import EpochWatch
from tether.runtime.tasks import TaskSet, wait_bounded
from tether.store.base import NodeMembership, SessionStore
from tether.types import EndReason, SessionId

log = logging.getLogger("tether.runtime")

UNKNOWN_SESSION_CODE = 4404
LEAVING_CODE = CLOSE_CODES[EndReason.SERVER_SHUTDOWN]
CATCH_UP_MESSAGES = 1000
"""At most this many missed messages are re-sent per session when catching up."""
RECENT_ENDS = 4096


class _Seen:
    """What this node's channels of one session have been sent so far, and its transcript.

    ``messages`` mirrors the session's transcript while this node holds a
    channel of it (filled from the store at the first attach here, then from
    every message sent to the channels): if the store loses its data, this
    copy is what gets archived (see ``tether.runtime.store_epoch``).
    """

    __slots__ = ("config", "info", "messages", "seq", "warning")

    def __init__(self, info: SessionInfo) -> None:
        self.info = info
        self.config = info.config
        self.warning: Warned | None = info.warning
        self.seq = info.message_count
        self.messages: dict[int, Message] = {}


@dataclass(frozen=True, slots=True)
class Held:
    """A session this node holds channels of, as this node last knew it (for a store loss)."""

    info: SessionInfo
    """Its snapshot at the first attach here, with the config last sent."""
    messages: tuple[Message, ...]
    """Its transcript as mirrored here, oldest first."""


class _AckWait:
    __slots__ = ("done", "pending")

    def __init__(self, pending: set[str]) -> None:
        self.pending = pending
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Cluster:
    """Keeps this node's channels in step with the other nodes (see the module doc)."""

    def __init__(
        self,
        *,
        store: SessionStore,
        bus: EventBus,
        clock: Clock,
        fanout: Fanout,
        cleanups: CleanupRegistry,
        tasks: TaskSet,
        poke: Callable[[float], None],
        outage: OutageGuard | None = None,
        epoch: EpochWatch | None = None,
        ends_here: Container[SessionId],
        ack_timeout: float,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._fanout = fanout
        self._cleanups = cleanups
        self._tasks = tasks
        self._poke = poke
        self._outage = outage
        self._epoch = epoch
        self._ends_here = ends_here
        self._ack_timeout = ack_timeout
        self._membership = store if isinstance(store, NodeMembership) else None
        self._keepalive = (
            Periodic(
                clock,
                self._membership.node_lease / 3,
                self._keep_alive,
                name="tether-keepalive",
            )
            if self._membership is not None
            else None
        )
        self._identities: set[str] = set()
        self._acks: dict[str, _AckWait] = {}
        self._seen: dict[SessionId, _Seen] = {}
        self._recent: OrderedDict[SessionId, tuple[EndReason, str | None]] = OrderedDict()
        self._halted = False

    @property
    def node_id(self) -> str:
        """This node's identity in the store (the holder the store names in an end)."""
        return self._membership.node_id if self._membership is not None else ""

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Register the node, start its keepalive, and start listening on the bus."""
        if self._membership is not None:
            await self._membership.keepalive(self._clock.now())
            self._identities.add(self._membership.node_id)
        if self._keepalive is not None:
            self._keepalive.start()
        await self._bus.start(self._on_message, self._on_reconnect)

    async def release_connections(self) -> None:
        """Close this node's channels with 1001: their clients reconnect elsewhere and resume."""
        sessions = self._fanout.sessions()
        if sessions:
            reason = EndReason.SERVER_SHUTDOWN.value
            await asyncio.gather(
                *(self._fanout.close_all(sid, LEAVING_CODE, reason) for sid in sessions)
            )
        self._seen.clear()

    async def aclose(self) -> None:
        """Deregister (releasing what the store still counts for this node) and stop the bus."""
        if self._keepalive is not None:
            await self._keepalive.stop()
        now = self._clock.now()
        if self._membership is not None:
            try:
                await self._membership.leave(now)
            except StoreError as exc:
                log.warning("could not deregister; other nodes will reap this one: %s", exc)
            else:
                self._bus.publish(Poke(now))  # the released sessions' deadlines moved
        await self._bus.aclose()

    async def halt(self) -> None:
        """Stop every loop at once, without a word to anyone: a killed process (tests)."""
        self._halted = True
        if self._keepalive is not None:
            await self._keepalive.stop()
        halt = getattr(self._bus, "halt", None)
        if callable(halt):
            await halt()

    async def wait_idle(self) -> None:
        """Return when no keepalive is in flight."""
        if self._keepalive is not None:
            await self._keepalive.wait_idle()

    # -- what this node does -----------------------------------------------------------

    def attached(self, info: SessionInfo) -> bool:
        """A channel of ``info``'s session was attached here (and sent its config/warning).

        Returns whether it is the first here: its transcript is then to be
        mirrored (:meth:`mirror`).
        """
        if info.id in self._seen:
            return False
        self._seen[info.id] = _Seen(info)
        return True

    async def mirror(self, info: SessionInfo) -> None:
        """Copy the session's transcript so far from the store (messages sent since are kept).

        Raises :class:`~tether.errors.StoreError` if the store fails; the
        mirror then holds only what is sent from now on.
        """
        if info.message_count == 0:
            return  # a new session: every message will pass through sent()
        messages = await self._store.transcript(info.id)
        seen = self._seen.get(info.id)
        if seen is not None:
            for message in messages:
                seen.messages.setdefault(message.seq, message)

    def held(self) -> list[Held]:
        """Every session this node holds channels of, with its mirrored transcript."""
        return [
            Held(
                seen.info._replace(config=seen.config),
                tuple(sorted(seen.messages.values(), key=lambda m: m.seq)),
            )
            for seen in self._seen.values()
        ]

    def forget(self, session_id: SessionId) -> None:
        """Stop mirroring the session (its channels are being closed here)."""
        self._seen.pop(session_id, None)

    def detached(self, session_id: SessionId) -> None:
        """A channel was detached; forget the session once none is left here."""
        if self._fanout.count(session_id) == 0:
            self._seen.pop(session_id, None)

    def sent(self, session_id: SessionId, event: Event) -> None:
        """``event`` was queued for this node's channels of the session."""
        seen = self._seen.get(session_id)
        if seen is None:
            return
        if isinstance(event, SessionConfig):
            seen.config = event.config
        elif isinstance(event, SessionWarning):
            seen.warning = Warned(event.reason, event.ends_at)
        elif isinstance(event, SessionActive):
            seen.warning = None
        elif isinstance(event, TranscriptAppended):
            seen.seq = max(seen.seq, event.message.seq)
            seen.messages[event.message.seq] = event.message

    def publish(self, session_id: SessionId, event: Event) -> None:
        """Send ``event`` to the session's channels on the other nodes."""
        self._bus.publish(Publish(session_id, event))

    def ended_here(self, session_id: SessionId) -> tuple[EndReason, str | None] | None:
        """The reason and archive of a session this node recently saw end, if it did."""
        return self._recent.get(session_id)

    def _note_end(self, session_id: SessionId, reason: EndReason, archive_id: str | None) -> None:
        self._recent[session_id] = (reason, archive_id)
        if len(self._recent) > RECENT_ENDS:
            self._recent.popitem(last=False)

    async def announce_end(
        self,
        session_id: SessionId,
        reason: EndReason,
        archive_id: str | None,
        holders: tuple[str, ...],
    ) -> None:
        """Tell every node the session ended; wait (bounded) until the holders closed theirs."""
        self._note_end(session_id, reason, archive_id)
        self._seen.pop(session_id, None)
        expect = tuple(h for h in holders if h not in self._identities)
        if not expect:
            self._bus.publish(Close(session_id, reason, archive_id))
            return
        ack = secrets.token_hex(8)
        waiter = self._acks[ack] = _AckWait(set(expect))
        self._bus.publish(Close(session_id, reason, archive_id, expect, ack))
        try:
            if not await wait_bounded(self._clock, waiter.done, self._ack_timeout):
                log.warning(
                    "%d node(s) did not confirm closing session=%s within %ss",
                    len(waiter.pending),
                    log_ref(session_id),
                    self._ack_timeout,
                )
        finally:
            del self._acks[ack]
            waiter.done.cancel()

    # -- what the other nodes do -------------------------------------------------------------

    def _on_message(self, message: BusMessage) -> None:
        if self._halted:
            return
        if isinstance(message, Publish):
            session_id, event = message.session_id, message.event
            if self._fanout.count(session_id) == 0:
                return
            if isinstance(event, SessionWarning):  # seconds left, by this node's clock
                left = max(0.0, event.ends_at - self._clock.now())
                event = SessionWarning(event.reason, left, event.ends_at)
            self._fanout.send(session_id, event)
            self.sent(session_id, event)
        elif isinstance(message, Close):
            self._tasks.spawn(self._closed_elsewhere(message), name="tether-remote-end")
        elif isinstance(message, Ack):
            waiter = self._acks.get(message.ack)
            if waiter is not None:
                waiter.pending.discard(message.node)
                if not waiter.pending and not waiter.done.done():
                    waiter.done.set_result(None)
        else:
            self._poke(message.at)

    async def _closed_elsewhere(self, message: Close) -> None:
        session_id = message.session_id
        self._note_end(session_id, message.reason, message.archive_id)
        await self._close_local(session_id, message.reason, message.archive_id)
        for identity in self._identities.intersection(message.expect):
            self._bus.publish(Ack(message.ack, identity))
        await self._cleanups.run(session_id)

    async def _close_local(
        self, session_id: SessionId, reason: EndReason | None, archive_id: str | None
    ) -> None:
        """Tell and close this node's channels of an ended (or vanished) session."""
        self._seen.pop(session_id, None)
        if self._fanout.count(session_id) == 0:
            return
        if reason is None:
            await self._fanout.close_all(session_id, UNKNOWN_SESSION_CODE, "unknown session")
            return
        self._fanout.send(session_id, SessionEndedEvent(reason, archive_id))
        await self._fanout.close_all(session_id, close_code(reason), reason.value)

    # -- catching up ----------------------------------------------------------------------

    def _on_reconnect(self) -> None:
        if not self._halted:
            self._tasks.spawn(self.catch_up(), name="tether-catch-up")

    async def catch_up(self) -> None:
        """Re-read every session this node holds channels or cleanups for; send what changed."""
        if self._outage is not None:
            try:
                await self._outage.resume()  # the bus came back: the store probably did too
            except StoreError as exc:
                log.warning("catching up stopped, the store is unavailable: %s", exc)
                return
        if self._epoch is not None:
            try:
                # Before anything reads a session: one the store lost must end
                # as lost (archived), not be closed as unknown.
                await self._epoch.check()
            except StoreError as exc:
                log.warning("catching up stopped, the store is unavailable: %s", exc)
                return
        sessions = {*self._fanout.sessions(), *self._cleanups.sessions()}
        for session_id in sessions:
            if session_id in self._ends_here:
                continue  # its pipeline runs here and will tell its channels
            try:
                info = await self._store.get(session_id)
                if info is None or info.end_reason is not None:
                    reason = info.end_reason if info is not None else None
                    await self._close_local(session_id, reason, None)
                    await self._cleanups.run(session_id)
                    continue
                for event in await self._missed(info):
                    self._fanout.send(session_id, event)
                    self.sent(session_id, event)
            except StoreError as exc:
                log.warning("catching up stopped, the store is unavailable: %s", exc)
                return

    async def _missed(self, info: SessionInfo) -> list[Event]:
        seen = self._seen.get(info.id)
        if seen is None:
            return []
        events: list[Event] = []
        if info.config != seen.config:
            events.append(SessionConfig(info.config))
        if info.message_count > seen.seq:
            messages = await self._store.transcript(
                info.id, after=seen.seq, limit=CATCH_UP_MESSAGES
            )
            events += [TranscriptAppended(m) for m in messages]
        if info.warning != seen.warning:
            if info.warning is None:
                events.append(SessionActive())
            else:
                left = max(0.0, info.warning.ends_at - self._clock.now())
                events.append(SessionWarning(info.warning.reason, left, info.warning.ends_at))
        return events

    # -- presence ---------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        assert self._membership is not None
        try:
            held = await self._membership.keepalive(self._clock.now())
        except StoreError:
            if self._outage is not None:
                self._outage.noticed()
            raise
        self._identities.add(self._membership.node_id)
        if not held:
            await self._attach_again()

    async def _attach_again(self) -> None:
        """Count this node's channels again after it was given up for dead."""
        now = self._clock.now()
        log.warning("this node was given up for dead; attaching its connections again")
        for session_id in self._fanout.sessions():
            try:
                for _ in range(self._fanout.count(session_id)):
                    await self._store.attach(session_id, now)
            except (SessionEnded, SessionNotFound):
                continue  # catch_up closes it
        await self.catch_up()
