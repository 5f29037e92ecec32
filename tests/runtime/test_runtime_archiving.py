"""The manager with a journal and an archive: every end archives once, appends are durable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tether.archive import records
from tether.archive.base import ArchivedDialog
from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.events import Event, SessionEndedEvent
from tether.core.ids import archive_id_for
from tether.core.policy import Policy
from tether.core.transcript import Message, Role
from tether.errors import ArchiveError, ConfigError, InvalidInput
from tether.runtime.manager import SessionManager
from tether.testing import FakeKit, RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionId, SessionState, UserId

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


class CountingArchive(YamlArchive):
    """A YamlArchive that remembers every session it was asked to archive."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.calls: list[SessionId] = []

    async def archive(self, dialog: ArchivedDialog) -> str:
        self.calls.append(dialog.session_id)
        return await super().archive(dialog)


class FailingArchive(YamlArchive):
    """An archive whose writes always fail, as a full disk would make them."""

    async def archive(self, dialog: ArchivedDialog) -> str:
        raise ArchiveError("disk full")


class Layout:
    """Where the manager's files for one data dir are."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def journal(self, user: str, session: SessionId) -> Path:
        return self.root / "users" / user / "dialogs" / "current" / session

    def archived(self, user: str = "alice") -> list[Path]:
        folder = self.root / "users" / user / "dialogs" / "archived"
        return sorted(folder.iterdir()) if folder.exists() else []

    def archive_file(self, user: str, archive_id: str) -> Path:
        return self.root / "users" / user / "dialogs" / "archived" / f"{archive_id}.yaml"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A fresh, existing data dir."""
    root = tmp_path / "data"
    root.mkdir()
    return Layout(root)


@asynccontextmanager
async def kit_on(
    layout: Layout, archiver: YamlArchive | None = None, **options: Any
) -> AsyncIterator[FakeKit]:
    """A fake-clock manager journaling and archiving into ``layout``."""
    async with fake_manager(
        policy=options.pop("policy", POLICY),
        journal=FileJournal(layout.root),
        archiver=archiver if archiver is not None else YamlArchive(layout.root),
        **options,
    ) as kit:
        yield kit


class WitnessChannel(RecordingChannel):
    """Records, at the moment session.ended arrives, whether the archive and journal exist."""

    def __init__(self, layout: Layout, user: str) -> None:
        super().__init__()
        self.layout = layout
        self.user = user
        self.session: SessionId | None = None
        self.at_end: tuple[bool, bool] | None = None

    async def send(self, event: Event) -> None:
        if isinstance(event, SessionEndedEvent) and self.session is not None:
            archive_id = event.archive_id or "0000-00-00-00-00-00-000000000000"
            self.at_end = (
                self.layout.archive_file(self.user, archive_id).exists(),
                self.layout.journal(self.user, self.session).exists(),
            )
        await super().send(event)


async def _end_by_client(kit: FakeKit, session: SessionId) -> None:
    await kit.manager.end(session)


async def _end_by_admin(kit: FakeKit, session: SessionId) -> None:
    await kit.manager.end(session, EndReason.ADMIN)


async def _end_by_idle(kit: FakeKit, session: SessionId) -> None:
    await kit.advance(600)


async def _end_by_max_duration(kit: FakeKit, session: SessionId) -> None:
    for _ in range(18):
        await kit.advance(100)
        if (await kit.manager.get(session)).state is SessionState.ENDED:
            return
        await kit.manager.activity(session)


async def _end_by_client_gone(kit: FakeKit, session: SessionId) -> None:
    channel = RecordingChannel()
    await kit.manager.attach(session, channel)
    await kit.manager.detach(session, channel)
    await kit.advance(60)


async def _end_by_replacement(kit: FakeKit, session: SessionId) -> None:
    await kit.manager.start("alice")


END_PATHS: list[tuple[EndReason, Callable[[FakeKit, SessionId], Awaitable[None]]]] = [
    (EndReason.CLIENT_ENDED, _end_by_client),
    (EndReason.ADMIN, _end_by_admin),
    (EndReason.IDLE_TIMEOUT, _end_by_idle),
    (EndReason.MAX_DURATION, _end_by_max_duration),
    (EndReason.CLIENT_GONE, _end_by_client_gone),
    (EndReason.REPLACED, _end_by_replacement),
]


