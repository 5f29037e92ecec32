"""The journals' commit log: its format, its checkpoints, and recovery after a power cut.

A power cut is simulated by copying the data dir while the journal is live
(what the disk holds: the commit log, flushed) and then cutting the journal
files in the copy back, as if their unflushed pages had been lost.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tether.archive import commit_log, durable, records
from tether.archive.journal import FileJournal
from tether.archive.paths import DataDir
from tether.archive.recovery import _dialog, recover
from tether.archive.yaml_archive import YamlArchive
from tether.core.transcript import Message, Role
from tether.types import SessionId, UserId

T0 = 1_700_000_000.0
pytestmark = pytest.mark.skipif(durable.syncfs is None, reason="the commit log needs syncfs")


def sid(n: int) -> SessionId:
    """A valid session id, distinct per ``n``."""
    return SessionId(f"{n:032x}")


def msg(seq: int) -> Message:
    """Message ``seq`` at T0 + seq."""
    return Message(seq, Role.USER, f"line {seq}", T0 + seq)


@pytest.fixture
async def make_journal(tmp_path: Path) -> AsyncIterator[Callable[..., FileJournal]]:
    """FileJournals on ``tmp_path/data`` with the commit log; each closed after the test."""
    made: list[FileJournal] = []
    (tmp_path / "data").mkdir()

    def make(**options: Any) -> FileJournal:
        journal = FileJournal(tmp_path / "data", fsync="always", use_commit_log=True, **options)
        made.append(journal)
        return journal

    yield make
    for journal in made:
        await journal.aclose()


async def _live(journal: FileJournal, sessions: int, messages: int) -> None:
    for n in range(sessions):
        await journal.begin(sid(n), UserId(f"user{n}"), "chat", T0, {"n": n})
        for seq in range(1, messages + 1):
            await journal.append(sid(n), msg(seq))


def _power_cut(data: Path, to: Path) -> DataDir:
    """What the disk holds after a power cut: a copy made while the journal is live."""
    shutil.copytree(data, to)
    return DataDir(to)


def _entries(*pairs: tuple[str, bytes]) -> bytes:
    return commit_log.MAGIC + b"".join(
        commit_log.entry(commit_log.tag(s, "alice"), record) for s, record in pairs
    )


def test_entries_round_trip_with_their_session_and_user() -> None:
    """Each entry decodes to its session, its user and the exact journal bytes."""
    header = records.header_record(sid(1), "alice", "chat", T0, {})
    data = _entries((sid(1), header), (sid(1), records.message_record(msg(1))))
    out = commit_log.LogContents()
    commit_log.decode(data, out)
    assert out.damage == []
    assert out.sessions[sid(1)].user == "alice"
    assert out.sessions[sid(1)].records == [header, records.message_record(msg(1))]


def test_a_torn_last_entry_is_dropped_at_every_byte_offset() -> None:
    """Cutting the log anywhere inside its last entry keeps the others and notes no damage."""
    first = records.message_record(msg(1))
    data = _entries((sid(1), first), (sid(1), records.message_record(msg(2))))
    last_start = len(_entries((sid(1), first)))
    for cut in range(last_start, len(data)):
        out = commit_log.LogContents()
        commit_log.decode(data[:cut], out)
        assert out.damage == [], cut
        assert out.sessions[sid(1)].records == [first], cut


def test_a_flipped_bit_mid_log_is_noted_and_later_entries_kept() -> None:
    """A damaged entry is skipped and reported; the entries after it still count."""
    pairs = [(sid(1), records.message_record(msg(seq))) for seq in (1, 2, 3)]
    data = bytearray(_entries(*pairs))
    middle = len(_entries(*pairs[:1])) + 12
    data[middle] ^= 0x10
    out = commit_log.LogContents()
    commit_log.decode(bytes(data), out)
    assert len(out.damage) == 1
    assert out.sessions[sid(1)].records == [pairs[0][1], pairs[2][1]]


def test_a_file_that_is_not_a_commit_log_is_reported() -> None:
    """Foreign bytes give a damage note, never an exception or a session."""
    out = commit_log.LogContents()
    commit_log.decode(b"#!/bin/sh\nrm -rf /\n", out)
    assert out.sessions == {}
    assert "not a tether commit log" in out.damage[0]


async def test_recovery_puts_back_messages_a_power_cut_took_from_journals(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """Journals cut back to their header (or lost whole) are refilled from the log, in order."""
    journal = make_journal()
    await _live(journal, sessions=3, messages=5)
    disk = _power_cut(tmp_path / "data", tmp_path / "after-cut")
    header_len = len(records.header_record(sid(0), "user0", "chat", T0, {"n": 0}))
    os.truncate(disk.journal("user0", sid(0)), header_len)  # every message's page lost
    os.truncate(disk.journal("user1", sid(1)), header_len + 7)  # a message torn part-way
    disk.journal("user2", sid(2)).unlink()  # the whole new file lost

    archive = YamlArchive(disk.root)
    report = await recover(disk, archive)
    for n in range(3):
        [summary] = await archive.list(f"user{n}")
        dialog = await archive.read(f"user{n}", summary.archive_id)
        assert [m.seq for m in dialog.messages] == [1, 2, 3, 4, 5]
        assert dialog.config == {"n": n}
        assert dialog.recovered
    await archive.aclose()
    assert report.recovered == 3
    assert report.replayed == 5 + 5 + 5
    assert list(disk.commit_logs.iterdir()) == []  # consumed
    assert list(disk.journals()) == []


async def test_recovery_after_a_clean_run_finds_no_log(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """A journal closed cleanly checkpoints and deletes its log."""
    journal = make_journal()
    await _live(journal, sessions=2, messages=2)
    assert len(list(DataDir(tmp_path / "data").commit_logs.iterdir())) == 1
    await journal.aclose()
    assert list(DataDir(tmp_path / "data").commit_logs.iterdir()) == []


async def test_a_checkpoint_empties_the_log_once_it_is_big_enough(
    make_journal: Callable[..., FileJournal], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past CHECKPOINT_BYTES a syncfs makes the journals durable and the log starts over."""
    monkeypatch.setattr(commit_log, "CHECKPOINT_BYTES", 2000)
    journal = make_journal()
    await _live(journal, sessions=2, messages=30)
    [log_file] = DataDir(tmp_path / "data").commit_logs.iterdir()
    assert log_file.stat().st_size < 2000 + 1000
    assert journal._log is not None
    assert journal._log.checkpoints >= 2


