"""Spare files: journals kept after their archive is durable, to become later archives.

On some file systems (ext4 mounted with ``discard``, many virtual disks)
creating a file and freeing a file's blocks are the slow part of archiving:
each new inode costs up to a millisecond or more, and each unlink or truncate
sends a discard to the device. So, as PostgreSQL recycles WAL segments and
RocksDB its log files (``recycle_log_file_num``), a journal whose archive is
durable is not deleted: it is renamed into ``{data_dir}/spare/`` (no
truncate, so no block is freed), and the next archive is written over it in
place (see :mod:`tether.archive.group_writer`). Reusing an inode and its
blocks is 2-6x cheaper than a create plus an unlink on such a disk.

The pool is bounded (:data:`DEFAULT_CAP` files): beyond that a journal is
unlinked as before. Spares still hold an old transcript's bytes until they are
reused; they are private to the server (mode 0600, in the data dir, names the
server makes), never listed as journals or archives, and an archive written
over one is cut to its exact length, so none of the old bytes remain in it.

Spares left by a previous run are adopted on first use. Names carry a random
token per pool, so two processes sharing a data dir never rename onto each
other's spares; one taking a spare the other already took simply moves on.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import weakref
from pathlib import Path

from tether.archive.paths import SPARE_DIR

log = logging.getLogger("tether.archive")

DEFAULT_CAP = 4096
"""Spare files kept at most (about one per archive of a burst this size)."""

SPARE_PREFIX = "spare-"


class SparePool:
    """A bounded pool of spare files in one folder; safe to share between threads.

    Blocking (renames, a scan on first use): call from worker threads only.
    """

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._reserved = 0
        """Renames into the pool under way (counted against the cap)."""
        self._token = secrets.token_hex(4)
        self._counter = itertools.count()
        self._ready = False
        self._usable = True

    def __len__(self) -> int:
        with self._lock:
            return len(self._names)

    def put(self, path: Path, cap: int = DEFAULT_CAP) -> bool:
        """Move ``path`` into the pool, or unlink it if the pool holds ``cap`` files.

        ``True`` if it was kept. The file must be closed by every writer:
        whoever takes it next overwrites it.
        """
        with self._lock:
            self._prepare()
            keep = self._usable and len(self._names) + self._reserved < cap
            if keep:
                self._reserved += 1
                name = f"{SPARE_PREFIX}{self._token}-{next(self._counter)}"
        if not keep:
            path.unlink(missing_ok=True)
            return False
        try:
            os.rename(path, self.folder / name)
        except FileNotFoundError:
            with self._lock:
                self._reserved -= 1
            return False
        except OSError:
            with self._lock:
                self._reserved -= 1
            path.unlink(missing_ok=True)
            return False
        with self._lock:
            self._reserved -= 1
            self._names.append(name)
        return True

    def take(self, target: Path) -> bool:
        """Rename a spare to ``target`` (a fresh temp name); ``False`` if none was left.

        The caller overwrites it (see :func:`tether.archive.durable.overwrite`).
        """
        while True:
            with self._lock:
                self._prepare()
                if not self._names:
                    return False
                name = self._names.pop()
            try:
                os.rename(self.folder / name, target)
                return True
            except FileNotFoundError:  # another process took it, or a human removed it
                continue
            except OSError as exc:  # e.g. the folder is on another file system now
                log.error("spare file not reused: %s", exc)
                return False

    def _prepare(self) -> None:
        """Create the folder and adopt spares already in it, once (hold ``_lock``)."""
        if self._ready:
            return
        self._ready = True
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            # Never rename files through a symlink: spares must stay on the
            # data dir's file system, inside it.
            if self.folder.is_symlink() or not self.folder.resolve().is_relative_to(self.root):
                raise OSError(f"{self.folder} is not a folder inside the data dir")
            with os.scandir(self.folder) as entries:
                self._names = [
                    e.name
                    for e in entries
                    if e.name.startswith(SPARE_PREFIX) and e.is_file(follow_symlinks=False)
                ]
        except OSError as exc:
            log.error("spare files disabled: %s", exc)
            self._usable = False


_pools: weakref.WeakValueDictionary[Path, SparePool] = weakref.WeakValueDictionary()
_pools_lock = threading.Lock()


def pool_for(root: Path) -> SparePool:
    """The pool of the data dir ``root`` (already resolved), shared within the process.

    The journal puts files in and the archive writer takes them out, so both
    must see the same pool; it lives as long as one of them holds it.
    """
    with _pools_lock:
        pool = _pools.get(root)
        if pool is None:
            pool = _pools[root] = SparePool(root / SPARE_DIR, root)
        return pool
