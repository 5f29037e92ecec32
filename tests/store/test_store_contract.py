"""The ``SessionStore`` contract: what every implementation must do, tested once.

Like cachetools' shared cache tests: :class:`StoreContract` holds the tests and
knows nothing about any implementation; the ``store`` fixture (tests/store/
conftest.py) runs them against every factory in ``STORE_FACTORIES``. Only the
public protocol is used here, never an implementation's internals, and every
time is passed in explicitly: stores never read a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import (
    Action,
    Deadline,
    Ended,
    Reactivated,
    SessionInfo,
    SessionRecord,
    Transition,
    Warned,
)
from tether.core.transcript import Message, Role
from tether.errors import DuplicateSession, SessionEnded, SessionNotFound
from tether.store.base import Claim, Created, SessionStore, StoreStats
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
U1 = UserId("u1")
U2 = UserId("u2")
BIG = 10_000  # a claim_due limit no test reaches

ACTIVE = SessionState.ACTIVE
WARNING = SessionState.WARNING
ENDED = SessionState.ENDED

# presence_timeout=0 keeps the presence clock stopped until a connection has
# been attached and closed, so these policies have only the clocks a test sets.
QUIET = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)
SHORT_IDLE = Policy(idle_timeout=100.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)
WARN_IDLE = Policy(idle_timeout=100.0, warn_before=20.0, max_duration=1800.0, presence_timeout=0.0)


def make_record(
    *,
    user: UserId = U1,
    policy: Policy = QUIET,
    now: float = T0,
    config: dict[str, Any] | None = None,
    kind: str = "chat",
) -> SessionRecord:
    """A new session record, as the runtime builds one, whose client sends heartbeats."""
    record = SessionRecord(new_session_id(), user, kind, policy, now, config)
    record.touch(now, activity=False)  # presence is signalled: its clock runs
    return record


async def new_session(
    store: SessionStore,
    *,
    user: UserId = U1,
    policy: Policy = QUIET,
    now: float = T0,
    config: dict[str, Any] | None = None,
) -> SessionInfo:
    """Create a session with no per-user limit and return its snapshot."""
    created = await store.create(
        make_record(user=user, policy=policy, now=now, config=config), max_per_user=None
    )
    return created.session


def transitions(claims: list[Claim]) -> dict[SessionId, list[Transition]]:
    """Claimed transitions grouped by session."""
    out: dict[SessionId, list[Transition]] = {}
    for claim in claims:
        out.setdefault(claim.session.id, []).append(claim.transition)
    return out


async def get_live(store: SessionStore, session_id: SessionId) -> SessionInfo:
    """The session's snapshot; fails the test if the store forgot it."""
    info = await store.get(session_id)
    assert info is not None
    return info


async def assert_index_is_lower_bound(store: SessionStore, ids: list[SessionId]) -> None:
    """``next_due`` is no later than the earliest true next event of the live ``ids``."""
    deadlines = []
    for session_id in ids:
        info = await store.get(session_id)
        if info is not None and info.next_deadline is not None:
            deadlines.append(info.next_deadline.at)
    if deadlines:
        armed = await store.next_due()
        assert armed is not None
        assert armed <= min(deadlines)


