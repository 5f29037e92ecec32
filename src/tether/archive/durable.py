"""Blocking file primitives that make writes survive a crash.

Everything here blocks and is meant to run on a worker thread, never on the
event loop. ``OSError`` is translated into :class:`~tether.errors.ArchiveError`
by the callers, at the seam.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import stat
from collections.abc import Callable
from pathlib import Path

from tether.archive.paths import TEMP_MARK

_OPEN_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
_OPEN_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


def open_append(path: Path) -> int:
    """Open ``path`` for appending, creating it; refuses to follow a symlink."""
    return os.open(path, _OPEN_APPEND, 0o600)


def read_bytes(path: Path, limit: int) -> bytes:
    """The whole file, refusing symlinks and files larger than ``limit`` bytes."""
    fd = os.open(path, _OPEN_READ)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise OSError(f"file is {size} bytes, more than the {limit} allowed")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written (short writes happen)."""
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    while view:
        view = view[os.write(fd, view) :]


def open_root(path: Path) -> int:
    """Create ``path`` if missing and open it as a directory (the fd ``syncfs`` is given)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, root: Path) -> None:
    """Create ``path`` and any missing parents below ``root``, each made durable."""
    for directory in make_dirs(path, root):
        fsync_dir(directory.parent)


def make_dirs(path: Path, root: Path) -> list[Path]:
    """Create ``path`` and any missing parents below ``root``; the folders created, top first.

    Not durable by itself: the caller syncs each created folder's parent
    (or the whole filesystem) before relying on them.
    """
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe == root or probe.parent == probe:
            break
        probe = probe.parent
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        created.append(directory)
    return created


def temp_name(path: Path) -> Path:
    """A fresh hidden temp name beside ``path`` (recovery removes such names)."""
    # Unique within the process by the counter and across processes by the
    # pid; O_EXCL refuses any clash anyway. (secrets.token_hex costs a
    # getrandom call, which was measurable with thousands of archives.)
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{next(_temp_counter)}")


_temp_counter = itertools.count()


def write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new temp file beside ``path`` (not flushed); returns the temp path."""
    temp = temp_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def overwrite(path: Path, data: bytes) -> None:
    """Make the existing file ``path`` hold exactly ``data`` (not flushed); a recycled spare.

    Written in place from offset 0 and then cut to ``len(data)``: no
    ``O_TRUNC``, which would free the file's blocks (a discard on some disks)
    only for the write to allocate them again. Nothing of the old content is
    left past the new end. Refuses anything but a private regular file with a
    single name: writing through a second hard link would change another file.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(f"{path.name} is not a regular file with one name")
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        pwrite_all(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """``os.pwrite`` until every byte is written at ``offset`` onwards."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def link_once(
    temp: Path, path: Path, *, keep_unused: Callable[[Path], object] | None = None
) -> bool:
    """Give ``temp`` the name ``path`` unless that name is taken; drop ``temp`` either way.

    A hard link fails if the name exists, so the first writer wins and
    nobody overwrites an archive. ``True`` if this call created ``path``.
    A ``temp`` that lost is unlinked, or handed to ``keep_unused`` (which
    moves it away: the spare pool).
    """
    try:
        os.link(temp, path)
    except FileExistsError:
        if keep_unused is None:
            temp.unlink(missing_ok=True)
        else:
            keep_unused(temp)
        return False
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    temp.unlink(missing_ok=True)  # the name keeps the inode: nothing is freed
    return True


def write_once(path: Path, data: bytes, root: Path) -> bool:
    """Create ``path`` holding ``data`` unless it exists; ``True`` if this call created it.

    Temp file beside it, fsync, link into place (first writer wins), fsync
    the folder. A reader sees either no file or a whole one, and once this
    returns the file survives a power cut.
    """
    ensure_dir(path.parent, root)
    temp = write_temp(path, data)
    try:
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    created = link_once(temp, path)
    # Also when it existed: the earlier writer may have died before its own
    # folder fsync, and the caller is about to rely on the file.
    fsync_dir(path.parent)
    return created


def _load_syncfs() -> Callable[[int], None] | None:
    """``syncfs(2)`` from libc, if this platform has it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        raw = libc.syncfs
    except (OSError, AttributeError):
        return None
    raw.argtypes = [ctypes.c_int]
    raw.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if raw(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return syncfs


syncfs = _load_syncfs()
"""Flush every dirty file and directory of one filesystem in a single call, or ``None``.

Group commit uses it so that one flush covers the appends of many sessions,
each in its own file; PostgreSQL offers the same trade (``syncfs`` at
start-up). It also flushes unrelated dirty data on that filesystem, which is
why a dedicated data volume is the recommended deployment.
"""
