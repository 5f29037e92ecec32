"""SessionRecord: the three clocks, warnings and the exactly-once end, case by case."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tether.core.policy import Policy
from tether.core.session import (
    Action,
    BusyEffect,
    ClockKind,
    Deadline,
    Deadlines,
    Ended,
    Reactivated,
    SessionRecord,
    TouchEffect,
    Warned,
    busy_effect,
    touch_effect,
)
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
ACTIVE, WARNING, ENDED = SessionState.ACTIVE, SessionState.WARNING, SessionState.ENDED
IDLE, MAX, GONE = EndReason.IDLE_TIMEOUT, EndReason.MAX_DURATION, EndReason.CLIENT_GONE


def before(t: float) -> float:
    """The float just below ``t``."""
    return math.nextafter(t, -math.inf)


def make(
    idle: float = 600,
    warn: float = 120,
    maximum: float = 1800,
    presence: float = 60,
    *,
    attach: bool = True,
    heartbeat: bool = True,
    config: dict[str, Any] | None = None,
) -> SessionRecord:
    policy = Policy(
        idle_timeout=idle, warn_before=warn, max_duration=maximum, presence_timeout=presence
    )
    record = SessionRecord(SessionId("0" * 32), UserId("alice"), "chat", policy, T0, config)
    if attach:
        record.attach(T0)
    elif heartbeat:  # a client that signals presence without a connection
        record.touch(T0, activity=False)
    return record


# -- creation ------------------------------------------------------------------


def test_new_record_starts_active_with_all_clocks_at_creation() -> None:
    """A new record is active, unattached, and its three timestamps equal ``now``."""
    record = make(attach=False)
    assert record.state is ACTIVE
    assert record.created_at == record.last_activity == record.last_seen == T0
    assert record.connections == 0
    assert record.message_count == 0
    assert record.ended_at is None
    assert record.end_reason is None
    assert record.warning() is None


def test_an_unattached_heartbeating_session_is_governed_by_presence() -> None:
    """With no connection, heartbeats and then silence end the session client_gone."""
    record = make(attach=False)
    assert record.next_deadline() == Deadline(T0 + 60, Action.END, GONE)
    assert record.advance(T0 + 60) == Ended(GONE)
    assert record.ended_at == T0 + 60


def test_an_http_only_session_has_no_presence_clock() -> None:
    """Never attached, never a heartbeat: requests only, so idle warns then ends it."""
    record = make(attach=False, heartbeat=False)
    assert record.presence_end() is None
    record.touch(T0 + 100, activity=True)  # a request that counts as activity
    assert record.next_deadline() == Deadline(T0 + 580, Action.WARN, IDLE)
    assert record.advance(T0 + 580) == Warned(IDLE, T0 + 700)
    assert record.advance(T0 + 700) == Ended(IDLE)


def test_the_first_heartbeat_starts_the_presence_clock_and_brings_the_deadline_forward() -> None:
    """A heartbeat on an HTTP-only session starts presence: client_gone 60 s after it."""
    record = make(attach=False, heartbeat=False)
    assert record.starts_presence(activity=False)
    assert not record.starts_presence(activity=True)
    record.touch(T0 + 10, activity=False)
    assert not record.starts_presence(activity=False)
    assert record.next_deadline() == Deadline(T0 + 70, Action.END, GONE)


def test_a_heartbeat_never_starts_a_zero_presence_clock() -> None:
    """presence_timeout=0 still needs a connection that came and went, heartbeat or not."""
    record = make(presence=0, attach=False)
    assert record.presence_end() is None
    record.attach(T0 + 5)
    record.detach(T0 + 6)
    assert record.presence_end() == T0 + 6


# -- clock ends ------------------------------------------------------------------


def test_clock_ends_are_computed_from_their_own_timestamps() -> None:
    """idle_end, lifetime_end and presence_end derive from last_activity, created_at, last_seen."""
    record = make(attach=False)
    record.touch(T0 + 10, activity=False)
    assert record.idle_end() == T0 + 600
    assert record.lifetime_end() == T0 + 1800
    assert record.presence_end() == T0 + 70
    record.touch(T0 + 20, activity=True)
    assert record.idle_end() == T0 + 620
    assert record.lifetime_end() == T0 + 1800
    assert record.presence_end() == T0 + 80


def test_deadlines_are_inclusive() -> None:
    """advance at exactly the end ends the session; at the float before, it does not."""
    record = make(warn=0)
    end = T0 + 600
    assert record.advance(before(end)) is None
    assert record.expired(before(end)) is None
    assert record.expired(end) is IDLE
    assert record.advance(end) == Ended(IDLE)
    assert record.ended_at == end


def test_expired_reports_the_reason_at_and_after_the_end() -> None:
    """expired(now) is None before the governing end and the reason from then on."""
    record = make(idle=600, warn=0, maximum=1800)
    record.touch(T0 + 1500, activity=True)
    assert record.expired(T0 + 1799) is None
    assert record.expired(T0 + 1800) is MAX
    assert record.expired(T0 + 5000) is MAX


def test_expired_does_not_change_state() -> None:
    """expired is a query: it never ends the session."""
    record = make(warn=0)
    assert record.expired(T0 + 10_000) is IDLE
    assert record.state is ACTIVE
    assert record.end_reason is None


def test_a_touch_at_the_end_instant_cannot_revive() -> None:
    """A session expired at now stays expired: the end happened before a same-instant touch."""
    record = make(warn=0)
    end = T0 + 600
    assert record.expired(end) is IDLE
    assert record.advance(end) == Ended(IDLE)
    record.touch(end, activity=True)
    assert record.advance(end + 1) is None
    assert record.state is ENDED
    assert record.end_reason is IDLE


def test_tie_max_duration_beats_idle() -> None:
    """When the idle and lifetime ends coincide the reason is max_duration."""
    record = make(idle=100, warn=0, maximum=100)
    assert record.governing_end() == (T0 + 100, MAX)
    assert record.advance(T0 + 100) == Ended(MAX)


def test_tie_idle_beats_client_gone() -> None:
    """When the presence and idle ends coincide the reason is idle_timeout."""
    record = make(idle=60, warn=0, maximum=1000, presence=60, attach=False)
    assert record.governing_end() == (T0 + 60, IDLE)
    assert record.advance(T0 + 60) == Ended(IDLE)


def test_tie_max_beats_client_gone() -> None:
    """When the presence and lifetime ends coincide the reason is max_duration."""
    record = make(idle=1000, warn=0, maximum=60, presence=60, attach=False)
    assert record.governing_end() == (T0 + 60, MAX)


def test_tie_of_all_three_goes_to_max_duration() -> None:
    """When all three clocks run out together the reason is max_duration."""
    record = make(idle=60, warn=0, maximum=60, presence=60, attach=False)
    assert record.governing_end() == (T0 + 60, MAX)
    assert record.next_deadline() == Deadline(T0 + 60, Action.END, MAX)
    assert record.advance(T0 + 60) == Ended(MAX)


def test_earliest_clock_governs() -> None:
    """Whichever clock runs out first gives the end time and reason."""
    record = make(idle=100, warn=0, maximum=1000, presence=30, attach=False)
    assert record.governing_end() == (T0 + 30, GONE)
    record.touch(T0 + 29, activity=False)
    assert record.governing_end() == (T0 + 59, GONE)
    record.attach(T0 + 50)
    assert record.governing_end() == (T0 + 100, IDLE)


# -- activity and heartbeats -----------------------------------------------------


def test_heartbeat_refreshes_only_last_seen() -> None:
    """touch(activity=False) moves last_seen and leaves last_activity alone."""
    record = make()
    record.touch(T0 + 5, activity=False)
    assert record.last_seen == T0 + 5
    assert record.last_activity == T0


def test_activity_refreshes_both_clocks() -> None:
    """touch(activity=True) moves both last_seen and last_activity."""
    record = make()
    record.touch(T0 + 5, activity=True)
    assert record.last_seen == T0 + 5
    assert record.last_activity == T0 + 5


def test_heartbeats_never_postpone_the_idle_end() -> None:
    """Frequent heartbeats keep the session present but it still ends idle on time."""
    record = make(idle=600, warn=0, maximum=1800, presence=60, attach=False)
    for t in range(int(T0) + 30, int(T0) + 600, 30):
        record.touch(t, activity=False)
        assert record.advance(t) is None
        assert record.idle_end() == T0 + 600
    assert record.next_deadline() == Deadline(T0 + 600, Action.END, IDLE)
    assert record.advance(T0 + 600) == Ended(IDLE)


def test_heartbeat_during_an_idle_warning_does_not_clear_it() -> None:
    """A heartbeat is not activity: the idle warning stays and its end does not move."""
    record = make()
    assert record.advance(T0 + 480) == Warned(IDLE, T0 + 600)
    record.touch(T0 + 500, activity=False)
    assert record.advance(T0 + 500) is None
    assert record.state is WARNING
    assert record.warning() == Warned(IDLE, T0 + 600)


# -- presence ------------------------------------------------------------------


def test_presence_clock_stops_while_a_connection_is_attached() -> None:
    """presence_end is None with a connection attached; the session outlives the grace."""
    record = make(idle=600, warn=0, maximum=1800, presence=10)
    assert record.presence_end() is None
    assert record.advance(T0 + 500) is None
    assert record.state is ACTIVE


def test_presence_clock_starts_at_the_last_detach() -> None:
    """With two connections, only the last detach starts the presence clock."""
    record = make(idle=600, warn=0, presence=10)
    record.attach(T0 + 1)
    record.detach(T0 + 5)
    assert record.presence_end() is None
    record.detach(T0 + 7)
    assert record.connections == 0
    assert record.presence_end() == T0 + 17
    assert record.next_deadline() == Deadline(T0 + 17, Action.END, GONE)
    assert record.advance(before(T0 + 17)) is None
    assert record.advance(T0 + 17) == Ended(GONE)


def test_reattach_within_the_grace_keeps_the_session() -> None:
    """A reconnect inside presence_timeout stops the presence clock again."""
    record = make(idle=600, warn=0, presence=10)
    record.detach(T0 + 5)
    record.attach(T0 + 14)
    assert record.advance(T0 + 100) is None
    assert record.state is ACTIVE


def test_detach_never_goes_below_zero_connections() -> None:
    """An extra detach leaves the connection count at zero."""
    record = make(attach=False)
    record.detach(T0 + 1)
    assert record.connections == 0


def test_zero_presence_does_not_end_a_never_attached_session() -> None:
    """With presence_timeout 0, a session never attached is not ended by presence."""
    record = make(idle=600, warn=0, presence=0, attach=False)
    assert record.presence_end() is None
    assert record.next_deadline() == Deadline(T0 + 600, Action.END, IDLE)
    assert record.advance(T0 + 300) is None


def test_zero_presence_ends_at_the_instant_the_last_connection_detaches() -> None:
    """With presence_timeout 0, detaching the last connection ends it client_gone at once."""
    record = make(idle=600, warn=0, presence=0)
    record.attach(T0 + 1)
    record.detach(T0 + 2)
    assert record.advance(T0 + 2) is None
    record.detach(T0 + 3)
    assert record.next_deadline() == Deadline(T0 + 3, Action.END, GONE)
    assert record.expired(T0 + 3) is GONE
    assert record.advance(T0 + 3) == Ended(GONE)
    assert record.ended_at == T0 + 3


# -- warnings ----------------------------------------------------------------------


def test_idle_warning_is_due_warn_before_the_idle_end() -> None:
    """next_deadline is a WARN for idle at idle_end - warn_before, and advance enters it."""
    record = make()
    assert record.next_deadline() == Deadline(T0 + 480, Action.WARN, IDLE)
    assert record.next_deadline().clock is ClockKind.ACTIVITY  # type: ignore[union-attr]
    assert record.advance(before(T0 + 480)) is None
    assert record.advance(T0 + 480) == Warned(IDLE, T0 + 600)
    assert record.state is WARNING
    assert record.warning() == Warned(IDLE, T0 + 600)
    assert record.next_deadline() == Deadline(T0 + 600, Action.END, IDLE)


def test_warning_is_announced_once() -> None:
    """Further advances inside the same warning return None."""
    record = make()
    assert isinstance(record.advance(T0 + 480), Warned)
    assert record.advance(T0 + 481) is None
    assert record.advance(T0 + 599) is None
    assert record.advance(T0 + 600) == Ended(IDLE)


def test_lifetime_warning_is_due_warn_before_max_duration() -> None:
    """Under steady activity the lifetime clock warns at max_duration - warn_before."""
    record = make(idle=600, warn=120, maximum=1800)
    record.touch(T0 + 1600, activity=True)
    assert record.advance(T0 + 1600) is None
    assert record.next_deadline() == Deadline(T0 + 1680, Action.WARN, MAX)
    assert record.next_deadline().clock is ClockKind.LIFETIME  # type: ignore[union-attr]
    assert record.advance(T0 + 1680) == Warned(MAX, T0 + 1800)
    assert record.advance(T0 + 1800) == Ended(MAX)


def test_activity_during_an_idle_warning_reactivates() -> None:
    """Activity in an idle warning moves the end out; advance returns Reactivated."""
    record = make()
    record.advance(T0 + 500)
    record.touch(T0 + 550, activity=True)
    assert record.advance(T0 + 550) == Reactivated()
    assert record.state is ACTIVE
    assert record.warning() is None
    assert record.next_deadline() == Deadline(T0 + 1030, Action.WARN, IDLE)
    assert record.advance(T0 + 600) is None


def test_lifetime_warning_is_not_cleared_by_activity() -> None:
    """Activity during a lifetime warning changes nothing: same state, same ends_at."""
    record = make(idle=600, warn=120, maximum=1800)
    record.touch(T0 + 1600, activity=True)
    assert record.advance(T0 + 1700) == Warned(MAX, T0 + 1800)
    record.touch(T0 + 1750, activity=True)
    assert record.advance(T0 + 1750) is None
    assert record.state is WARNING
    assert record.warning() == Warned(MAX, T0 + 1800)
    assert record.next_deadline() == Deadline(T0 + 1800, Action.END, MAX)


def test_activity_in_idle_warning_switches_to_an_open_lifetime_window() -> None:
    """Clearing an idle warning while the lifetime window is open gives Warned(max_duration)."""
    record = make(idle=600, warn=120, maximum=1800)
    record.touch(T0 + 1150, activity=True)
    assert record.advance(T0 + 1630) == Warned(IDLE, T0 + 1750)
    assert record.advance(T0 + 1680) is None  # lifetime window opens; idle ends first
    record.touch(T0 + 1700, activity=True)
    assert record.advance(T0 + 1700) == Warned(MAX, T0 + 1800)
    assert record.state is WARNING
    assert record.warning() == Warned(MAX, T0 + 1800)


def test_the_warning_announces_the_earlier_end() -> None:
    """When both windows open together the warning names the clock that ends first."""
    record = make(idle=600, warn=120, maximum=1800)
    record.touch(T0 + 1190, activity=True)
    # idle ends 1790, lifetime 1800: both windows are open at 1700.
    assert record.advance(T0 + 1700) == Warned(IDLE, T0 + 1790)


def test_equal_idle_and_lifetime_ends_warn_as_max_duration() -> None:
    """A warning for coinciding idle and lifetime ends is announced as max_duration."""
    record = make(idle=600, warn=120, maximum=1800)
    record.touch(T0 + 1200, activity=True)
    assert record.next_deadline() == Deadline(T0 + 1680, Action.WARN, MAX)
    assert record.advance(T0 + 1680) == Warned(MAX, T0 + 1800)
    assert record.advance(T0 + 1800) == Ended(MAX)


def test_no_warning_for_client_gone() -> None:
    """A presence end is never warned: the only transition is Ended(client_gone)."""
    record = make(idle=600, warn=120, maximum=1800, presence=60, attach=False)
    record.touch(T0 + 470, activity=False)
    assert record.advance(T0 + 470) is None
    # idle window opens at 480; presence ends at 530.
    assert record.advance(T0 + 480) == Warned(IDLE, T0 + 600)
    assert record.next_deadline() == Deadline(T0 + 530, Action.END, GONE)
    assert record.advance(T0 + 530) == Ended(GONE)


def test_client_gone_first_means_no_warning_at_all() -> None:
    """When presence runs out before any window, the next deadline is END, never WARN."""
    record = make(idle=600, warn=120, maximum=1800, presence=60, attach=False)
    deadline = record.next_deadline()
    assert deadline == Deadline(T0 + 60, Action.END, GONE)
    assert deadline.clock is ClockKind.PRESENCE
    assert record.advance(T0 + 30) is None
    assert record.advance(T0 + 60) == Ended(GONE)


def test_warn_before_zero_disables_warnings() -> None:
    """With warn_before 0 the next deadline is always an END and no Warned is produced."""
    record = make(idle=600, warn=0, maximum=1800)
    assert record.next_deadline() == Deadline(T0 + 600, Action.END, IDLE)
    assert record.advance(T0 + 599) is None
    assert record.state is ACTIVE
    assert record.advance(T0 + 600) == Ended(IDLE)


def test_late_advance_past_the_end_ends_without_warning() -> None:
    """An advance long after the end ends the session with the earliest clock's reason."""
    record = make()
    assert record.advance(T0 + 10_000) == Ended(IDLE)
    assert record.ended_at == T0 + 10_000


