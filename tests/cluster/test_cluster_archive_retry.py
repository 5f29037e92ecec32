"""On Redis, a failed archive keeps its end leased to the node retrying it, until it is written."""

from __future__ import annotations

from pathlib import Path

from tether.archive.base import ArchivedDialog
from tether.archive.yaml_archive import YamlArchive
from tether.errors import ArchiveError
from tether.types import SessionId

from .conftest import END_LEASE, ClusterFactory


class FlakyArchive(YamlArchive):
    """A YamlArchive whose first ``failures`` writes raise (a full disk that then recovered)."""

    def __init__(self, data_dir: Path, failures: int) -> None:
        super().__init__(data_dir)
        self.failures = failures
        self.attempts = 0

    async def archive(self, dialog: ArchivedDialog) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ArchiveError("disk full")
        return await super().archive(dialog)


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
        ending = c.prefix + "ending"
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
