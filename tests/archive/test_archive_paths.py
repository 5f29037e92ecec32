"""Untrusted names never reach a path: the OWASP traversal corpus, symlinks, foreign entries.

Every test builds a data dir inside a temporary parent, next to an ``outside``
folder that holds a valid-looking archive and journal (what a traversal would
reach) and a sentinel file. After the refused calls it checks that nothing in
the parent changed (no file created, modified or removed) and, where the file
system records access times, that nothing outside the data dir was read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tether.archive import records
from tether.archive.base import ArchivedDialog
from tether.archive.journal import FileJournal
from tether.archive.paths import DataDir
from tether.archive.recovery import recover
from tether.archive.yaml_archive import YamlArchive, dialog_to_yaml
from tether.core.ids import archive_id_for
from tether.core.transcript import Message, Role
from tether.errors import InvalidInput
from tether.runtime.manager import SessionManager
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0
SID = SessionId("0123456789abcdef0123456789abcdef")
AID = archive_id_for(SID, T0)

# The OWASP path-traversal corpus, plus the look-alikes and edge cases of the issue.
CORPUS: list[tuple[str, str]] = [
    ("dotdot-slash", "../"),
    ("dotdot-backslash", "..\\"),
    ("dotdot", ".."),
    ("dot", "."),
    ("deep-dotdot", "../../outside"),
    ("dotdot-in-middle", "alice/../bob"),
    ("dot-slash-name", "./alice"),
    ("url-encoded", "%2e%2e%2f"),
    ("double-url-encoded", "%252e%252e%255c"),
    ("overlong-utf8", "..%c0%af"),
    ("half-encoded", "..%2f"),
    ("semicolon", "..;/"),
    ("absolute", "/etc/passwd"),
    ("absolute-outside", "/tmp"),
    ("windows-drive", "C:\\Windows"),
    ("unc-share", "\\\\server\\share"),
    ("nul-byte", "a\x00b"),
    ("nul-then-traversal", "alice\x00/../../x"),
    ("long-129", "a" * 129),
    ("long-4096", "a" * 4096),
    ("fullwidth-dots-slash", "\uff0e\uff0e\uff0f"),
    ("two-dot-leader", "\u2025"),
    ("division-slash", "..\u2215outside"),
    ("fraction-slash", "..\u2044outside"),
    ("arabic-indic-digits", "\u0662\u0660\u0662\u0666"),
    ("empty", ""),
    ("newline-suffix", "alice\n"),
    ("newline-prefix", "\nalice"),
    ("crlf", "alice\r\n"),
    ("tilde", "~root"),
    ("space", "alice bob"),
    ("tab", "alice\t"),
]
ARCHIVE_ID_CORPUS: list[tuple[str, str]] = [
    *CORPUS,
    ("arabic-indic-stamp", "\u0662\u0660\u0662\u0666-01-01-00-00-00-0123456789ab"),
    ("fullwidth-digit-stamp", "\uff12\uff10\uff12\uff16-01-01-00-00-00-0123456789ab"),
    ("id-then-traversal", AID + "/../../x"),
    ("traversal-then-id", "../" + AID),
    ("with-suffix", AID + ".yaml"),
    ("id-newline", AID + "\n"),
    ("id-nul", AID + "\x00"),
    ("uppercase-hex", AID.upper()),
    ("short-hash", AID[:-1]),
]
SESSION_ID_CORPUS: list[tuple[str, str]] = [
    *CORPUS,
    ("hex-then-slash", "0" * 31 + "/"),
    ("traversal-padded", "../" + "0" * 29),
    ("hex-newline", "0" * 32 + "\n"),
    ("fullwidth-hex", "\uff10" * 32),
    ("arabic-indic-hex", "\u0660" * 32),
    ("uppercase-hex", SID.upper()),
    ("33-hex", "0" * 33),
]


def ids(corpus: list[tuple[str, str]]) -> dict[str, Any]:
    """``pytest.mark.parametrize`` keyword arguments with readable ids."""
    return {"argvalues": [v for _, v in corpus], "ids": [k for k, _ in corpus]}


@dataclass
class Arena:
    """A data dir with an ``outside`` folder and a sentinel next to it, under one parent."""

    parent: Path
    data: Path
    outside: Path
    atime_works: bool
    armed: tuple[Path, ...] = ()

    def entries(self) -> Iterator[Path]:
        """Every path under the parent (the parent included), never following symlinks."""
        yield self.parent
        for root, dirs, files in os.walk(self.parent):
            for name in dirs + files:
                yield Path(root) / name

    def snapshot(self, *, outside_only: bool = False) -> dict[str, tuple[object, ...]]:
        """Kind, size, mtime and content hash of every entry."""
        out: dict[str, tuple[object, ...]] = {}
        for path in self.entries():
            if outside_only and path.is_relative_to(self.data):
                continue
            st = path.lstat()
            if path.is_symlink():
                out[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path)] = ("file", st.st_size, st.st_mtime_ns, digest)
            else:
                out[str(path)] = ("dir", st.st_mtime_ns)
        return out

    def arm_read_detector(self) -> None:
        """Set the access time of all outside the data dir to 0 (relatime then updates it)."""
        self.armed = tuple(
            path
            for path in self.entries()
            if not path.is_relative_to(self.data) and not path.is_symlink()
        )
        for path in self.armed:
            os.utime(path, ns=(0, path.lstat().st_mtime_ns))

    def read_outside(self) -> list[str]:
        """Entries outside the data dir read (opened, listed) since the detector was armed."""
        # Listed at arming time: walking the tree again would itself update the atimes.
        if not self.atime_works:
            return []
        return [str(path) for path in self.armed if path.lstat().st_atime_ns != 0]


def _relatime_works(probe: Path) -> bool:
    probe.write_bytes(b"probe")
    os.utime(probe, ns=(0, probe.stat().st_mtime_ns))
    probe.read_bytes()
    works = probe.stat().st_atime_ns != 0
    probe.unlink()
    return works


def _outside_archive() -> bytes:
    dialog = ArchivedDialog(
        SID,
        UserId("alice"),
        "chat",
        {},
        T0,
        T0 + 5,
        EndReason.CLIENT_ENDED,
        (Message(1, Role.USER, "SECRET FROM OUTSIDE", T0 + 1),),
    )
    return dialog_to_yaml(dialog)


@pytest.fixture
def arena(tmp_path: Path) -> Arena:
    """A fresh arena; ``outside`` holds what a successful traversal would find."""
    parent = tmp_path / "parent"
    data = parent / "data"
    outside = parent / "outside"
    data.mkdir(parents=True)
    for folder in ("dialogs/archived", "dialogs/current", "users/alice/dialogs/archived"):
        (outside / folder).mkdir(parents=True)
    (outside / "dialogs/archived" / f"{AID}.yaml").write_bytes(_outside_archive())
    (outside / "users/alice/dialogs/archived" / f"{AID}.yaml").write_bytes(_outside_archive())
    (outside / "dialogs/current" / SID).write_bytes(
        records.header_record(SID, "alice", "chat", T0, {})
    )
    (outside / "dialogs/archived" / f".{AID}.yaml.tmp-0badc0de").write_bytes(b"keep me")
    (parent / "sentinel.txt").write_text("do not touch")
    return Arena(parent, data, outside, _relatime_works(tmp_path / "probe"))


async def _refused_everywhere(
    arena: Arena, calls: list[Callable[[], Awaitable[object]]], match: str
) -> None:
    """Each call raises InvalidInput matching ``match``; nothing changed, nothing outside read."""
    before = arena.snapshot()
    arena.arm_read_detector()
    for call in calls:
        with pytest.raises(InvalidInput, match=match):
            await call()
    assert arena.read_outside() == []
    assert arena.snapshot() == before


def _sync(fn: Callable[..., object], *args: object) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return fn(*args)

    return call


@pytest.mark.parametrize("name", **ids(CORPUS))
async def test_paths_traversal_corpus_as_user_id_is_refused_and_touches_nothing(
    arena: Arena, name: str
) -> None:
    """Every corpus name as a user id: InvalidInput from DataDir, archive, journal and manager."""
    paths = DataDir(arena.data)
    archive = YamlArchive(arena.data)
    journal = FileJournal(arena.data)
    manager = SessionManager(journal=FileJournal(arena.data), archiver=YamlArchive(arena.data))
    try:
        await manager.open()
        await _refused_everywhere(
            arena,
            [
                _sync(paths.current_dir, name),
                _sync(paths.archived_dir, name),
                _sync(paths.damaged_dir, name),
                _sync(paths.journal, name, SID),
                _sync(paths.archive, name, AID),
                lambda: archive.list(name),
                lambda: archive.read(name, AID),
                lambda: journal.begin(SID, UserId(name), "chat", T0, {}),
                lambda: manager.start(name),
            ],
            match="invalid user id",
        )
        assert not journal.knows(SID)
    finally:
        await manager.aclose()
        await journal.aclose()
        await archive.aclose()


@pytest.mark.parametrize("name", **ids(ARCHIVE_ID_CORPUS))
async def test_paths_traversal_corpus_as_archive_id_is_refused_and_touches_nothing(
    arena: Arena, name: str
) -> None:
    """Every corpus name as an archive id: InvalidInput from DataDir.archive and archive.read."""
    paths = DataDir(arena.data)
    archive = YamlArchive(arena.data)
    try:
        await _refused_everywhere(
            arena,
            [_sync(paths.archive, "alice", name), lambda: archive.read("alice", name)],
            match="invalid archive id",
        )
    finally:
        await archive.aclose()


@pytest.mark.parametrize("name", **ids(SESSION_ID_CORPUS))
async def test_paths_traversal_corpus_as_session_id_is_refused_and_touches_nothing(
    arena: Arena, name: str
) -> None:
    """Every corpus name as a session id: InvalidInput from DataDir.journal and journal.begin."""
    paths = DataDir(arena.data)
    journal = FileJournal(arena.data)
    try:
        await _refused_everywhere(
            arena,
            [
                _sync(paths.journal, "alice", name),
                lambda: journal.begin(SessionId(name), UserId("alice"), "chat", T0, {}),
            ],
            match="invalid session id",
        )
        assert not journal.knows(SessionId(name))
    finally:
        await journal.aclose()


def test_paths_valid_names_stay_inside_the_data_dir(arena: Arena) -> None:
    """The allowlist's edge cases that are accepted (128 chars, dots, @) map under users/."""
    paths = DataDir(arena.data)
    for user in ("a" * 128, "...", ".alice", "a.b@c-d_e", "0"):
        dialogs = arena.data.resolve() / "users" / user / "dialogs"
        assert paths.current_dir(user) == dialogs / "current"
        assert paths.archived_dir(user) == dialogs / "archived"
        assert paths.journal(user, SID).parent == paths.current_dir(user)
        assert paths.archive(user, AID).name == f"{AID}.yaml"