def test_reactivation_after_time_passed_beyond_the_window() -> None:
    """A warning whose clock was extended reports Reactivated even when advanced late."""
    record = make()
    record.advance(T0 + 480)
    record.touch(T0 + 590, activity=True)
    assert record.advance(T0 + 700) == Reactivated()


# -- finishing ---------------------------------------------------------------------


@pytest.mark.parametrize("reason", list(EndReason))
def test_finish_ends_once_with_its_reason(reason: EndReason) -> None:
    """finish returns True once, records the reason and time; a second finish is refused."""
    record = make()
    assert record.finish(T0 + 5, reason) is True
    assert record.state is ENDED
    assert record.end_reason is reason
    assert record.ended_at == T0 + 5
    other = EndReason.ERROR if reason is not EndReason.ERROR else EndReason.ADMIN
    assert record.finish(T0 + 6, other) is False
    assert record.end_reason is reason
    assert record.ended_at == T0 + 5


def test_finish_during_a_warning_clears_it() -> None:
    """An ended session has no warning in force."""
    record = make()
    record.advance(T0 + 480)
    assert record.finish(T0 + 490, EndReason.CLIENT_ENDED)
    assert record.warning() is None
    assert record.warning_reason is None


def test_an_ended_record_accepts_nothing() -> None:
    """After an end, advance is None, finish False, and state/reason/time never change."""
    record = make()
    assert record.advance(T0 + 600) == Ended(IDLE)
    record.touch(T0 + 700, activity=True)
    record.attach(T0 + 701)
    record.detach(T0 + 702)
    for t in (T0 + 600, T0 + 1000, T0 + 1e6):
        assert record.advance(t) is None
    assert record.finish(T0 + 2000, EndReason.ADMIN) is False
    assert record.state is ENDED
    assert record.end_reason is IDLE
    assert record.ended_at == T0 + 600
    assert record.next_deadline() is None
    assert record.warning() is None