@pytest.mark.parametrize(("reason", "trigger"), END_PATHS, ids=[r.value for r, _ in END_PATHS])
async def test_archiving_every_end_path_archives_exactly_once(
    layout: Layout,
    reason: EndReason,
    trigger: Callable[[FakeKit, SessionId], Awaitable[None]],
) -> None:
    """Each end reason: one archive call, one file with that reason, journal gone, ended event."""
    archive = CountingArchive(layout.root)
    async with kit_on(layout, archive, max_sessions_per_user=1) as kit:
        session = await kit.manager.start("alice", kind="interview", config={"v": 1})
        channel = WitnessChannel(layout, "alice")
        channel.session = session.id
        if reason is not EndReason.CLIENT_GONE:
            await kit.manager.attach(session.id, channel)  # holds presence
        await kit.manager.append(session.id, "user", "hello")
        await kit.manager.append(session.id, "assistant", "hi there", {"model": "m"})
        await trigger(kit, session.id)
        await kit.manager.wait_idle()
        assert archive.calls.count(session.id) == 1
        archive_id = archive_id_for(session.id, session.created_at)
        path = layout.archive_file("alice", archive_id)
        doc = yaml.safe_load(path.read_text())
        assert doc["end_reason"] == reason.value
        assert doc["session_id"] == session.id
        assert [m["content"] for m in doc["messages"]] == ["hello", "hi there"]
        assert doc["recovered"] is False
        assert not layout.journal("alice", session.id).exists()
        if reason is not EndReason.CLIENT_GONE:
            await settle()
            assert channel.wire()[-1] == {
                "type": "session.ended",
                "reason": reason.value,
                "archive_id": archive_id,
            }
            assert channel.at_end == (True, False)
    assert archive.calls.count(session.id) == 1  # closing the manager archives it no more


async def test_archiving_aclose_archives_every_live_session_as_server_shutdown(
    layout: Layout,
) -> None:
    """Closing the manager archives each live session once with server_shutdown; no journal left."""
    archive = CountingArchive(layout.root)
    channel = WitnessChannel(layout, "alice")
    async with kit_on(layout, archive, max_sessions_per_user=None) as kit:
        sessions = [await kit.manager.start(user) for user in ("alice", "alice", "bob")]
        channel.session = sessions[0].id
        await kit.manager.attach(sessions[0].id, channel)
        for session in sessions:
            await kit.manager.append(session.id, "user", f"from {session.id[:4]}")
    assert sorted(archive.calls) == sorted(s.id for s in sessions)
    for session in sessions:
        path = layout.archive_file(session.user, archive_id_for(session.id, session.created_at))
        assert yaml.safe_load(path.read_text())["end_reason"] == "server_shutdown"
        assert not layout.journal(session.user, session.id).exists()
    assert len(layout.archived("alice")) == 2
    assert len(layout.archived("bob")) == 1
    assert channel.at_end == (True, False)
    assert channel.wire()[-1]["archive_id"] == archive_id_for(
        sessions[0].id, sessions[0].created_at
    )


async def test_archiving_a_second_end_does_not_archive_again(layout: Layout) -> None:
    """end() twice, then close: the session is archived once and its file stays as written."""
    archive = CountingArchive(layout.root)
    async with kit_on(layout, archive) as kit:
        session = await kit.manager.start("alice")
        assert await kit.manager.end(session.id) is True
        first = layout.archived()[0].read_bytes()
        assert await kit.manager.end(session.id, EndReason.ADMIN) is False
    assert archive.calls == [session.id]
    assert [p.read_bytes() for p in layout.archived()] == [first]


async def test_archiving_append_returns_only_once_the_record_is_in_the_journal(
    layout: Layout,
) -> None:
    """Right after each awaited append, the journal file on disk already holds that message."""
    async with kit_on(layout) as kit:
        session = await kit.manager.start("alice", config={"v": 1})
        path = layout.journal("alice", session.id)
        header = records.decode(path.read_bytes()).header
        assert header is not None
        assert header["session_id"] == session.id
        sent = []
        for n, role in enumerate(["user", "assistant", "system", "tool", "user"], 1):
            sent.append(await kit.manager.append(session.id, role, f"line {n}", {"n": n}))
            assert records.decode(path.read_bytes()).messages == sent