async def test_paths_symlinked_user_folder_pointing_outside_is_refused(arena: Arena) -> None:
    """users/alice as a symlink to outside: every path call, list, read and begin is refused."""
    (arena.data / "users").mkdir()
    (arena.data / "users" / "alice").symlink_to(arena.outside, target_is_directory=True)
    paths = DataDir(arena.data)
    archive = YamlArchive(arena.data)
    journal = FileJournal(arena.data)
    try:
        await _refused_everywhere(
            arena,
            [
                _sync(paths.current_dir, "alice"),
                _sync(paths.damaged_dir, "alice"),
                _sync(paths.archived_dir, "alice"),
                _sync(paths.journal, "alice", SID),
                _sync(paths.archive, "alice", AID),
                lambda: archive.list("alice"),
                lambda: archive.read("alice", AID),
                lambda: journal.begin(SID, UserId("alice"), "chat", T0, {}),
            ],
            match="outside the data directory",
        )
    finally:
        await journal.aclose()
        await archive.aclose()


async def test_paths_recovery_skips_a_symlinked_user_folder(arena: Arena) -> None:
    """journals()/temp_files() skip users/alice -> outside; recovery reads or deletes nothing."""
    (arena.data / "users").mkdir()
    (arena.data / "users" / "alice").symlink_to(arena.outside, target_is_directory=True)
    paths = DataDir(arena.data)
    assert list(paths.journals()) == []
    assert list(paths.temp_files()) == []
    before = arena.snapshot(outside_only=True)
    arena.arm_read_detector()
    archive = YamlArchive(arena.data)
    try:
        report = await recover(paths, archive)
    finally:
        await archive.aclose()
    assert report.recovered == 0
    assert report.temp_files_removed == 0
    assert arena.read_outside() == []
    assert arena.snapshot(outside_only=True) == before


