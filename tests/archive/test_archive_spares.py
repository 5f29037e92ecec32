"""Spare files: removed journals are recycled into later archives, bounded, and never read."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether.archive import durable, records, spares
from tether.archive.base import ArchivedDialog
from tether.archive.journal import FileJournal
from tether.archive.paths import DataDir
from tether.archive.recovery import recover
from tether.archive.yaml_archive import YamlArchive, dialog_to_yaml
from tether.core.ids import archive_id_for
from tether.core.transcript import Message, Role
from tether.types import EndReason, SessionId, UserId

pytestmark = pytest.mark.skipif(durable.syncfs is None, reason="spares are taken only with syncfs")

T0 = 1_700_000_000.0
ALICE = UserId("alice")


def sid(n: int) -> SessionId:
    """A valid session id, distinct per ``n``."""
    return SessionId(f"{n:032x}")


def msg(seq: int) -> Message:
    """Message ``seq`` at T0 + seq."""
    return Message(seq, Role.USER, f"message {seq} " + "words " * 20, T0 + seq)


def dialog(n: int, messages: int = 3) -> ArchivedDialog:
    """An ended dialog of alice's session ``n``."""
    return ArchivedDialog(
        session_id=sid(n),
        user=ALICE,
        kind="interview",
        config={"v": n},
        started_at=T0,
        ended_at=T0 + 60,
        end_reason=EndReason.CLIENT_ENDED,
        messages=tuple(msg(s) for s in range(1, messages + 1)),
    )


def archive_path(root: Path, n: int, user: str = "alice") -> Path:
    """Where session ``n``'s archive lands."""
    name = archive_id_for(sid(n), T0) + ".yaml"
    return root / "users" / user / "dialogs" / "archived" / name


def spare_files(root: Path) -> list[Path]:
    """The spare folder's files, sorted."""
    folder = root / "spare"
    return sorted(folder.iterdir()) if folder.exists() else []


def plant_spare(root: Path, name: str, data: bytes) -> Path:
    """A file in the spare folder as a previous run would have left it."""
    folder = root / "spare"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{spares.SPARE_PREFIX}{name}"
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh data dir (resolved, as DataDir keys the shared pool by it)."""
    data = tmp_path / "data"
    data.mkdir()
    return data.resolve()


@pytest.fixture
async def archive(root: Path) -> AsyncIterator[YamlArchive]:
    """A YamlArchive on the data dir, closed afterwards."""
    store = YamlArchive(root)
    yield store
    await store.aclose()


@pytest.mark.parametrize("spare_size", [10, 700, 64 * 1024], ids=["smaller", "similar", "larger"])
async def test_spares_recycled_file_gives_an_archive_byte_identical_to_a_fresh_one(
    root: Path, archive: YamlArchive, tmp_path: Path, spare_size: int
) -> None:
    """An archive over a spare (smaller, similar or larger) equals a fresh one: no old tail."""
    spare = plant_spare(root, "old", b"X" * spare_size)
    inode = spare.stat().st_ino
    await archive.archive(dialog(1))
    recycled = archive_path(root, 1)
    assert recycled.stat().st_ino == inode  # it really was the spare
    fresh = YamlArchive(tmp_path / "fresh", use_syncfs=False)  # never takes spares
    await fresh.archive(dialog(1))
    await fresh.aclose()
    expected = archive_path(tmp_path / "fresh", 1).read_bytes()
    assert expected == dialog_to_yaml(dialog(1))
    assert recycled.read_bytes() == expected
    assert b"X" not in recycled.read_bytes()
    assert recycled.stat().st_size == len(expected)
    assert stat.S_IMODE(recycled.stat().st_mode) == 0o600
    assert spare_files(root) == []
    assert (await archive.read(ALICE, dialog(1).archive_id)) == dialog(1)


async def test_spares_removed_journal_moves_to_the_pool_and_the_next_archive_reuses_its_inode(
    root: Path, archive: YamlArchive
) -> None:
    """remove() renames the journal into spare/ (same inode); the next archive is that inode."""
    journal = FileJournal(root)
    try:
        await journal.begin(sid(1), ALICE, "interview", T0, {})
        await journal.append(sid(1), msg(1))
        path = DataDir(root).journal(ALICE, sid(1))
        inode = path.stat().st_ino
        await journal.remove(sid(1))
        assert not path.exists()
        [spare] = spare_files(root)
        assert spare.stat().st_ino == inode
        assert spare.stat().st_nlink == 1
        await archive.archive(dialog(2))
    finally:
        await journal.aclose()
    written = archive_path(root, 2)
    assert written.stat().st_ino == inode
    assert written.read_bytes() == dialog_to_yaml(dialog(2))
    assert spare_files(root) == []


async def test_spares_pool_cap_is_respected_and_journals_beyond_it_are_unlinked(
    root: Path,
) -> None:
    """With spare_files=2, removing four journals keeps two spares and unlinks the other two."""
    journal = FileJournal(root, spare_files=2)
    try:
        inodes = []
        for n in range(4):
            await journal.begin(sid(n), ALICE, "interview", T0, {})
            inodes.append(DataDir(root).journal(ALICE, sid(n)).stat().st_ino)
        for n in range(4):
            await journal.remove(sid(n))
    finally:
        await journal.aclose()
    kept = spare_files(root)
    assert len(kept) == 2
    assert {p.stat().st_ino for p in kept} == set(inodes[:2])
    assert list(DataDir(root).journals()) == []


async def test_spares_disabled_with_zero_spare_files_unlinks_journals(root: Path) -> None:
    """spare_files=0 deletes removed journals as before: no spare is kept."""
    journal = FileJournal(root, spare_files=0)
    try:
        await journal.begin(sid(1), ALICE, "interview", T0, {})
        await journal.remove(sid(1))
    finally:
        await journal.aclose()
    assert spare_files(root) == []
    assert list(DataDir(root).journals()) == []


async def test_spares_a_spare_with_a_second_hard_link_is_never_written_through(
    root: Path, archive: YamlArchive
) -> None:
    """A spare that is also another file's name is dropped, never overwritten."""
    victim = root / "victim"
    victim.write_bytes(b"precious")
    os.link(victim, root / "spare-x")
    (root / "spare").mkdir(mode=0o700)
    os.rename(root / "spare-x", root / "spare" / f"{spares.SPARE_PREFIX}linked")
    await archive.archive(dialog(1))
    assert victim.read_bytes() == b"precious"
    assert archive_path(root, 1).read_bytes() == dialog_to_yaml(dialog(1))
    assert archive_path(root, 1).stat().st_ino != victim.stat().st_ino


