"""The core alone, MemoryStore and RedisStore agree on every state and deadline of random histories.

Each history is one session's life: touches (activity or heartbeat),
attaches and detaches, busy marks opened and closed, claims of whatever is
due, and ends, at random times.
The core is driven directly (:class:`SessionRecord` and its rules, applied
the way the store contract describes); the two stores are driven through
their public API. After every step all three must show the same session:
state, warning, next deadline, the three clocks' ends, timestamps and
connections. A rule written again outside the core, and drifting, fails here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_kit import RedisServer, flush
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import BusyEffect, SessionInfo, SessionRecord, TouchEffect
from tether.errors import SessionEnded, SessionNotFound
from tether.store.base import SessionStore
from tether.store.memory import MemoryStore
from tether.store.redis import RedisStore
from tether.types import EndReason, UserId

T0 = 1_700_000_000.0
Step = tuple[float, str, Any]
"""``(seconds after the previous step, operation, argument)``."""

# Half-second steps: every time is exact both as a float and in Redis's microseconds.
# Mostly short gaps, so that steps land inside warnings and presence graces.
_gaps = st.one_of(st.integers(0, 8), st.integers(0, 120)).map(lambda n: n / 2)
_steps = st.tuples(
    _gaps,
    st.sampled_from(
        ["touch", "touch", "attach", "detach", "busy", "busy", "claim", "claim", "end"]
    ),
    st.sampled_from([True, False]),
)
_policies = st.builds(
    Policy,
    idle_timeout=st.sampled_from([40.0, 100.0]),
    warn_before=st.sampled_from([0.0, 15.0]),
    max_duration=st.sampled_from([90.0, 300.0]),
    presence_timeout=st.sampled_from([0.0, 15.0]),
)


def _view(info: SessionInfo | None) -> tuple[Any, ...] | None:
    """What must agree: everything the core decides or derives about the session."""
    if info is None:
        return None
    return (
        info.state,
        info.warning,
        info.next_deadline,
        info.deadlines(),
        info.last_seen,
        info.last_activity,
        info.connections,
        info.busy,
        info.ended_at,
        info.end_reason,
    )


class CoreOnly:
    """The core's rules applied directly, as the store contract describes a store applying them."""

    def __init__(self, record: SessionRecord) -> None:
        self.record = record

    def step(self, op: str, flag: bool, now: float) -> None:
        r = self.record
        if op == "touch":
            # A touch cannot revive a session whose clock ran out: the end applies.
            expired = r.expired(now) is not None
            if expired or r.touch(now, activity=flag) is TouchEffect.REVIEW:
                r.advance(now)
        elif op == "attach":
            if r.expired(now) is None:  # refused once a clock has run out
                r.attach(now)
        elif op == "detach":
            r.detach(now)
        elif op == "busy":  # flag: open a mark, else close one
            # Like a touch, a mark cannot revive a session whose clock ran out.
            if r.expired(now) is not None or r.set_busy(now, flag) is BusyEffect.REVIEW:
                r.advance(now)
        elif op == "claim":
            r.advance(now)
        else:
            r.finish(now, r.expired(now) or EndReason.ADMIN)


async def _store_step(
    store: SessionStore, record: SessionRecord, op: str, flag: bool, now: float
) -> None:
    """One step through the store's public API; refusals of an ended session change nothing."""
    sid = record.id
    try:
        if op == "touch":
            await store.touch(sid, now, activity=flag)
        elif op == "attach":
            await store.attach(sid, now)
        elif op == "detach":
            await store.detach(sid, now)
        elif op == "busy":
            await store.set_busy(sid, now, busy=flag)
        elif op == "claim":
            await store.claim_due(now, 100)
        else:
            await store.end(sid, EndReason.ADMIN, now)
    except (SessionEnded, SessionNotFound):
        pass


def _record(policy: Policy, heartbeat: bool) -> SessionRecord:
    record = SessionRecord(new_session_id(), UserId("u"), "chat", policy, T0)
    if heartbeat:  # a session started from a realtime connection signals presence at once
        record.touch(T0, activity=False)
    return record


def _copy(record: SessionRecord) -> SessionRecord:
    twin = SessionRecord(record.id, record.user, record.kind, record.policy, record.created_at)
    for name in SessionRecord.__slots__:
        setattr(twin, name, getattr(record, name))
    return twin


async def _agree(url: str, policy: Policy, heartbeat: bool, steps: list[Step]) -> None:
    record = _record(policy, heartbeat)
    core = CoreOnly(_copy(record))
    memory = MemoryStore()
    redis = RedisStore.from_url(url, prefix=f"agree-{uuid.uuid4().hex[:12]}:")
    stores: list[SessionStore] = [memory, redis]
    try:
        for store in stores:
            await store.create(_copy(record), max_per_user=None)
        now = T0
        for i, (gap, op, flag) in enumerate(steps):
            now += gap
            core.step(op, flag, now)
            for store in stores:
                await _store_step(store, record, op, flag, now)
            expected = _view(core.record.snapshot())
            for store in stores:
                got = _view(await store.get(record.id))
                assert got == expected, (
                    f"{type(store).__name__} after {steps[: i + 1]} from {policy}, {heartbeat=}"
                )
    finally:
        for store in stores:
            await store.aclose()


def _run(url: str) -> Callable[[Policy, bool, list[Step]], None]:
    def run(policy: Policy, heartbeat: bool, steps: list[Step]) -> None:
        asyncio.run(_agree(url, policy, heartbeat, steps))

    return run


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    policy=_policies,
    heartbeat=st.booleans(),
    steps=st.lists(_steps, min_size=1, max_size=25),
)
def test_core_memory_and_redis_agree_on_random_histories(
    redis_server: RedisServer, policy: Policy, heartbeat: bool, steps: list[Step]
) -> None:
    """Core, MemoryStore and RedisStore show the same states and deadlines after every step."""
    try:
        _run(redis_server.url)(policy, heartbeat, steps)
    finally:
        asyncio.run(flush(redis_server.url))
