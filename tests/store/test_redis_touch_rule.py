"""``touch.lua``'s fast path follows the core's touch rule, case by case.

The touch rule is the core's (:func:`tether.core.session.touch_effect`). A
touch is the hottest write and must stay one round trip, so ``touch.lua``
takes the one case that needs no decision inside Redis: it records the touch
itself when the core would say ``RECORDED`` and the session's armed entry
lies after ``now`` (no clock can have run out), and hands every other case
back to Python. Lua cannot call the core, so this test drives both through
the same cases and requires the same outcome and the same stored fields.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from redis_kit import RedisServer, flush
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import SessionRecord, TouchEffect, touch_effect
from tether.store.redis import RedisStore, codec
from tether.store.redis.codec import Field, num, text
from tether.types import SessionState, UserId

T0 = 1_700_000_000.0
POLICY = Policy(idle_timeout=100.0, warn_before=20.0, max_duration=1800.0, presence_timeout=1000.0)
CASES = list(
    itertools.product(
        [SessionState.ACTIVE, SessionState.WARNING],  # state
        [False, True],  # ever_heartbeat
        [False, True],  # activity
        [False, True],  # at the armed entry (else before it)
    )
)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    """A RedisStore on the session's server, flushed afterwards."""
    s = RedisStore.from_url(redis_server.url, prefix="rule:")
    try:
        yield s
    finally:
        await s.aclose()
        await flush(redis_server.url)


@pytest.mark.parametrize(("state", "heartbeat", "activity", "at_armed"), CASES)
async def test_touch_lua_records_exactly_what_the_core_calls_recorded(
    store: RedisStore, state: SessionState, heartbeat: bool, activity: bool, at_armed: bool
) -> None:
    """touch.lua records a touch iff the core says RECORDED before the armed entry, as it would."""
    record = SessionRecord(new_session_id(), UserId("u"), "chat", POLICY, T0)
    if heartbeat:
        record.touch(T0, activity=False)
    await store.create(record, max_per_user=None)
    if state is SessionState.WARNING:
        assert [c.transition for c in await store.claim_due(T0 + 80.0, 10)]
        record.advance(T0 + 80.0)
    key = store.prefix + "s:" + record.id
    armed_at = codec.time_of(await store.client.hget(key, Field.ARMED_AT))
    now = armed_at if at_armed else armed_at - 5.0
    before = await store.client.hgetall(key)

    replies = await store._scripts.touch(keys=[key], args=[num(now), "1" if activity else "0", ""])

    effect = touch_effect(record.state, ever_heartbeat=record.ever_heartbeat, activity=activity)
    records = effect is TouchEffect.RECORDED and not at_armed
    after = await store.client.hgetall(key)
    if not records:
        assert text(replies[0][0]) == "S"  # handed back to Python, unchanged
        assert after == before
        return
    assert replies == [0]
    assert record.touch(now, activity=activity) is TouchEffect.RECORDED
    stored = codec.fields_of(after)
    assert codec.time_of(stored[Field.LAST_SEEN]) == record.last_seen
    assert codec.time_of(stored[Field.LAST_ACTIVITY]) == record.last_activity
    assert (Field.EVER_HEARTBEAT in stored) == record.ever_heartbeat
    assert stored[Field.STATE] == record.state.value
