"""RedisStore's own promises, against a real ``redis-server``.

The contract suite proves that RedisStore behaves like MemoryStore; these
tests prove what only a shared, remote store has to: scripts survive the
server forgetting them, failures surface as ``StoreUnavailable``, prefixes
isolate deployments, ended keys expire, several nodes claiming the same due
sessions get each transition exactly once, a dead claimer's lease runs out,
and concurrent touches share round trips.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from redis_kit import RedisServer, flush, start_redis_server
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import Ended, SessionInfo, SessionRecord, Transition, Warned
from tether.core.transcript import Role
from tether.errors import SessionEnded, StoreUnavailable
from tether.store.base import Claim, StoreStats
from tether.store.redis import RedisStore, codec
from tether.store.redis import nodes as redis_nodes_module
from tether.store.redis.claims import COMMIT_CHUNK
from tether.store.redis.codec import Field, text
from tether.store.redis.configs import ConfigCache
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
U1 = UserId("u1")
BIG = 10_000

QUIET = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)
SHORT_IDLE = Policy(idle_timeout=100.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)
WARN_IDLE = Policy(idle_timeout=100.0, warn_before=20.0, max_duration=1800.0, presence_timeout=0.0)


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    """The session-wide server's URL."""
    return redis_server.url


@asynccontextmanager
async def nodes(url: str, count: int = 1, **options: Any) -> AsyncIterator[list[RedisStore]]:
    """``count`` stores sharing one prefix, like the nodes of one deployment."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    stores = [RedisStore.from_url(url, prefix=prefix, **options) for _ in range(count)]
    try:
        yield stores
    finally:
        for store in stores:
            await store.aclose()
        await flush(url)


def node(url: str, **options: Any) -> AbstractAsyncContextManager[list[RedisStore]]:
    """One store (a one-element list, for ``async with node(url) as [store]``)."""
    return nodes(url, 1, **options)


async def add(
    store: RedisStore, *, user: UserId = U1, policy: Policy = QUIET, now: float = T0
) -> SessionInfo:
    """Create one session with no per-user limit."""
    record = SessionRecord(new_session_id(), user, "chat", policy, now)
    record.touch(now, activity=False)  # a client that signals presence
    return (await store.create(record, max_per_user=None)).session


def by_session(claims: list[Claim]) -> dict[SessionId, list[Transition]]:
    """Claimed transitions grouped by session."""
    out: dict[SessionId, list[Transition]] = {}
    for claim in claims:
        out.setdefault(claim.session.id, []).append(claim.transition)
    return out


# -- scripts --------------------------------------------------------------------


async def test_scripts_are_reloaded_after_script_flush(url: str) -> None:
    """After SCRIPT FLUSH every kind of call (single, batched, pipelined) reloads and works."""
    async with node(url) as [store]:
        warned = await add(store, policy=WARN_IDLE)
        ending = await add(store, policy=SHORT_IDLE)
        admin = redis.asyncio.from_url(url)
        try:
            await admin.script_flush()
            info = await add(store)  # a single script call
            await admin.script_flush()
            assert await store.touch(info.id, T0 + 1.0, activity=True) is None  # batched
            await admin.script_flush()
            claims = await store.claim_due(T0 + 80.0, BIG)  # claim, then pipelined commits
            assert by_session(claims) == {warned.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)]}
            await admin.script_flush()
            claims = await store.claim_due(T0 + 100.0, BIG)
            end = [Ended(EndReason.IDLE_TIMEOUT)]
            assert by_session(claims) == {warned.id: end, ending.id: end}
            scripts = store._scripts
            assert await admin.script_exists(scripts.claim.sha, scripts.apply.sha) == [True, True]
        finally:
            await admin.aclose()
        assert (await store.get(info.id)) is not None


# -- failures -------------------------------------------------------------------


@pytest.fixture
def doomed_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of its own, for a test that kills it."""
    server = start_redis_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def test_a_stopped_server_raises_store_unavailable(doomed_server: RedisServer) -> None:
    """With the server gone every call raises StoreUnavailable (caused by the RedisError)."""
    store = RedisStore.from_url(doomed_server.url, retry=Retry(NoBackoff(), 0))
    try:
        info = await add(store)
        doomed_server.kill()
        calls: list[Callable[[], Awaitable[object]]] = [
            store.ping,
            lambda: store.get(info.id),
            lambda: store.touch(info.id, T0 + 1.0, activity=True),
            lambda: store.attach(info.id, T0 + 1.0),
            lambda: store.detach(info.id, T0 + 1.0),
            lambda: store.append(info.id, Role.USER, "hi", None, T0 + 1.0),
            lambda: store.update_policy(info.id, SHORT_IDLE, T0 + 1.0),
            lambda: store.update_config(info.id, {"a": 1}),
            lambda: store.end(info.id, EndReason.ADMIN, T0 + 1.0),
            lambda: store.claim_due(T0 + 1.0, 10),
            store.next_due,
            store.list,
            store.stats,
            lambda: store.transcript(info.id),
            lambda: add(store),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            assert isinstance(caught.value.__cause__, RedisError | OSError)
    finally:
        await store.aclose()


# -- keys -----------------------------------------------------------------------


async def test_prefixes_isolate_deployments(url: str) -> None:
    """Two stores with different prefixes on one Redis see nothing of each other."""
    async with node(url) as [a], node(url) as [b]:
        info = await add(a, policy=SHORT_IDLE)
        await a.append(info.id, Role.USER, "hi", None, T0)
        assert await b.get(info.id) is None
        assert await b.list() == []
        assert (await b.stats()).live == 0
        assert await b.next_due() is None
        assert await b.claim_due(T0 + 1000.0, BIG) == []
        assert (await a.get(info.id)) is not None
        assert len(await a.claim_due(T0 + 100.0, BIG)) == 1


async def test_every_key_starts_with_the_prefix(url: str) -> None:
    """A store writes only keys under its prefix (the default is ``tether:``)."""
    admin = redis.asyncio.from_url(url)
    store = RedisStore(admin)
    try:
        info = await add(store)
        await store.append(info.id, Role.USER, "hi", None, T0)
        await store.end(info.id, EndReason.ADMIN, T0 + 1.0)
        keys = [k.decode() for k in await admin.keys("*")]
        assert keys
        assert all(k.startswith("tether:") for k in keys), keys
    finally:
        await store.aclose()
        await admin.flushdb()
        await admin.aclose()


async def test_ended_sessions_keys_expire_after_the_retention(url: str) -> None:
    """Ending (or replacing) a session sets its keys' TTL to the retention; live keys have none."""
    async with node(url, retention=120.0) as [store]:
        admin = redis.asyncio.from_url(url)
        try:
            ended = await add(store)
            await store.append(ended.id, Role.USER, "bye", None, T0)
            live = await add(store, user=UserId("u2"))
            await store.append(live.id, Role.USER, "hi", None, T0)
            await store.end(ended.id, EndReason.CLIENT_ENDED, T0 + 1.0)
            created = await store.create(
                SessionRecord(new_session_id(), UserId("u2"), "chat", QUIET, T0 + 2.0),
                max_per_user=1,
            )
            assert [c.session.id for c in created.replaced] == [live.id]
            prefix = store.prefix
            for session_id in (ended.id, live.id):
                for key in (f"{prefix}s:{session_id}", f"{prefix}m:{session_id}"):
                    assert 0 < await admin.pttl(key) <= 120_000, key
            fresh = created.session.id
            assert await admin.pttl(f"{prefix}s:{fresh}") == -1
        finally:
            await admin.aclose()


async def test_expired_ended_sessions_leave_the_ended_list(url: str) -> None:
    """Once an ended session's keys expire it is no longer listed, and the index forgets it."""
    async with node(url) as [store]:
        admin = redis.asyncio.from_url(url)
        try:
            first = await add(store)
            second = await add(store)
            await store.end(first.id, EndReason.ADMIN, T0 + 1.0)
            await store.end(second.id, EndReason.ADMIN, T0 + 2.0)
            await admin.delete(f"{store.prefix}s:{first.id}")  # as if its retention ran out
            assert [s.id for s in await store.list(state=SessionState.ENDED)] == [second.id]
            third = await add(store)
            await store.end(third.id, EndReason.ADMIN, T0 + 3.0)  # retiring prunes the index
            ended = [m.decode() for m in await admin.zrange(f"{store.prefix}ended", 0, -1)]
            assert ended == [second.id, third.id]
        finally:
            await admin.aclose()


async def test_a_live_hash_holds_no_id_and_no_empty_optional_field(url: str) -> None:
    """The key names the session; warning and end fields exist only while they say something."""
    async with node(url) as [store]:
        info = await add(store, policy=WARN_IDLE)
        key = f"{store.prefix}s:{info.id}"
        optional = {Field.WARNING_REASON, Field.ENDED_AT, Field.END_REASON}

        async def fields() -> set[str]:
            return {f.decode() for f in await store.client.hkeys(key)}

        assert not (await fields()) & (optional | {"id"})
        claims = await store.claim_due(T0 + 80.0, BIG)
        assert by_session(claims) == {info.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)]}
        assert (await fields()) & optional == {Field.WARNING_REASON}
        assert await store.touch(info.id, T0 + 81.0, activity=True) is not None  # extended
        assert not (await fields()) & optional  # the warning's reason was deleted
        await store.end(info.id, EndReason.ADMIN, T0 + 82.0)
        assert (await fields()) & optional == {Field.ENDED_AT, Field.END_REASON}