def test_expired_then_finished_by_someone_else_is_not_ended_twice() -> None:
    """If finish wins a race against a due deadline, the later advance returns None."""
    record = make()
    assert record.finish(T0 + 600, EndReason.CLIENT_ENDED)
    assert record.advance(T0 + 600) is None
    assert record.end_reason is EndReason.CLIENT_ENDED


# -- deadlines and snapshots --------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "clock"),
    [(GONE, ClockKind.PRESENCE), (IDLE, ClockKind.ACTIVITY), (MAX, ClockKind.LIFETIME)],
)
def test_deadline_clock_names_the_clock_of_its_reason(reason: EndReason, clock: ClockKind) -> None:
    """Deadline.clock maps client_gone/idle_timeout/max_duration to presence/activity/lifetime."""
    assert Deadline(T0, Action.END, reason).clock is clock


def test_snapshot_copies_the_record() -> None:
    """A snapshot reflects the record and does not share its config dict."""
    config = {"voice": "a"}
    record = make(config=config)
    record.message_count = 3
    info = record.snapshot()
    assert info.id == record.id
    assert info.user == "alice"
    assert info.kind == "chat"
    assert info.state is ACTIVE
    assert info.connections == 1
    assert info.message_count == 3
    assert info.config == {"voice": "a"}
    info.config["voice"] = "b"
    assert record.config == {"voice": "a"}
    assert info.next_deadline == record.next_deadline()
    assert info.warning is None


