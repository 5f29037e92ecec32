"""Nodes watch the store's epoch: a Redis emptied under them ends what they hold, once.

In-process nodes on the session's real ``redis-server`` and a fake clock; the
store is emptied with FLUSHDB (what a restart without persistence leaves),
which drops no connection, so only the epoch check can notice it.
"""

from __future__ import annotations

import yaml

from archive_kit import FlakyArchive
from tether.core.epoch import EpochVerdict
from tether.core.events import SessionEndedEvent
from tether.runtime.manager import EPOCH_INTERVAL
from tether.testing import RecordingChannel, eventually
from tether.types import EndReason

from .conftest import ClusterFactory


async def test_a_node_learns_the_epoch_at_open_and_sees_a_flush_as_a_loss_once(
    cluster_of: ClusterFactory,
) -> None:
    """Open seeds/learns the epoch; checks say ok until FLUSHDB, then lost once, then ok again."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        watch_a, watch_b = a.manager.store_epoch, b.manager.store_epoch
        assert watch_a is not None
        assert watch_b is not None
        assert watch_a.epoch is not None
        assert watch_a.epoch == watch_b.epoch
        assert await watch_a.check() is EpochVerdict.OK
        old = watch_a.epoch
        await c.flush()
        assert await watch_a.check() is EpochVerdict.LOST
        assert (watch_a.losses, watch_a.lost_at) == (1, c.clock.now())
        assert watch_a.epoch != old
        assert await watch_b.check() is EpochVerdict.LOST  # b reads a's new epoch
        assert watch_b.epoch == watch_a.epoch
        assert await watch_a.check() is EpochVerdict.OK
        assert watch_a.losses == 1


async def test_the_timer_ends_held_sessions_the_store_lost_and_spares_new_ones(
    cluster_of: ClusterFactory,
) -> None:
    """Within one check interval: lost session told error, closed 1011, archived; a new one kept."""
    async with cluster_of("a") as c:
        [a] = c.nodes
        ended: list[tuple[str, EndReason | None]] = []
        a.manager.on_ended(lambda info: ended.append((info.id, info.end_reason)))
        lost = await a.manager.start("alice")
        held = RecordingChannel()
        await a.manager.attach(lost.id, held)
        await a.manager.append(lost.id, "user", "hello")
        await a.manager.append(lost.id, "assistant", "hi")
        await c.idle()

        await c.flush()
        # Started and attached after the loss, before any check: the store knows it.
        fresh = await a.manager.start("bob")
        kept = RecordingChannel()
        await a.manager.attach(fresh.id, kept)
        await c.advance(EPOCH_INTERVAL)

        await eventually(lambda: held.closed is not None)
        assert held.closed == (1011, "error")
        [event] = [e for e in held.events if isinstance(e, SessionEndedEvent)]
        assert event.reason is EndReason.ERROR
        [path] = c.archives("alice")
        doc = yaml.safe_load(path.read_text())
        assert event.archive_id == path.stem
        assert doc["end_reason"] == "error"
        assert [m["content"] for m in doc["messages"]] == ["hello", "hi"]
        assert ended == [(lost.id, EndReason.ERROR)]
        assert kept.closed is None
        assert (await a.manager.get(fresh.id)).end_reason is None
        metrics = await a.manager.metrics()
        assert (metrics.store_losses, metrics.sessions_lost) == (1, 1)
        assert metrics.ended_by_reason.get(EndReason.ERROR) == 1


async def test_a_lost_session_whose_archive_fails_is_archived_on_a_retry(
    cluster_of: ClusterFactory,
) -> None:
    """The disk refuses the lost session's archive twice: retried from the node's copy, once."""
    async with cluster_of("a") as c:
        [a] = c.nodes
        flaky = FlakyArchive(c.data_dir, failures=2)  # retried after 1 s, then 2 s
        a.manager.archiver = flaky
        session = await a.manager.start("alice")
        channel = RecordingChannel()
        await a.manager.attach(session.id, channel)
        await a.manager.append(session.id, "user", "keep me")
        await c.idle()
        await c.flush()
        assert a.manager.store_epoch is not None
        await a.manager.store_epoch.check()
        assert channel.closed == (1011, "error")
        assert flaky.attempts == 1
        assert c.archives("alice") == []
        await c.advance(1)
        assert flaky.attempts == 2
        await c.advance(2)
        assert flaky.attempts == 3
        [path] = c.archives("alice")
        assert "keep me" in path.read_text()
        await c.advance(10)
        assert flaky.attempts == 3
