"""Nodes die, pause and leave; every session still ends once, for the right reason, archived once.

* a node that claimed an end and died before completing it: another node takes
  the end over after the end lease and archives it, exactly once;
* a node SIGKILLed while holding connections: its sessions end ``client_gone``
  one presence timeout after its last keepalive, unless their clients came
  back on another node;
* a node given up for dead while only paused re-attaches its connections;
* a node that stops gracefully ends nothing: its clients are closed with 1001
  and resume elsewhere.
"""

from __future__ import annotations

import asyncio

import yaml

from tether.core.events import SessionEndedEvent
from tether.testing import RecordingChannel, eventually
from tether.types import EndReason, SessionId, SessionState

from .conftest import END_LEASE, NODE_LEASE, ClusterFactory

BIG = 10_000


async def test_an_end_claimed_by_a_node_that_died_is_finished_once_by_another(
    cluster_of: ClusterFactory,
) -> None:
    """A claims the end and dies mid-pipeline; B re-claims it after the lease: one archive."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        finished: list[SessionId] = []
        b.manager.on_ended(lambda info: finished.append(info.id))
        session = await a.manager.start("alice", kind="interview")
        await a.manager.append(session.id, "user", "hello")
        await b.manager.append(session.id, "assistant", "hi, tell me about yourself")
        claim = await a.store.end(session.id, EndReason.CLIENT_ENDED, c.clock.now())
        assert claim is not None
        assert claim.fence == 1
        await c.kill(a)  # the pipeline never ran, nothing was completed
        await c.advance(END_LEASE - 1)
        assert finished == []
        await c.advance(1)
        await eventually(lambda: finished == [session.id])
        [path] = c.archives("alice")
        doc = yaml.safe_load(path.read_text())
        assert doc["end_reason"] == "client_ended"
        assert [m["content"] for m in doc["messages"]] == [
            "hello",
            "hi, tell me about yourself",
        ]
        assert not await b.store.complete(session.id, claim.fence)  # the dead claimant's
        await c.advance(10 * END_LEASE)
        assert finished == [session.id]  # completed by B: never handed out again
        assert len(c.archives("alice")) == 1


async def test_a_re_run_after_a_partial_pipeline_keeps_the_one_archive(
    cluster_of: ClusterFactory,
) -> None:
    """A archived and then died before completing; B's re-run writes no second archive."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        session = await a.manager.start("alice")
        await a.manager.append(session.id, "user", "one")
        claim = await a.store.end(session.id, EndReason.ADMIN, c.clock.now())
        assert claim is not None
        _, archived = await a.manager._ending._archive(claim.session, EndReason.ADMIN)
        assert archived
        [written] = c.archives("alice")
        before = written.read_bytes()
        await c.kill(a)
        await c.advance(END_LEASE)
        await c.idle()
        assert c.archives("alice") == [written]
        assert written.read_bytes() == before
        assert await b.store.claim_due(c.clock.now() + BIG, BIG) == []  # completed


async def test_sessions_of_a_killed_node_end_client_gone_after_the_presence_timeout(
    cluster_of: ClusterFactory,
) -> None:
    """SIGKILLed A's abandoned session ends client_gone on B; one whose client moved lives on."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        start = c.clock.now()
        abandoned = await a.manager.start("alice")
        moved = await a.manager.start("bob")
        for session in (abandoned, moved):
            await a.manager.attach(session.id, RecordingChannel())
        await c.advance(8)  # A's last keepalive is at +5: its lease runs out at +20
        await c.kill(a)
        await c.advance(10)
        back = RecordingChannel()
        await b.manager.attach(moved.id, back)  # bob's client reconnects through B
        await c.advance(5 + 60 - 18 - 0.5)  # just before last keepalive + presence timeout
        assert (await b.manager.get(abandoned.id)).state is SessionState.ACTIVE
        assert (await b.store.get(abandoned.id)).connections == 0  # type: ignore[union-attr]
        await c.advance(0.5)
        info = await b.manager.get(abandoned.id)
        assert (info.end_reason, info.ended_at) == (EndReason.CLIENT_GONE, start + 65)
        await eventually(lambda: len(c.archives("alice")) == 1)
        assert yaml.safe_load(c.archives("alice")[0].read_text())["end_reason"] == "client_gone"
        await c.advance(300)
        assert (await b.manager.get(moved.id)).state is SessionState.ACTIVE
        assert back.closed is None


async def test_a_paused_node_given_up_for_dead_attaches_its_connections_again(
    cluster_of: ClusterFactory,
) -> None:
    """A's keepalives stop (a long pause), B reaps it; when A resumes its channel counts again."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        session = await a.manager.start("alice")
        channel = RecordingChannel()
        await a.manager.attach(session.id, channel)
        cluster = a.manager._cluster
        assert cluster is not None
        assert cluster._keepalive is not None
        await cluster._keepalive.stop()  # the pause: A's event loop is stuck elsewhere
        await c.advance(NODE_LEASE + 10)
        assert (await b.store.get(session.id)).connections == 0  # type: ignore[union-attr]
        cluster._keepalive.start()  # A runs again
        await c.advance(NODE_LEASE / 3)
        assert (await b.store.get(session.id)).connections == 1  # type: ignore[union-attr]
        await c.advance(300)
        assert (await b.manager.get(session.id)).state is SessionState.ACTIVE
        assert channel.closed is None


async def test_a_node_stopping_ends_nothing_and_its_clients_resume_elsewhere(
    cluster_of: ClusterFactory,
) -> None:
    """A's graceful stop closes its channels 1001 and ends nothing; a client that moves resumes."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        resumed = await a.manager.start("alice")
        left = await a.manager.start("bob")
        channels = [RecordingChannel(), RecordingChannel()]
        await a.manager.attach(resumed.id, channels[0])
        await a.manager.attach(left.id, channels[1])
        stopped_at = c.clock.now()
        await c.stop(a)
        for channel in channels:
            assert channel.closed == (1001, "server_shutdown")
            assert not any(isinstance(e, SessionEndedEvent) for e in channel.events)
        assert (await b.manager.get(resumed.id)).state is SessionState.ACTIVE
        await c.advance(20)
        again = RecordingChannel()
        await b.manager.attach(resumed.id, again)
        await c.advance(60)
        info = await b.manager.get(left.id)
        assert (info.end_reason, info.ended_at) == (EndReason.CLIENT_GONE, stopped_at + 60)
        assert (await b.manager.get(resumed.id)).state is SessionState.ACTIVE


async def test_an_end_waits_bounded_for_a_dead_holder(cluster_of: ClusterFactory) -> None:
    """An end whose connection sits on a dead, unreaped node returns after the ack timeout."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        session = await a.manager.start("alice")
        await a.manager.attach(session.id, RecordingChannel())
        await c.kill(a)
        ack_timeout = 2 * 5.0 + 1  # the default: 2 * close_timeout + 1
        ending = asyncio.ensure_future(b.manager.end(session.id, EndReason.ADMIN))
        # B archives, then waits for A's acknowledgement on a fake-clock timer
        await eventually(lambda: c.clock.now() + ack_timeout in c.clock.pending())
        await c.clock.advance(ack_timeout - 0.5)  # settle only: the wait is B's
        assert not ending.done()
        await c.clock.advance(0.5)
        await eventually(ending.done)
        assert ending.result() is True
