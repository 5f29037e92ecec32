"""A failed archive write keeps the end open and is retried with a backoff (fake clock).

The end pipeline still tells, closes, cleans up, counts and calls hooks once;
only the archive is retried (1 s, then doubling), and the end is completed in
the store once the archive is written. A manager that closes while retrying
leaves the end open and the journal on disk for the next start-up.
"""

from __future__ import annotations

from pathlib import Path

from archive_kit import FlakyArchive
from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.testing import FakeKit, RecordingChannel, fake_manager, settle
from tether.types import SessionId

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


def archived(root: Path, user: str = "alice") -> list[Path]:
    folder = root / "users" / user / "dialogs" / "archived"
    return sorted(folder.iterdir()) if folder.exists() else []


def journal(root: Path, session: SessionId, user: str = "alice") -> Path:
    return root / "users" / user / "dialogs" / "current" / session


async def step(kit: FakeKit, seconds: float) -> None:
    """Advance fake time, then wait for the archive writes it started (they run in threads)."""
    await kit.advance(seconds)
    await kit.manager.wait_idle()


async def is_open(kit: FakeKit, session: SessionId) -> bool:
    """Whether the end (fence 1) is still leased and not completed (renew answers so)."""
    await kit.manager.wait_idle()
    [held] = await kit.store.renew([(session, 1)], kit.clock.now())
    return held


async def test_a_failed_archive_is_retried_and_the_end_completes_once_it_is_written(
    tmp_path: Path,
) -> None:
    """Two failed writes: retried after 1 s and 2 s more; the end stays open until the third."""
    archive = FlakyArchive(tmp_path, failures=2)
    ended: list[SessionInfo] = []
    async with fake_manager(policy=POLICY, journal=FileJournal(tmp_path), archiver=archive) as kit:
        kit.manager.on_ended(ended.append)
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.manager.append(session.id, "user", "keep me")
        await kit.manager.end(session.id)
        await settle()
        # The pipeline ran: told, closed, counted, hooked; the end itself stays open.
        assert channel.wire()[-1] == {"type": "session.ended", "reason": "client_ended"}
        assert channel.closed is not None
        assert [i.id for i in ended] == [session.id]
        assert archive.attempts == 1
        assert await is_open(kit, session.id)
        await step(kit, 0.9)
        assert archive.attempts == 1
        await step(kit, 0.1)  # the first retry, 1 s after the failure: fails again
        assert archive.attempts == 2
        assert await is_open(kit, session.id)
        await step(kit, 1.9)
        assert archive.attempts == 2
        await step(kit, 0.1)  # the second retry, 2 s later: written
        assert archive.attempts == 3
        assert not await is_open(kit, session.id)  # completed
        [path] = archived(tmp_path)
        assert "keep me" in path.read_text()
        assert not journal(tmp_path, session.id).exists()
        metrics = await kit.manager.metrics()
        assert (metrics.total_ended, metrics.archive_failures) == (1, 2)
        assert [i.id for i in ended] == [session.id]  # hooks ran once, not per retry
        await step(kit, 600)
        assert archive.attempts == 3


async def test_retries_outlive_the_end_lease_without_running_the_pipeline_again(
    tmp_path: Path,
) -> None:
    """A write failing for minutes: the re-claimed end adopts the retry, nothing runs twice."""
    archive = FlakyArchive(tmp_path, failures=8)  # 1+2+4+...+60 s of retries
    ended: list[SessionInfo] = []
    async with fake_manager(policy=POLICY, journal=FileJournal(tmp_path), archiver=archive) as kit:
        kit.manager.on_ended(ended.append)
        session = await kit.manager.start("alice")
        other = await kit.manager.start("bob")
        await kit.manager.end(session.id)
        for _ in range(40):
            await step(kit, 10)  # bob's heartbeats keep the scheduler claiming
            await kit.manager.heartbeat(other.id)
        assert archive.attempts == 9
        assert len(archived(tmp_path)) == 1
        assert [i.id for i in ended] == [session.id]
        assert (await kit.manager.metrics()).total_ended == 1


async def test_closing_while_retrying_leaves_the_journal_for_the_next_start(
    tmp_path: Path,
) -> None:
    """A manager closed mid-retry stops retrying; the next start-up recovers the journal."""
    archive = FlakyArchive(tmp_path, failures=100)
    async with fake_manager(policy=POLICY, journal=FileJournal(tmp_path), archiver=archive) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "keep me")
        await kit.manager.end(session.id)
        await step(kit, 1)
        assert archive.attempts == 2
    assert kit.clock.pending() == []  # no retry left armed
    assert archived(tmp_path) == []
    assert journal(tmp_path, session.id).exists()
    async with fake_manager(
        policy=POLICY, journal=FileJournal(tmp_path), archiver=YamlArchive(tmp_path)
    ) as kit:
        assert kit.manager.recovery is not None
        assert kit.manager.recovery.recovered == 1
    assert len(archived(tmp_path)) == 1


async def test_an_archive_that_works_is_written_once_and_never_retried(tmp_path: Path) -> None:
    """No failure: one write, the end completed at once, no retry timer armed."""
    archive = FlakyArchive(tmp_path, failures=0)
    async with fake_manager(policy=POLICY, archiver=archive) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.end(session.id)
        await settle()
        assert not await is_open(kit, session.id)
        await step(kit, 600)
        assert archive.attempts == 1