@pytest.mark.parametrize(
    ("role", "content", "metadata"),
    [
        ("user", "\ud800", None),
        ("user", "ok \udfff tail", None),
        ("user", "ok", {"tags": {1, 2}}),
        ("user", "ok", {"x": float("nan")}),
        ("user", "ok", {"x": float("inf")}),
        ("user", "ok", {"x": object()}),
        ("user", "ok", {"\ud800": 1}),
        ("user", "ok", ["not", "an", "object"]),
        ("user", 5, None),
        ("wizard", "ok", None),
    ],
    ids=[
        "lone-surrogate",
        "low-surrogate",
        "set-metadata",
        "nan-metadata",
        "inf-metadata",
        "object-metadata",
        "surrogate-key",
        "list-metadata",
        "non-text",
        "bad-role",
    ],
)
async def test_archiving_invalid_content_is_refused_and_changes_nothing(
    layout: Layout, role: str, content: Any, metadata: Any
) -> None:
    """Content or metadata that cannot be stored: InvalidInput; count, transcript, journal same."""
    async with kit_on(layout) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "before")
        path = layout.journal("alice", session.id)
        journal_before = path.read_bytes()
        with pytest.raises(InvalidInput):
            await kit.manager.append(session.id, role, content, metadata)
        assert (await kit.manager.get(session.id)).message_count == 1
        assert [m.content for m in await kit.manager.transcript(session.id)] == ["before"]
        assert path.read_bytes() == journal_before
        after = await kit.manager.append(session.id, "user", "after")
        assert after.seq == 2


async def _leave_a_crashed_journal(layout: Layout) -> SessionId:
    """A session journaled by a manager that died before ending it (journal closed, not removed)."""
    journal = FileJournal(layout.root)
    session = SessionId("feedc0de" * 4)
    await journal.begin(session, UserId("alice"), "interview", 1_700_000_000.0, {"v": 1})
    await journal.append(session, Message(1, Role.USER, "said before the crash", 1_700_000_001.0))
    await journal.aclose()
    return session


async def test_archiving_manager_recovers_a_crashed_journal_before_it_starts(
    layout: Layout,
) -> None:
    """open() archives a journal left by a crash: recovery report and metrics count one."""
    session = await _leave_a_crashed_journal(layout)
    async with kit_on(layout) as kit:
        assert kit.manager.recovery is not None
        assert kit.manager.recovery.recovered == 1
        assert (await kit.manager.metrics()).journals_recovered == 1
        assert not layout.journal("alice", session).exists()
        files = layout.archived()
        assert len(files) == 1
        doc = yaml.safe_load(files[0].read_text())
        assert doc["recovered"] is True
        assert doc["end_reason"] == "server_shutdown"
        assert [m["content"] for m in doc["messages"]] == ["said before the crash"]


async def test_archiving_a_clean_data_dir_recovers_nothing(layout: Layout) -> None:
    """A manager opened on a data dir without journals reports zero recovered."""
    async with kit_on(layout) as kit:
        assert kit.manager.recovery is not None
        assert kit.manager.recovery.recovered == 0
        assert (await kit.manager.metrics()).journals_recovered == 0


async def test_archiving_failure_keeps_the_journal_and_still_ends_the_session(
    layout: Layout,
) -> None:
    """An archiver raising ArchiveError: counted, journal kept, ended without archive_id."""
    ran: list[str] = []

    async def cleanup() -> None:
        ran.append("cleanup")

    async with kit_on(layout, FailingArchive(layout.root)) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.manager.add_cleanup(session.id, cleanup)
        await kit.manager.append(session.id, "user", "keep me")
        await kit.manager.end(session.id)
        await settle()
        metrics = await kit.manager.metrics()
        assert metrics.archive_failures == 1
        assert metrics.total_ended == 1
        assert (await kit.manager.get(session.id)).state is SessionState.ENDED
        assert channel.wire()[-1] == {"type": "session.ended", "reason": "client_ended"}
        assert channel.closed is not None
        assert ran == ["cleanup"]
        assert layout.journal("alice", session.id).exists()
    assert layout.archived() == []
    async with kit_on(layout) as kit:  # the next start-up archives what was kept
        assert kit.manager.recovery is not None
        assert kit.manager.recovery.recovered == 1
    assert not layout.journal("alice", session.id).exists()
    assert len(layout.archived()) == 1


def test_archiving_a_journal_without_an_archiver_is_a_config_error(layout: Layout) -> None:
    """SessionManager(journal=..., archiver=None) raises ConfigError: journals would pile up."""
    with pytest.raises(ConfigError, match="archiver"):
        SessionManager(journal=FileJournal(layout.root), archiver=None)


async def test_archiving_archiver_without_journal_still_archives_every_end(
    layout: Layout,
) -> None:
    """With only an archiver, ended sessions are still archived once, with their messages."""
    async with fake_manager(policy=POLICY, archiver=YamlArchive(layout.root)) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "hello")
        await kit.manager.end(session.id)
        files = layout.archived()
        assert len(files) == 1
        assert yaml.safe_load(files[0].read_text())["messages"][0]["content"] == "hello"
    assert not (layout.root / "users" / "alice" / "dialogs" / "current").exists()