def _link_component(arena: Arena, component: str) -> None:
    """Make ``component`` of alice's tree a symlink into ``outside`` (which mirrors the layout)."""
    user = arena.data / "users" / "alice"
    if component == "users":
        (arena.data / "users").symlink_to(arena.outside / "users", target_is_directory=True)
        (arena.outside / "users/alice/dialogs/current").mkdir(parents=True)
        (arena.outside / "users/alice/dialogs/current" / SID).write_bytes(
            records.header_record(SID, "alice", "chat", T0, {})
        )
        (arena.outside / "users/alice/dialogs/archived" / f".{AID}.yaml.tmp-0badc0de").write_bytes(
            b"keep me"
        )
    elif component == "dialogs":
        user.mkdir(parents=True)
        (user / "dialogs").symlink_to(arena.outside / "dialogs", target_is_directory=True)
    else:
        (user / "dialogs").mkdir(parents=True)
        (user / "dialogs" / component).symlink_to(
            arena.outside / "dialogs" / component, target_is_directory=True
        )


@pytest.mark.parametrize("component", ["users", "dialogs", "current", "archived"])
async def test_paths_recovery_never_follows_a_symlinked_folder_out_of_the_data_dir(
    arena: Arena, component: str
) -> None:
    """A symlinked users/, dialogs/, current/ or archived/: nothing outside read or removed."""
    _link_component(arena, component)
    paths = DataDir(arena.data)
    before = arena.snapshot(outside_only=True)
    arena.arm_read_detector()
    listed = [str(p) for *_, p in paths.journals()] + [str(p) for p in paths.temp_files()]
    archive = YamlArchive(arena.data)
    try:
        await recover(paths, archive)  # must not raise either
    finally:
        await archive.aclose()
    assert listed == []
    assert arena.read_outside() == []
    assert arena.snapshot(outside_only=True) == before


