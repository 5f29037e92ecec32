"""``CommitLog``: one shared file that makes every session's journal appends durable at once.

Under ``fsync=always`` an append is acknowledged only once it is on stable
storage. Each session has its own journal file, so making a burst of appends
from a hundred sessions durable means flushing a hundred files: one
``syncfs`` (about a millisecond here) or a hundred ``fdatasync`` calls. The
commit log turns that into one sequential write and one ``fdatasync`` of a
single file (about a third of the cost), as databases do with a write-ahead
log: the journal files still receive every record first (in the page cache),
and the log holds a copy of each record, tagged with its session, until a
*checkpoint* (one ``syncfs`` every few megabytes) has made the journal files
themselves durable; then the log is emptied.

After a power cut, recovery reads the log and puts back into each journal the
records the page cache lost. A process crash loses nothing either way (the
kernel still has the journal pages), so the log matters only for power cuts
and kernel crashes, and replaying it is idempotent: records are merged by
sequence number.

Format: ``MAGIC`` then entries, each ``length:u32le crc32(body):u32le body``
with ``body := "W" len(session):u8 session len(user):u8 user record``, where
``record`` is the exact bytes written to the session's journal (its header
record starts with the journal's magic). A torn last entry is dropped; a
damaged one is skipped by scanning for the next entry whose checksum holds.

Everything here blocks: the journal's flusher thread calls it, never the loop.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tether.archive import durable, records

MAGIC = b"TTHRWAL1"
ENTRY = b"W"
SUFFIX = ".wal"
CHECKPOINT_BYTES = 4 << 20
"""Empty the log (after one ``syncfs``) once it holds this much: a checkpoint of
4 MiB of appends costs a few milliseconds, once per ~18k appends of 230 bytes."""
_KINDS = (ENTRY,)
_MAX_ENTRY = records.MAX_RECORD + 512


def tag(session_id: str, user: str) -> bytes:
    """The per-session part of an entry's body, built once per session."""
    sid, who = session_id.encode("ascii"), user.encode("ascii")
    if len(sid) > 255 or len(who) > 255:
        raise ValueError("session or user id too long for the commit log")
    return ENTRY + bytes((len(sid),)) + sid + bytes((len(who),)) + who


def entry(session_tag: bytes, record: bytes) -> bytes:
    """One framed entry: ``record`` (journal bytes) of the session ``session_tag`` names."""
    return records.frame(session_tag + record)


@dataclass(slots=True)
class LoggedSession:
    """The records one session has in the commit log(s), in the order they were written."""

    user: str
    records: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class LogContents:
    """What recovery could read from the commit logs."""

    sessions: dict[str, LoggedSession] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)
    """Notes on unreadable regions (a torn last entry is not damage)."""


def decode(data: bytes, into: LogContents, name: str = "commit log") -> None:
    """Add the entries of one log file to ``into``. Never raises."""
    if not data.startswith(MAGIC):
        if not MAGIC.startswith(data):  # a shorter prefix is a log torn while being created
            into.damage.append(f"{name}: not a tether commit log (bad magic bytes)")
        return
    offset, end = len(MAGIC), len(data)
    while offset < end:
        body = records.frame_at(data, offset, _KINDS, _MAX_ENTRY)
        if body is None:
            resume = records.next_frame(data, offset + 1, _KINDS, _MAX_ENTRY)
            if resume is None:
                return  # a torn tail: the write that was cut short was never acknowledged
            into.damage.append(f"{name}: bytes {offset}..{resume} unreadable and skipped")
            offset = resume
            continue
        offset += records.FRAME_OVERHEAD + len(body)
        parsed = _parse(body)
        if parsed is None:
            into.damage.append(f"{name}: entry at byte {offset} is malformed")
            continue
        session_id, user, record = parsed
        logged = into.sessions.setdefault(session_id, LoggedSession(user))
        if logged.user == user:
            logged.records.append(record)
        else:
            into.damage.append(f"{name}: entry at byte {offset} names another user")


def read_all(folder: Path, max_bytes: int) -> tuple[LogContents, list[Path]]:
    """Every commit log in ``folder``, oldest first, and the files read."""
    contents = LogContents()
    files = sorted(_log_files(folder), key=_number)
    for path in files:
        decode(durable.read_bytes(path, max_bytes), contents, path.name)
    return contents, files


def _parse(body: bytes) -> tuple[str, str, bytes] | None:
    try:
        sid_end = 2 + body[1]
        user_end = sid_end + 1 + body[sid_end]
        session_id = body[2:sid_end].decode("ascii")
        user = body[sid_end + 1 : user_end].decode("ascii")
    except (IndexError, UnicodeDecodeError):
        return None
    record = body[user_end:]
    return (session_id, user, record) if record else None


def _log_files(folder: Path) -> Iterator[Path]:
    try:
        with os.scandir(folder) as entries:
            for item in entries:
                numbered = item.name.endswith(SUFFIX) and item.name[: -len(SUFFIX)].isdigit()
                if numbered and item.is_file(follow_symlinks=False):
                    yield folder / item.name
    except FileNotFoundError:
        return


def _number(path: Path) -> int:
    return int(path.name[: -len(SUFFIX)])


class CommitLog:
    """The live log of one :class:`~tether.archive.journal.FileJournal` (flusher thread only).

    Files are numbered; the journal writes to the newest. A file whose write
    or flush failed is retired (its state on disk is unknown, so it is never
    written again) and kept until the next checkpoint makes it unnecessary.
    Files left by an earlier process are recovery's, never touched here.
    """

    def __init__(self, folder: Path, root: Path, syncfs: Callable[[int], None]) -> None:
        self.folder = folder
        self._root = root
        self._syncfs = syncfs
        self._fd: int | None = None
        self._path: Path | None = None
        self._retired: list[Path] = []
        self._size = 0
        self.checkpoints = 0

    def append(self, entries: list[bytes]) -> None:
        """Write ``entries`` and flush them; raises ``OSError`` (the log is then retired)."""
        fd = self._fd if self._fd is not None else self._open()
        data = b"".join(entries)
        try:
            durable.write_all(fd, data)
            os.fdatasync(fd)
        except OSError:
            self._retire()
            raise
        self._size += len(data)

    def checkpoint_due(self) -> bool:
        """Whether the log is big enough to be emptied by a checkpoint."""
        return self._size >= CHECKPOINT_BYTES

    def checkpoint(self, root_fd: int) -> None:
        """Make every journal durable with one ``syncfs``, then empty the log."""
        self._syncfs(root_fd)
        self.checkpoints += 1
        for path in self._retired:
            path.unlink(missing_ok=True)
        self._retired.clear()
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, len(MAGIC))
            except OSError:
                self._retire()
                return
            self._size = 0

    def close(self, root_fd: int) -> None:
        """Checkpoint, then delete the log: a clean stop leaves no log behind."""
        self.checkpoint(root_fd)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            durable.fsync_dir(self.folder)

    def _open(self) -> int:
        """A new log file, numbered after every file in the folder, made durable."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        numbers = [_number(path) for path in _log_files(self.folder)]
        path = self.folder / f"{max(numbers, default=0) + 1}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            durable.write_all(fd, MAGIC)
            os.fdatasync(fd)
            durable.fsync_dir(self.folder)
            durable.fsync_dir(self.folder.parent)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._path, self._size = fd, path, 0
        return fd

    def _retire(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        if self._path is not None:
            self._retired.append(self._path)
        self._fd, self._path = None, None
