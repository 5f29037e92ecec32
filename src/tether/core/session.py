"""The session state machine and its three clocks.

A session has three independent clocks, and whichever runs out first governs:

* **presence** (refreshed by heartbeats, requests and attached connections):
  with no connection attached, ``last_seen + presence_timeout`` ends it as
  ``client_gone``. It runs only for a client that signals its presence (it has
  attached a connection or sent a heartbeat): tether cannot tell that a plain
  HTTP client left, so such a session ends by its idle or lifetime clock;
* **activity** (refreshed only by user activity): ``last_activity +
  idle_timeout`` ends it as ``idle_timeout``. It is stopped while the session
  is *busy* (a reply streams, the app plays speech: :meth:`SessionRecord.set_busy`)
  and counts again from the end of the busy time, as if activity happened then;
* **lifetime** (refreshed by nothing): ``created_at + max_duration`` ends it as
  ``max_duration``.

The idle and lifetime ends are announced ``warn_before`` ahead (state
``warning``); a presence end is not, since nobody is there to see it. Activity
during an idle warning moves the idle end out and so clears the warning;
nothing clears a lifetime warning, because nothing can postpone that end.
Becoming busy during an idle warning clears it as activity does; busy time
never stops the lifetime or presence clocks.

:class:`SessionRecord` is the mutable state one store keeps per live session.
Its methods are the rules; they take ``now`` and do no I/O. The store calls
:meth:`SessionRecord.advance` when a deadline it indexed comes due and re-arms
the index at :meth:`SessionRecord.next_deadline`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from tether.core.policy import Policy
from tether.types import EndReason, SessionId, SessionState, UserId

ACTIVE = SessionState.ACTIVE
WARNING = SessionState.WARNING
ENDED = SessionState.ENDED
_IDLE = EndReason.IDLE_TIMEOUT
_MAX = EndReason.MAX_DURATION
_GONE = EndReason.CLIENT_GONE


class ClockKind(StrEnum):
    """The three clocks of a session."""

    PRESENCE = "presence"
    ACTIVITY = "activity"
    LIFETIME = "lifetime"


_CLOCK_OF = {_GONE: ClockKind.PRESENCE, _IDLE: ClockKind.ACTIVITY, _MAX: ClockKind.LIFETIME}


class Action(StrEnum):
    """What happens when a deadline comes due."""

    WARN = "warn"
    END = "end"


@dataclass(frozen=True, slots=True)
class Deadline:
    """The next thing that will happen to a session if nothing else does."""

    at: float
    action: Action
    reason: EndReason

    @property
    def clock(self) -> ClockKind:
        """Which of the three clocks governs this deadline."""
        return _CLOCK_OF[self.reason]


@dataclass(frozen=True, slots=True)
class Warned:
    """The session entered (or switched) its warning: it ends at ``ends_at``."""

    reason: EndReason
    ends_at: float


@dataclass(frozen=True, slots=True)
class Reactivated:
    """A warning no longer applies: the session is active again."""


@dataclass(frozen=True, slots=True)
class Ended:
    """The session ended for ``reason``."""

    reason: EndReason


Transition = Warned | Reactivated | Ended


def _idle_end(last_activity: float, policy: Policy, busy: bool) -> float:
    # A stopped clock never runs out: infinity keeps every comparison of the
    # rules below (governing end, warning windows, due checks) free of a case.
    return math.inf if busy else last_activity + policy.idle_timeout


def _lifetime_end(created_at: float, policy: Policy) -> float:
    return created_at + policy.max_duration


class TouchEffect(StrEnum):
    """What a touch leaves for the store to do once its timestamps are recorded.

    The one touch rule: every store (and ``touch.lua``, which takes the
    ``RECORDED`` case inside Redis) follows :func:`touch_effect`.
    """

    RECORDED = "recorded"
    """Only timestamps changed: no deadline moved earlier, no transition is due."""
    PRESENCE = "presence"
    """The first heartbeat: the presence clock starts, the next deadline may come earlier."""
    REVIEW = "review"
    """Activity during a warning: :meth:`SessionRecord.advance` decides whether it clears."""
    IGNORED = "ignored"
    """The session has ended: nothing was recorded."""


_RECORDED, _PRESENCE = TouchEffect.RECORDED, TouchEffect.PRESENCE
_REVIEW, _IGNORED = TouchEffect.REVIEW, TouchEffect.IGNORED


def touch_effect(state: SessionState, ever_heartbeat: bool, activity: bool) -> TouchEffect:
    """What a touch (``activity`` or heartbeat) of a session in ``state`` entails.

    It assumes no clock has run out at the touch (a store checks
    :meth:`SessionRecord.expired` first: a touch cannot revive a session).
    """
    if state is ENDED:
        return _IGNORED
    if activity:
        return _REVIEW if state is WARNING else _RECORDED
    return _RECORDED if ever_heartbeat else _PRESENCE


class BusyEffect(StrEnum):
    """What opening or closing a busy mark leaves for the store to do (:func:`busy_effect`)."""

    RECORDED = "recorded"
    """Only the count of open marks changed: no deadline moved earlier, no transition is due."""
    REVIEW = "review"
    """The session became busy during a warning: :meth:`SessionRecord.advance` decides
    (an idle warning clears, as activity clears it; a lifetime warning stays)."""
    RESTART = "restart"
    """The last open mark closed: the idle clock counts again from now, and the next
    deadline may come before the session's armed entry (the store re-arms it earlier)."""
    IGNORED = "ignored"
    """The session has ended, or a close found no open mark: nothing was recorded."""