def test_snapshot_of_a_config_less_record_has_an_empty_config() -> None:
    """A record created without config snapshots with config {}."""
    assert make().snapshot().config == {}


def test_snapshot_is_immutable_over_later_changes() -> None:
    """A snapshot taken before a change keeps the old values."""
    record = make()
    info = record.snapshot()
    record.touch(T0 + 50, activity=True)
    record.finish(T0 + 60, EndReason.ADMIN)
    assert info.last_activity == T0
    assert info.state is ACTIVE
    assert info.end_reason is None


def test_session_info_to_dict_of_a_warning_session() -> None:
    """to_dict gives the documented JSON-ready keys, enum values as strings."""
    record = make(config={"k": 1})
    record.advance(T0 + 480)
    wire = record.snapshot().to_dict()
    assert wire == {
        "id": "0" * 32,
        "user": "alice",
        "kind": "chat",
        "state": "warning",
        "created_at": T0,
        "last_activity": T0,
        "last_seen": T0,
        "connections": 1,
        "message_count": 0,
        "busy": False,
        "config": {"k": 1},
        "warning": {"reason": "idle_timeout", "ends_at": T0 + 600},
        "next_deadline": {
            "at": T0 + 600,
            "action": "end",
            "reason": "idle_timeout",
            "clock": "activity",
        },
        "ended_at": None,
        "end_reason": None,
    }
    assert json.loads(json.dumps(wire)) == wire
    assert all(type(wire[k]) is str for k in ("state",))
    assert type(wire["warning"]["reason"]) is str


