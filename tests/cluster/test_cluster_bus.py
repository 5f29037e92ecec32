"""The Redis event bus: ordered, never echoes, survives a killed connection and catches up.

Pub/sub forgets what a disconnected subscriber missed. These tests kill the
listening connections (``CLIENT KILL TYPE pubsub``) and check that each bus
subscribes again and reports it, and that a node then catches up from the
store: changes made while nothing was published reach its channels.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from redis_kit import RedisServer
from tether.core.events import SessionActive, SessionConfig, SessionWarning, TranscriptAppended
from tether.core.transcript import Role
from tether.runtime.bus import Ack, BusMessage, Close, Poke, Publish
from tether.runtime.store_bus import StoreBus
from tether.store.redis import RedisBroadcast
from tether.testing import RecordingChannel, eventually
from tether.types import EndReason, SessionId

from .conftest import ClusterFactory

SID = SessionId("0" * 32)


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client for poking at the server."""
    client = redis.asyncio.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def kill_listeners(admin: redis.asyncio.Redis) -> None:
    """Drop every pub/sub connection, as a network cut or a Redis restart would."""
    await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")


class Listener:
    """A StoreBus's callbacks, recorded."""

    def __init__(self) -> None:
        self.messages: list[BusMessage] = []
        self.reconnects = 0

    def on_message(self, message: BusMessage) -> None:
        self.messages.append(message)

    def on_reconnect(self) -> None:
        self.reconnects += 1


@pytest.fixture
async def buses(redis_server: RedisServer) -> AsyncIterator[list[tuple[StoreBus, Listener]]]:
    """Two started buses on one fresh channel, each with its own client."""
    channel = f"test-{uuid.uuid4().hex[:12]}:bus"
    out = []
    for _ in range(2):
        bus = StoreBus(
            RedisBroadcast(redis.asyncio.from_url(redis_server.url), channel, owns_client=True)
        )
        listener = Listener()
        await bus.start(listener.on_message, listener.on_reconnect)
        out.append((bus, listener))
    try:
        yield out
    finally:
        for bus, _ in out:
            await bus.aclose()


async def test_messages_arrive_in_order_and_never_back_at_their_publisher(
    buses: list[tuple[StoreBus, Listener]],
) -> None:
    """Every kind of message reaches the other bus in publication order; none echoes."""
    (one, heard_by_one), (_, heard_by_two) = buses
    sent: list[BusMessage] = [
        Publish(SID, SessionConfig({"a": 1})),
        Publish(SID, SessionActive()),
        Close(SID, EndReason.ADMIN, "arch", ("n1",), "ack1"),
        Ack("ack1", "n1"),
        Poke(12.5),
    ]
    for message in sent:
        one.publish(message)
    await one.flush()
    await eventually(lambda: len(heard_by_two.messages) == len(sent))
    assert heard_by_two.messages == sent
    assert heard_by_one.messages == []


async def test_a_bus_subscribes_again_after_its_connection_is_killed(
    buses: list[tuple[StoreBus, Listener]], admin: redis.asyncio.Redis
) -> None:
    """CLIENT KILL TYPE pubsub: each bus resubscribes, says so once, and hears messages again."""
    (one, heard_by_one), (two, heard_by_two) = buses
    await kill_listeners(admin)
    await eventually(lambda: one.reconnects == 1 and two.reconnects == 1)
    await eventually(lambda: one.listening and two.listening)
    assert (heard_by_one.reconnects, heard_by_two.reconnects) == (1, 1)
    one.publish(Poke(1.0))
    await eventually(lambda: heard_by_two.messages == [Poke(1.0)])


async def test_malformed_payloads_on_the_channel_are_dropped(
    buses: list[tuple[StoreBus, Listener]], admin: redis.asyncio.Redis
) -> None:
    """A foreign or garbled payload is counted and ignored; the bus keeps working."""
    (one, _), (two, heard_by_two) = buses
    await admin.publish(two.channel, b"not json")
    await admin.publish(two.channel, b'{"o": "x", "k": "?"}')
    one.publish(Poke(2.0))
    await eventually(lambda: heard_by_two.messages == [Poke(2.0)])
    assert two.dropped == 2


async def test_a_node_catches_up_on_what_it_missed_while_deaf(cluster_of: ClusterFactory) -> None:
    """Config, messages and a warning nobody published reach A's channel once its bus reconnects."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        session = await b.manager.start("alice")
        channel = RecordingChannel()
        await a.manager.attach(session.id, channel)
        # Through B's store directly: the store changes, the bus carries nothing.
        await b.store.update_config(session.id, {"voice": "calm"})
        await b.store.append(session.id, Role.USER, "one", None, c.clock.now())
        await b.store.append(session.id, Role.ASSISTANT, "two", None, c.clock.now())
        warned_at = c.clock.now() + 480
        await a.store.keepalive(warned_at)  # (A is alive then too: B must not reap it)
        await b.store.claim_due(warned_at, 100)  # the idle warning, applied silently
        await c.idle()
        assert channel.types() == ["session.config"]
        await c.kill_listeners()
        await eventually(lambda: len(channel.events) == 5)
        config, one, two, warning = channel.events[1:]
        assert config == SessionConfig({"voice": "calm"})
        assert isinstance(one, TranscriptAppended)
        assert isinstance(two, TranscriptAppended)
        assert (one.message.content, two.message.seq) == ("one", 2)
        assert isinstance(warning, SessionWarning)
        assert warning.ends_at == session.created_at + 600
        # and live delivery works again
        await b.manager.update_config(session.id, {"voice": "brisk"})
        await eventually(lambda: channel.events[-1] == SessionConfig({"voice": "brisk"}))


async def test_a_node_that_missed_an_end_closes_its_channels_when_it_catches_up(
    cluster_of: ClusterFactory,
) -> None:
    """An end nobody announced (its Close lost) is found in the store: session.ended, close."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        session = await b.manager.start("alice")
        channel = RecordingChannel()
        await a.manager.attach(session.id, channel)
        cleaned: list[str] = []

        async def cleanup() -> None:
            cleaned.append("done")

        await a.manager.add_cleanup(session.id, cleanup)
        await b.store.end(session.id, EndReason.ADMIN, c.clock.now())  # no pipeline, no Close
        await c.kill_listeners()
        await eventually(lambda: channel.closed is not None)
        assert channel.closed == (4004, "admin")
        assert channel.types()[-1] == "session.ended"
        await eventually(lambda: cleaned == ["done"])
