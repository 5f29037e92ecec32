"""SessionRecord under random event sequences, checked against an independent model.

A scheduler-like driver advances the record at each ``next_deadline()`` and
reconciles it (``advance(now)``) after every input, as a store does. A small
reference model, written separately from ``tether.core.session``, says what
every ``advance`` must return and when the session must end. Busy marks
(``set_busy``) stop the model's idle clock, which restarts at the last close.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core.policy import Policy
from tether.core.session import (
    Action,
    BusyEffect,
    Ended,
    Reactivated,
    SessionRecord,
    Transition,
    Warned,
)
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
Q = 0.25  # policy grid: quarter seconds are exact in binary, so sums do not round
ACTIVE, WARNING, ENDED = SessionState.ACTIVE, SessionState.WARNING, SessionState.ENDED
IDLE, MAX, GONE = EndReason.IDLE_TIMEOUT, EndReason.MAX_DURATION, EndReason.CLIENT_GONE
PRIORITY = {MAX: 0, IDLE: 1, GONE: 2}  # tie-break order: lower wins
SETTINGS = settings(max_examples=250, deadline=None)


def before(t: float) -> float:
    """The float just below ``t``."""
    return math.nextafter(t, -math.inf)


# -- the reference model ---------------------------------------------------------


@dataclass
class Model:
    """What the design says a session is, kept apart from the code under test."""

    policy: Policy
    created: float
    activity: float
    seen: float
    connections: int = 0
    ever_attached: bool = False
    ever_heartbeat: bool = False
    warning: EndReason | None = None
    ended: EndReason | None = None
    busy: int = 0  # open busy marks: the idle clock does not run while any is open

    def clock_ends(self) -> list[tuple[float, int, EndReason]]:
        """(end, priority, reason) of every running clock."""
        p = self.policy
        ends = [(self.created + p.max_duration, PRIORITY[MAX], MAX)]
        if self.busy == 0:
            ends.append((self.activity + p.idle_timeout, PRIORITY[IDLE], IDLE))
        unattached = self.connections == 0
        # A client that never signalled presence (no connection, no heartbeat)
        # has no presence clock; a zero one needs a connection that came and went.
        signalled = self.ever_attached or (self.ever_heartbeat and p.presence_timeout > 0)
        if unattached and signalled:
            ends.append((self.seen + p.presence_timeout, PRIORITY[GONE], GONE))
        return ends

    def end(self) -> tuple[float, EndReason]:
        at, _, reason = min(self.clock_ends())
        return at, reason

    def end_of(self, reason: EndReason) -> float:
        return next(at for at, _, r in self.clock_ends() if r is reason)

    def window(self, t: float) -> tuple[float, EndReason] | None:
        """The warnable end whose window is open at ``t`` and that comes first."""
        wb = self.policy.warn_before
        if wb == 0:
            return None
        open_ = [e for e in self.clock_ends() if e[2] is not GONE and t >= e[0] - wb]
        if not open_:
            return None
        at, _, reason = min(open_)
        return at, reason

    def step(self, t: float) -> Transition | None:
        """Apply what is due at ``t``; return the transition advance() must report."""
        if self.ended is not None:
            return None
        at, reason = self.end()
        if t >= at:
            self.ended, self.warning = reason, None
            return Ended(reason)
        window = self.window(t)
        if window is None:
            if self.warning is None:
                return None
            self.warning = None
            return Reactivated()
        ends_at, reason = window
        if self.warning is reason:
            return None
        self.warning = reason
        return Warned(reason, ends_at)

    def true_next(self, now: float) -> float:
        """The first instant after ``now`` at which, untouched, something happens."""
        wb = self.policy.warn_before
        points = set()
        for at, _, reason in self.clock_ends():
            points.add(at)
            if wb > 0 and reason is not GONE:
                points.add(at - wb)
        probe = copy.copy(self)
        for point in sorted(p for p in points if p > now):
            if probe.step(point) is not None:
                return point
        raise AssertionError("a live session always has a next transition")


# -- the driver ------------------------------------------------------------------


@dataclass
class Sim:
    policy: Policy
    rec: SessionRecord = field(init=False)
    model: Model = field(init=False)
    now: float = T0
    ends: int = 0
    finishes: int = 0
    transitions: list[tuple[float, Transition]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rec = SessionRecord(SessionId("f" * 32), UserId("u"), "chat", self.policy, T0)
        self.model = Model(self.policy, T0, T0, T0)
        self.check()

    def check(self) -> None:
        """The record agrees with the model; an ended record stays ended for its one reason."""
        rec, m = self.rec, self.model
        assert self.ends <= 1
        if m.ended is not None:
            assert rec.state is ENDED
            assert rec.end_reason is m.ended
            assert rec.next_deadline() is None
            assert rec.warning() is None
            return
        assert rec.end_reason is None
        assert rec.state is (WARNING if m.warning is not None else ACTIVE)
        assert (rec.created_at, rec.last_activity, rec.last_seen) == (
            m.created,
            m.activity,
            m.seen,
        )
        assert rec.connections == m.connections
        assert rec.busy == m.busy
        assert rec.snapshot().busy is (m.busy > 0)
        idle_at = None if m.busy else m.activity + self.policy.idle_timeout
        assert rec.deadlines().idle_at == rec.snapshot().deadlines().idle_at == idle_at
        if m.warning is None:
            assert rec.warning() is None
        else:
            assert rec.warning() == Warned(m.warning, m.end_of(m.warning))

    def advance(self, t: float) -> Transition | None:
        assert t >= self.now
        ref_at, ref_reason = self.model.end()
        if self.model.ended is None:
            assert self.rec.expired(t) is (ref_reason if t >= ref_at else None)
        expected = self.model.step(t)
        got = self.rec.advance(t)
        assert got == expected, (t, got, expected)
        if isinstance(got, Ended):
            # (1) never before the governing deadline, and for that clock's reason
            assert t >= ref_at
            assert got.reason is ref_reason
            assert self.rec.ended_at == t
            self.ends += 1
        if got is not None:
            self.transitions.append((t, got))
        self.now = t
        self.check()
        return got

    def probe(self, t: float) -> None:
        """(7) Advancing before next_deadline().at changes nothing."""
        deadline = self.rec.next_deadline()
        assert deadline is not None
        assert self.now <= t < deadline.at
        before_info = self.rec.snapshot()
        assert self.advance(t) is None
        assert self.rec.snapshot() == before_info

    def run_until(self, t: float) -> None:
        """Act as the scheduler: fire every deadline due by ``t``, each at its own time."""
        for _ in range(10):
            deadline = self.rec.next_deadline()
            if deadline is None or deadline.at > t:
                return
            # after reconciliation nothing is due yet, and the deadline is exact
            assert deadline.at > self.now
            assert deadline.at == self.model.true_next(self.now)
            self.probe(before(deadline.at))
            ref_at, ref_reason = self.model.end()
            got = self.advance(deadline.at)
            if deadline.action is Action.END:
                assert got == Ended(deadline.reason)
                # a scheduled end happens exactly at the governing deadline
                assert (deadline.at, deadline.reason) == (ref_at, ref_reason)
            else:
                assert isinstance(got, Warned)
                assert got.reason is deadline.reason
                assert got.reason is not GONE
                assert got.ends_at - self.policy.warn_before == deadline.at
        raise AssertionError("scheduler did not settle")

    def reconcile(self) -> Transition | None:
        return self.advance(self.now)

    def accepts_nothing(self) -> None:
        """(6) After an input, an ended record still reports nothing and keeps its end."""
        reason, ended_at = self.rec.end_reason, self.rec.ended_at
        assert self.rec.advance(self.now) is None
        assert self.rec.finish(self.now, EndReason.ADMIN) is False
        assert self.rec.state is ENDED
        assert (self.rec.end_reason, self.rec.ended_at) == (reason, ended_at)

    # -- inputs ------------------------------------------------------------------

    def activity(self, t: float) -> None:
        self.run_until(t)
        self.now = t
        m = self.model
        if m.ended is not None:
            self.rec.touch(t, activity=True)
            self.accepts_nothing()
            return
        warned_before = m.warning
        lifetime_end = m.created + self.policy.max_duration
        m.activity = m.seen = t
        self.rec.touch(t, activity=True)
        got = self.reconcile()
        if warned_before is IDLE:
            # (3) activity in an idle warning returns it to active, or switches to an
            # already open lifetime window
            if t >= lifetime_end - self.policy.warn_before:
                assert got == Warned(MAX, lifetime_end)
                assert self.rec.state is WARNING
            else:
                assert got == Reactivated()
                assert self.rec.state is ACTIVE
        elif warned_before is MAX:
            # a lifetime warning is never cleared: same state, same ends_at
            assert got is None
            assert self.rec.warning() == Warned(MAX, lifetime_end)

    def heartbeat(self, t: float) -> None:
        self.run_until(t)
        self.now = t
        m = self.model
        if m.ended is not None:
            self.rec.touch(t, activity=False)
            self.accepts_nothing()
            return
        idle_end = self.rec.idle_end()
        m.seen = t
        m.ever_heartbeat = True
        self.rec.touch(t, activity=False)
        # (5) heartbeats never postpone the idle end
        running = m.activity + self.policy.idle_timeout if m.busy == 0 else math.inf
        assert self.rec.idle_end() == idle_end == running
        self.reconcile()

    def attach(self, t: float) -> None:
        self.run_until(t)
        self.now = t
        m = self.model
        if m.ended is not None:
            self.rec.attach(t)
            self.accepts_nothing()
            return
        m.connections += 1
        m.ever_attached = True
        m.seen = t
        self.rec.attach(t)
        self.reconcile()

    def detach(self, t: float) -> None:
        if self.model.connections == 0:
            return
        self.run_until(t)
        self.now = t
        m = self.model
        if m.ended is not None:
            self.rec.detach(t)
            self.accepts_nothing()
            return
        m.connections -= 1
        m.seen = t
        self.rec.detach(t)
        got = self.reconcile()
        if m.connections == 0 and self.policy.presence_timeout == 0:
            assert got == Ended(GONE)

    def set_busy(self, t: float, busy: bool) -> None:
        """Open or close a busy mark at ``t``, as a store does: advance only when told to."""
        self.run_until(t)
        self.now = t
        m = self.model
        if m.ended is not None:
            assert self.rec.set_busy(t, busy) is BusyEffect.IGNORED
            self.accepts_nothing()
            return
        if not busy and m.busy == 0:
            # a close with no mark open (a duplicate) changes nothing at all
            info = self.rec.snapshot()
            assert self.rec.set_busy(t, busy) is BusyEffect.IGNORED
            assert self.rec.snapshot() == info
            return
        warned_before = m.warning
        deadline_before = self.rec.next_deadline()
        assert deadline_before is not None
        if busy:
            m.busy += 1
        else:
            m.busy -= 1
            if m.busy == 0:
                m.activity = t  # the idle clock counts again from the end of the busy time
        effect = self.rec.set_busy(t, busy)
        got = self.reconcile()
        if effect is not BusyEffect.REVIEW:
            # the effect is exact: only REVIEW can need advance()
            assert got is None
        if effect is BusyEffect.RECORDED:
            # a store may keep its entry: the next event did not come earlier
            deadline = self.rec.next_deadline()
            assert deadline is not None
            assert deadline.at >= deadline_before.at
        assert (effect is BusyEffect.RESTART) is (not busy and m.busy == 0)
        if busy and warned_before is IDLE:
            # (3) like activity: an idle warning clears, or switches to an open lifetime window
            lifetime_end = m.created + self.policy.max_duration
            if t >= lifetime_end - self.policy.warn_before:
                assert got == Warned(MAX, lifetime_end)
            else:
                assert got == Reactivated()
        elif warned_before is MAX:
            assert got is None  # nothing clears a lifetime warning

    def finish(self, t: float, reason: EndReason) -> None:
        self.run_until(t)
        self.now = t
        live = self.model.ended is None
        assert self.rec.finish(t, reason) is live
        if live:
            self.model.ended, self.model.warning = reason, None
            self.ends += 1
            self.finishes += 1
            assert self.rec.ended_at == t
        self.check()
        self.accepts_nothing()

    def late_advance(self, t: float) -> None:
        """An advance with no scheduler run first (a late wake-up, or a touch's check)."""
        self.advance(t)

    def probe_between(self, fraction: float) -> None:
        deadline = self.rec.next_deadline()
        if deadline is None:
            return
        t = self.now + (deadline.at - self.now) * fraction
        if t < deadline.at:
            self.probe(t)

    def drain(self) -> None:
        """Let the scheduler run to the end: every session ends, exactly once."""
        self.run_until(math.inf)
        assert self.rec.state is ENDED
        assert self.ends == 1


# -- strategies ------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    idle = draw(st.integers(1, 400))
    maximum = draw(st.integers(1, 1600))
    warn = draw(st.one_of(st.just(0), st.integers(1, max(1, min(idle, maximum) - 1))))
    if warn >= min(idle, maximum):
        warn = 0
    presence = draw(st.one_of(st.just(0), st.integers(1, 400)))
    return Policy(
        idle_timeout=idle * Q,
        warn_before=warn * Q,
        max_duration=maximum * Q,
        presence_timeout=presence * Q,
    )


KINDS = ["activity", "heartbeat", "attach", "detach", "probe", "late", "finish", "busy", "unbusy"]
_dt = st.one_of(
    st.integers(0, 160).map(lambda q: q * Q),
    st.floats(min_value=0, max_value=120, allow_nan=False),
    st.integers(0, 2000).map(lambda q: q * Q),
)
_event = st.tuples(
    st.sampled_from(KINDS),
    _dt,
    st.sampled_from(list(EndReason)),
    st.integers(0, 15).map(lambda n: n / 16),
)
_events = st.lists(_event, max_size=40)


def play(sim: Sim, events: list[tuple[str, float, EndReason, float]]) -> None:
    for kind, dt, reason, fraction in events:
        t = sim.now + dt
        if kind == "activity":
            sim.activity(t)
        elif kind == "heartbeat":
            sim.heartbeat(t)
        elif kind == "attach":
            sim.attach(t)
        elif kind == "detach":
            sim.detach(t)
        elif kind == "probe":
            sim.probe_between(fraction)
        elif kind == "late":
            sim.late_advance(t)
        elif kind in ("busy", "unbusy"):
            sim.set_busy(t, kind == "busy")
        else:
            # finish is rarer than the other inputs, so sessions mostly time out
            if fraction < 0.5:
                sim.finish(t, reason)
            else:
                sim.heartbeat(t)


# -- properties --------------------------------------------------------------------


@SETTINGS
@given(policy=policies(), events=_events)
def test_random_sequences_match_the_reference_model(
    policy: Policy, events: list[tuple[str, float, EndReason, float]]
) -> None:
    """Any input sequence: every advance matches the model, ends on time, once, for its clock."""
    sim = Sim(policy)
    play(sim, events)
    sim.drain()
    # (2) exactly one end over the whole sequence: one Ended or one successful finish
    ended = [tr for _, tr in sim.transitions if isinstance(tr, Ended)]
    assert len(ended) + sim.finishes == 1
    # nothing is reported after the end
    if ended:
        assert sim.transitions[-1][1] == ended[0]


@SETTINGS
@given(policy=policies(), events=_events)
def test_random_sequences_with_a_connection_attached_first(
    policy: Policy, events: list[tuple[str, float, EndReason, float]]
) -> None:
    """Sessions that start attached (the WebSocket path) obey the same model and invariants."""
    sim = Sim(policy)
    sim.attach(T0)
    play(sim, events)
    sim.drain()


@SETTINGS
@given(policy=policies(), events=_events)
def test_scheduled_timeout_ends_never_exceed_max_duration(
    policy: Policy, events: list[tuple[str, float, EndReason, float]]
) -> None:
    """Driven only by the scheduler (no late wake-ups), no session outlives created_at + max."""
    sim = Sim(policy)
    play(sim, [e for e in events if e[0] != "late"])
    sim.drain()
    ended_at = sim.rec.ended_at
    assert ended_at is not None
    if sim.rec.end_reason in {IDLE, MAX, GONE}:
        assert ended_at <= T0 + policy.max_duration


@SETTINGS
@given(policy=policies(), data=st.data())
def test_max_duration_holds_under_continuous_activity(policy: Policy, data: st.DataObject) -> None:
    """(4) Attached and active every few seconds, a session still ends at created + max_duration."""
    idle_q = round(policy.idle_timeout / Q)
    sim = Sim(policy)
    sim.attach(T0)
    lifetime_end = T0 + policy.max_duration
    t = T0
    while sim.rec.state is not ENDED:
        # gaps strictly shorter than idle_timeout (half of it when that is one grid step)
        t += data.draw(st.integers(1, max(1, idle_q - 1))) * (Q if idle_q > 1 else Q / 2)
        if data.draw(st.booleans()):
            sim.heartbeat(min(t, lifetime_end + 1))
        sim.activity(min(t, lifetime_end + 1))
    assert sim.rec.end_reason is MAX
    assert sim.rec.ended_at == lifetime_end
    if policy.warn_before > 0:
        warned = [tr for _, tr in sim.transitions if isinstance(tr, Warned)]
        assert warned[-1] == Warned(MAX, lifetime_end)
        warned_at = next(t for t, tr in sim.transitions if tr == Warned(MAX, lifetime_end))
        assert lifetime_end - policy.warn_before <= warned_at < lifetime_end


@SETTINGS
@given(policy=policies(), data=st.data())
def test_heartbeats_alone_never_postpone_the_idle_end(policy: Policy, data: st.DataObject) -> None:
    """(5) Heartbeats inside the presence grace keep the session until idle or max, never longer."""
    sim = Sim(policy)
    presence_q = round(policy.presence_timeout / Q)
    if presence_q < 2:
        sim.attach(T0)  # grace too short for gaps below it: a connection holds presence
        presence_q = 8
    expected_end = min(T0 + policy.idle_timeout, T0 + policy.max_duration)
    expected_reason = MAX if T0 + policy.max_duration <= T0 + policy.idle_timeout else IDLE
    t = T0
    while sim.rec.state is not ENDED:
        t += data.draw(st.integers(1, presence_q - 1)) * Q
        sim.heartbeat(t)
    assert sim.rec.end_reason is expected_reason
    assert sim.rec.ended_at == expected_end


@SETTINGS
@given(policy=policies(), events=_events, reason=st.sampled_from(list(EndReason)))
def test_an_ended_session_accepts_nothing_afterwards(
    policy: Policy, events: list[tuple[str, float, EndReason, float]], reason: EndReason
) -> None:
    """(6) After finish, no input or advance at any later time changes state or reason."""
    sim = Sim(policy)
    sim.finish(T0, reason)
    play(sim, events)
    sim.run_until(math.inf)
    assert sim.rec.state is ENDED
    assert sim.rec.end_reason is reason
    assert sim.rec.ended_at == T0
    assert sim.ends == 1
    assert sim.transitions == []


@SETTINGS
@given(policy=policies(), events=_events, data=st.data())
def test_advance_before_next_deadline_changes_nothing(
    policy: Policy, events: list[tuple[str, float, EndReason, float]], data: st.DataObject
) -> None:
    """(7) After any history, advancing at any t < next_deadline().at is a no-op."""
    sim = Sim(policy)
    play(sim, events)
    deadline = sim.rec.next_deadline()
    if deadline is None:
        return
    for _ in range(5):
        fraction = data.draw(st.floats(min_value=0, max_value=1, exclude_max=True))
        t = max(sim.now, min(before(deadline.at), sim.now + (deadline.at - sim.now) * fraction))
        clone = copy.copy(sim.rec)
        info = clone.snapshot()
        assert clone.advance(t) is None
        assert clone.snapshot() == info
        assert clone.expired(t) is None


@SETTINGS
@given(policy=policies(), data=st.data())
def test_busy_time_never_warns_or_ends_idle_and_restarts_the_idle_clock(
    policy: Policy, data: st.DataObject
) -> None:
    """Busy from a to b: no idle warning or end in between; then idle warns and ends from b."""
    sim = Sim(policy)
    sim.attach(T0)  # a connection holds presence: only the idle and lifetime clocks run
    start = T0 + data.draw(st.integers(0, round(policy.idle_timeout / Q) - 1)) * Q
    stop = start + data.draw(st.integers(0, 4000)) * Q
    lifetime_end = T0 + policy.max_duration
    sim.set_busy(start, True)
    sim.run_until(stop)
    during = [
        tr for t, tr in sim.transitions if start < t <= stop
    ]  # a warning due at start came first
    assert all(getattr(tr, "reason", None) is not IDLE for tr in during)
    assert sim.rec.warning() is None or sim.rec.warning_reason is MAX
    if stop >= lifetime_end:
        assert sim.rec.end_reason is MAX  # the lifetime clock runs on while busy
        assert sim.rec.ended_at == lifetime_end
        return
    sim.set_busy(stop, False)
    assert sim.rec.last_activity == stop
    sim.drain()
    idle_end = stop + policy.idle_timeout
    if idle_end < lifetime_end:
        assert (sim.rec.end_reason, sim.rec.ended_at) == (IDLE, idle_end)
        if policy.warn_before > 0:
            assert (idle_end - policy.warn_before, Warned(IDLE, idle_end)) in sim.transitions
    else:
        assert (sim.rec.end_reason, sim.rec.ended_at) == (MAX, lifetime_end)


@SETTINGS
@given(policy=policies(), data=st.data())
def test_nested_busy_marks_stop_the_idle_clock_until_the_last_closes(
    policy: Policy, data: st.DataObject
) -> None:
    """Two overlapping marks (a reply and the app's speech): idle counts from the later close."""
    sim = Sim(policy)
    sim.attach(T0)
    times = sorted(T0 + data.draw(st.integers(0, 4000)) * Q for _ in range(4))
    open_a, open_b, close_a, close_b = times
    lifetime_end = T0 + policy.max_duration
    if close_b >= lifetime_end or open_a >= T0 + policy.idle_timeout:
        return  # the marks must open before the idle end and close before the lifetime end
    sim.set_busy(open_a, True)
    sim.set_busy(open_b, True)
    sim.set_busy(close_a, False)
    assert sim.rec.busy == 1
    assert sim.rec.idle_end() == math.inf
    sim.set_busy(close_b, False)
    assert sim.rec.busy == 0
    assert sim.rec.idle_end() == close_b + policy.idle_timeout
    sim.set_busy(close_b, False)  # a duplicate close changes nothing
    sim.drain()
    assert sim.rec.ended_at == min(close_b + policy.idle_timeout, lifetime_end)


@SETTINGS
@given(policy=policies(), events=_events)
def test_busy_marks_die_with_the_session(
    policy: Policy, events: list[tuple[str, float, EndReason, float]]
) -> None:
    """However a session ends, it ends with no busy mark open and shows busy false."""
    sim = Sim(policy)
    sim.set_busy(T0, True)
    play(sim, events)
    sim.drain()
    assert sim.rec.busy == 0
    assert sim.rec.snapshot().busy is False