def test_paths_journals_skips_foreign_names_directories_and_symlinks(arena: Arena) -> None:
    """journals() lists only regular files named by a session id, in users named by a user id."""
    good = arena.data / "users/alice/dialogs/current"
    good.mkdir(parents=True)
    (good / SID).write_bytes(b"")
    for foreign in ("notes.txt", SID.upper(), SID[:-1], SID + ".bak", "." + SID[1:]):
        (good / foreign).write_bytes(b"")
    (good / ("f" * 32)).mkdir()  # a directory with a session id's name
    (good / ("e" * 32)).symlink_to(arena.outside / "dialogs/current" / SID)
    bad_user = arena.data / "users/bad user/dialogs/current"
    bad_user.mkdir(parents=True)
    (bad_user / SID).write_bytes(b"")
    (arena.data / "users/linked").symlink_to(arena.data / "users/alice", target_is_directory=True)
    assert list(DataDir(arena.data).journals()) == [("alice", SID, good.resolve() / SID)]


def test_paths_temp_files_lists_only_hidden_temp_names_in_archived_folders(arena: Arena) -> None:
    """temp_files() yields .{id}.yaml.tmp-* files in archived/ and nothing else."""
    archived = arena.data / "users/alice/dialogs/archived"
    archived.mkdir(parents=True)
    temp = archived / f".{AID}.yaml.tmp-12345678"
    temp.write_bytes(b"half")
    for other in (f"{AID}.yaml", "notes.tmp-1", f"{AID}.yaml.tmp-1"):
        (archived / other).write_bytes(b"")
    current = arena.data / "users/alice/dialogs/current"
    current.mkdir()
    (current / f".{AID}.yaml.tmp-1").write_bytes(b"")
    assert list(DataDir(arena.data).temp_files()) == [temp.resolve()]


async def test_paths_recovery_removes_a_temp_named_symlink_but_not_its_target(
    arena: Arena,
) -> None:
    """A temp-named symlink in archived/ may go, but the outside file it points at is untouched."""
    archived = arena.data / "users/alice/dialogs/archived"
    archived.mkdir(parents=True)
    target = arena.outside / "dialogs/archived" / f".{AID}.yaml.tmp-0badc0de"
    (archived / f".{AID}.yaml.tmp-deadbeef").symlink_to(target)
    before = arena.snapshot(outside_only=True)
    arena.arm_read_detector()
    archive = YamlArchive(arena.data)
    try:
        await recover(DataDir(arena.data), archive)
    finally:
        await archive.aclose()
    assert arena.read_outside() == []
    assert arena.snapshot(outside_only=True) == before
    assert target.read_bytes() == b"keep me"
