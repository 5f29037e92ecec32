"""Start-up recovery: journals left behind become archives, or are refused with a reason."""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tether.archive import records
from tether.archive.base import ArchivedDialog
from tether.archive.journal import FileJournal
from tether.archive.paths import DataDir
from tether.archive.recovery import recover
from tether.archive.yaml_archive import YamlArchive
from tether.core.ids import archive_id_for
from tether.core.transcript import Message, Role
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0


def sid(n: int) -> SessionId:
    """A valid session id, distinct per ``n``."""
    return SessionId(f"{n:032x}")


def msg(seq: int, content: str = "") -> Message:
    """Message ``seq`` at T0 + seq."""
    return Message(seq, Role.USER, content or f"m{seq}", T0 + seq)


def frame(body: bytes) -> bytes:
    """A record with a correct length and checksum around any body."""
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def blob(
    session: SessionId, user: str = "alice", messages: int = 3, *, header_user: str | None = None
) -> tuple[bytes, list[int]]:
    """A journal's bytes (header + ``messages`` messages) and each record's start offset."""
    data = records.header_record(session, header_user or user, "interview", T0, {"v": 1})
    starts = [len(records.MAGIC)]
    for seq in range(1, messages + 1):
        starts.append(len(data))
        data += records.message_record(msg(seq))
    return data, starts


class Env:
    """A data dir with helpers to plant journals and inspect the result."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)
        self.paths = DataDir(root)
        self.archive = YamlArchive(root)

    def journal(self, user: str, session: SessionId) -> Path:
        return self.root / "users" / user / "dialogs" / "current" / session

    def plant(self, user: str, session: SessionId, data: bytes) -> Path:
        path = self.journal(user, session)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def archived(self, user: str = "alice") -> list[str]:
        folder = self.root / "users" / user / "dialogs" / "archived"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def damaged(self, user: str, session: SessionId) -> Path:
        return self.root / "users" / user / "dialogs" / "damaged" / f"{session}.journal"

    async def read(self, user: str, session: SessionId) -> ArchivedDialog:
        return await self.archive.read(user, archive_id_for(session, T0))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """A fresh data dir and archive, closed afterwards."""
    environment = Env(tmp_path / "data")
    yield environment
    await environment.archive.aclose()


async def test_recovery_archives_journals_left_behind(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Journals FileJournal left (no remove) become server_shutdown, recovered archives; gone."""
    journal = FileJournal(env.root)
    for n, user in ((1, "alice"), (2, "alice"), (3, "bob")):
        await journal.begin(sid(n), UserId(user), "interview", T0, {"v": n})
        for seq in range(1, n + 2):
            await journal.append(sid(n), msg(seq))
    journal.config(sid(2), {"v": "changed"}, T0 + 50)
    await journal.append(sid(2), msg(4))
    await journal.aclose()
    with caplog.at_level(logging.WARNING, logger="tether.archive"):
        report = await recover(env.paths, env.archive)
    assert report.recovered == 3
    assert (report.torn_tails, report.damaged, report.empty, report.refused) == (0, 0, 0, [])
    assert "recovered 3 journal(s)" in caplog.text
    for n, user in ((1, "alice"), (2, "alice"), (3, "bob")):
        assert not env.journal(user, sid(n)).exists()
        got = await env.read(user, sid(n))
        assert got.end_reason is EndReason.SERVER_SHUTDOWN
        assert got.recovered is True
        assert got.notes == ()
        assert got.kind == "interview"
        assert got.started_at == pytest.approx(T0, abs=1e-6)
        last = T0 + 50 if n == 2 else got.messages[-1].ts  # the last record's time
        assert got.ended_at == pytest.approx(last, abs=1e-6)
    assert [m.seq for m in (await env.read("alice", sid(2))).messages] == [1, 2, 3, 4]
    assert (await env.read("alice", sid(2))).config == {"v": "changed"}
    assert (await env.read("bob", sid(3))).config == {"v": 3}


async def test_recovery_archives_a_session_that_has_only_its_header(env: Env) -> None:
    """A started session with no message is archived with no messages, ending at its start."""
    env.plant("alice", sid(1), blob(sid(1), messages=0)[0])
    report = await recover(env.paths, env.archive)
    assert report.recovered == 1
    got = await env.read("alice", sid(1))
    assert got.messages == ()
    assert got.ended_at == pytest.approx(got.started_at, abs=1e-6)


@pytest.mark.parametrize("keep", [1, 5, 20, -1])
async def test_recovery_drops_a_torn_tail_and_notes_it(env: Env, keep: int) -> None:
    """A journal cut inside its last record is archived without it, with a note; not damaged."""
    data, starts = blob(sid(1))
    cut = starts[-1] + keep if keep > 0 else len(data) + keep
    path = env.plant("alice", sid(1), data[:cut])
    report = await recover(env.paths, env.archive)
    assert (report.recovered, report.torn_tails, report.damaged) == (1, 1, 0)
    got = await env.read("alice", sid(1))
    assert [m.seq for m in got.messages] == [1, 2]
    assert len(got.notes) == 1
    assert f"({cut - starts[-1]} bytes) was dropped" in got.notes[0]
    assert not path.exists()
    assert not env.damaged("alice", sid(1)).exists()