async def test_the_busy_count_is_a_hash_field_only_while_a_mark_is_open(url: str) -> None:
    """Field ``i`` holds the open marks' count; the last close and the end delete it."""
    async with node(url) as [store]:
        info = await add(store, policy=WARN_IDLE)
        key = f"{store.prefix}s:{info.id}"

        async def busy_field() -> str | None:
            value = await store.client.hget(key, Field.BUSY)
            return None if value is None else text(value)

        assert await busy_field() is None
        await store.set_busy(info.id, T0 + 1.0, busy=True)
        await store.set_busy(info.id, T0 + 2.0, busy=True)
        assert await busy_field() == "2"
        await store.set_busy(info.id, T0 + 3.0, busy=False)
        await store.set_busy(info.id, T0 + 4.0, busy=False)
        assert await busy_field() is None
        await store.set_busy(info.id, T0 + 5.0, busy=True)
        await store.end(info.id, EndReason.ADMIN, T0 + 6.0)  # end.lua: the marks die with it
        assert await busy_field() is None


async def test_the_live_index_spans_many_chunks(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over several chunks of the live index: listing order, stats and resume see every session.

    A chunk emptied by ends leaves the index; resume walks the chunks in
    creation order, in calls smaller than a chunk, visiting each session once.
    """
    monkeypatch.setattr(redis_nodes_module, "RESUME_CHUNK", 7)
    async with node(url) as [store]:
        infos = [await add(store, user=UserId(f"u{i}"), now=T0 + i) for i in range(250)]
        gone = infos[:5] + infos[95:215] + infos[-1:]  # chunk 1 (orders 100-199) empties
        for info in gone:
            await store.end(info.id, EndReason.ADMIN, T0 + 300.0)
        live = [info for info in infos if info not in gone]
        chunks = await store.client.zrange(store.prefix + "live", 0, -1)
        assert chunks == [b"0", b"2"]
        assert [s.id for s in await store.list()] == [s.id for s in live]
        assert await store.stats() == StoreStats(len(live), live[0].created_at, live[-1].created_at)
        assert await store.resume_presence(T0 + 400.0) == len(live)
        assert await store.resume_presence(T0 + 400.0) == 0
        for info in live:
            got = await store.get(info.id)
            assert got is not None
            assert got.last_seen == T0 + 400.0


async def test_times_round_trip_to_the_microsecond(url: str) -> None:
    """Times are whole microseconds: exact to six decimals, finer digits rounded."""
    async with node(url) as [store]:
        now = T0 + 0.123457
        info = await add(store, policy=SHORT_IDLE, now=now)
        await store.touch(info.id, now + 1e-6, activity=True)
        got = await store.get(info.id)
        assert got is not None
        assert (got.created_at, got.last_activity) == (now, now + 1e-6)
        assert await store.next_due() == now + 100.0
        assert await store.stats() == StoreStats(1, now, now)
        message = await store.append(info.id, Role.USER, "x", {"k": [1, 2]}, now + 2e-6)
        assert await store.transcript(info.id) == [message]
        # Stored as integers, which Redis keeps as 64-bit ints (and Lua exactly).
        raw = await store.client.hget(store.prefix + "s:" + info.id, Field.CREATED_AT)
        assert raw == b"1700000000123457"
        score = await store.client.zscore(store.prefix + "due", info.id)
        assert score == 1700000100123457
        # A float finer than a microsecond comes back rounded to one.
        await store.touch(info.id, T0 + 10.1 + 0.2, activity=True)  # T0 + 10.30000000000001
        got = await store.get(info.id)
        assert got is not None
        assert got.last_activity == T0 + 10.3
        await store.touch(info.id, T0 + 20.0000004, activity=False)
        got = await store.get(info.id)
        assert got is not None
        assert got.last_seen == T0 + 20.0


async def test_policies_round_trip_exactly(url: str) -> None:
    """Whole and fractional timeouts both read back exactly from the compact encoding."""
    odd = Policy(idle_timeout=0.1 + 0.2, warn_before=0.0, max_duration=1e9, presence_timeout=7.5)
    async with node(url) as [store]:
        for policy in (QUIET, odd, Policy()):
            info = await add(store, policy=policy)
            got = await store.get(info.id)
            assert got is not None
            assert got.policy == policy


@pytest.mark.parametrize(
    "config",
    [
        {"topic": "system design interview", "model": "gpt-4o-mini", "voice": "alloy" * 20},
        {"prompt": "é€😀 " * 40, "n": [1, 2, 3]},
    ],
    ids=["ascii", "multibyte"],
)
async def test_a_long_config_keeps_the_hash_compact_and_round_trips(
    url: str, config: dict[str, Any]
) -> None:
    """A config over 64 bytes is interned, then inlined in pieces on end: hashes stay listpack."""
    async with nodes(url, 2) as [store, other]:
        record = SessionRecord(new_session_id(), U1, "chat", QUIET, T0, config)
        info = (await store.create(record, max_per_user=None)).session
        key = store.prefix + "s:" + info.id
        assert await store.client.object("encoding", key) == b"listpack"
        assert await config_keys(store) == [Field.CONFIG_REF]
        for reader in (store, other):  # other fetches the interned value
            got = await reader.get(info.id)
            assert got is not None
            assert got.config == config
        for new in ({"short": 1}, None, config):  # a short one is inline, no stale field left
            assert (await store.update_config(info.id, new or {})).config == (new or {})
            got = await store.get(info.id)
            assert got is not None
            assert got.config == (new or {})
            assert await store.client.object("encoding", key) == b"listpack"
            inline = new != config
            assert await config_keys(store) == [Field.CONFIG if inline else Field.CONFIG_REF]
            assert await store.client.exists(interned_key(store, config)) == (not inline)
        claim = await store.end(info.id, EndReason.ADMIN, T0 + 1.0)
        assert claim is not None
        assert claim.session.config == config
        assert await store.client.object("encoding", key) == b"listpack"
        assert len(await config_keys(store)) > 1  # in pieces
        for reader in (store, other):
            got = await reader.get(info.id)
            assert got is not None
            assert got.config == config


LONG = {"model": "gpt-4o-mini", "voice": "alloy", "lang": "en-US", "topic": "interview"}
LONGER = {**LONG, "topic": "system design interview"}


def interned_key(store: RedisStore, config: dict[str, Any]) -> str:
    """The key an interned config is stored under."""
    return store.prefix + "cfg:" + codec.config_ref(codec.encode_config(config))


async def config_keys(store: RedisStore, session_id: SessionId | None = None) -> list[str]:
    """The config fields (``j``, ``j1``..., ``g``) of a session's hash (the only one if None)."""
    if session_id is None:
        [key] = await store.client.keys(store.prefix + "s:*")
    else:
        key = store.prefix + "s:" + session_id
    fields = [text(f) for f in await store.client.hkeys(key)]
    return sorted(f for f in fields if f[0] in (Field.CONFIG, Field.CONFIG_REF) and f != "c")


async def references(store: RedisStore, config: dict[str, Any]) -> int | None:
    """How many live sessions refer to interned ``config`` (None: not stored)."""
    count = await store.client.hget(interned_key(store, config), "n")
    return None if count is None else int(count)


async def add_with(store: RedisStore, config: dict[str, Any], user: UserId = U1) -> SessionInfo:
    """Create one session with ``config``."""
    record = SessionRecord(new_session_id(), user, "chat", QUIET, T0, config)
    return (await store.create(record, max_per_user=None)).session


async def test_equal_long_configs_are_stored_once_until_the_last_live_one_ends(url: str) -> None:
    """Live sessions count references to an interned config; the last to end deletes it."""
    async with node(url) as [store]:
        first, second = [await add_with(store, LONG, UserId(f"u{i}")) for i in range(2)]
        assert await references(store, LONG) == 2
        end = await store.end(first.id, EndReason.ADMIN, T0 + 1.0)
        assert end is not None
        assert await store.complete(first.id, end.fence)
        assert await references(store, LONG) == 1  # survives one of its sessions ending
        got = await store.get(second.id)
        assert got is not None
        assert got.config == LONG
        ended = await store.get(first.id)
        assert ended is not None
        assert ended.config == LONG  # its hash holds it inline now
        claims = await store.claim_due(T0 + 600.0, BIG)  # second times out: the last one
        assert by_session(claims) == {second.id: [Ended(EndReason.IDLE_TIMEOUT)]}
        assert claims[0].session.config == LONG
        assert await references(store, LONG) is None
        assert await store.client.exists(interned_key(store, LONG)) == 0
        for info in (first, second):
            got = await store.get(info.id)
            assert got is not None
            assert got.config == LONG
        again = await add_with(store, LONG)  # stored again from scratch
        assert await references(store, LONG) == 1
        got = await store.get(again.id)
        assert got is not None
        assert got.config == LONG


async def test_a_config_update_moves_the_reference(url: str) -> None:
    """Updating a shared config takes a reference to the new one and drops the old one."""
    async with node(url) as [store]:
        first, second = [await add_with(store, LONG, UserId(f"u{i}")) for i in range(2)]
        await store.update_config(first.id, LONGER)
        assert (await references(store, LONG), await references(store, LONGER)) == (1, 1)
        await store.update_config(first.id, LONGER)  # the same: nothing moves
        assert (await references(store, LONG), await references(store, LONGER)) == (1, 1)
        await store.update_config(second.id, LONGER)
        assert (await references(store, LONG), await references(store, LONGER)) == (None, 2)
        for info in (first, second):
            got = await store.get(info.id)
            assert got is not None
            assert got.config == LONGER
        await store.update_config(second.id, {"lang": "en"})
        assert await references(store, LONGER) == 1
        assert await config_keys(store, second.id) == [Field.CONFIG]


async def test_a_replaced_session_drops_its_reference(url: str) -> None:
    """A session ended by create.lua (over the per-user limit) releases its config too."""
    async with node(url) as [store]:
        old = await add_with(store, LONG)
        record = SessionRecord(new_session_id(), U1, "chat", QUIET, T0 + 1.0, {"lang": "en"})
        created = await store.create(record, max_per_user=1)
        assert [c.session.id for c in created.replaced] == [old.id]
        assert created.replaced[0].session.config == LONG
        assert await references(store, LONG) is None


async def test_a_short_config_stays_inline(url: str) -> None:
    """A config of up to 64 bytes of JSON is stored in the session's hash, not interned."""
    async with node(url) as [store]:
        config = {"k": "x" * (64 - len('{"k":""}'))}
        assert len(codec.encode_config(config)) == 64
        info = await add_with(store, config)
        assert await config_keys(store, info.id) == [Field.CONFIG]
        assert await store.client.keys(store.prefix + "cfg:*") == []
        got = await store.get(info.id)
        assert got is not None
        assert got.config == config


async def test_a_reader_whose_interned_config_is_gone_reads_the_sessions_own(url: str) -> None:
    """A reference read just before its session ended resolves from the ended hash."""
    async with nodes(url, 2) as [store, other]:
        info = await add_with(store, LONG)
        live = await store.client.hgetall(store.prefix + "s:" + info.id)
        await store.end(info.id, EndReason.ADMIN, T0 + 1.0)
        fresh = ConfigCache(other.client, other.prefix)  # a fresh cache: must fetch
        loaded = await fresh.decode(info.id, live)
        assert loaded.record.config == LONG
        assert loaded.record.state is SessionState.ACTIVE


async def test_a_claim_larger_than_a_commit_chunk_hands_out_each_transition_once(
    url: str,
) -> None:
    """More due sessions than one apply.lua call commits: every end is claimed once, fenced."""
    async with node(url) as [store]:
        count = 2 * COMMIT_CHUNK + 7
        ids = {(await add(store, policy=SHORT_IDLE)).id for _ in range(count)}
        claims = await store.claim_due(T0 + 100.0, BIG)
        assert sorted(c.session.id for c in claims) == sorted(ids)
        assert {c.transition for c in claims} == {Ended(EndReason.IDLE_TIMEOUT)}
        assert {c.fence for c in claims} == {1}
        assert await store.claim_due(T0 + 100.0, BIG) == []
        assert await store.next_due() == T0 + 100.0 + store.end_lease  # the end leases


async def test_a_store_on_a_given_decoding_client_works_and_leaves_it_open(url: str) -> None:
    """``RedisStore(client)`` works on a ``decode_responses`` client and does not close it."""
    client = redis.asyncio.from_url(url, decode_responses=True)
    try:
        store = RedisStore(client, prefix=f"test-{uuid.uuid4().hex[:8]}:")
        info = await add(store, policy=WARN_IDLE)
        await store.touch(info.id, T0 + 1.0, activity=False)
        message = await store.append(info.id, Role.USER, "héllo", {"n": 1}, T0 + 2.0)
        assert await store.transcript(info.id) == [message]
        claims = await store.claim_due(T0 + 80.0, BIG)
        assert by_session(claims) == {info.id: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)]}
        assert [s.id for s in await store.list(user=U1)] == [info.id]
        assert (await store.stats()).live == 1
        await store.attach(info.id, T0 + 85.0)
        assert (await store.attach(info.id, T0 + 85.0)).connections == 2
        assert await store.detach(info.id, T0 + 86.0) is None  # one is still attached
        assert await store.keepalive(T0 + 86.0)
        ended = await store.end(info.id, EndReason.ADMIN, T0 + 90.0)
        assert ended is not None
        assert ended.session.end_reason is EndReason.ADMIN
        assert await store.next_due() == T0 + 90.0 + store.end_lease
        assert await store.complete(info.id, ended.fence)
        assert await store.next_due() is None
        await store.leave(T0 + 91.0)
        await store.aclose()
        assert await client.ping()
    finally:
        await client.flushdb()
        await client.aclose()


