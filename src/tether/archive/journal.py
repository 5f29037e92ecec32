"""``FileJournal``: each live session's transcript, appended durably with group commit.

Every live session has one append-only file (see :mod:`tether.archive.records`
for the format). Appends from all sessions go through one queue to one worker
thread, which takes whatever has queued up as a batch, writes each record to
its file and then, under ``fsync=always``, makes the whole batch durable with
one flush before any of its appends is acknowledged. While the flush runs, the
next batch gathers, so many concurrent sessions share each flush (group commit)
and the event loop never blocks on the disk.

Fsync policies, as in Redis's ``appendfsync``:

``always``
    an append returns after the flush that covers it: nothing acknowledged is
    lost, even to a power cut;
``everysec``
    an append returns once written; a flush runs at most a second later, so a
    power cut can lose about a second (a crash of the process alone loses
    nothing: the data is in the kernel);
``no``
    written, never flushed by tether; the kernel decides.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tether.archive import durable, records
from tether.archive.paths import DataDir
from tether.core.ids import log_ref
from tether.core.transcript import Message
from tether.errors import ArchiveError, InvalidInput
from tether.types import SessionId, UserId

log = logging.getLogger("tether.archive")


class FsyncPolicy(StrEnum):
    """When journal appends are flushed to stable storage (``TETHER_FSYNC``)."""

    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


def parse_fsync_policy(value: object) -> FsyncPolicy:
    """``value`` as an :class:`FsyncPolicy`, or :class:`InvalidInput` naming the choices."""
    try:
        return FsyncPolicy(value) if isinstance(value, str) else FsyncPolicy("")
    except ValueError:
        allowed = " | ".join(p.value for p in FsyncPolicy)
        raise InvalidInput(f"invalid fsync policy {value!r}: expected {allowed}") from None


@dataclass(slots=True)
class _Op:
    """One queued piece of work for the journal thread, in order."""

    session_id: SessionId
    path: Path
    data: bytes | None
    """Bytes to append, or ``None`` to close and delete the journal."""
    done: asyncio.Future[None] | None
    durable: bool
    """Acknowledge only after a flush covers it (``always``)."""


class FileJournal:
    """Crash-safe per-session transcript journals under ``{data_dir}/users/*/dialogs/current``.

    ``begin`` when a session starts, ``append`` for each message (returns once
    durable under the fsync policy), ``config`` when its config changes,
    ``remove`` once its archive is durable.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy | str = FsyncPolicy.ALWAYS,
        use_syncfs: bool | None = None,
        max_open_files: int = 1024,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.paths = DataDir(data_dir)
        self.fsync = parse_fsync_policy(fsync)
        syncfs = durable.syncfs if use_syncfs is not False else None
        if use_syncfs and syncfs is None:
            raise InvalidInput("syncfs is not available on this platform")
        self._syncfs = syncfs
        self._max_open = max_open_files
        self._on_failure = on_failure
        self._users: dict[SessionId, UserId] = {}
        self._queue: list[_Op] = []
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tether-journal")
        self._committer: asyncio.Task[None] | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._closed = False
        # Touched only by the journal thread:
        self._fds: OrderedDict[Path, int] = OrderedDict()
        self._dirty: set[Path] = set()
        self._new_dirs: set[Path] = set()
        self._last_sync = time.monotonic()
        self.batches = 0
        """Commits so far (each one flush under ``always``): group-commit evidence."""

    # -- the API the runtime uses --------------------------------------------------

    async def begin(
        self,
        session_id: SessionId,
        user: UserId,
        kind: str,
        created_at: float,
        config: dict[str, Any],
    ) -> None:
        """Start the session's journal with its header; returns once durable under the policy.

        A started session is something a client was told, so it must survive
        a crash just like an acknowledged message (recovery archives it).
        """
        path = self.paths.journal(user, session_id)
        data = records.header_record(session_id, user, kind, created_at, config)
        self._users[session_id] = user
        await self._submit(session_id, path, data)

    async def append(self, session_id: SessionId, message: Message) -> None:
        """Append ``message``; returns once it is durable under the fsync policy.

        Raises :class:`InvalidInput` for content that cannot be stored and
        :class:`ArchiveError` if the disk refused the write.
        """
        await self._submit(session_id, self._path(session_id), records.message_record(message))

    async def _submit(self, session_id: SessionId, path: Path, data: bytes) -> None:
        done = asyncio.get_running_loop().create_future()
        durable = self.fsync is FsyncPolicy.ALWAYS
        self._enqueue(_Op(session_id, path, data, done, durable))
        await done

    def config(self, session_id: SessionId, config: dict[str, Any], ts: float) -> None:
        """Record a replaced config (queued, flushed with the next message)."""
        if session_id in self._users:
            data = records.config_record(config, ts)
            self._enqueue(_Op(session_id, self._path(session_id), data, None, durable=False))

    async def remove(self, session_id: SessionId) -> None:
        """Close and delete the session's journal: call only once its archive is durable."""
        user = self._users.pop(session_id, None)
        if user is None:
            return
        done = asyncio.get_running_loop().create_future()
        path = self.paths.journal(user, session_id)
        self._enqueue(_Op(session_id, path, None, done, durable=False))
        await done

    def knows(self, session_id: SessionId) -> bool:
        """Whether this journal holds a live journal for the session."""
        return session_id in self._users

    async def aclose(self) -> None:
        """Flush and close every file, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._committer is not None:
            await self._committer
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_all)
        self._thread.shutdown(wait=True)

    # -- the queue, on the event loop ----------------------------------------------

    def _path(self, session_id: SessionId) -> Path:
        user = self._users.get(session_id)
        if user is None:
            raise ArchiveError("no journal for this session (it was never begun here)")
        return self.paths.journal(user, session_id)

    def _enqueue(self, op: _Op) -> None:
        if self._closed:
            raise ArchiveError("the journal is closed")
        self._queue.append(op)
        self._wake.set()
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(
                self._commit_loop(), name="tether-journal"
            )

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            flush_due = self.fsync is FsyncPolicy.EVERYSEC and bool(self._dirty)
            if batch or flush_due:
                try:
                    errors = await loop.run_in_executor(self._thread, self._commit, batch)
                except Exception as exc:  # a bug must not leave appends waiting forever
                    log.exception("journal commit failed")
                    errors = dict.fromkeys(range(len(batch)), OSError(5, str(exc)))
                self._settle(batch, errors)
            if self._closed and not self._queue:
                if self._flush_timer is not None:
                    self._flush_timer.cancel()
                return
            if self.fsync is FsyncPolicy.EVERYSEC and self._dirty and self._flush_timer is None:
                self._flush_timer = loop.call_later(1.0, self._flush_timer_fired)

    def _flush_timer_fired(self) -> None:
        self._flush_timer = None
        self._wake.set()

    def _settle(self, batch: list[_Op], errors: dict[int, OSError]) -> None:
        for index, op in enumerate(batch):
            error = errors.get(index)
            if error is not None:
                log.error("journal write failed session=%s: %s", log_ref(op.session_id), error)
                if self._on_failure is not None:
                    self._on_failure()
            if op.done is None or op.done.done():
                continue
            if error is None:
                op.done.set_result(None)
            else:
                op.done.set_exception(ArchiveError(f"journal write failed: {error.strerror}"))

    # -- the journal thread --------------------------------------------------------

    def _commit(self, batch: list[_Op]) -> dict[int, OSError]:
        """Write the batch in order, then flush if the policy asks; map of failed ops."""
        errors: dict[int, OSError] = {}
        failed: set[Path] = set()
        for index, op in enumerate(batch):
            if op.path in failed:
                # A later record of a file whose earlier one failed must not land
                # after a gap: refuse it too.
                errors[index] = OSError(5, "an earlier write to this journal failed")
                continue
            try:
                if op.data is None:
                    self._delete(op.path)
                else:
                    durable.write_all(self._fd(op.path), op.data)
                    self._dirty.add(op.path)
            except OSError as exc:
                errors[index] = exc
                failed.add(op.path)
        self.batches += 1
        due = self.fsync is FsyncPolicy.EVERYSEC and time.monotonic() - self._last_sync >= 1.0
        if self._dirty and (self.fsync is FsyncPolicy.ALWAYS or due or self._closed):
            try:
                self._flush()
            except OSError as exc:
                for index, op in enumerate(batch):
                    if op.durable:
                        errors.setdefault(index, exc)
        return errors

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is not None:
            self._fds.move_to_end(path)
            return fd
        if not path.parent.is_dir():
            durable.ensure_dir(path.parent, self.paths.root)
            self._new_dirs.add(path.parent)
        elif not path.exists():
            self._new_dirs.add(path.parent)
        if len(self._fds) >= self._max_open:
            old_path, old_fd = self._fds.popitem(last=False)
            if old_path in self._dirty:
                os.fdatasync(old_fd)
                self._dirty.discard(old_path)
            os.close(old_fd)
        fd = durable.open_append(path)
        self._fds[path] = fd
        return fd

    def _flush(self) -> None:
        """Make every dirty journal, and the folders new ones appeared in, durable."""
        if self._syncfs is not None and self._fds:
            self._syncfs(next(iter(self._fds.values())))
        else:
            for path in self._dirty:
                fd = self._fds.get(path)
                if fd is not None:
                    os.fdatasync(fd)
            for directory in self._new_dirs:
                durable.fsync_dir(directory)
        self._dirty.clear()
        self._new_dirs.clear()
        self._last_sync = time.monotonic()

    def _delete(self, path: Path) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)
        self._dirty.discard(path)
        path.unlink(missing_ok=True)

    def _close_all(self) -> None:
        if self._dirty:
            self._flush()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