def test_session_info_to_dict_of_an_ended_session() -> None:
    """An ended session's dict has no warning or deadline and carries ended_at and reason."""
    record = make()
    record.finish(T0 + 9, EndReason.REPLACED)
    wire = record.snapshot().to_dict()
    assert wire["state"] == "ended"
    assert wire["warning"] is None
    assert wire["next_deadline"] is None
    assert wire["ended_at"] == T0 + 9
    assert wire["end_reason"] == "replaced"
    assert type(wire["end_reason"]) is str
    json.dumps(wire)


def test_session_info_to_dict_of_an_active_session_with_a_warn_deadline() -> None:
    """An active session's dict carries its WARN deadline and clock."""
    wire = make().snapshot().to_dict()
    assert wire["state"] == "active"
    assert wire["warning"] is None
    assert wire["next_deadline"] == {
        "at": T0 + 480,
        "action": "warn",
        "reason": "idle_timeout",
        "clock": "activity",
    }


def test_an_ended_record_ignores_touches_attaches_and_detaches() -> None:
    """After the end, no input moves a timestamp or the connection count."""
    record = make()
    record.attach(T0 + 1)
    record.finish(T0 + 2, EndReason.ADMIN)
    before = (record.last_seen, record.last_activity, record.connections)
    record.touch(T0 + 3, activity=True)
    record.attach(T0 + 4)
    record.detach(T0 + 5)
    assert (record.last_seen, record.last_activity, record.connections) == before