# -- claims across nodes ----------------------------------------------------------


async def test_two_nodes_claiming_concurrently_get_each_transition_once(url: str) -> None:
    """Two nodes racing claim_due over the same due sessions share out every transition once."""
    async with nodes(url, 2) as [a, b]:
        warned = [(await add(a, policy=WARN_IDLE)).id for _ in range(30)]
        ending = [(await add(b, policy=SHORT_IDLE)).id for _ in range(30)]
        seen: dict[SessionId, list[Transition]] = {}
        for now in (T0 + 80.0, T0 + 100.0, T0 + 100.0):
            batches = await asyncio.gather(
                *(store.claim_due(now, 7) for store in (a, b) for _ in range(6))
            )
            for batch in batches:
                for session_id, found in by_session(batch).items():
                    seen.setdefault(session_id, []).extend(found)
                for claim in batch:
                    if claim.fence:
                        assert await a.complete(claim.session.id, claim.fence)
        end = Ended(EndReason.IDLE_TIMEOUT)
        assert seen == {
            **{i: [Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0), end] for i in warned},
            **{i: [end] for i in ending},
        }
        assert await a.claim_due(T0 + 10_000.0, BIG) == []
        assert await b.next_due() is None


async def test_a_session_touched_between_lease_and_commit_is_decided_again(url: str) -> None:
    """A touch landing mid-claim makes the claimer re-decide: no stale warning, re-armed later."""
    async with nodes(url, 2) as [a, b]:
        info = await add(a, policy=WARN_IDLE)  # warning due at +80
        commit = a._link.run

        async def touch_first(calls: Any) -> list[Any]:
            a._link.run = commit  # type: ignore[method-assign]
            await b.touch(info.id, T0 + 80.0, activity=True)  # moves the warning to +160
            return await commit(calls)

        a._link.run = touch_first  # type: ignore[method-assign]
        assert await a.claim_due(T0 + 80.0, BIG) == []
        got = await b.get(info.id)
        assert got is not None
        assert (got.state, got.last_activity) == (SessionState.ACTIVE, T0 + 80.0)
        assert await a.next_due() == T0 + 160.0