@pytest.mark.parametrize(
    "config",
    [{"x": float("nan")}, {"x": {1, 2}}, {"\ud800": 1}, {"h": object()}],
    ids=["nan", "set", "surrogate", "object"],
)
async def test_archiving_start_with_a_config_that_cannot_be_stored_changes_nothing(
    layout: Layout, config: dict[str, Any]
) -> None:
    """start() with a non-JSON config raises InvalidInput; no session made, none replaced."""
    async with kit_on(layout, max_sessions_per_user=1) as kit:
        first = await kit.manager.start("alice")
        with pytest.raises(InvalidInput):
            await kit.manager.start("alice", config=config)
        await kit.manager.wait_idle()
        assert [s.id for s in await kit.manager.list()] == [first.id]
        assert (await kit.manager.get(first.id)).state is SessionState.ACTIVE
        assert (await kit.manager.metrics()).total_created == 1
    assert len(layout.archived()) == 1  # only the first session, at shutdown


async def test_archiving_update_config_that_cannot_be_stored_changes_nothing(
    layout: Layout,
) -> None:
    """update_config with a non-JSON config raises InvalidInput and the old config stays."""
    async with kit_on(layout) as kit:
        session = await kit.manager.start("alice", config={"v": 1})
        path = layout.journal("alice", session.id)
        before = path.read_bytes()
        for bad in ({"v": {1, 2}}, {"v": float("nan")}, {"v": object()}):
            with pytest.raises(InvalidInput):
                await kit.manager.update_config(session.id, bad)
        assert (await kit.manager.get(session.id)).config == {"v": 1}
        assert path.read_bytes() == before


class BrokenArchive(YamlArchive):
    """An archive with a bug: it raises something that is not a TetherError."""

    async def archive(self, dialog: ArchivedDialog) -> str:
        raise RuntimeError("archiver bug")


async def test_archiving_an_archiver_bug_never_breaks_the_end_pipeline(layout: Layout) -> None:
    """An archiver raising a non-Tether error: still ended, told, closed, cleaned up, counted."""
    ran: list[str] = []

    async def cleanup() -> None:
        ran.append("cleanup")

    async with kit_on(layout, BrokenArchive(layout.root)) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.manager.add_cleanup(session.id, cleanup)
        await kit.manager.end(session.id)
        await settle()
        assert channel.wire()[-1] == {"type": "session.ended", "reason": "client_ended"}
        assert channel.closed is not None
        assert ran == ["cleanup"]
        metrics = await kit.manager.metrics()
        assert (metrics.total_ended, metrics.archive_failures) == (1, 1)
        assert layout.journal("alice", session.id).exists()


async def test_archiving_works_on_a_data_dir_that_does_not_exist_yet(tmp_path: Path) -> None:
    """A fresh deployment (no data dir yet): sessions start, journal, and archive on end."""
    root = tmp_path / "data"  # like the default ./data on a fresh clone
    async with fake_manager(
        policy=POLICY, journal=FileJournal(root), archiver=YamlArchive(root)
    ) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "first words")
        assert Layout(root).journal("alice", session.id).exists()
        await kit.manager.end(session.id)
    assert len(Layout(root).archived()) == 1


async def test_archiving_an_append_the_journal_refuses_is_not_kept(layout: Layout) -> None:
    """A message the journal refuses raises ArchiveError, ends the session and is never kept."""
    async with fake_manager(
        policy=POLICY,
        journal=FileJournal(layout.root, max_open_files=1),
        archiver=YamlArchive(layout.root),
    ) as kit:
        first = await kit.manager.start("alice")
        await kit.manager.append(first.id, "user", "acknowledged")
        bob = await kit.manager.start("bob")
        await kit.manager.append(bob.id, "user", "hi")  # evicts alice's open journal file
        path = layout.journal("alice", first.id)
        path.rename(path.with_name("moved-away"))
        path.mkdir()  # reopening alice's journal now fails
        with pytest.raises(ArchiveError):
            await kit.manager.append(first.id, "user", "never acknowledged")
        path.rmdir()
        path.with_name("moved-away").rename(path)
        contents = [m.content for m in await kit.manager.transcript(first.id)]
        assert contents == ["acknowledged"]
        await kit.manager.wait_idle()
        info = await kit.manager.get(first.id)
        assert info.end_reason is EndReason.ERROR
    doc = yaml.safe_load(layout.archived("alice")[0].read_text())
    assert doc["end_reason"] == "error"
    assert [m["content"] for m in doc["messages"]] == ["acknowledged"]