class StoreContract:
    """Behaviour every :class:`~tether.store.base.SessionStore` must show."""

    # -- create / get --------------------------------------------------------

    async def test_create_then_get_round_trips_every_snapshot_field(
        self, store: SessionStore
    ) -> None:
        """A created session reads back with the record's fields and a fresh-session state."""
        policy = Policy(idle_timeout=300.0, warn_before=30.0, max_duration=900.0)
        record = make_record(policy=policy, config={"role": "backend", "n": 3}, kind="interview")
        created = await store.create(record, max_per_user=None)
        info = await get_live(store, record.id)
        assert created.session == info
        assert created.replaced == []
        assert (info.id, info.user, info.kind) == (record.id, U1, "interview")
        assert info.state is ACTIVE
        assert (info.created_at, info.last_activity, info.last_seen) == (T0, T0, T0)
        assert (info.connections, info.message_count) == (0, 0)
        assert info.config == {"role": "backend", "n": 3}
        assert info.policy == policy
        assert info.warning is None
        # presence (60 s default, no connection yet) runs out first
        assert info.next_deadline == Deadline(T0 + 60.0, Action.END, EndReason.CLIENT_GONE)
        assert (info.ended_at, info.end_reason) == (None, None)

    async def test_create_reports_the_first_deadline_as_armed_at(self, store: SessionStore) -> None:
        """``Created.armed_at`` is when the new session's first deadline falls."""
        created = await store.create(make_record(policy=WARN_IDLE), max_per_user=None)
        assert created.session.next_deadline == Deadline(
            T0 + 80.0, Action.WARN, EndReason.IDLE_TIMEOUT
        )
        assert created.armed_at == T0 + 80.0

    async def test_create_without_config_reads_back_an_empty_config(
        self, store: SessionStore
    ) -> None:
        """A session created with no config has ``{}`` as its config."""
        info = await new_session(store)
        assert (await get_live(store, info.id)).config == {}

    async def test_snapshots_do_not_share_config_with_the_store(self, store: SessionStore) -> None:
        """Mutating a returned config does not change the stored session."""
        info = await new_session(store, config={"a": 1})
        info.config["a"] = 2
        (await get_live(store, info.id)).config["b"] = 3
        assert (await get_live(store, info.id)).config == {"a": 1}

    async def test_duplicate_create_is_refused_and_keeps_the_original(
        self, store: SessionStore
    ) -> None:
        """Creating a session id that exists raises and leaves the first session as it was."""
        record = make_record(config={"v": 1})
        await store.create(record, max_per_user=None)
        twin = SessionRecord(record.id, U2, "other", SHORT_IDLE, T0 + 5.0, {"v": 2})
        with pytest.raises(DuplicateSession, match="duplicate"):
            await store.create(twin, max_per_user=None)
        info = await get_live(store, record.id)
        assert (info.user, info.kind, info.config, info.created_at) == (U1, "chat", {"v": 1}, T0)
        assert (await store.stats()).live == 1

    async def test_duplicate_create_of_a_retained_ended_id_is_refused(
        self, store: SessionStore
    ) -> None:
        """An ended session's id cannot be reused while the store still answers for it."""
        record = make_record()
        await store.create(record, max_per_user=None)
        await store.end(record.id, EndReason.ADMIN, T0 + 1.0)
        twin = SessionRecord(record.id, U1, "chat", QUIET, T0 + 2.0)
        with pytest.raises(DuplicateSession, match="duplicate"):
            await store.create(twin, max_per_user=None)
        info = await get_live(store, record.id)
        assert (info.state, info.end_reason) == (ENDED, EndReason.ADMIN)

    async def test_get_of_an_unknown_session_is_none(self, store: SessionStore) -> None:
        """``get`` answers ``None`` for an id the store never saw."""
        assert await store.get(new_session_id()) is None

    # -- touch -----------------------------------------------------------------

    async def test_activity_refreshes_last_activity_and_last_seen(
        self, store: SessionStore
    ) -> None:
        """A touch with activity records ``now`` as both last activity and last seen."""
        info = await new_session(store)
        assert await store.touch(info.id, T0 + 10.0, activity=True) is None
        after = await get_live(store, info.id)
        assert (after.last_activity, after.last_seen) == (T0 + 10.0, T0 + 10.0)
        assert after.state is ACTIVE

    async def test_heartbeat_refreshes_last_seen_only(self, store: SessionStore) -> None:
        """A heartbeat (no activity) moves last seen but never last activity."""
        info = await new_session(store)
        await store.touch(info.id, T0 + 10.0, activity=True)
        assert await store.touch(info.id, T0 + 20.0, activity=False) is None
        after = await get_live(store, info.id)
        assert (after.last_activity, after.last_seen) == (T0 + 10.0, T0 + 20.0)

    async def test_times_to_the_microsecond_read_back_exactly(self, store: SessionStore) -> None:
        """Every store keeps times to the microsecond (``tether.store.base``)."""
        info = await new_session(store, now=T0 + 0.123456)
        await store.touch(info.id, T0 + 1.000001, activity=True)
        after = await get_live(store, info.id)
        assert (after.created_at, after.last_activity) == (T0 + 0.123456, T0 + 1.000001)
        assert await store.stats() == StoreStats(1, T0 + 0.123456, T0 + 0.123456)

    async def test_touch_of_an_unknown_session_raises_not_found(self, store: SessionStore) -> None:
        """Touching an id the store never saw raises ``SessionNotFound``."""
        with pytest.raises(SessionNotFound):
            await store.touch(new_session_id(), T0, activity=True)

    async def test_touch_of_an_ended_session_raises_ended_with_its_reason(
        self, store: SessionStore
    ) -> None:
        """Touching a retained ended session raises ``SessionEnded`` carrying why it ended."""
        info = await new_session(store)
        await store.end(info.id, EndReason.ADMIN, T0 + 1.0)
        for activity in (True, False):
            with pytest.raises(SessionEnded) as caught:
                await store.touch(info.id, T0 + 2.0, activity=activity)
            assert caught.value.reason is EndReason.ADMIN

    @pytest.mark.parametrize("late", [0.0, 25.0], ids=["at-the-end", "after-the-end"])
    @pytest.mark.parametrize("activity", [True, False], ids=["activity", "heartbeat"])
    async def test_touch_at_or_after_a_due_end_ends_the_session_exactly_once(
        self, store: SessionStore, late: float, activity: bool
    ) -> None:
        """A touch arriving at/after an unclaimed end wins the end; claim_due never repeats it."""
        info = await new_session(store, policy=SHORT_IDLE)
        claim = await store.touch(info.id, T0 + 100.0 + late, activity=activity)
        assert claim is not None
        assert claim.transition == Ended(EndReason.IDLE_TIMEOUT)
        assert claim.session.id == info.id
        assert (claim.session.state, claim.session.end_reason) == (ENDED, EndReason.IDLE_TIMEOUT)
        assert claim.fence == 1
        stored = await get_live(store, info.id)
        assert (stored.state, stored.end_reason) == (ENDED, EndReason.IDLE_TIMEOUT)
        assert await store.complete(info.id, claim.fence)
        assert await store.claim_due(T0 + 10_000.0, BIG) == []
        assert await store.end(info.id, EndReason.ADMIN, T0 + 10_000.0) is None

    async def test_activity_during_an_idle_warning_reactivates(self, store: SessionStore) -> None:
        """Activity while an idle warning is in force returns ``Reactivated`` and clears it."""
        info = await new_session(store, policy=WARN_IDLE)
        claims = await store.claim_due(T0 + 80.0, BIG)
        assert transitions(claims) == {info.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)]}
        assert claims[0].session.state is WARNING
        claim = await store.touch(info.id, T0 + 90.0, activity=True)
        assert claim is not None
        assert claim.transition == Reactivated()
        assert (claim.session.state, claim.session.warning) == (ACTIVE, None)
        stored = await get_live(store, info.id)
        assert (stored.state, stored.warning) == (ACTIVE, None)

    async def test_heartbeat_during_an_idle_warning_keeps_the_warning(
        self, store: SessionStore
    ) -> None:
        """A heartbeat proves presence, not activity: the idle warning stays in force."""
        info = await new_session(store, policy=WARN_IDLE)
        await store.claim_due(T0 + 80.0, BIG)
        assert await store.touch(info.id, T0 + 90.0, activity=False) is None
        stored = await get_live(store, info.id)
        assert stored.warning == Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)
        claims = await store.claim_due(T0 + 100.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}

    async def test_activity_during_a_lifetime_warning_does_not_clear_it(
        self, store: SessionStore
    ) -> None:
        """Nothing postpones max_duration: activity during its warning returns no transition."""
        policy = Policy(
            idle_timeout=600.0, warn_before=60.0, max_duration=300.0, presence_timeout=0
        )
        info = await new_session(store, policy=policy)
        claims = await store.claim_due(T0 + 240.0, BIG)
        assert transitions(claims) == {info.id: [Warned(EndReason.MAX_DURATION, T0 + 300.0)]}
        assert await store.touch(info.id, T0 + 250.0, activity=True) is None
        assert (await get_live(store, info.id)).state is WARNING
        claims = await store.claim_due(T0 + 300.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.MAX_DURATION)]}

    async def test_warning_after_a_cleared_warning_is_claimed_on_time(
        self, store: SessionStore
    ) -> None:
        """Once activity clears an idle warning, a lifetime warning due sooner is claimed on time.

        Default timeouts (idle 600, warn 120, max 1800): activity at +1150 puts the
        idle warning at +1630; activity at +1640 clears it, and the lifetime warning
        is then due at +1680, before the idle end (+1750) the index held.
        """
        info = await new_session(store, policy=Policy())
        await store.attach(info.id, T0)  # holds presence
        for at in (400.0, 800.0, 1150.0):
            await store.touch(info.id, T0 + at, activity=True)
        claims = await store.claim_due(T0 + 1630.0, BIG)
        assert transitions(claims) == {info.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 1750.0)]}
        claim = await store.touch(info.id, T0 + 1640.0, activity=True)
        assert claim is not None
        assert claim.transition == Reactivated()
        assert claim.session.next_deadline == Deadline(
            T0 + 1680.0, Action.WARN, EndReason.MAX_DURATION
        )
        await assert_index_is_lower_bound(store, [info.id])
        claims = await store.claim_due(T0 + 1680.0, BIG)
        assert transitions(claims) == {info.id: [Warned(EndReason.MAX_DURATION, T0 + 1800.0)]}

    async def test_idle_warning_after_a_cleared_one_is_claimed_on_time(
        self, store: SessionStore
    ) -> None:
        """After activity clears an idle warning, the next idle warning comes at its own time.

        idle 100, warn 60: the warning at +40 announces +100; activity at +41 clears
        it, so the next warning is due at +81, before the +100 end the index held.
        """
        policy = Policy(idle_timeout=100.0, warn_before=60.0, presence_timeout=0.0)
        info = await new_session(store, policy=policy)
        await store.claim_due(T0 + 40.0, BIG)
        claim = await store.touch(info.id, T0 + 41.0, activity=True)
        assert claim is not None
        assert claim.transition == Reactivated()
        next_due = await store.next_due()
        assert next_due is not None
        assert next_due <= T0 + 81.0
        claims = await store.claim_due(T0 + 81.0, BIG)
        assert transitions(claims) == {info.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 141.0)]}

    async def test_heartbeats_keep_presence_but_never_postpone_the_idle_end(
        self, store: SessionStore
    ) -> None:
        """Regular heartbeats hold off client_gone, yet the session still ends idle on time."""
        policy = Policy(idle_timeout=100.0, warn_before=0.0, presence_timeout=30.0)
        info = await new_session(store, policy=policy)
        for at in (20.0, 40.0, 60.0, 80.0):
            await store.touch(info.id, T0 + at, activity=False)
            assert await store.claim_due(T0 + at, BIG) == []
        assert await store.claim_due(T0 + 99.0, BIG) == []
        claims = await store.claim_due(T0 + 100.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}

    # -- claim_due / next_due -----------------------------------------------------

    async def test_claim_due_claims_nothing_before_the_deadline(self, store: SessionStore) -> None:
        """A session whose first deadline is in the future is not claimed."""
        await new_session(store, policy=SHORT_IDLE)
        assert await store.claim_due(T0 + 99.5, BIG) == []

    async def test_claim_due_returns_each_transition_exactly_once(
        self, store: SessionStore
    ) -> None:
        """Claiming twice at the same ``now`` returns the due transitions only the first time."""
        warned = await new_session(store, policy=WARN_IDLE)  # warns at +80
        ending = await new_session(store, policy=Policy(idle_timeout=50.0, warn_before=0.0))
        later = await new_session(store, policy=QUIET)
        first = await store.claim_due(T0 + 85.0, BIG)
        assert transitions(first) == {
            warned.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)],
            ending.id: [Ended(EndReason.IDLE_TIMEOUT)],
        }
        assert await store.claim_due(T0 + 85.0, BIG) == []
        assert (await get_live(store, later.id)).state is ACTIVE

    async def test_claim_due_walks_warning_then_end(self, store: SessionStore) -> None:
        """An untouched warned session gets one warning, then one end at the announced time."""
        info = await new_session(store, policy=WARN_IDLE)
        warned = await store.claim_due(T0 + 80.0, BIG)
        assert transitions(warned) == {info.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)]}
        assert warned[0].session.warning == Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)
        assert await store.claim_due(T0 + 80.0, BIG) == []
        assert await store.claim_due(T0 + 99.0, BIG) == []
        ended = await store.claim_due(T0 + 100.0, BIG)
        assert transitions(ended) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}
        assert (ended[0].session.state, ended[0].session.end_reason) == (
            ENDED,
            EndReason.IDLE_TIMEOUT,
        )
        assert ended[0].session.ended_at == T0 + 100.0
        assert ended[0].fence == 1
        assert await store.complete(info.id, ended[0].fence)
        assert await store.claim_due(T0 + 10_000.0, BIG) == []

    async def test_claim_due_re_arms_a_touched_session_instead_of_ending_it(
        self, store: SessionStore
    ) -> None:
        """A session touched before its deadline survives it and is claimed at its new one."""
        info = await new_session(store, policy=SHORT_IDLE)
        await store.touch(info.id, T0 + 50.0, activity=True)
        assert await store.claim_due(T0 + 100.0, BIG) == []
        assert (await get_live(store, info.id)).state is ACTIVE
        assert await store.claim_due(T0 + 149.0, BIG) == []
        claims = await store.claim_due(T0 + 150.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}

    async def test_presence_runs_out_as_client_gone(self, store: SessionStore) -> None:
        """With no connection and no heartbeat, presence_timeout ends the session as client_gone."""
        info = await new_session(store, policy=Policy(presence_timeout=60.0))
        assert await store.claim_due(T0 + 59.0, BIG) == []
        claims = await store.claim_due(T0 + 60.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.CLIENT_GONE)]}

    async def test_claim_due_respects_limit_and_repeated_calls_drain_everything(
        self, store: SessionStore
    ) -> None:
        """No call returns over ``limit`` claims; calling again drains every due session once."""
        due = [(await new_session(store, policy=SHORT_IDLE)).id for _ in range(25)]
        not_due = await new_session(store, policy=QUIET)
        seen: list[SessionId] = []
        for _ in range(100):
            batch = await store.claim_due(T0 + 100.0, 10)
            assert len(batch) <= 10
            seen.extend(c.session.id for c in batch)
            if len(seen) == len(due):
                break
        assert sorted(seen) == sorted(due)
        assert await store.claim_due(T0 + 100.0, 10) == []
        assert (await get_live(store, not_due.id)).state is ACTIVE

    async def test_next_due_is_none_for_an_empty_store(self, store: SessionStore) -> None:
        """An empty store has nothing armed."""
        assert await store.next_due() is None

    async def test_next_due_is_never_later_than_the_earliest_true_deadline(
        self, store: SessionStore
    ) -> None:
        """``next_due`` stays a lower bound of every live session's next event through changes."""
        a = await new_session(store, policy=QUIET)
        b = await new_session(store, policy=WARN_IDLE)
        c = await new_session(store, policy=SHORT_IDLE)
        ids = [a.id, b.id, c.id]
        await assert_index_is_lower_bound(store, ids)
        assert await store.next_due() == T0 + 80.0
        await store.touch(b.id, T0 + 50.0, activity=True)
        await assert_index_is_lower_bound(store, ids)
        await store.claim_due(T0 + 100.0, BIG)  # re-arms b, ends c
        await assert_index_is_lower_bound(store, ids)
        await store.update_policy(
            a.id, Policy(idle_timeout=200.0, warn_before=0.0, presence_timeout=0.0), T0 + 100.0
        )
        await assert_index_is_lower_bound(store, ids)
        await store.attach(a.id, T0 + 100.0)
        await store.detach(a.id, T0 + 105.0)  # presence 0: due at once
        await assert_index_is_lower_bound(store, ids)
        assert await store.next_due() == T0 + 105.0

    # -- end -----------------------------------------------------------------------

    async def test_end_returns_the_ended_session(self, store: SessionStore) -> None:
        """``end`` returns the end's claim: the session as ended, its reason, and fence 1."""
        info = await new_session(store)
        claim = await store.end(info.id, EndReason.CLIENT_ENDED, T0 + 5.0)
        assert claim is not None
        ended = claim.session
        assert (ended.id, ended.state, ended.end_reason, ended.ended_at) == (
            info.id,
            ENDED,
            EndReason.CLIENT_ENDED,
            T0 + 5.0,
        )
        assert (claim.transition, claim.fence) == (Ended(EndReason.CLIENT_ENDED), 1)
        assert ended.next_deadline is None
        assert await store.get(info.id) == ended

    async def test_sequential_ends_have_one_winner(self, store: SessionStore) -> None:
        """Of repeated ``end`` calls only the first returns the session; the first reason sticks."""
        info = await new_session(store)
        results = [
            await store.end(info.id, reason, T0 + i)
            for i, reason in enumerate([EndReason.ADMIN, EndReason.CLIENT_ENDED, EndReason.ERROR])
        ]
        assert results[0] is not None
        assert results[1:] == [None, None]
        assert (await get_live(store, info.id)).end_reason is EndReason.ADMIN

    async def test_an_end_at_the_deadline_instant_carries_the_timeout_reason(
        self, store: SessionStore
    ) -> None:
        """Deadlines are inclusive: ``end`` at the idle instant ends it as ``idle_timeout``."""
        info = await new_session(store, policy=SHORT_IDLE)
        just_before = await new_session(store, policy=SHORT_IDLE, user=U2)
        ended = await store.end(info.id, EndReason.CLIENT_ENDED, T0 + 100.0)
        assert ended is not None
        assert ended.session.end_reason is EndReason.IDLE_TIMEOUT
        assert ended.transition == Ended(EndReason.IDLE_TIMEOUT)
        earlier = await store.end(just_before.id, EndReason.CLIENT_ENDED, T0 + 99.0)
        assert earlier is not None
        assert earlier.session.end_reason is EndReason.CLIENT_ENDED
        for claim in (ended, earlier):
            assert await store.complete(claim.session.id, claim.fence)
        assert await store.claim_due(T0 + 200.0, 100) == []

    async def test_concurrent_ends_have_exactly_one_winner(self, store: SessionStore) -> None:
        """Of many concurrent ``end`` calls on one session exactly one gets it back."""
        info = await new_session(store)
        reasons = list(EndReason) * 4
        results = await asyncio.gather(*(store.end(info.id, r, T0 + 1.0) for r in reasons))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert (await get_live(store, info.id)).end_reason is winners[0].session.end_reason

    async def test_end_claim_and_touch_racing_an_expiry_have_one_claimant(
        self, store: SessionStore
    ) -> None:
        """When claim_due, end and a late touch race for one expired session, exactly one wins."""
        infos = [await new_session(store, policy=SHORT_IDLE) for _ in range(5)]
        now = T0 + 120.0
        calls = []
        for info in infos:
            calls += [
                store.end(info.id, EndReason.ADMIN, now),
                store.touch(info.id, now, activity=True),
            ]
        calls += [store.claim_due(now, BIG), store.claim_due(now, BIG)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        wins: dict[SessionId, int] = {info.id: 0 for info in infos}
        for result in results:
            if isinstance(result, SessionEnded):
                continue
            assert not isinstance(result, BaseException), result
            if isinstance(result, Claim):
                assert isinstance(result.transition, Ended)
                wins[result.session.id] += 1
            elif isinstance(result, list):
                for claim in result:
                    assert isinstance(claim.transition, Ended)
                    wins[claim.session.id] += 1
        assert wins == {info.id: 1 for info in infos}

    async def test_concurrent_claim_due_calls_share_out_each_transition_once(
        self, store: SessionStore
    ) -> None:
        """Concurrent claim_due calls together return every due transition exactly once."""
        due = {(await new_session(store, policy=SHORT_IDLE)).id for _ in range(30)}
        batches = await asyncio.gather(*(store.claim_due(T0 + 100.0, 7) for _ in range(10)))
        claimed = [c.session.id for batch in batches for c in batch]
        assert len(claimed) == len(set(claimed))
        rest = await store.claim_due(T0 + 100.0, BIG)
        assert sorted(claimed + [c.session.id for c in rest]) == sorted(due)

    async def test_end_of_an_unknown_session_raises_not_found(self, store: SessionStore) -> None:
        """Ending an id the store never saw raises ``SessionNotFound``."""
        with pytest.raises(SessionNotFound):
            await store.end(new_session_id(), EndReason.ADMIN, T0)

    async def test_an_ended_session_is_never_claimed(self, store: SessionStore) -> None:
        """Once its end is completed, a session's deadlines are gone: claim_due never returns it."""
        info = await new_session(store, policy=WARN_IDLE)
        claim = await store.end(info.id, EndReason.CLIENT_ENDED, T0 + 1.0)
        assert claim is not None
        assert await store.complete(info.id, claim.fence)
        for at in (80.0, 100.0, 10_000.0):
            assert await store.claim_due(T0 + at, BIG) == []

    # -- attach / detach ----------------------------------------------------------

    async def test_attach_and_detach_count_connections(self, store: SessionStore) -> None:
        """Each attach adds a connection and each detach removes one."""
        info = await new_session(store)
        assert (await store.attach(info.id, T0 + 1.0)).connections == 1
        attached = await store.attach(info.id, T0 + 2.0)
        assert (attached.connections, attached.last_seen) == (2, T0 + 2.0)
        await store.detach(info.id, T0 + 3.0)
        after = await get_live(store, info.id)
        assert (after.connections, after.last_seen) == (1, T0 + 3.0)
        await store.detach(info.id, T0 + 4.0)
        assert (await get_live(store, info.id)).connections == 0

    async def test_an_attached_connection_holds_presence(self, store: SessionStore) -> None:
        """While a connection is attached the presence clock does not run."""
        policy = Policy(idle_timeout=600.0, warn_before=0.0, presence_timeout=30.0)
        info = await new_session(store, policy=policy)
        await store.attach(info.id, T0)
        assert await store.claim_due(T0 + 500.0, BIG) == []
        assert (await get_live(store, info.id)).state is ACTIVE

    async def test_attach_after_the_presence_grace_does_not_revive_the_session(
        self, store: SessionStore
    ) -> None:
        """A reattach after presence ran out (end due, unclaimed) still ends it client_gone."""
        info = await new_session(store, policy=Policy(presence_timeout=60.0))
        # refusing the attach is fine too; the claim below is what matters
        with contextlib.suppress(SessionEnded):
            await store.attach(info.id, T0 + 70.0)
        claims = await store.claim_due(T0 + 70.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.CLIENT_GONE)]}

    async def test_attach_of_unknown_or_ended_sessions_raises(self, store: SessionStore) -> None:
        """Attaching to an unknown id raises not-found; to an ended one, ended with its reason."""
        with pytest.raises(SessionNotFound):
            await store.attach(new_session_id(), T0)
        info = await new_session(store)
        await store.end(info.id, EndReason.ADMIN, T0)
        with pytest.raises(SessionEnded) as caught:
            await store.attach(info.id, T0 + 1.0)
        assert caught.value.reason is EndReason.ADMIN

    async def test_detach_of_the_last_connection_with_zero_presence_ends_at_once(
        self, store: SessionStore
    ) -> None:
        """presence_timeout=0: closing the last connection arms `now` and ends it client_gone."""
        info = await new_session(store, policy=QUIET)
        await store.attach(info.id, T0 + 1.0)
        await store.attach(info.id, T0 + 2.0)
        assert await store.detach(info.id, T0 + 5.0) is None  # one still attached
        assert await store.detach(info.id, T0 + 10.0) == T0 + 10.0
        assert await store.next_due() == T0 + 10.0
        claims = await store.claim_due(T0 + 10.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.CLIENT_GONE)]}
        assert claims[0].session.ended_at == T0 + 10.0

    async def test_zero_presence_does_not_end_a_never_attached_session(
        self, store: SessionStore
    ) -> None:
        """presence_timeout=0 only runs after a connection came and went."""
        info = await new_session(store, policy=QUIET)
        assert await store.claim_due(T0 + 599.0, BIG) == []
        claims = await store.claim_due(T0 + 600.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}

    async def test_detach_returns_the_earlier_presence_deadline(self, store: SessionStore) -> None:
        """Closing the last connection arms the presence end and returns it when it is earlier."""
        policy = Policy(idle_timeout=600.0, warn_before=0.0, presence_timeout=30.0)
        info = await new_session(store, policy=policy)
        await store.attach(info.id, T0)
        assert await store.claim_due(T0 + 30.0, BIG) == []  # attached: survives its first entry
        assert await store.detach(info.id, T0 + 100.0) == T0 + 130.0
        assert await store.claim_due(T0 + 129.0, BIG) == []
        claims = await store.claim_due(T0 + 130.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.CLIENT_GONE)]}

    async def test_detach_returns_none_when_no_deadline_moves_earlier(
        self, store: SessionStore
    ) -> None:
        """A detach whose presence end falls after the armed deadline arms nothing new."""
        policy = Policy(idle_timeout=100.0, warn_before=0.0, presence_timeout=500.0)
        info = await new_session(store, policy=policy)
        await store.attach(info.id, T0)
        assert await store.detach(info.id, T0 + 10.0) is None
        claims = await store.claim_due(T0 + 100.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}

    async def test_detach_after_the_session_ended_is_a_no_op(self, store: SessionStore) -> None:
        """A connection closing after its session ended is tolerated and arms nothing."""
        info = await new_session(store)
        await store.attach(info.id, T0)
        ended = await store.end(info.id, EndReason.CLIENT_ENDED, T0 + 1.0)
        assert ended is not None
        assert await store.detach(info.id, T0 + 2.0) is None
        assert await store.get(info.id) == ended.session

    # -- config / policy --------------------------------------------------------------

    async def test_update_config_replaces_the_config(self, store: SessionStore) -> None:
        """``update_config`` replaces the whole config; it does not merge."""
        info = await new_session(store, config={"a": 1, "b": 2})
        updated = await store.update_config(info.id, {"c": 3})
        assert updated.config == {"c": 3}
        assert (await get_live(store, info.id)).config == {"c": 3}
        assert (await store.update_config(info.id, {})).config == {}

    async def test_update_config_of_unknown_or_ended_sessions_raises(
        self, store: SessionStore
    ) -> None:
        """Config updates to unknown or ended sessions raise not-found or ended."""
        with pytest.raises(SessionNotFound):
            await store.update_config(new_session_id(), {"a": 1})
        info = await new_session(store)
        await store.end(info.id, EndReason.ADMIN, T0)
        with pytest.raises(SessionEnded):
            await store.update_config(info.id, {"a": 1})

    async def test_update_policy_with_a_shorter_idle_moves_the_deadline_earlier(
        self, store: SessionStore
    ) -> None:
        """A shorter idle timeout arms and returns the earlier deadline, which is then claimed."""
        info = await new_session(store, policy=QUIET)
        assert await store.update_policy(info.id, SHORT_IDLE, T0 + 10.0) == T0 + 100.0
        assert (await get_live(store, info.id)).policy == SHORT_IDLE
        assert await store.next_due() == T0 + 100.0
        claims = await store.claim_due(T0 + 100.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}

    async def test_update_policy_returns_an_earlier_warning(self, store: SessionStore) -> None:
        """When the shorter policy warns first, the warning time is what gets armed."""
        info = await new_session(store, policy=QUIET)
        assert await store.update_policy(info.id, WARN_IDLE, T0 + 10.0) == T0 + 80.0
        claims = await store.claim_due(T0 + 80.0, BIG)
        assert transitions(claims) == {info.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)]}

    async def test_update_policy_with_a_longer_idle_postpones_the_end(
        self, store: SessionStore
    ) -> None:
        """A longer idle timeout arms nothing new, and the old deadline no longer ends it."""
        info = await new_session(store, policy=SHORT_IDLE)
        assert await store.update_policy(info.id, QUIET, T0 + 10.0) is None
        assert await store.claim_due(T0 + 100.0, BIG) == []
        claims = await store.claim_due(T0 + 600.0, BIG)
        assert transitions(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}

    async def test_update_policy_of_unknown_or_ended_sessions_raises(
        self, store: SessionStore
    ) -> None:
        """Policy updates to unknown or ended sessions raise not-found or ended."""
        with pytest.raises(SessionNotFound):
            await store.update_policy(new_session_id(), QUIET, T0)
        info = await new_session(store)
        await store.end(info.id, EndReason.ADMIN, T0)
        with pytest.raises(SessionEnded):
            await store.update_policy(info.id, SHORT_IDLE, T0 + 1.0)

    # -- transcript ------------------------------------------------------------------

    async def test_append_assigns_consecutive_seqs_from_one(self, store: SessionStore) -> None:
        """Appended messages get seq 1, 2, 3 and keep role, content, time and metadata."""
        info = await new_session(store)
        m1 = await store.append(info.id, Role.USER, "hi", None, T0 + 1.0)
        m2 = await store.append(info.id, Role.ASSISTANT, "hello", {"model": "x"}, T0 + 2.0)
        m3 = await store.append(info.id, Role.TOOL, "", None, T0 + 3.0)
        assert [m.seq for m in (m1, m2, m3)] == [1, 2, 3]
        assert m1 == Message(1, Role.USER, "hi", T0 + 1.0, None)
        assert m2 == Message(2, Role.ASSISTANT, "hello", T0 + 2.0, {"model": "x"})
        assert (await get_live(store, info.id)).message_count == 3
        assert await store.transcript(info.id) == [m1, m2, m3]

    async def test_transcripts_are_per_session(self, store: SessionStore) -> None:
        """Each session numbers and keeps its own messages."""
        a = await new_session(store)
        b = await new_session(store)
        await store.append(a.id, Role.USER, "a1", None, T0)
        mb = await store.append(b.id, Role.USER, "b1", None, T0)
        await store.append(a.id, Role.USER, "a2", None, T0)
        assert mb.seq == 1
        assert [m.content for m in await store.transcript(a.id)] == ["a1", "a2"]
        assert [m.content for m in await store.transcript(b.id)] == ["b1"]

    async def test_transcript_slices_with_after_and_limit(self, store: SessionStore) -> None:
        """``transcript(after=, limit=)`` returns at most ``limit`` messages with seq > after."""
        info = await new_session(store)
        for i in range(5):
            await store.append(info.id, Role.USER, f"m{i + 1}", None, T0 + i)

        async def seqs(**kwargs: Any) -> list[int]:
            return [m.seq for m in await store.transcript(info.id, **kwargs)]

        assert await seqs() == [1, 2, 3, 4, 5]
        assert await seqs(after=2) == [3, 4, 5]
        assert await seqs(limit=2) == [1, 2]
        assert await seqs(after=1, limit=2) == [2, 3]
        assert await seqs(after=4, limit=10) == [5]
        assert await seqs(after=5) == []
        assert await seqs(after=99) == []
        assert await seqs(limit=0) == []

    async def test_transcript_of_a_new_session_is_empty(self, store: SessionStore) -> None:
        """A session with no messages has an empty transcript."""
        info = await new_session(store)
        assert await store.transcript(info.id) == []

    async def test_transcript_of_an_unknown_session_raises_not_found(
        self, store: SessionStore
    ) -> None:
        """Reading the transcript of an id the store never saw raises ``SessionNotFound``."""
        with pytest.raises(SessionNotFound):
            await store.transcript(new_session_id())

    async def test_append_to_an_ended_session_raises_and_keeps_its_transcript(
        self, store: SessionStore
    ) -> None:
        """An ended session refuses appends, but its retained transcript is still readable."""
        info = await new_session(store)
        kept = await store.append(info.id, Role.USER, "last words", None, T0)
        await store.end(info.id, EndReason.CLIENT_ENDED, T0 + 1.0)
        with pytest.raises(SessionEnded) as caught:
            await store.append(info.id, Role.USER, "too late", None, T0 + 2.0)
        assert caught.value.reason is EndReason.CLIENT_ENDED
        assert await store.transcript(info.id) == [kept]
        assert (await get_live(store, info.id)).message_count == 1

    async def test_append_to_an_unknown_session_raises_not_found(self, store: SessionStore) -> None:
        """Appending to an id the store never saw raises ``SessionNotFound``."""
        with pytest.raises(SessionNotFound):
            await store.append(new_session_id(), Role.USER, "x", None, T0)

    # -- list / stats ------------------------------------------------------------------

    async def test_list_filters_by_user_oldest_first(self, store: SessionStore) -> None:
        """``list(user=)`` returns only that user's live sessions, oldest first."""
        a1 = await new_session(store, user=U1, now=T0)
        b1 = await new_session(store, user=U2, now=T0 + 1.0)
        a2 = await new_session(store, user=U1, now=T0 + 2.0)
        assert [s.id for s in await store.list(user=U1)] == [a1.id, a2.id]
        assert [s.id for s in await store.list(user=U2)] == [b1.id]
        assert await store.list(user=UserId("nobody")) == []
        assert [s.id for s in await store.list()] == [a1.id, b1.id, a2.id]

    async def test_list_filters_by_state(self, store: SessionStore) -> None:
        """``list(state=)`` tells warning from active sessions; live lists exclude ended ones."""
        # distinct creation times: a sharded store orders by time across shards
        active = await new_session(store, policy=QUIET, now=T0 - 0.001)
        warned = await new_session(store, policy=WARN_IDLE, now=T0)
        gone = await new_session(store, policy=QUIET, now=T0)
        await store.claim_due(T0 + 80.0, BIG)
        await store.end(gone.id, EndReason.ADMIN, T0 + 81.0)
        assert [s.id for s in await store.list(state=ACTIVE)] == [active.id]
        assert [s.id for s in await store.list(state=WARNING)] == [warned.id]
        assert [s.id for s in await store.list()] == [active.id, warned.id]
        ended = await store.list(state=ENDED)
        assert [(s.id, s.end_reason) for s in ended] == [(gone.id, EndReason.ADMIN)]

    async def test_list_ended_returns_retained_ended_sessions_oldest_first(
        self, store: SessionStore
    ) -> None:
        """``list(state=ended)`` returns every retained ended session, by user if asked."""
        a = await new_session(store, user=U1, now=T0)
        b = await new_session(store, user=U2, now=T0 + 1.0)
        c = await new_session(store, user=U1, now=T0 + 2.0)
        live = await new_session(store, user=U1, now=T0 + 3.0)
        await store.end(a.id, EndReason.ADMIN, T0 + 10.0)
        await store.end(b.id, EndReason.CLIENT_ENDED, T0 + 11.0)
        await store.end(c.id, EndReason.ERROR, T0 + 12.0)
        assert [s.id for s in await store.list(state=ENDED)] == [a.id, b.id, c.id]
        assert [s.id for s in await store.list(user=U1, state=ENDED)] == [a.id, c.id]
        assert all(s.state is ENDED for s in await store.list(state=ENDED))
        assert [s.id for s in await store.list(user=U1)] == [live.id]

    async def test_stats_count_live_sessions_and_their_creation_span(
        self, store: SessionStore
    ) -> None:
        """``stats`` reports the live count and the oldest and newest live creation times."""
        assert await store.stats() == StoreStats(0, None, None)
        first = await new_session(store, now=T0)
        await new_session(store, user=U2, now=T0 + 5.0)
        await new_session(store, now=T0 + 9.0)
        assert await store.stats() == StoreStats(3, T0, T0 + 9.0)
        await store.end(first.id, EndReason.ADMIN, T0 + 10.0)
        assert await store.stats() == StoreStats(2, T0 + 5.0, T0 + 9.0)

    # -- per-user limit --------------------------------------------------------------------

    async def test_create_with_max_per_user_replaces_the_oldest(self, store: SessionStore) -> None:
        """At the per-user limit, create ends that user's oldest as replaced and returns it."""
        old = await new_session(store, user=U1, now=T0)
        other = await new_session(store, user=U2, now=T0 + 1.0)
        mid = await new_session(store, user=U1, now=T0 + 2.0)
        record = make_record(user=U1, now=T0 + 3.0)
        created = await store.create(record, max_per_user=2)
        assert isinstance(created, Created)
        assert [
            (c.session.id, c.session.state, c.transition, c.fence) for c in created.replaced
        ] == [(old.id, ENDED, Ended(EndReason.REPLACED), 1)]
        assert created.replaced[0].session.ended_at == T0 + 3.0
        assert (await get_live(store, old.id)).end_reason is EndReason.REPLACED
        assert [s.id for s in await store.list(user=U1)] == [mid.id, record.id]
        assert (await get_live(store, other.id)).state is ACTIVE
        assert [s.id for s in await store.list(user=U2)] == [other.id]

    async def test_create_with_max_one_replaces_all_of_the_users_sessions(
        self, store: SessionStore
    ) -> None:
        """``max_per_user=1`` ends every earlier session of that user, oldest first."""
        first = await new_session(store, user=U1, now=T0)
        second = await new_session(store, user=U1, now=T0 + 1.0)
        other = await new_session(store, user=U2, now=T0 + 1.5)
        created = await store.create(make_record(user=U1, now=T0 + 2.0), max_per_user=1)
        assert [c.session.id for c in created.replaced] == [first.id, second.id]
        assert [s.id for s in await store.list(user=U1)] == [created.session.id]
        assert [s.id for s in await store.list(user=U2)] == [other.id]

    async def test_create_below_the_limit_replaces_nothing(self, store: SessionStore) -> None:
        """Under the per-user limit (or with none), create ends nothing."""
        await new_session(store, user=U1)
        created = await store.create(make_record(user=U1), max_per_user=2)
        assert created.replaced == []
        for _ in range(5):
            assert (await store.create(make_record(user=U1), max_per_user=None)).replaced == []
        assert len(await store.list(user=U1)) == 7

    async def test_replaced_sessions_belong_to_the_creator_alone(self, store: SessionStore) -> None:
        """A replaced (and completed) session is never claimed again and no later end wins it."""
        old = await new_session(store, user=U1, policy=SHORT_IDLE)
        created = await store.create(make_record(user=U1, now=T0 + 1.0), max_per_user=1)
        assert await store.end(old.id, EndReason.ADMIN, T0 + 2.0) is None
        assert await store.complete(old.id, created.replaced[0].fence)
        claimed = await store.claim_due(T0 + 10_000.0, BIG)
        assert old.id not in transitions(claimed)

    # -- housekeeping --------------------------------------------------------------------------

    async def test_ping_answers_and_aclose_releases(self, store: SessionStore) -> None:
        """An open store answers ``ping``; ``aclose`` completes (and may be repeated)."""
        assert await store.ping() is None
        await store.aclose()


class TestStoreContract(StoreContract):
    """The contract, run once per factory in ``STORE_FACTORIES``."""
