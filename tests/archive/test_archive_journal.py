"""FileJournal: lifecycle on disk, fsync policies, group commit, failures and open-file limits."""

from __future__ import annotations

import asyncio
import json
import os
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tether.archive import durable, records
from tether.archive.journal import HANDOVER_AT, FileJournal, FsyncPolicy, parse_fsync_policy
from tether.core.transcript import Message, Role
from tether.errors import ArchiveError, InvalidInput
from tether.types import SessionId, UserId

T0 = 1_700_000_000.0
ALICE = UserId("alice")


def sid(n: int) -> SessionId:
    """A valid session id, distinct per ``n``."""
    return SessionId(f"{n:032x}")


def msg(seq: int, content: str = "") -> Message:
    """Message ``seq`` with a recognisable content."""
    return Message(seq, Role.USER, content or f"m{seq}", T0 + seq)


def journal_path(root: Path, user: str, session: SessionId) -> Path:
    """Where the journal of ``session`` must be."""
    return root / "users" / user / "dialogs" / "current" / session


def physical_records(data: bytes) -> list[tuple[bytes, dict[str, Any]]]:
    """Every record in file order (no sorting, no dedup), for checking append order."""
    assert data.startswith(records.MAGIC)
    offset, out = len(records.MAGIC), []
    while offset < len(data):
        length, _ = struct.unpack_from("<II", data, offset)
        body = data[offset + 8 : offset + 8 + length]
        out.append((body[:1], json.loads(body[1:])))
        offset += 8 + length
    assert offset == len(data)
    return out


@pytest.fixture
async def make_journal(tmp_path: Path) -> AsyncIterator[Callable[..., FileJournal]]:
    """Build FileJournals on ``tmp_path/data``; every one is closed after the test."""
    made: list[FileJournal] = []
    (tmp_path / "data").mkdir()

    def make(**options: Any) -> FileJournal:
        journal = FileJournal(tmp_path / "data", **options)
        made.append(journal)
        return journal

    yield make
    for journal in made:
        await journal.aclose()


async def test_journal_begin_append_remove_lifecycle_on_disk(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """begin creates users/{u}/dialogs/current/{sid}, appends land in it, remove deletes it."""
    journal = make_journal()
    path = journal_path(tmp_path / "data", "alice", sid(1))
    await journal.begin(sid(1), ALICE, "interview", T0, {"voice": "calm"})
    assert journal.knows(sid(1))
    contents = records.decode(path.read_bytes())
    assert contents.header == {
        "session_id": sid(1),
        "user": "alice",
        "kind": "interview",
        "created_at": T0,
        "config": {"voice": "calm"},
    }
    for seq in (1, 2, 3):
        await journal.append(sid(1), msg(seq))
        assert records.decode(path.read_bytes()).messages == [msg(s) for s in range(1, seq + 1)]
    await journal.remove(sid(1))
    assert not path.exists()
    assert not journal.knows(sid(1))
    await journal.remove(sid(1))  # a second remove is a no-op
    await journal.remove(sid(99))  # so is removing a session never begun


async def test_journal_creates_a_missing_data_dir_on_first_begin(tmp_path: Path) -> None:
    """A data dir that does not exist yet is created by the first begin (as archives do)."""
    journal = FileJournal(tmp_path / "data")  # its parent exists, like ./data
    try:
        await journal.begin(sid(1), ALICE, "chat", T0, {})
        await journal.append(sid(1), msg(1))
    finally:
        await journal.aclose()
    data = journal_path(tmp_path / "data", "alice", sid(1)).read_bytes()
    assert records.decode(data).messages == [msg(1)]


async def test_journal_config_change_is_recorded_in_order(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """A config change is written between the messages around it and decodes as the config."""
    journal = make_journal()
    await journal.begin(sid(1), ALICE, "chat", T0, {"v": 1})
    await journal.append(sid(1), msg(1))
    journal.config(sid(1), {"v": 2}, T0 + 1.5)
    await journal.append(sid(1), msg(2))
    data = journal_path(tmp_path / "data", "alice", sid(1)).read_bytes()
    assert [kind for kind, _ in physical_records(data)] == [b"H", b"M", b"C", b"M"]
    assert records.decode(data).config == {"v": 2}
    journal.config(sid(42), {"v": 3}, T0)  # unknown session: ignored, never raises


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("always", FsyncPolicy.ALWAYS),
        ("everysec", FsyncPolicy.EVERYSEC),
        ("no", FsyncPolicy.NO),
        (FsyncPolicy.EVERYSEC, FsyncPolicy.EVERYSEC),
    ],
)
async def test_journal_each_fsync_policy_is_accepted_and_writes_before_acking(
    make_journal: Callable[..., FileJournal], tmp_path: Path, policy: Any, expected: FsyncPolicy
) -> None:
    """always, everysec and no are accepted; under each, append returns after the write."""
    journal = make_journal(fsync=policy)
    assert journal.fsync is expected
    await journal.begin(sid(1), ALICE, "chat", T0, {})
    await journal.append(sid(1), msg(1))
    data = journal_path(tmp_path / "data", "alice", sid(1)).read_bytes()
    assert records.decode(data).messages == [msg(1)]


