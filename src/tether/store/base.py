"""The ``SessionStore`` port: what the runtime needs from storage.

Every method is a single atomic step, so the semantics hold whether the store
is a dict in this process or a Redis primary shared by many nodes (each step a
Lua script there):

* a transition (warning, cleared warning, end) is returned by exactly one call,
  to exactly one caller: that caller is its *claimant* and applies its effects;
* of racing enders, exactly one gets the ended session back;
* a touch is O(1) and records timestamps; it returns a transition only when the
  touch itself decided one (activity clearing a warning, or a touch that
  arrived after the session's end was due, which ends it), and an
  :class:`Armed` when it was the session's first heartbeat and that started a
  presence clock ending before the session's armed deadline.

Ends are leased. Whoever gets an end back (from ``end``, ``claim_due``,
``touch`` or as a ``replaced`` session of ``create``) gets it with a *fence*
(an integer, 1 for the first claimant) and a lease of ``end_lease`` seconds:
it runs the end pipeline and then calls ``complete(session_id, fence)``. An
end not completed before its lease runs out is handed out again by
``claim_due`` (as an :class:`~tether.core.session.Ended` with the original
reason and a greater fence), so a claimant that died mid-pipeline is
replaced; a completion with a superseded fence is a no-op. ``renew`` extends
leases still held, for pipelines that run long.

Times are epoch seconds passed in by the caller (its injected clock); stores
never read a clock themselves. A store keeps them to the microsecond: a
time a store hands back may differ from the one passed in by less than half
a microsecond (``RedisStore`` stores whole microseconds; ``MemoryStore``
keeps every digit). Times with no more than six decimals read back exactly.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tether.core.policy import Policy
from tether.core.session import SessionInfo, SessionRecord, Transition
from tether.core.transcript import Message, Role
from tether.types import EndReason, SessionId, SessionState, UserId


@dataclass(frozen=True, slots=True)
class Claim:
    """A transition this caller won, with the session as it is after it.

    For an end (``transition`` is ``Ended``) the caller owns the end's
    pipeline: ``fence`` is its token for :meth:`SessionStore.complete`, and
    ``holders`` names the nodes that held connections to the session when it
    ended (shared stores only: they must close them). For other transitions
    ``fence`` is 0.
    """

    session: SessionInfo
    transition: Transition
    fence: int = 0
    holders: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Armed:
    """A touch armed the session's next deadline earlier, at ``at`` (wake the scheduler).

    Only a session's first heartbeat does this (it starts the presence clock,
    see :meth:`~tether.core.session.SessionRecord.presence_end`), and the end
    of a busy time (it restarts the idle clock, see
    :meth:`~tether.core.session.SessionRecord.set_busy`).
    """

    at: float


@dataclass(frozen=True, slots=True)
class Created:
    """The result of :meth:`SessionStore.create`."""

    session: SessionInfo
    armed_at: float
    """When the new session's first deadline falls (the scheduler may need waking)."""
    replaced: builtins.list[Claim] = field(default_factory=list)
    """Ends this create claimed: sessions it replaced and, with ``reuse``, sessions of
    the kind whose clocks had already run out. The creator is their claimant."""
    reused: bool = False
    """With ``reuse``: ``session`` is the user's live session of that kind, and nothing
    was created."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts for health and metrics."""

    live: int
    oldest_created_at: float | None
    newest_created_at: float | None


