"""On Redis, a failed archive keeps its end leased to the node retrying it, until it is written."""

from __future__ import annotations

from archive_kit import FlakyArchive
from tether.types import SessionId

from .conftest import END_LEASE, ClusterFactory


async def test_a_failed_archive_is_retried_by_its_node_past_the_end_lease_and_written_once(
    cluster_of: ClusterFactory,
) -> None:
    """A's writes fail for 31 s (past the end lease): A keeps the end, archives it; B never runs."""
    async with cluster_of("a", "b") as c:
        a, b = c.nodes
        flaky = FlakyArchive(c.data_dir, failures=5)  # retried after 1, 2, 4, 8, 16 s
        a.manager.archiver = flaky
        on_b: list[SessionId] = []
        b.manager.on_ended(lambda info: on_b.append(info.id))
        session = await a.manager.start("alice")
        await a.manager.append(session.id, "user", "keep me")
        await a.manager.end(session.id)
        ended_at = c.clock.now()
        ending = a.store.keys_of(session.id).ending  # the session's shard's (one on one Redis)
        assert await a.store.client.zscore(ending, session.id) is not None  # still open
        for _ in range(6):
            await c.advance(5)
        assert flaky.attempts == 5
        assert c.archives("alice") == []
        assert await a.store.client.zscore(ending, session.id) is not None  # A renewed it
        assert c.clock.now() - ended_at >= END_LEASE  # past the lease: B could have taken it
        await c.advance(2)  # 31 s: the sixth write succeeds and the end completes
        assert flaky.attempts == 6
        [path] = c.archives("alice")
        assert "keep me" in path.read_text()
        assert await a.store.client.zscore(ending, session.id) is None
        await c.advance(3 * END_LEASE)
        assert on_b == []
        assert len(c.archives("alice")) == 1
        assert flaky.attempts == 6