def busy_effect(state: SessionState, busy: int, opening: bool) -> BusyEffect:
    """What opening (``opening``) or closing a busy mark of a session in ``state`` entails.

    ``busy`` is the count of marks open before this one. Marks nest: a reply
    streaming while the app plays speech is two marks, and the idle clock
    stays stopped until both are closed. A close with no mark open (a
    duplicate) changes nothing, so it cannot restart the idle clock. Like
    :func:`touch_effect`, it assumes no clock has run out at ``now``.
    """
    if state is ENDED:
        return BusyEffect.IGNORED
    if opening:
        return BusyEffect.REVIEW if state is WARNING and busy == 0 else BusyEffect.RECORDED
    if busy <= 0:
        return BusyEffect.IGNORED
    return BusyEffect.RESTART if busy == 1 else BusyEffect.RECORDED


class Deadlines(NamedTuple):
    """When each of the three clocks runs out, as things stand (``None``: not running)."""

    idle_at: float | None
    """``None`` while the session is busy: its activity clock is stopped."""
    max_at: float
    presence_at: float | None


class SessionInfo(NamedTuple):
    """An immutable snapshot of one session, as stores return it.

    A named tuple rather than a frozen dataclass: stores build one for every
    claim and read, and a tuple is built about four times faster.
    """

    id: SessionId
    user: UserId
    kind: str
    state: SessionState
    created_at: float
    last_activity: float
    last_seen: float
    connections: int
    message_count: int
    config: dict[str, Any]
    policy: Policy
    warning: Warned | None
    next_deadline: Deadline | None
    ended_at: float | None
    end_reason: EndReason | None
    presence_at: float | None = None
    """When the presence clock runs out (:meth:`SessionRecord.presence_end`);
    ``None`` while it is not running, and once the session has ended."""
    busy: bool = False
    """Whether a busy mark is open (:meth:`SessionRecord.set_busy`): the idle clock is stopped."""

    def deadlines(self) -> Deadlines:
        """The three clocks' ends, as the core computed them (:meth:`SessionRecord.deadlines`)."""
        policy = self.policy
        return Deadlines(
            None if self.busy else _idle_end(self.last_activity, policy, False),
            _lifetime_end(self.created_at, policy),
            self.presence_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as the HTTP and WebSocket edges send it."""
        deadline = self.next_deadline
        return {
            "id": self.id,
            "user": self.user,
            "kind": self.kind,
            "state": self.state.value,
            "created_at": self.created_at,
            "last_activity": self.last_activity,
            "last_seen": self.last_seen,
            "connections": self.connections,
            "message_count": self.message_count,
            "busy": self.busy,
            "config": self.config,
            "warning": None
            if self.warning is None
            else {"reason": self.warning.reason.value, "ends_at": self.warning.ends_at},
            "next_deadline": None
            if deadline is None
            else {
                "at": deadline.at,
                "action": deadline.action.value,
                "reason": deadline.reason.value,
                "clock": deadline.clock.value,
            },
            "ended_at": self.ended_at,
            "end_reason": None if self.end_reason is None else self.end_reason.value,
        }


class SessionRecord:
    """Mutable per-session state and the rules that move it.

    Kept small on purpose (``__slots__``, shared ``Policy`` objects): a memory
    store holds one per live session, and a million of them must fit.
    """

    __slots__ = (
        "busy",
        "config",
        "connections",
        "created_at",
        "end_reason",
        "ended_at",
        "ever_attached",
        "ever_heartbeat",
        "id",
        "kind",
        "last_activity",
        "last_seen",
        "message_count",
        "policy",
        "state",
        "user",
        "warning_reason",
    )

    def __init__(
        self,
        id: SessionId,
        user: UserId,
        kind: str,
        policy: Policy,
        now: float,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.user = user
        self.kind = kind
        self.policy = policy
        self.config = config
        self.created_at = now
        self.last_activity = now
        self.last_seen = now
        self.connections = 0
        self.ever_attached = False
        self.ever_heartbeat = False
        self.state = ACTIVE
        self.warning_reason: EndReason | None = None
        self.ended_at: float | None = None
        self.end_reason: EndReason | None = None
        self.message_count = 0
        self.busy = 0
        """Busy marks open (:meth:`set_busy`): the idle clock is stopped while any is."""

    # -- the three clocks -------------------------------------------------

    def idle_end(self) -> float:
        """When the activity clock runs out: ``math.inf`` while busy (the clock is stopped)."""
        return _idle_end(self.last_activity, self.policy, self.busy > 0)

    def lifetime_end(self) -> float:
        """When the lifetime clock runs out."""
        return _lifetime_end(self.created_at, self.policy)

    def presence_end(self) -> float | None:
        """When the presence clock runs out, or ``None`` while it is not running.

        It runs only while no connection is attached, and only for a client
        that signals its presence: one that has attached a connection or sent
        a heartbeat (or started the session from a realtime connection: the
        runtime then sets ``ever_heartbeat`` from the start). A session used
        over plain HTTP requests only (activity, messages) has no presence
        clock: nothing would tell a closed tab from a reader, so its idle
        clock (which warns first) ends it. With a zero
        presence timeout it runs only once a connection has been attached and
        closed: "end when the last connection closes" must neither end a
        session that was started over HTTP and has not been connected to yet,
        nor one the moment its heartbeat arrives.
        """
        if self.connections > 0:
            return None
        timeout = self.policy.presence_timeout
        if not self.ever_attached and (timeout == 0 or not self.ever_heartbeat):
            return None
        return self.last_seen + timeout

    def deadlines(self) -> Deadlines:
        """Every clock's end: idle, lifetime and presence (``None`` when not running or ended)."""
        presence = None if self.state is ENDED else self.presence_end()
        idle = None if self.busy > 0 else self.idle_end()
        return Deadlines(idle, self.lifetime_end(), presence)

    def governing_end(self) -> tuple[float, EndReason]:
        """The earliest end among the three clocks, and its reason.

        Ties go to ``max_duration``, then ``idle_timeout``, then ``client_gone``.
        """
        at, reason = self.lifetime_end(), _MAX
        idle = self.idle_end()
        if idle < at:
            at, reason = idle, _IDLE
        presence = self.presence_end()
        if presence is not None and presence < at:
            at, reason = presence, _GONE
        return at, reason

    def expired(self, now: float) -> EndReason | None:
        """The reason this session is already past its end at ``now``, if it is.

        Deadlines are inclusive: at ``now == end`` the end has happened, so a
        touch arriving at that instant cannot revive the session. This gives a
        race between activity and the deadline one outcome, whatever order the
        event loop runs them in.
        """
        at, reason = self.governing_end()
        return reason if now >= at else None

    def end_reason_at(self, now: float, requested: EndReason) -> EndReason:
        """Why an end requested at ``now`` ends the session: a clock run out, else ``requested``.

        Deadlines are inclusive, so if a clock has run out, that is why the
        session ended, whether or not a scheduler got there first.
        """
        return self.expired(now) or requested

    def next_deadline(self) -> Deadline | None:
        """The next warning or end, assuming nothing touches the session first."""
        if self.state is ENDED:
            return None
        at, reason = self.governing_end()
        best = Deadline(at, Action.END, reason)
        warn_before = self.policy.warn_before
        if self.state is ACTIVE and warn_before > 0:
            for end, warned in ((self.lifetime_end(), _MAX), (self.idle_end(), _IDLE)):
                if end - warn_before < best.at:
                    best = Deadline(end - warn_before, Action.WARN, warned)
        return best

    def warning(self) -> Warned | None:
        """The warning in force, with the end it announces."""
        if self.state is not WARNING or self.warning_reason is None:
            return None
        end = self.lifetime_end() if self.warning_reason is _MAX else self.idle_end()
        return Warned(self.warning_reason, end)

    # -- inputs -----------------------------------------------------------

    def touch(self, now: float, *, activity: bool) -> TouchEffect:
        """Record a sign of the client; ``activity`` also refreshes the idle clock.

        A touch without activity is a heartbeat: the first one starts the
        presence clock (:meth:`presence_end`), which can bring the next
        deadline forward. Activity during a warning may clear it, which
        :meth:`advance` decides. The returned :class:`TouchEffect` tells the
        store which of these to follow up (:func:`touch_effect`). An ended
        session ignores it.
        """
        effect = touch_effect(self.state, self.ever_heartbeat, activity)
        if effect is _IGNORED:
            return effect
        self.last_seen = now
        if activity:
            self.last_activity = now
        else:
            self.ever_heartbeat = True
        return effect

    def set_busy(self, now: float, busy: bool) -> BusyEffect:
        """Open (``busy``) or close one busy mark; the last close restarts idle at ``now``.

        While any mark is open the idle clock is stopped: no idle warning and no
        ``idle_timeout`` end (the lifetime and presence clocks run on). When the
        last mark closes, ``last_activity`` becomes ``now``: the idle clock
        counts from the end of the busy time, as if the user had just been
        active. The returned :class:`BusyEffect` tells the store what to follow
        up (:func:`busy_effect`). An ended session ignores it.
        """
        effect = busy_effect(self.state, self.busy, busy)
        if effect is BusyEffect.IGNORED:
            return effect
        if busy:
            self.busy += 1
        else:
            self.busy -= 1
            if self.busy == 0:
                self.last_activity = now
        return effect

    def starts_presence(self, *, activity: bool) -> bool:
        """Whether a touch would be this session's first heartbeat (see :meth:`touch`)."""
        return touch_effect(self.state, self.ever_heartbeat, activity) is TouchEffect.PRESENCE

    def attach(self, now: float) -> None:
        """A connection was attached: presence is held while any is."""
        if self.state is ENDED:
            return
        self.connections += 1
        self.ever_attached = True
        self.last_seen = now

    def detach(self, now: float) -> None:
        """A connection closed; with none left the presence clock starts now.

        A detach with nothing attached (a duplicate close) changes nothing, so
        it cannot stretch the presence grace.
        """
        if self.state is ENDED or self.connections == 0:
            return
        self.connections -= 1
        self.last_seen = now

    def advance(self, now: float) -> Transition | None:
        """Apply whatever is due at ``now``: an end, a warning, or a cleared warning.

        Returns the transition made, or ``None`` when nothing changed. Ended
        sessions never change again.
        """
        if self.state is ENDED:
            return None
        end_at, reason = self.governing_end()
        if now >= end_at:
            self.finish(now, reason)
            return Ended(reason)
        target: tuple[float, EndReason] | None = None
        warn_before = self.policy.warn_before
        if warn_before > 0:
            for end, warned in ((self.lifetime_end(), _MAX), (self.idle_end(), _IDLE)):
                if now >= end - warn_before and (target is None or end < target[0]):
                    target = (end, warned)
        if target is None:
            if self.state is WARNING:
                self.state = ACTIVE
                self.warning_reason = None
                return Reactivated()
            return None
        end, warned = target
        if self.state is WARNING and self.warning_reason is warned:
            return None
        self.state = WARNING
        self.warning_reason = warned
        return Warned(warned, end)

    def finish(self, now: float, reason: EndReason) -> bool:
        """End the session for ``reason``. Returns ``False`` if it had already ended."""
        if self.state is ENDED:
            return False
        self.state = ENDED
        self.warning_reason = None
        self.busy = 0  # its marks die with it: nobody is left to close them
        self.ended_at = now
        self.end_reason = reason
        return True

    def snapshot(self) -> SessionInfo:
        """An immutable copy for callers outside the store."""
        return SessionInfo(
            id=self.id,
            user=self.user,
            kind=self.kind,
            state=self.state,
            created_at=self.created_at,
            last_activity=self.last_activity,
            last_seen=self.last_seen,
            connections=self.connections,
            message_count=self.message_count,
            config=dict(self.config) if self.config else {},
            policy=self.policy,
            warning=self.warning(),
            next_deadline=self.next_deadline(),
            ended_at=self.ended_at,
            end_reason=self.end_reason,
            presence_at=None if self.state is ENDED else self.presence_end(),
            busy=self.busy > 0,
        )