async def test_a_dead_claimers_sessions_come_due_after_the_lease(url: str) -> None:
    """Sessions leased by a claimer that never committed are claimed by others after the lease."""
    async with nodes(url, 2, claim_lease=30.0) as [dead, alive]:
        info = await add(dead, policy=SHORT_IDLE)
        # The dead node ran claim.lua, then crashed before committing anything.
        lease = await dead.lease_due(T0 + 100.0, BIG)
        assert (lease.ends, lease.ids) == ([], [info.id])
        assert await alive.next_due() == T0 + 130.0  # the batch's lease
        assert await alive.claim_due(T0 + 100.0, BIG) == []
        assert await alive.claim_due(T0 + 129.0, BIG) == []
        claims = await alive.claim_due(T0 + 130.0, BIG)
        assert by_session(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}
        ended = await alive.get(info.id)
        assert ended is not None
        assert ended.ended_at == T0 + 130.0


async def test_a_lease_moves_due_entries_into_one_batch_until_settled(url: str) -> None:
    """lease_due takes exactly the due entries out of the index into one batch; settle drops it."""
    async with node(url) as [store]:
        due = {(await add(store, policy=SHORT_IDLE)).id for _ in range(5)}
        quiet = await add(store)
        lease = await store.lease_due(T0 + 100.0, BIG)
        assert sorted(lease.ids) == sorted(due)
        raw = store.client
        assert await raw.zrange(store.prefix + "due", 0, -1) == [quiet.id.encode()]
        assert sorted(m.decode() for m in await raw.lrange(lease.batch, 0, -1)) == sorted(due)
        assert (await store.stats()).live == 6  # leased sessions are still live
        assert await store.claim_due(T0 + 100.0, BIG) == []  # nobody else sees them
        claims = await store.settle(lease, T0 + 100.0)
        assert sorted(c.session.id for c in claims) == sorted(due)
        assert not await raw.exists(lease.batch)
        assert await raw.zcard(store.prefix + "claims") == 0
        assert (await store.stats()).live == 1


