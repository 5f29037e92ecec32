"""Events decided on one node reach the connections attached on every other node.

Node A holds the channels; node B decides (its manager starts the session, so
its scheduler is the one poked for the session's deadlines, and node A polls
rarely). Everything B decides reaches A's channel over the event bus, once;
an end on B returns only after A has closed its channels.
"""

from __future__ import annotations

from tether.core.events import SessionConfig, SessionEndedEvent, SessionWarning, TranscriptAppended
from tether.core.session import SessionInfo
from tether.testing import RecordingChannel, eventually
from tether.types import EndReason, SessionId, SessionState

from .conftest import Cluster, ClusterFactory, Node

QUIET_POLL = 10_000.0  # node A's scheduler wakes only for its own deadlines (and node leases)


async def two_nodes(c: Cluster) -> tuple[Node, Node]:
    """Node ``a`` (holds channels, rarely polls) and node ``b`` (decides)."""
    return await c.add("a", poll_interval=QUIET_POLL), await c.add("b")


async def on_a(a: Node, session: SessionInfo) -> RecordingChannel:
    """A channel attached to ``session`` on node ``a``."""
    channel = RecordingChannel()
    await a.manager.attach(session.id, channel)
    return channel


async def test_a_config_change_on_b_reaches_a_channel_on_a(cluster_of: ClusterFactory) -> None:
    """update_config on node B is sent as session.config to the channel attached on node A."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        session = await b.manager.start("alice", config={"voice": "calm"})
        channel = await on_a(a, session)
        await b.manager.update_config(session.id, {"voice": "brisk"})
        await eventually(lambda: len(channel.events) == 2)
        assert channel.events == [
            SessionConfig({"voice": "calm"}),
            SessionConfig({"voice": "brisk"}),
        ]


async def test_a_message_appended_on_b_reaches_a_channel_on_a(cluster_of: ClusterFactory) -> None:
    """A transcript message appended through node B arrives at node A's channel with its seq."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        session = await b.manager.start("alice")
        channel = await on_a(a, session)
        message = await b.manager.append(session.id, "user", "hello", {"lang": "en"})
        await eventually(lambda: channel.types()[-1:] == ["transcript.message"])
        assert channel.events[-1] == TranscriptAppended(message)
        assert message.seq == 1


async def test_a_warning_decided_on_b_and_its_clearing_reach_a(cluster_of: ClusterFactory) -> None:
    """B's scheduler warns, A's channel gets session.warning; activity on B sends session.active."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        warned: list[SessionId] = []
        b.manager.on_warning(lambda info: warned.append(info.id))
        await c.advance(2.5)  # off the nodes' keepalive beat: only B wakes at the warning
        session = await b.manager.start("alice")
        channel = await on_a(a, session)
        await c.advance(480)
        await eventually(lambda: channel.types()[-1:] == ["session.warning"])
        assert warned == [session.id]
        warning = channel.events[-1]
        assert isinstance(warning, SessionWarning)
        assert (warning.reason, warning.ends_at) == (EndReason.IDLE_TIMEOUT, c.clock.now() + 120)
        assert warning.seconds_left == 120
        await b.manager.activity(session.id)
        await eventually(lambda: channel.types()[-1:] == ["session.active"])


async def test_an_idle_end_decided_on_b_closes_a_channel_on_a(cluster_of: ClusterFactory) -> None:
    """B's scheduler ends the session idle; A's channel gets session.ended and closes 4001."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        ended: list[SessionId] = []
        b.manager.on_ended(lambda info: ended.append(info.id))
        await c.advance(2.5)
        session = await b.manager.start("alice")
        channel = await on_a(a, session)
        await c.advance(600)
        await eventually(lambda: channel.closed is not None)
        assert channel.closed == (4001, "idle_timeout")
        assert channel.types()[-1] == "session.ended"
        assert ended == [session.id]
        assert len(c.archives("alice")) == 1


async def test_end_on_b_returns_after_a_closed_its_channel(cluster_of: ClusterFactory) -> None:
    """manager.end on node B returns only once node A has sent session.ended and closed."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        session = await a.manager.start("alice")
        channel = await on_a(a, session)
        await b.manager.append(session.id, "user", "last words")
        assert await b.manager.end(session.id)
        assert channel.closed == (1000, "client_ended")  # no waiting: acknowledged
        [ended] = [e for e in channel.events if isinstance(e, SessionEndedEvent)]
        assert ended.reason is EndReason.CLIENT_ENDED
        assert ended.archive_id is not None
        assert channel.types()[-2:] == ["transcript.message", "session.ended"]  # order kept
        assert a.manager.connections(session.id) == 0


async def test_an_admin_cleanup_on_b_closes_every_channel_on_a(
    cluster_of: ClusterFactory,
) -> None:
    """end_many on node B returns once node A closed the channels of every session it ended."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        sessions = [await a.manager.start(f"user{i}") for i in range(3)]
        channels = [await on_a(a, s) for s in sessions]
        assert await b.manager.end_many([s.id for s in sessions], EndReason.ADMIN) == 3
        assert [ch.closed for ch in channels] == [(4004, "admin")] * 3


async def test_the_deciding_node_delivers_each_event_once(cluster_of: ClusterFactory) -> None:
    """Channels on the publishing node get its events once (its own bus messages are skipped)."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        session = await b.manager.start("alice")
        local = RecordingChannel()
        await b.manager.attach(session.id, local)
        remote = await on_a(a, session)
        await b.manager.update_config(session.id, {"n": 1})
        await b.manager.append(session.id, "assistant", "hi")
        await eventually(lambda: len(remote.events) == 3)
        await c.idle()
        assert (
            local.types()
            == remote.types()
            == [
                "session.config",
                "session.config",
                "transcript.message",
            ]
        )


async def test_heartbeats_and_a_reconnect_on_another_node_keep_the_session(
    cluster_of: ClusterFactory,
) -> None:
    """A client moving from node A to node B inside the grace resumes; B's heartbeats keep it."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        session = await a.manager.start("alice")
        first = await on_a(a, session)
        await c.advance(10)
        await a.manager.detach(session.id, first)  # the page reloads ...
        await c.advance(50)
        second = RecordingChannel()
        await b.manager.attach(session.id, second)  # ... and lands on node B, inside 60 s
        await b.manager.detach(session.id, second)
        for _ in range(4):  # the tab stays open on B: heartbeats only
            await c.advance(30)
            await b.manager.heartbeat(session.id)
        info = await a.manager.get(session.id)
        assert info.state is SessionState.ACTIVE
        await c.advance(60)
        info = await a.manager.get(session.id)
        assert info.end_reason is EndReason.CLIENT_GONE


async def test_a_reply_streamed_on_b_reaches_a_channel_on_a(cluster_of: ClusterFactory) -> None:
    """reply.delta and app events from node B cross the bus to node A; one message stored."""
    async with cluster_of() as c:
        a, b = await two_nodes(c)
        session = await b.manager.start("alice")
        channel = await on_a(a, session)
        await b.manager.send_app(session.id, "speaking", {"on": True})
        async with b.manager.reply(session.id) as reply:
            await reply.delta("Hello ")
            await eventually(lambda: "reply.delta" in channel.types())
            await reply.delta("there")
        await eventually(lambda: channel.types()[-1:] == ["transcript.message"])
        wire = channel.wire()
        assert {"type": "app", "name": "speaking", "data": {"on": True}} in wire
        pieces = [w["text"] for w in wire if w["type"] == "reply.delta"]
        assert "".join(pieces) == "Hello there"
        assert [m.content for m in await a.manager.transcript(session.id)] == ["Hello there"]