async def test_spares_rewriting_an_existing_archive_keeps_the_first_and_the_file_as_spare(
    root: Path, archive: YamlArchive
) -> None:
    """Archiving a session twice keeps the first archive; the second one's file becomes a spare."""
    await archive.archive(dialog(1, messages=1))
    first = archive_path(root, 1).read_bytes()
    await archive.archive(dialog(1, messages=3))
    assert archive_path(root, 1).read_bytes() == first
    assert len(spare_files(root)) == 1
    assert [p.name for p in archive_path(root, 1).parent.iterdir()] == [archive_path(root, 1).name]


async def test_spares_recovery_never_reads_spares_removes_recycled_temps_archives_once(
    root: Path, archive: YamlArchive
) -> None:
    """After a crash: spares (even journal-shaped) are never archived, temp files go, journals once.

    The spare folder holds a complete journal of session 50 and an archive's
    YAML; archived/ holds temp files as a crash mid-batch leaves them (a
    recycled spare partly overwritten). Recovery archives sessions 1-3 only,
    each exactly once (a second pass changes nothing), removes the temps, and
    whatever spares it reused hold exactly the new archives' bytes.
    """
    for n in (1, 2, 3):
        data = records.header_record(sid(n), ALICE, "interview", T0, {"v": n})
        data += records.message_record(msg(1))
        path = DataDir(root).journal(ALICE, sid(n))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    stray = records.header_record(sid(50), ALICE, "interview", T0, {}) + records.message_record(
        msg(1)
    )
    plant_spare(root, "journal", stray)
    plant_spare(root, "archive", dialog_to_yaml(dialog(51)))
    archived = archive_path(root, 1).parent
    archived.mkdir(mode=0o700)
    temps = [archived / f".{archive_path(root, n).name}.tmp-999-{n}" for n in (1, 7)]
    for temp in temps:
        temp.write_bytes(dialog_to_yaml(dialog(7))[:40] + stray)
    journal_names = {p.name for _, _, p in DataDir(root).journals()}
    assert journal_names == {sid(1), sid(2), sid(3)}  # the spare is not listed as a journal

    report = await recover(DataDir(root), archive)
    assert (report.recovered, report.refused, report.temp_files_removed) == (3, [], 2)
    assert sorted(p.name for p in archived.iterdir()) == sorted(
        archive_path(root, n).name for n in (1, 2, 3)
    )
    listed = await archive.list(ALICE)
    assert sorted(s.session_id for s in listed) == [sid(1), sid(2), sid(3)]
    for n in (1, 2, 3):
        expected = await archive.read(ALICE, archive_id_for(sid(n), T0))
        assert archive_path(root, n).read_bytes() == dialog_to_yaml(expected)
    assert list(DataDir(root).journals()) == []

    again = await recover(DataDir(root), archive)
    assert (again.recovered, again.temp_files_removed) == (0, 0)
    assert len(list(archived.iterdir())) == 3