async def test_a_batch_taken_over_mid_settle_gives_each_transition_once(url: str) -> None:
    """A claimer that settled half its batch and died: the taker decides the rest, once each."""
    async with nodes(url, 2, claim_lease=30.0) as [dead, alive]:
        ids = [(await add(dead, policy=SHORT_IDLE)).id for _ in range(6)]
        lease = await dead.lease_due(T0 + 100.0, BIG)
        half = lease._replace(batch="", ids=lease.ids[:3])  # commits without dropping the batch
        first = await dead.settle(half, T0 + 100.0)
        for claim in first:  # their end pipelines ran (else the end leases run out too)
            assert await dead.complete(claim.session.id, claim.fence)
        assert await alive.claim_due(T0 + 129.0, BIG) == []  # still leased
        rest = await alive.claim_due(T0 + 130.0, BIG)
        assert sorted(c.session.id for c in first + rest) == sorted(ids)
        assert {c.transition for c in first + rest} == {Ended(EndReason.IDLE_TIMEOUT)}
        for claim in rest:
            assert await alive.complete(claim.session.id, claim.fence)
        # The slow claimer's late drop does not touch the batch the taker now holds.
        assert await dead.settle(lease, T0 + 131.0) == []
        assert await alive.client.zcard(alive.prefix + "claims") == 0
        assert await alive.claim_due(T0 + 10_000.0, BIG) == []