def test_a_detach_with_nothing_attached_does_not_stretch_the_presence_grace() -> None:
    """A duplicate close leaves last_seen alone, so the presence end does not move."""
    record = make(attach=False)
    record.attach(T0 + 1)
    record.detach(T0 + 2)
    end = record.presence_end()
    record.detach(T0 + 50)
    assert record.connections == 0
    assert record.presence_end() == end


def test_touch_effect_is_the_one_touch_rule() -> None:
    """Activity in a warning is reviewed, a first heartbeat starts presence, the rest recorded."""
    assert touch_effect(ACTIVE, ever_heartbeat=False, activity=True) is TouchEffect.RECORDED
    assert touch_effect(WARNING, ever_heartbeat=True, activity=True) is TouchEffect.REVIEW
    assert touch_effect(ACTIVE, ever_heartbeat=False, activity=False) is TouchEffect.PRESENCE
    assert touch_effect(WARNING, ever_heartbeat=False, activity=False) is TouchEffect.PRESENCE
    assert touch_effect(WARNING, ever_heartbeat=True, activity=False) is TouchEffect.RECORDED
    assert touch_effect(ENDED, ever_heartbeat=False, activity=True) is TouchEffect.IGNORED


def test_deadlines_report_the_presence_clock_only_while_it_runs() -> None:
    """deadlines() and the snapshot's presence_at follow presence_end(), None once ended."""
    record = make(presence=0, attach=False)
    assert record.deadlines() == Deadlines(T0 + 600, T0 + 1800, None)
    assert record.snapshot().deadlines() == record.deadlines()
    record.attach(T0 + 5)
    record.detach(T0 + 9)
    assert record.deadlines().presence_at == T0 + 9
    assert record.snapshot().presence_at == T0 + 9
    record.finish(T0 + 9, EndReason.CLIENT_GONE)
    assert record.deadlines().presence_at is None
    assert record.snapshot().deadlines().presence_at is None


