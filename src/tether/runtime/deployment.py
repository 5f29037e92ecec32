"""How this manager is deployed, chosen once: a node on its own, or one of several.

:class:`SingleNode`: the store is this process's (``MemoryStore``); events go
to this node's channels only, and closing the manager ends every session.

:class:`SharedNode`: the store is shared (Redis) by several nodes; a
:class:`~tether.runtime.cluster.Cluster` carries events and ends to the
connections other nodes hold, an :class:`~tether.runtime.store_epoch.EpochWatch`
notices a store that came back without its data, and closing the manager
ends nothing (the other nodes go on serving the sessions).

The manager asks its one :class:`Deployment` at each point where the two
differ, instead of testing which one it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Container

from tether.clock import Clock
from tether.core.events import Event, SessionEndedEvent, close_code
from tether.core.session import SessionInfo
from tether.errors import SessionNotFound, StoreUnavailable
from tether.runtime.bus import EventBus
from tether.runtime.channel import Channel
from tether.runtime.cleanup import CleanupRegistry
from tether.runtime.cluster import Cluster, Held
from tether.runtime.ending import EndAnnouncer, EndPipelines
from tether.runtime.fanout import Fanout
from tether.runtime.gateway import StoreGateway
from tether.runtime.store_epoch import EpochWatch
from tether.runtime.tasks import TaskSet
from tether.store.base import EpochStore
from tether.types import SessionId

EndAll = Callable[[], Awaitable[object]]


class Deployment:
    """What a node does where deployments differ; the defaults are a node on its own."""

    cluster: Cluster | None = None
    """The link to the other nodes (``None`` on a store of this node's own)."""
    store_epoch: EpochWatch | None = None
    """This node's watch on the shared store's epoch (``None`` on a store of its own)."""

    def __init__(self, bus: EventBus, fanout: Fanout) -> None:
        self.bus = bus
        self._fanout = fanout

    @property
    def announcer(self) -> EndAnnouncer | None:
        """Who tells the other nodes of an end this node runs (nobody on a node alone)."""
        return self.cluster

    @property
    def losses(self) -> tuple[int, int]:
        """Times the store came back without its data, and sessions ended for it."""
        if self.store_epoch is None:
            return 0, 0
        return self.store_epoch.losses, self.store_epoch.sessions_lost

    async def open(self, ends: EndPipelines) -> None:
        """Join the deployment; ``ends`` runs the ends of sessions the store lost."""

    async def leave(self, end_all: EndAll) -> None:
        """First step of closing the manager: alone, every live session ends."""
        await end_all()

    async def aclose(self) -> None:
        """Last step of closing the manager, once every pipeline here finished."""

    async def stop_watching(self) -> None:
        """Stop the timers that would act on the store (closing or halting)."""

    async def halt(self) -> None:
        """Stop dead, without a word to anyone (a killed process, for tests)."""

    async def wait_idle(self) -> None:
        """Return when nothing of the deployment's own is in flight."""

    def broadcast(self, session_id: SessionId, event: Event) -> None:
        """Send ``event`` to the session's channels (here and on every other node)."""
        self._fanout.send(session_id, event)

    async def attached(self, info: SessionInfo, channel: Channel, store: StoreGateway) -> None:
        """``channel`` of ``info``'s session was attached here and sent its config/warning."""

    def detached(self, session_id: SessionId) -> None:
        """A channel of the session left this node."""


class SingleNode(Deployment):
    """A node on its own: events stay here, and closing the manager ends every session."""


class SharedNode(Deployment):
    """One node of several sharing a store: the cluster link and the epoch watch."""

    def __init__(
        self,
        *,
        store: StoreGateway,
        bus: EventBus,
        clock: Clock,
        fanout: Fanout,
        cleanups: CleanupRegistry,
        tasks: TaskSet,
        ends_here: Container[SessionId],
        epoch_interval: float,
        ack_timeout: float,
    ) -> None:
        super().__init__(bus, fanout)
        self._store = store
        self._ends: EndPipelines | None = None
        raw = store.store
        self.store_epoch = (
            EpochWatch(raw, clock, interval=epoch_interval, on_loss=self._end_lost_sessions)
            if isinstance(raw, EpochStore)
            else None
        )
        self.cluster = Cluster(
            store=raw,
            bus=bus,
            clock=clock,
            fanout=fanout,
            cleanups=cleanups,
            tasks=tasks,
            poke=store.arm,
            outage=store.outage,
            epoch=self.store_epoch,
            ends_here=ends_here,
            ack_timeout=ack_timeout,
        )

    async def open(self, ends: EndPipelines) -> None:
        """Register the node and listen on the bus; learn (or seed) the store's epoch."""
        self._ends = ends
        assert self.cluster is not None
        await self.cluster.open()
        if self.store_epoch is not None:
            await self.store_epoch.check()  # first use: seeds or learns the epoch
            self.store_epoch.start()

    async def leave(self, end_all: EndAll) -> None:
        """End nothing: close this node's channels with 1001 so their clients resume elsewhere."""
        assert self.cluster is not None
        await self.cluster.release_connections()

    async def aclose(self) -> None:
        """Deregister and stop the bus."""
        assert self.cluster is not None
        await self.cluster.aclose()

    async def stop_watching(self) -> None:
        """Stop the epoch timer."""
        if self.store_epoch is not None:
            await self.store_epoch.stop()

    async def halt(self) -> None:
        """Stop the epoch timer, the keepalive and the bus at once."""
        await self.stop_watching()
        assert self.cluster is not None
        await self.cluster.halt()

    async def wait_idle(self) -> None:
        """Return when no keepalive, bus message or epoch check is in flight."""
        assert self.cluster is not None
        await self.cluster.wait_idle()
        await self.bus.flush()
        if self.store_epoch is not None:
            await self.store_epoch.wait_idle()

    def broadcast(self, session_id: SessionId, event: Event) -> None:
        """Send ``event`` to the session's channels here and publish it to the other nodes."""
        assert self.cluster is not None
        self._fanout.send(session_id, event)
        self.cluster.sent(session_id, event)
        self.cluster.publish(session_id, event)

    async def attached(self, info: SessionInfo, channel: Channel, store: StoreGateway) -> None:
        """Mirror the transcript at the first attach here; close it if it just ended elsewhere."""
        cluster, session_id = self.cluster, info.id
        assert cluster is not None
        if cluster.attached(info):
            try:
                await store.call(lambda _: cluster.mirror(info))
            except StoreUnavailable:
                pass  # the attach stands: only the copy kept against a loss misses messages
            except SessionNotFound:
                pass  # gone since the attach: the epoch check ends it as lost
        ended = cluster.ended_here(session_id)
        if ended is not None:
            # It ended on another node while this attach was on its way,
            # and that node's Close came first: close this channel too.
            reason, archive_id = ended
            self._fanout.send(session_id, SessionEndedEvent(reason, archive_id), channel)
            await self._fanout.close_all(session_id, close_code(reason), reason.value)

    def detached(self, session_id: SessionId) -> None:
        """Forget the session's mirror once no channel of it is left here."""
        assert self.cluster is not None
        self.cluster.detached(session_id)

    async def _end_lost_sessions(self) -> None:
        """The store came back empty: end, as lost, each session held here that it forgot.

        A session it still knows (started after the loss, whatever this
        node's channel saw first) is left alone. Raises
        :class:`~tether.errors.StoreError` if the store fails meanwhile: the
        epoch watch calls again, and only what is still held is looked at.
        """
        cluster, watch, ends = self.cluster, self.store_epoch, self._ends
        assert cluster is not None
        assert watch is not None
        assert ends is not None

        async def end_if_lost(held: Held) -> None:
            session_id = held.info.id
            if ends.pending(session_id) is not None:
                return  # its end pipeline runs here and tells its channels
            if await self._store.get(session_id) is not None:
                return
            cluster.forget(session_id)
            watch.sessions_lost += 1
            await ends.end_lost(held)

        results = await asyncio.gather(
            *(end_if_lost(held) for held in cluster.held()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