async def test_a_leased_session_ended_meanwhile_is_skipped_when_settled(url: str) -> None:
    """A session ended (by a call) between lease and settle is not decided or claimed again."""
    async with node(url) as [store]:
        gone = await add(store, policy=SHORT_IDLE)
        due = await add(store, policy=SHORT_IDLE)
        lease = await store.lease_due(T0 + 100.0, BIG)
        ended = await store.end(gone.id, EndReason.ADMIN, T0 + 100.0)
        assert ended is not None
        claims = await store.settle(lease, T0 + 100.0)
        assert by_session(claims) == {due.id: [Ended(EndReason.IDLE_TIMEOUT)]}
        assert not await store.client.exists(lease.batch)


async def test_touch_on_one_node_is_seen_by_claims_on_another(url: str) -> None:
    """A touch through one node re-arms (not ends) the session when another node claims it."""
    async with nodes(url, 2) as [a, b]:
        info = await add(a, policy=SHORT_IDLE)
        await a.touch(info.id, T0 + 50.0, activity=True)
        assert await b.claim_due(T0 + 100.0, BIG) == []
        assert await b.next_due() == T0 + 150.0
        with pytest.raises(SessionEnded):
            await b.attach(info.id, T0 + 150.0)
        claims = await b.claim_due(T0 + 150.0, BIG)
        assert by_session(claims) == {info.id: [Ended(EndReason.IDLE_TIMEOUT)]}