async def test_recovery_salvages_a_damaged_journal_and_keeps_the_original(env: Env) -> None:
    """A bit flip mid-file: archive of the other messages plus a note; original in damaged/."""
    data, starts = blob(sid(1), messages=5)
    broken = bytearray(data)
    broken[starts[3] + 12] ^= 0x10  # inside message 3
    path = env.plant("alice", sid(1), bytes(broken))
    report = await recover(env.paths, env.archive)
    assert (report.recovered, report.damaged, report.torn_tails) == (1, 1, 0)
    got = await env.read("alice", sid(1))
    assert [m.seq for m in got.messages] == [1, 2, 4, 5]
    assert got.recovered is True
    assert any("unreadable and skipped" in note for note in got.notes)
    assert not path.exists()
    assert env.damaged("alice", sid(1)).read_bytes() == bytes(broken)


@pytest.mark.parametrize(
    "data",
    [b"NOTAJRNL" + b"x" * 40, b"TTHRJNL2" + blob(sid(1))[0][8:], b"hello: world\n"],
    ids=["garbage", "other-version", "yaml"],
)
async def test_recovery_leaves_a_file_with_wrong_magic_in_place_and_reports_it(
    env: Env, data: bytes
) -> None:
    """A file in current/ that is not a journal is refused, listed, and never touched."""
    path = env.plant("alice", sid(1), data)
    report = await recover(env.paths, env.archive)
    assert report.recovered == 0
    assert len(report.refused) == 1
    assert str(path) in report.refused[0]
    assert "not a tether journal" in report.refused[0]
    assert path.read_bytes() == data
    assert env.archived() == []
    assert not env.damaged("alice", sid(1)).exists()


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 20], ids=lambda n: f"{n}-bytes")
async def test_recovery_removes_a_journal_torn_before_its_header_landed(
    env: Env, length: int
) -> None:
    """Empty, partial magic, magic only or a torn header: counted empty, removed, no archive."""
    path = env.plant("alice", sid(1), blob(sid(1))[0][:length])
    report = await recover(env.paths, env.archive)
    assert report.empty == 1
    assert report.recovered == 0
    assert report.refused == []
    assert not path.exists()
    assert env.archived() == []


async def test_recovery_refuses_a_journal_whose_header_is_damaged(env: Env) -> None:
    """A flipped bit in the header with messages after it: refused with a reason, left in place."""
    data, _ = blob(sid(1))
    broken = bytearray(data)
    broken[len(records.MAGIC) + 20] ^= 0x01
    path = env.plant("alice", sid(1), bytes(broken))
    report = await recover(env.paths, env.archive)
    assert report.recovered == 0
    assert len(report.refused) == 1
    assert "no readable header" in report.refused[0]
    assert path.read_bytes() == bytes(broken)


async def test_recovery_removes_leftover_temp_files_only(env: Env) -> None:
    """Temp archive files a crash left are removed and counted; real archives stay."""
    real = await env.archive.archive(
        ArchivedDialog(sid(1), UserId("alice"), "chat", {}, T0, T0 + 1, EndReason.ADMIN)
    )
    folder = env.root / "users" / "alice" / "dialogs" / "archived"
    for name in (f".{real}.yaml.tmp-0a1b2c3d", f".{archive_id_for(sid(2), T0)}.yaml.tmp-ffff0000"):
        (folder / name).write_bytes(b"half written")
    report = await recover(env.paths, env.archive)
    assert report.temp_files_removed == 2
    assert env.archived() == [f"{real}.yaml"]
    assert (await env.archive.read("alice", real)).end_reason is EndReason.ADMIN


async def test_recovery_survives_a_directory_named_like_a_temp_file(env: Env) -> None:
    """A directory named like a temp archive file is left alone; recovery still runs."""
    folder = env.root / "users" / "alice" / "dialogs" / "archived"
    odd = folder / f".{archive_id_for(sid(1), T0)}.yaml.tmp-1234"
    odd.mkdir(parents=True)
    env.plant("alice", sid(2), blob(sid(2))[0])
    report = await recover(env.paths, env.archive)
    assert report.recovered == 1
    assert odd.is_dir()