@runtime_checkable
class NowaitTouch(Protocol):
    """Optional: a store whose touch never waits may offer it synchronously.

    The manager uses ``touch_nowait`` when a store has it, saving a coroutine
    on the hottest call; semantics are exactly those of ``touch``.
    """

    def touch_nowait(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        """Same as :meth:`SessionStore.touch`, without awaiting."""
        ...


@runtime_checkable
class EpochStore(Protocol):
    """A shared store that can tell its nodes it came back empty (see ``tether.core.epoch``)."""

    async def swap_epoch(self, candidate: str) -> str | None:
        """The store's epoch; ``None`` if it had none, in which case it now holds ``candidate``.

        Atomic: of several nodes finding no epoch, exactly one seeds it.
        """
        ...


@runtime_checkable
class NodeMembership(Protocol):
    """A shared store's registry of the nodes using it (see ``docs/operations.md``).

    Each node's store counts the connections it attaches under the node's
    identity, and the node proves it is alive with :meth:`keepalive` at least
    every ``node_lease / 3`` seconds. When a node's lease runs out (it died),
    ``claim_due`` on any other node releases that node's connections: each
    session's presence clock then runs from the dead node's last keepalive,
    so its sessions end as ``client_gone`` unless their clients come back.
    """

    @property
    def node_id(self) -> str:
        """This node's current identity (it changes if the node was given up for dead)."""
        ...

    @property
    def node_lease(self) -> float:
        """Seconds a keepalive keeps this node alive."""
        ...

    async def keepalive(self, now: float) -> bool:
        """Renew this node's lease; ``False`` when it had run out and the node was reaped.

        After ``False`` the node has a new identity and no connections counted:
        the caller must attach its connections again.
        """
        ...

    async def leave(self, now: float) -> None:
        """Deregister this node, releasing every connection it still counts (as of ``now``)."""
        ...


OnPayload = Callable[[str | bytes], None]
"""Called for each payload heard on a :class:`Broadcast`, in publication order."""

OnReconnect = Callable[[], None]
"""Called after a :class:`Broadcast` listens again following a lost connection."""


class Broadcast(Protocol):
    """A shared store's channel between its nodes: opaque payloads, in order, to every listener.

    The transport of the runtime's event bus (``tether.runtime.store_bus``),
    which encodes the messages. A broadcast that lost its connection loses
    what was published meanwhile; it calls ``on_reconnect`` once it listens
    again. Failures never leave it: it reconnects, or drops and logs.
    """

    @property
    def channel(self) -> str:
        """The channel's name."""
        ...

    @property
    def listening(self) -> bool:
        """Whether the listener is subscribed right now."""
        ...

    @property
    def reconnects(self) -> int:
        """How many times the listener subscribed again after losing its connection."""
        ...

    async def start(self, on_payload: OnPayload, on_reconnect: OnReconnect) -> None:
        """Start listening; returns once payloads published from now on will arrive."""
        ...

    def publish(self, payload: str) -> None:
        """Queue ``payload`` for every listener (its own included); never waits."""
        ...

    async def flush(self) -> None:
        """Wait until everything published so far has been sent (or dropped)."""
        ...

    async def aclose(self) -> None:
        """Send what is queued, then stop listening and release the connection."""
        ...

    async def halt(self) -> None:
        """Stop at once, sending nothing more: what a killed process does (tests)."""
        ...


@runtime_checkable
class BroadcastStore(Protocol):
    """A shared store that offers its nodes a :class:`Broadcast` (the Redis store: pub/sub)."""

    def broadcast(self) -> Broadcast:
        """A new broadcast on the deployment's channel (one per node's event bus)."""
        ...


class SessionStore(Protocol):
    """Atomic storage of sessions, their deadlines and their transcripts.

    Unknown sessions raise :class:`~tether.errors.SessionNotFound`; writes to an
    ended (but still retained) session raise :class:`~tether.errors.SessionEnded`
    with its reason. Implementations translate their own failures into
    :class:`~tether.errors.StoreUnavailable`.
    """

    @property
    def shared(self) -> bool:
        """Whether other processes use this store too (other nodes hold some connections)."""
        ...

    @property
    def end_lease(self) -> float:
        """Seconds an end's claimant has to ``complete`` it before it is handed out again."""
        ...

    async def create(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> Created:
        """Store a new session; first end the user's oldest beyond ``max_per_user - 1``.

        With ``reuse``, atomically: if the user has a live session of
        ``record.kind`` (the newest, if several) whose clocks have not run out
        at ``record.created_at``, return it (``reused``) and store nothing;
        sessions of that kind found already due are ended on the way (their
        claims in ``replaced``).
        """
        ...

    async def get(self, session_id: SessionId) -> SessionInfo | None:
        """The session (live, or ended and still retained), or ``None``."""
        ...

    async def touch(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        """Record presence (and, with ``activity``, engagement) at ``now``.

        Returns the transition the touch decided, if any; else, when this first
        heartbeat armed an earlier deadline, :class:`Armed`; else ``None``.
        """
        ...

    async def set_busy(
        self, session_id: SessionId, now: float, *, busy: bool
    ) -> Claim | Armed | None:
        """Open (``busy``) or close one busy mark at ``now``; idle is stopped while any is open.

        The rule is the core's (:meth:`~tether.core.session.SessionRecord.set_busy`):
        marks nest (a count), a close with none open changes nothing, opening
        one during an idle warning clears it (a :class:`Claim` of
        ``Reactivated``), and closing the last one restarts the idle clock at
        ``now`` (an :class:`Armed` when that brings the next deadline before
        the armed one). Like a touch it cannot revive a session whose clock
        has run out at ``now``: the end applies, and its claim comes back.
        """
        ...

    async def attach(self, session_id: SessionId, now: float) -> SessionInfo:
        """Count one more attached connection.

        Raises ``SessionEnded`` if the session's end is already due at ``now``
        (it is not revived; ``claim_due`` will apply the end). ``update_policy``
        and ``append`` refuse in the same way.
        """
        ...

    async def detach(self, session_id: SessionId, now: float) -> float | None:
        """Count one connection fewer; returns a newly armed, earlier deadline if any.

        Tolerates ended and unknown sessions (returns ``None``): connections
        close after their session ends.
        """
        ...

    async def claim_due(self, now: float, limit: int) -> builtins.list[Claim]:
        """Apply and return up to ``limit`` transitions due at ``now``.

        These include ends whose lease ran out before they were completed,
        handed out again with a new fence.
        """
        ...

    async def next_due(self) -> float | None:
        """The earliest armed deadline (possibly early), or ``None``.

        A shared store includes when end leases run out (another node may
        have to take an end over); a store private to one process need not.
        """
        ...

    async def end(self, session_id: SessionId, reason: EndReason, now: float) -> Claim | None:
        """End the session; ``None`` if it had already ended (someone else won).

        If one of its clocks has already run out at ``now``, the end carries
        that clock's reason instead of ``reason``: the timeout came first.
        The caller owns the returned end: run its pipeline, then ``complete`` it.
        """
        ...

    async def complete(self, session_id: SessionId, fence: int) -> bool:
        """Acknowledge that the end's pipeline ran; ``False`` for a superseded or spent fence."""
        ...

    async def renew(self, ends: Sequence[tuple[SessionId, int]], now: float) -> builtins.list[bool]:
        """Extend the lease of each ``(session_id, fence)`` to ``now + end_lease``.

        One answer per end: ``False`` when the fence no longer holds it (it was
        completed, or handed out again after the lease ran out).
        """
        ...

    async def resume_presence(self, at: float) -> int:
        """Restart every live session's presence clock at ``at``, after a store outage.

        While the store was unreachable no client could prove it was there
        (heartbeats and requests failed), so the outage must not count against
        them: each live session is treated as seen at ``at`` (``last_seen``
        becomes ``max(last_seen, at)``; it never moves back). Only presence is
        excused: the activity and lifetime clocks are left as they are.
        Idempotent and commutative with touches, so every node that saw the
        outage may call it. A shared store may work in chunks (each one
        atomic); it also counts ``at`` as a keepalive of every registered
        node, whose leases ran out during the outage through no fault of
        theirs. Returns how many sessions' presence moved.
        """
        ...

    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        """Replace the session's config."""
        ...

    async def update_policy(
        self, session_id: SessionId, policy: Policy, now: float
    ) -> float | None:
        """Replace the session's policy; returns a newly armed, earlier deadline if any."""
        ...

    async def append(
        self,
        session_id: SessionId,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> Message:
        """Append to the transcript and return the message with its ``seq``."""
        ...

    async def retract(self, session_id: SessionId, seq: int) -> None:
        """Remove message ``seq``: its append was never acknowledged (the journal refused it).

        Later messages keep their numbers and numbers are never reused. A no-op
        when the session or the message is gone.
        """
        ...

    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        """Messages with ``seq > after``, oldest first (live or retained sessions)."""
        ...

    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        """Live sessions oldest first, or with ``state=ended`` retained ones in end order."""
        ...

    async def stats(self) -> StoreStats:
        """Live count and the creation times of the oldest and newest live session."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; raise ``StoreUnavailable`` otherwise."""
        ...

    async def aclose(self) -> None:
        """Release connections and resources."""
        ...