@pytest.mark.parametrize("value", ["sometimes", "", "ALWAYS", "always ", None, 1, True])
def test_journal_invalid_fsync_policy_is_refused_naming_the_choices(
    tmp_path: Path, value: object
) -> None:
    """An unknown fsync policy raises InvalidInput listing always | everysec | no."""
    with pytest.raises(InvalidInput, match=r"always \| everysec \| no"):
        parse_fsync_policy(value)
    with pytest.raises(InvalidInput, match=r"always \| everysec \| no"):
        FileJournal(tmp_path, fsync=value)  # type: ignore[arg-type]


async def test_journal_group_commit_shares_flushes_between_sessions(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """100 concurrent appends from 100 sessions under always need far fewer than 100 commits."""
    journal = make_journal(fsync="always")
    await asyncio.gather(*(journal.begin(sid(n), ALICE, "chat", T0, {}) for n in range(100)))
    before = journal.batches
    await asyncio.gather(*(journal.append(sid(n), msg(1, f"s{n}")) for n in range(100)))
    commits = journal.batches - before
    assert 1 <= commits <= 20, commits
    for n in range(100):
        data = journal_path(tmp_path / "data", "alice", sid(n)).read_bytes()
        assert records.decode(data).messages == [msg(1, f"s{n}")]


async def test_journal_hands_a_long_burst_to_an_idle_flusher_before_the_burst_ends(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """A burst of 100 appends in one loop iteration is handed over HANDOVER_AT at a time.

    The flusher is idle when the burst begins, so the first HANDOVER_AT
    appends go to it at once, while the loop writes the rest, instead of all
    100 at the end of the loop iteration; no flush covers more than one
    handover's worth, and every append is durable when acknowledged. (How
    many flushes that makes depends on when the flusher thread gets a CPU,
    so the test checks the handovers, not the flush count.)
    """
    journal = make_journal(fsync="always")
    await asyncio.gather(*(journal.begin(sid(n), ALICE, "chat", T0, {}) for n in range(100)))
    # The flusher thread goes back to waiting after the begins' flush; it has
    # no event to await, so the test polls its flag.
    while not journal._flusher.idle:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    handed: list[int] = []
    hand_over = journal._hand_over_waiting

    def spy() -> None:
        handed.append(len(journal._waiting.acks))
        hand_over()

    journal._hand_over_waiting = spy  # type: ignore[method-assign]
    before = journal.batches
    await asyncio.gather(*(journal.append(sid(n), msg(1, f"s{n}")) for n in range(100)))
    assert handed[0] == HANDOVER_AT
    assert sum(handed) == 100
    assert 1 <= journal.batches - before <= len(handed)
    for n in range(100):
        data = journal_path(tmp_path / "data", "alice", sid(n)).read_bytes()
        assert records.decode(data).messages == [msg(1, f"s{n}")]


@pytest.mark.parametrize("use_syncfs", [True, False], ids=["syncfs", "fdatasync"])
async def test_journal_syncfs_and_per_file_flush_both_give_readable_journals(
    make_journal: Callable[..., FileJournal], tmp_path: Path, use_syncfs: bool
) -> None:
    """With syncfs and with per-file fdatasync, every session's journal holds all its messages."""
    if use_syncfs and durable.syncfs is None:
        pytest.skip("syncfs is not available on this platform")
    journal = make_journal(fsync="always", use_syncfs=use_syncfs)
    users = [UserId(f"u{n % 3}") for n in range(6)]
    await asyncio.gather(*(journal.begin(sid(n), users[n], "chat", T0, {}) for n in range(6)))
    for seq in (1, 2, 3):
        await asyncio.gather(*(journal.append(sid(n), msg(seq)) for n in range(6)))
    await journal.aclose()
    for n in range(6):
        contents = records.decode(journal_path(tmp_path / "data", users[n], sid(n)).read_bytes())
        assert contents.header is not None
        assert contents.messages == [msg(1), msg(2), msg(3)]
        assert contents.damage == []
        assert contents.torn_bytes == 0


async def test_journal_append_for_a_session_never_begun_is_an_archive_error(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """append for an unknown session raises ArchiveError and creates no file."""
    journal = make_journal()
    with pytest.raises(ArchiveError, match="never begun"):
        await journal.append(sid(7), msg(1))
    assert not (tmp_path / "data" / "users").exists()


async def test_journal_append_after_aclose_is_an_archive_error(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """After aclose, append (and begin) raise ArchiveError; what was acked stays on disk."""
    journal = make_journal()
    await journal.begin(sid(1), ALICE, "chat", T0, {})
    await journal.append(sid(1), msg(1))
    await journal.aclose()
    with pytest.raises(ArchiveError):
        await journal.append(sid(1), msg(2))
    with pytest.raises(ArchiveError):
        await journal.begin(sid(2), ALICE, "chat", T0, {})
    data = journal_path(tmp_path / "data", "alice", sid(1)).read_bytes()
    assert records.decode(data).messages == [msg(1)]
    await journal.aclose()  # idempotent


async def test_journal_begin_with_config_json_cannot_carry_is_invalid_input(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """A header config that JSON cannot carry is InvalidInput; nothing is created or known."""
    journal = make_journal()
    with pytest.raises(InvalidInput):
        await journal.begin(sid(1), ALICE, "chat", T0, {"x": float("nan")})
    assert not journal.knows(sid(1))
    assert not journal_path(tmp_path / "data", "alice", sid(1)).exists()


async def test_journal_write_failure_fails_only_that_sessions_append(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """A session whose journal cannot be opened fails with ArchiveError; the other succeeds."""
    journal = make_journal(max_open_files=1)
    await journal.begin(sid(1), ALICE, "chat", T0, {})
    await journal.begin(sid(2), UserId("bob"), "chat", T0, {})  # evicts sid(1)'s file
    broken = journal_path(tmp_path / "data", "alice", sid(1))
    broken.unlink()
    broken.mkdir()  # reopening the journal now fails with EISDIR
    outcome = await asyncio.gather(
        journal.append(sid(1), msg(1)), journal.append(sid(2), msg(1)), return_exceptions=True
    )
    assert isinstance(outcome[0], ArchiveError)
    assert "journal write failed" in str(outcome[0])
    assert outcome[1] is None
    data = journal_path(tmp_path / "data", "bob", sid(2)).read_bytes()
    assert records.decode(data).messages == [msg(1)]
    await journal.append(sid(2), msg(2))  # the healthy session goes on
    broken.rmdir()
    with pytest.raises(ArchiveError):  # no record may land after a failed one
        await journal.append(sid(1), msg(2))
    assert not broken.exists()


async def test_journal_begin_failure_in_a_batch_spares_the_other_session(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """A user whose current/ is a plain file fails begin with ArchiveError; another user's works."""
    journal = make_journal()
    dialogs = tmp_path / "data" / "users" / "carol" / "dialogs"
    dialogs.mkdir(parents=True)
    (dialogs / "current").write_bytes(b"not a folder")
    outcome = await asyncio.gather(
        journal.begin(sid(1), UserId("carol"), "chat", T0, {}),
        journal.begin(sid(2), ALICE, "chat", T0, {}),
        return_exceptions=True,
    )
    assert isinstance(outcome[0], ArchiveError)
    assert outcome[1] is None
    assert (dialogs / "current").read_bytes() == b"not a folder"
    await journal.append(sid(2), msg(1))
    data = journal_path(tmp_path / "data", "alice", sid(2)).read_bytes()
    assert records.decode(data).messages == [msg(1)]


async def test_journal_lru_of_open_files_still_gives_complete_journals(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """With max_open_files=2 and 5 sessions interleaved, every journal is whole and in order."""
    journal = make_journal(max_open_files=2)
    for n in range(5):
        await journal.begin(sid(n), ALICE, "chat", T0, {"n": n})
    for seq in range(1, 6):
        for n in range(5):
            await journal.append(sid(n), msg(seq, f"s{n}-{seq}"))
    for seq in range(6, 11):
        await asyncio.gather(*(journal.append(sid(n), msg(seq, f"s{n}-{seq}")) for n in range(5)))
    await journal.aclose()
    for n in range(5):
        data = journal_path(tmp_path / "data", "alice", sid(n)).read_bytes()
        contents = records.decode(data)
        assert contents.header is not None
        assert contents.header["config"] == {"n": n}
        assert contents.messages == [msg(s, f"s{n}-{s}") for s in range(1, 11)]
        assert contents.damage == []


async def test_journal_records_are_in_append_order(
    make_journal: Callable[..., FileJournal], tmp_path: Path
) -> None:
    """Records land in the file in the order the appends were made, concurrent ones included."""
    journal = make_journal()
    await journal.begin(sid(1), ALICE, "chat", T0, {})
    for seq in range(1, 6):
        await journal.append(sid(1), msg(seq))
    await asyncio.gather(*(journal.append(sid(1), msg(seq)) for seq in range(6, 51)))
    data = journal_path(tmp_path / "data", "alice", sid(1)).read_bytes()
    raw = physical_records(data)
    assert raw[0][0] == b"H"
    assert [payload["seq"] for kind, payload in raw[1:]] == list(range(1, 51))


async def test_begun_sessions_without_messages_hold_no_file_descriptors(
    make_journal: Callable[..., FileJournal],
) -> None:
    """After begin() returns, a session's journal file is closed until its first message."""
    journal = make_journal()
    await journal.begin(sid(0), ALICE, "chat", T0, {})  # starts the flusher thread first
    before = len(os.listdir("/proc/self/fd"))
    for n in range(1, 41):
        await journal.begin(sid(n), UserId(f"user{n}"), "chat", T0, {})
    await journal.append(sid(1), msg(1))  # settles the last close
    assert len(os.listdir("/proc/self/fd")) - before <= 1
    await journal.append(sid(2), msg(1))
    assert journal.knows(sid(40))