def test_busy_effect_says_what_each_busy_mark_leaves_to_do() -> None:
    """busy_effect: review a warning on the first open, restart on the last close, else record."""
    review, recorded = BusyEffect.REVIEW, BusyEffect.RECORDED
    restart, ignored = BusyEffect.RESTART, BusyEffect.IGNORED
    assert busy_effect(ACTIVE, 0, True) is recorded
    assert busy_effect(WARNING, 0, True) is review
    assert busy_effect(WARNING, 1, True) is recorded  # already busy: no idle warning to clear
    assert busy_effect(ACTIVE, 2, False) is recorded  # another mark stays open
    assert busy_effect(ACTIVE, 1, False) is restart
    assert busy_effect(WARNING, 1, False) is restart
    assert busy_effect(ACTIVE, 0, False) is ignored  # a duplicate close
    assert busy_effect(ENDED, 0, True) is ignored
    assert busy_effect(ENDED, 1, False) is ignored


def test_a_busy_session_has_no_idle_deadline_and_restarts_idle_at_the_close() -> None:
    """While busy: idle_at None, no idle warning due; the close sets last_activity to now."""
    record = make()
    assert record.set_busy(T0 + 100, True) is BusyEffect.RECORDED
    assert record.deadlines().idle_at is None
    assert record.snapshot().deadlines().idle_at is None
    assert record.snapshot().busy is True
    assert record.snapshot().to_dict()["busy"] is True
    assert record.next_deadline() == Deadline(T0 + 1800 - 120, Action.WARN, EndReason.MAX_DURATION)
    assert record.advance(T0 + 1000) is None
    assert record.set_busy(T0 + 1000, False) is BusyEffect.RESTART
    assert record.last_activity == T0 + 1000
    assert record.deadlines().idle_at == T0 + 1600
    assert record.snapshot().busy is False