async def test_recovery_run_twice_gives_the_same_single_archive(env: Env) -> None:
    """A second pass, or one over the same journal put back (crash mid-pass), changes nothing."""
    data, _ = blob(sid(1))
    env.plant("alice", sid(1), data)
    await recover(env.paths, env.archive)
    name = env.archived()
    assert len(name) == 1
    archive_file = env.root / "users" / "alice" / "dialogs" / "archived" / name[0]
    first = archive_file.read_bytes()
    again = await recover(env.paths, env.archive)
    assert again.recovered == 0
    env.plant("alice", sid(1), data)  # as if the first pass died before removing it
    third = await recover(env.paths, env.archive)
    assert third.recovered == 1
    assert env.archived() == name
    assert archive_file.read_bytes() == first
    assert not env.journal("alice", sid(1)).exists()


async def test_recovery_after_a_crash_between_archive_and_journal_removal(env: Env) -> None:
    """Archive written by the real end and journal still there: one archive, true reason kept."""
    journal = FileJournal(env.root)
    await journal.begin(sid(1), UserId("alice"), "interview", T0, {"v": 1})
    for seq in (1, 2):
        await journal.append(sid(1), msg(seq))
    await journal.aclose()
    real = ArchivedDialog(
        sid(1), UserId("alice"), "interview", {"v": 1}, T0, T0 + 9, EndReason.IDLE_TIMEOUT,
        (msg(1), msg(2)),
    )  # fmt: skip
    await env.archive.archive(real)
    report = await recover(env.paths, env.archive)
    assert report.recovered == 1
    assert env.archived() == [f"{real.archive_id}.yaml"]
    got = await env.read("alice", sid(1))
    assert got.end_reason is EndReason.IDLE_TIMEOUT
    assert got.recovered is False
    assert not env.journal("alice", sid(1)).exists()


@pytest.mark.parametrize(
    ("path_user", "path_session", "header_session", "header_user"),
    [
        ("alice", sid(1), sid(2), "alice"),
        ("alice", sid(1), sid(1), "bob"),
    ],
    ids=["other-session", "other-user"],
)
async def test_recovery_refuses_a_header_naming_another_session_or_user(
    env: Env,
    path_user: str,
    path_session: SessionId,
    header_session: SessionId,
    header_user: str,
) -> None:
    """A journal whose header disagrees with its path is refused, not archived, left in place."""
    data, _ = blob(header_session, path_user, header_user=header_user)
    path = env.plant(path_user, path_session, data)
    report = await recover(env.paths, env.archive)
    assert report.recovered == 0
    assert len(report.refused) == 1
    assert "another session or user" in report.refused[0]
    assert path.read_bytes() == data
    assert env.archived("alice") == []
    assert env.archived("bob") == []


def _header(**changes: Any) -> bytes:
    fields = {"session_id": sid(1), "user": "alice", "kind": "chat", "created_at": T0}
    fields["config"] = {}
    fields.update(changes)
    return records.MAGIC + frame(b"H" + json.dumps(fields).encode())


def _with_message(**changes: Any) -> bytes:
    fields: dict[str, Any] = {"seq": 1, "role": "user", "content": "x", "ts": T0 + 1}
    fields.update(changes)
    return _header() + frame(b"M" + json.dumps(fields).encode())


def case(data: bytes, name: str) -> Any:
    """One crafted journal, named for its absurdity."""
    return pytest.param(data, id=name)


SURROGATE = frame(b'M{"seq":1,"role":"user","content":"\\ud800","ts":1}')
CRAFTED = [
    case(_header(created_at=float("nan")), "created-nan"),
    case(_header(created_at=1e300), "created-huge"),
    case(_header(created_at=-1e20), "created-very-negative"),
    case(_header(created_at="soon"), "created-text"),
    case(_header(config=5), "config-int"),
    case(_header(config="abc"), "config-text"),
    case(_header(config=[1, 2]), "config-list"),
    case(_header(kind={"a": 1}), "kind-object"),
    case(_header(session_id=None), "session-null"),
    case(_with_message(ts=float("nan")), "message-ts-nan"),
    case(_with_message(ts=1e300), "message-ts-huge"),
    case(_header() + SURROGATE, "message-lone-surrogate"),
    case(_with_message(metadata=[1, 2]), "message-metadata-list"),
    case(_with_message(seq=True), "message-seq-bool"),
    case(_with_message(seq=-5), "message-seq-negative"),
]


@pytest.mark.parametrize("data", CRAFTED)
async def test_recovery_never_raises_on_checksum_valid_nonsense(env: Env, data: bytes) -> None:
    """A well-framed journal with absurd values is archived readably or refused; others recover."""
    env.plant("alice", sid(1), data)
    env.plant("zed", sid(2), blob(sid(2), "zed")[0])  # listed after the bad one
    report = await recover(env.paths, env.archive)
    assert await env.read("zed", sid(2))
    if report.refused:
        assert env.journal("alice", sid(1)).exists()
        assert report.recovered == 1
    else:
        assert report.recovered == 2
        listed = await env.archive.list("alice")
        assert len(listed) == 1
        await env.archive.read("alice", listed[0].archive_id)