# -- touch batching -----------------------------------------------------------------


async def test_concurrent_touches_share_pipelines(url: str) -> None:
    """300 concurrent touches take one or two round trips (batched), and all are recorded."""
    async with node(url) as [store]:
        ids = [(await add(store, user=UserId(f"u{i}"))).id for i in range(50)]
        before = (store.touches.batches, store.touches.items)
        touches = [
            store.touch(session_id, T0 + 1.0 + k, activity=k % 2 == 0)
            for k in range(6)
            for session_id in ids
        ]
        assert await asyncio.gather(*touches) == [None] * 300
        round_trips = store.touches.batches - before[0]
        assert store.touches.items - before[1] == 300
        assert 1 <= round_trips <= 2
        for session_id in ids:
            got = await store.get(session_id)
            assert got is not None
            assert (got.last_activity, got.last_seen) == (T0 + 5.0, T0 + 6.0)


def test_redis_field_names_are_the_same_in_python_and_lua() -> None:
    """codec.Field and prelude.lua's F table name every hash field alike, each once.

    The scripts and the codec read and write the same hashes; a name changed
    on one side only would make one of them read nothing, and two fields
    sharing a name would overwrite each other.
    """
    prelude = files("tether.store").joinpath("lua/prelude.lua").read_text()
    table = prelude[prelude.index("local F = {") : prelude.index("}", prelude.index("local F = {"))]
    lua = dict(re.findall(r"^\s*(\w+) = '([^']*)',", table, re.MULTILINE))
    python = {name.lower(): value for name, value in vars(Field).items() if name.isupper()}
    assert lua == python
    assert len(set(python.values())) == len(python), "two fields share one hash name"