async def test_sessions_archived_before_the_cut_are_not_archived_again(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """A session whose archive exists and journal is gone is left as it is, however logged."""
    journal = make_journal()
    await _live(journal, sessions=1, messages=2)
    archive = YamlArchive(tmp_path / "data")
    contents = records.decode(journal.paths.journal("user0", sid(0)).read_bytes())
    await archive.archive(_dialog(contents, UserId("user0"), sid(0)))
    await journal.remove(sid(0))
    await archive.aclose()
    disk = _power_cut(tmp_path / "data", tmp_path / "after-cut")
    archive = YamlArchive(disk.root)
    report = await recover(disk, archive)
    await archive.aclose()
    assert report.recovered == 0
    assert report.replayed == 0
    assert len(list(disk.archived_dir("user0").iterdir())) == 1


async def test_a_log_without_the_session_header_archives_nothing(tmp_path: Path) -> None:
    """Log entries of a session whose header predates the last checkpoint: already archived."""
    disk = DataDir(tmp_path)
    disk.commit_logs.mkdir(parents=True)
    (disk.commit_logs / "1.wal").write_bytes(_entries((sid(9), records.message_record(msg(4)))))
    archive = YamlArchive(disk.root)
    report = await recover(disk, archive)
    assert await archive.list("alice") == []
    await archive.aclose()
    assert report.recovered == 0
    assert report.refused == []
    assert list(disk.commit_logs.iterdir()) == []


async def test_a_log_naming_a_bad_user_id_is_refused_and_kept(tmp_path: Path) -> None:
    """An entry whose user is not a valid id never reaches a path; the log is kept for a human."""
    disk = DataDir(tmp_path)
    disk.commit_logs.mkdir(parents=True)
    header = records.header_record(sid(3), "../../etc", "chat", T0, {})
    data = commit_log.MAGIC + commit_log.entry(commit_log.tag(sid(3), "../../etc"), header)
    (disk.commit_logs / "1.wal").write_bytes(data)
    archive = YamlArchive(disk.root)
    report = await recover(disk, archive)
    await archive.aclose()
    assert len(report.refused) == 1
    assert (disk.commit_logs / "1.wal").exists()
    assert not (tmp_path.parent / "etc").exists()
