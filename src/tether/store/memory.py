"""``MemoryStore``: sessions in this process, with a lazily re-armed deadline index.

The index (:class:`~tether.store.index.DeadlineIndex`) holds, for every live
session, one ``(at, session_id)`` entry no later than its true next event.
Touches never touch the index: they only move deadlines later, so the entry
stays a valid lower bound. When an entry comes due, the session's true next event is
recomputed: if it is still in the future (the session was touched meanwhile)
the entry is re-armed there, otherwise the transition is applied. Changes that
move a deadline *earlier* (the last connection closing, a shorter policy) push
a new entry; the superseded one is recognised as stale (its time no longer
matches ``armed_at``) and dropped when it surfaces.

So a touch is O(1), a claim of k due sessions out of n is O(k log n), and
nothing ever scans all sessions. Every method runs without awaiting, which
makes each one atomic with respect to the event loop.

Ended sessions wait for their pipeline's ``complete`` in a queue of end
leases, in expiry order (a lease runs ``end_lease`` from the end, and the
caller's clock only moves forward, so appending keeps it sorted: O(1), where
a heap push would cost every end a few hundred nanoseconds). An end whose
lease runs out is handed out again by ``claim_due`` with the next fence. In
one process that only happens when a pipeline outlives its lease, and the
runtime then keeps the one it runs; so ``next_due`` leaves end leases out,
and the scheduler never wakes for them.

Ended sessions are retained (answered, with their transcript) for
``ended_retention`` seconds, and at most ``max_ended`` of them holding at
most ``max_ended_bytes`` of transcript: past either bound the oldest ends
are forgotten first (their archive still has them). An end whose pipeline
has not completed is never forgotten early, since the pipeline archives
from it; the bounds catch up as soon as it completes.
"""

from __future__ import annotations

import bisect
import builtins
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from tether.core import arming
from tether.core.caps import TranscriptCap, message_size
from tether.core.policy import Policy
from tether.core.session import (
    BusyEffect,
    Ended,
    SessionInfo,
    SessionRecord,
    TouchEffect,
    touch_effect,
)
from tether.core.transcript import Message, Role
from tether.errors import DuplicateSession, SessionEnded, SessionNotFound
from tether.store.base import Armed, Claim, Created, StoreStats
from tether.store.index import DeadlineIndex
from tether.types import EndReason, SessionId, SessionState, UserId

_ENDED = SessionState.ENDED
_REPLACED = Ended(EndReason.REPLACED)
_RECORDED = TouchEffect.RECORDED
_REVIEW = TouchEffect.REVIEW


class _Live(SessionRecord):
    """A live record plus the store's bookkeeping."""

    __slots__ = ("armed_at", "messages", "transcript_bytes")

    def __init__(self, record: SessionRecord) -> None:
        for name in SessionRecord.__slots__:
            setattr(self, name, getattr(record, name))
        self.armed_at = 0.0
        self.messages: builtins.list[Message] | None = None
        self.transcript_bytes = 0


class _Tombstone:
    """What is kept of an ended session until its retention runs out."""

    __slots__ = ("info", "messages", "size")

    def __init__(
        self, info: SessionInfo, messages: builtins.list[Message] | None, size: int
    ) -> None:
        self.info = info
        self.messages = messages
        self.size = size
        """Transcript bytes held (what ``max_ended_bytes`` counts)."""


class MemoryStore:
    """The default store: fast, single-process, nothing survives a restart.

    ``ended_retention`` is how long an ended session is still answered (so a
    late heartbeat learns *why* it ended) before it is forgotten;
    ``max_ended`` and ``max_ended_bytes`` (transcript bytes) bound how many
    are retained at once (``None``: no bound), the oldest forgotten first.
    ``end_lease`` is how long an end's claimant has to complete it.
    ``transcript_cap`` bounds every session's transcript (see
    :mod:`tether.core.caps`).
    """

    def __init__(
        self,
        *,
        ended_retention: float = 3600.0,
        max_ended: int | None = 10_000,
        max_ended_bytes: int | None = 256 * 1024 * 1024,
        end_lease: float = 30.0,
        transcript_cap: TranscriptCap | None = None,
    ) -> None:
        self._live: dict[SessionId, _Live] = {}
        # A user's live sessions in creation order. Most users have exactly one,
        # so that case stores the bare id: a list per user would cost ~70 bytes
        # per session at a million sessions.
        self._by_user: dict[UserId, SessionId | builtins.list[SessionId]] = {}
        self._index = DeadlineIndex()
        self._ended: OrderedDict[SessionId, _Tombstone] = OrderedDict()
        self._ended_retention = ended_retention
        self._max_ended = max_ended
        self._max_ended_bytes = max_ended_bytes
        self._ended_bytes = 0
        self._cap = transcript_cap if transcript_cap is not None else TranscriptCap()
        self._end_lease = end_lease
        # An end handed out and not completed: (fence, when its lease runs out).
        self._leases: dict[SessionId, tuple[int, float]] = {}
        self._lease_queue: deque[tuple[float, SessionId]] = deque()

    @property
    def shared(self) -> bool:
        """Never: this store lives and dies with its process."""
        return False

    @property
    def end_lease(self) -> float:
        return self._end_lease

    @property
    def transcript_cap(self) -> TranscriptCap:
        """The caps every append is checked against."""
        return self._cap

    @property
    def ended_retained(self) -> tuple[int, int]:
        """How many ended sessions are retained, and their transcript bytes."""
        return len(self._ended), self._ended_bytes

    # -- lookups ------------------------------------------------------------

    def _require(self, session_id: SessionId) -> _Live:
        record = self._live.get(session_id)
        if record is None:
            tomb = self._ended.get(session_id)
            if tomb is not None and tomb.info.end_reason is not None:
                raise SessionEnded(tomb.info.end_reason)
            raise SessionNotFound()
        return record

    def _require_in_time(self, session_id: SessionId, now: float) -> _Live:
        """The live record, refusing one whose end is already due at ``now``.

        Such a session has ended in all but bookkeeping: a late attach or
        write must not revive it. It stays due, and the next ``claim_due``
        applies the end, so its pipeline still runs exactly once.
        """
        record = self._require(session_id)
        if (reason := self._due_reason(record, now)) is not None:
            raise SessionEnded(reason)
        return record

    def _due_reason(self, record: _Live, now: float) -> EndReason | None:
        """Why ``record`` has ended at ``now`` if one of its clocks has run out, else ``None``.

        Cheap first: nothing is due before the index floor, and this record is
        not due before its own armed entry; only past both is the deadline
        computed. ``touch_nowait`` inlines the same test to save a call.
        """
        if now < self._index.floor or now < record.armed_at:
            return None
        return record.expired(now)

    async def get(self, session_id: SessionId) -> SessionInfo | None:
        record = self._live.get(session_id)
        if record is not None:
            return record.snapshot()
        tomb = self._ended.get(session_id)
        return tomb.info if tomb is not None else None

    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        # Listing is proportional to its answer plus, without a user filter,
        # the live count: it is an admin operation, not a hot path.
        if state is _ENDED:
            return [t.info for t in self._ended.values() if user is None or t.info.user == user]
        if user is not None:
            records = [self._live[sid] for sid in self._user_sessions(user)]
        else:
            records = list(self._live.values())
        return [r.snapshot() for r in records if state is None or r.state is state]

    async def stats(self) -> StoreStats:
        live = self._live
        if not live:
            return StoreStats(0, None, None)
        # Insertion order is creation order, so both ends are O(1) (amortised).
        oldest = live[next(iter(live))].created_at
        newest = live[next(reversed(live))].created_at
        return StoreStats(len(live), oldest, newest)

    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        record = self._live.get(session_id)
        if record is not None:
            messages = record.messages
        else:
            tomb = self._ended.get(session_id)
            if tomb is None:
                raise SessionNotFound()
            messages = tomb.messages
        if not messages:
            return []
        # Sorted by seq; usually seq n is at index n - 1, but retracted
        # messages leave gaps.
        start = bisect.bisect_right(messages, after, key=_seq) if after > 0 else 0
        selected = messages[start:]
        return selected if limit is None else selected[:limit]

    async def retract(self, session_id: SessionId, seq: int) -> None:
        record = self._live.get(session_id)
        tomb = None
        if record is not None:
            messages = record.messages
        else:
            tomb = self._ended.get(session_id)
            messages = tomb.messages if tomb is not None else None
        if not messages:
            return
        index = bisect.bisect_left(messages, seq, key=_seq)
        if index < len(messages) and messages[index].seq == seq:
            gone = messages.pop(index)
            size = message_size(gone.content, gone.metadata)
            if record is not None:
                record.transcript_bytes -= size
            elif tomb is not None:
                tomb.size -= size
                self._ended_bytes -= size

    async def next_due(self) -> float | None:
        # End leases are left out: in one process the claimant of an end is
        # this process, which completes it; a re-claim could only hand the end
        # back to the pipeline already running it. claim_due still hands out
        # expired ones whenever it runs, as the contract says.
        return self._index.peek()

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    # -- writes ---------------------------------------------------------------

    async def create(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> Created:
        if record.id in self._live or record.id in self._ended:
            raise DuplicateSession()  # ids are 128 random bits
        now = record.created_at
        replaced: builtins.list[Claim] = []
        if reuse:
            for session_id in reversed(list(self._user_sessions(record.user))):  # newest first
                other = self._live[session_id]
                if other.kind != record.kind:
                    continue
                if self._due_reason(other, now) is None:
                    return Created(other.snapshot(), other.armed_at, replaced, reused=True)
                ended = self._apply(other, now)  # its end was due: apply it now
                if ended is not None:
                    replaced.append(ended)
        if max_per_user is not None:
            ids = self._user_sessions(record.user)
            while len(ids) >= max(1, max_per_user):
                oldest = self._live[ids[0]]
                oldest.finish(now, EndReason.REPLACED)
                replaced.append(Claim(self._retire(oldest, now), _REPLACED, 1))
                ids = self._user_sessions(record.user)
        live = _Live(record)
        self._live[live.id] = live
        held = self._by_user.get(live.user)
        if held is None:
            self._by_user[live.user] = live.id
        elif isinstance(held, str):
            self._by_user[live.user] = [held, live.id]
        else:
            held.append(live.id)
        armed = self._arm(live)
        return Created(live.snapshot(), armed, replaced)

    async def touch(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        return self.touch_nowait(session_id, now, activity=activity)

    def touch_nowait(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        """:meth:`touch` without a coroutine: this store never waits (see ``NowaitTouch``)."""
        record = self._live.get(session_id)
        if record is None:
            self._require(session_id)  # raises the right error
        assert record is not None
        # _due_reason() inlined, floor first: the floor is hot in cache, while
        # at a million sessions the record's armed_at usually is not.
        if now >= self._index.floor and now >= record.armed_at and record.expired(now) is not None:
            return self._apply(record, now)
        # The core's touch rule decides; the timestamps are written here, as
        # SessionRecord.touch would, to save a call on the hottest path.
        effect = touch_effect(record.state, record.ever_heartbeat, activity)
        record.last_seen = now
        if activity:
            record.last_activity = now
            if effect is _REVIEW:  # activity during a warning: advance() decides
                return self._apply(record, now)
            return None
        if effect is _RECORDED:
            return None
        # the first heartbeat: the presence clock starts (rare, once a session)
        record.ever_heartbeat = True
        armed = self._rearm_if_earlier(record)
        return None if armed is None else Armed(armed)

    async def set_busy(
        self, session_id: SessionId, now: float, *, busy: bool
    ) -> Claim | Armed | None:
        record = self._require(session_id)
        if self._due_reason(record, now) is not None:
            return self._apply(record, now)  # a busy mark cannot revive it: the end applies
        effect = record.set_busy(now, busy)
        if effect is BusyEffect.REVIEW:  # busy during a warning: advance() decides
            return self._apply(record, now)
        if effect is BusyEffect.RESTART:  # the idle clock runs again, maybe before the entry
            armed = self._rearm_if_earlier(record)
            return None if armed is None else Armed(armed)
        return None

    async def attach(self, session_id: SessionId, now: float) -> SessionInfo:
        record = self._require_in_time(session_id, now)
        record.attach(now)
        return record.snapshot()

    async def detach(self, session_id: SessionId, now: float) -> float | None:
        record = self._live.get(session_id)
        if record is None:
            return None  # ended meanwhile: nothing to count any more
        record.detach(now)
        return self._rearm_if_earlier(record)

    async def claim_due(self, now: float, limit: int) -> builtins.list[Claim]:
        out = self._reclaim_ends(now, limit)
        index, live = self._index, self._live
        index.release(now)
        # ``limit`` bounds entries examined, not claims returned, so one call
        # never holds the event loop for long even when most entries re-arm.
        for _ in range(limit - len(out)):
            entry = index.pop_due(now)
            if entry is None:
                break
            at, session_id = entry
            record = live.get(session_id)
            if record is None or record.armed_at != at:
                continue  # stale: the session ended, or an earlier entry replaced this one
            claim = self._apply(record, now, armed=False)
            if claim is not None:
                out.append(claim)
        index.peek()  # tighten the floor that touches test against
        return out

    async def end(self, session_id: SessionId, reason: EndReason, now: float) -> Claim | None:
        record = self._live.get(session_id)
        if record is None:
            if session_id in self._ended:
                return None
            raise SessionNotFound()
        reason = record.end_reason_at(now, reason)
        record.finish(now, reason)
        return Claim(self._retire(record, now), Ended(reason), 1)

    async def complete(self, session_id: SessionId, fence: int) -> bool:
        lease = self._leases.get(session_id)
        if lease is None or lease[0] != fence:
            return False
        del self._leases[session_id]
        self._evict_ended(None)  # a completed end may be forgotten now if over the bounds
        # Completed leases' entries stay queued until they surface; rebuild when they dominate.
        if len(self._lease_queue) > 2 * len(self._leases) + 1024:
            self._lease_queue = deque(sorted((u, sid) for sid, (_, u) in self._leases.items()))
        return True

    async def renew(self, ends: Sequence[tuple[SessionId, int]], now: float) -> builtins.list[bool]:
        out = []
        until = now + self._end_lease
        for session_id, fence in ends:
            lease = self._leases.get(session_id)
            held = lease is not None and lease[0] == fence
            if lease is not None and held and until > lease[1]:
                self._lease(session_id, fence, until)
            out.append(held)
        return out

    def _lease(self, session_id: SessionId, fence: int, until: float) -> None:
        """Lease the end to ``fence`` until ``until`` (superseding any earlier lease)."""
        self._leases[session_id] = (fence, until)
        queue = self._lease_queue
        if queue and until < queue[-1][0]:
            bisect.insort(queue, (until, session_id))  # a clock that went back: rare
        else:
            queue.append((until, session_id))

    def _reclaim_ends(self, now: float, limit: int) -> builtins.list[Claim]:
        """Hand out again, with the next fence, ends whose lease ran out uncompleted."""
        queue, leases = self._lease_queue, self._leases
        out: builtins.list[Claim] = []
        for _ in range(limit):
            if not queue or queue[0][0] > now:
                break
            until, session_id = queue.popleft()
            lease = leases.get(session_id)
            if lease is None or lease[1] != until:
                continue  # completed, or renewed: a later entry stands for it
            tomb = self._ended.get(session_id)
            if tomb is None or tomb.info.end_reason is None:
                del leases[session_id]  # forgotten after its retention: nothing to finish
                continue
            fence = lease[0] + 1
            self._lease(session_id, fence, now + self._end_lease)
            out.append(Claim(tomb.info, Ended(tomb.info.end_reason), fence))
        return out

    async def resume_presence(self, at: float) -> int:
        # This store cannot be unreachable, so the runtime never needs this; it
        # exists for the contract. Moving last_seen later only moves presence
        # ends later, so every armed entry stays a lower bound (lazy re-arm).
        moved = 0
        for record in self._live.values():
            if record.last_seen < at:
                record.last_seen = at
                moved += 1
        return moved

    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        record = self._require(session_id)
        record.config = dict(config) if config else None
        return record.snapshot()

    async def update_policy(
        self, session_id: SessionId, policy: Policy, now: float
    ) -> float | None:
        record = self._require_in_time(session_id, now)
        record.policy = policy
        return self._rearm_if_earlier(record)

    async def append(
        self,
        session_id: SessionId,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> Message:
        record = self._require_in_time(session_id, now)
        size = message_size(content, metadata)
        self._cap.check(count=record.message_count, stored_bytes=record.transcript_bytes, size=size)
        message = Message(record.message_count + 1, role, content, now, metadata or None)
        if record.messages is None:
            record.messages = []
        record.messages.append(message)
        record.message_count = message.seq
        record.transcript_bytes += size
        return message

    def _user_sessions(self, user: UserId) -> builtins.list[SessionId]:
        held = self._by_user.get(user)
        if held is None:
            return []
        return [held] if isinstance(held, str) else held

    # -- index bookkeeping -----------------------------------------------------

    def _arm(self, record: _Live) -> float:
        deadline = record.next_deadline()
        assert deadline is not None  # only live records are armed
        record.armed_at = deadline.at
        self._index.push(deadline.at, record.id)
        return deadline.at

    def _rearm_if_earlier(self, record: _Live) -> float | None:
        at = arming.earlier(record, record.armed_at)
        if at is not None:
            self._push(record, at)
        return at

    def _push(self, record: _Live, at: float) -> None:
        """Arm ``record`` at ``at``, earlier than its entry (which goes stale)."""
        record.armed_at = at
        self._index.push(at, record.id)
        self._compact_if_mostly_stale()

    def _apply(self, record: _Live, now: float, *, armed: bool = True) -> Claim | None:
        """Advance ``record`` at ``now``; re-arm or retire it; return the claim, if any.

        ``armed`` says whether ``record``'s current entry is still in the index
        (a touch) or was just popped from it (a claim). Where the entry goes is
        the core's rule (:func:`tether.core.arming.after`).
        """
        transition = record.advance(now)
        entry = arming.after(record, transition, armed_at=record.armed_at if armed else None)
        if isinstance(entry, arming.Retire):
            assert isinstance(transition, Ended)
            return Claim(self._retire(record, now), transition, 1)
        if entry is not None:
            if armed:
                self._push(record, entry)
            else:  # popped: nothing stale was left behind
                record.armed_at = entry
                self._index.push(entry, record.id)
        if transition is None:
            return None
        return Claim(record.snapshot(), transition)

    def _retire(self, record: _Live, now: float) -> SessionInfo:
        """Move an ended record out of the live indexes into retention, its end leased (fence 1)."""
        del self._live[record.id]
        held = self._by_user[record.user]
        if isinstance(held, str):
            del self._by_user[record.user]
        else:
            held.remove(record.id)
            if len(held) == 1:
                self._by_user[record.user] = held[0]
        info = record.snapshot()
        self._ended[record.id] = _Tombstone(info, record.messages, record.transcript_bytes)
        self._ended_bytes += record.transcript_bytes
        self._lease(record.id, 1, now + self._end_lease)
        self._evict_ended(now)
        self._compact_if_mostly_stale()
        return info

    def _evict_ended(self, now: float | None) -> None:
        """Forget the oldest ends past their retention (``now=None``: only those over a bound)."""
        ended = self._ended
        horizon = None if now is None else now - self._ended_retention
        max_count, max_bytes = self._max_ended, self._max_ended_bytes
        while ended:
            session_id, first = next(iter(ended.items()))
            ended_at = first.info.ended_at
            expired = horizon is not None and ended_at is not None and ended_at <= horizon
            if not expired:
                over = (max_count is not None and len(ended) > max_count) or (
                    max_bytes is not None and self._ended_bytes > max_bytes
                )
                # An uncompleted end's pipeline still reads it (to archive it):
                # it stays until complete(), which evicts again.
                if not over or session_id in self._leases:
                    break
            ended.popitem(last=False)
            self._ended_bytes -= first.size

    def _compact_if_mostly_stale(self) -> None:
        # Ended and superseded entries stay in the index until they surface; when
        # they outnumber live sessions, rebuild it so memory tracks live sessions.
        # Amortised O(1): a rebuild of n entries follows at least n stale ones.
        if len(self._index) > 2 * len(self._live) + 1024:
            self._index.rebuild([(r.armed_at, r.id) for r in self._live.values()])


def _seq(message: Message) -> int:
    return message.seq
