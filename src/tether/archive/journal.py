"""``FileJournal``: each live session's transcript, appended durably with group commit.

Every live session has one append-only file (see :mod:`tether.archive.records`
for the format). An append writes its record at once, on the event loop (a
``write`` into the page cache, microseconds), and under ``fsync=always`` then
waits for a flush. One flusher thread makes every record written so far
durable at once and acknowledges them all; appends that arrive while a flush
runs wait for the next one. So many concurrent sessions share each flush
(group commit), and the flush itself, the slow part, never runs on the loop.
Redis's AOF makes the same split: ``write`` in the main thread, ``fsync`` in a
background one.

How a flush makes a hundred files durable: under ``always`` (where the
platform has ``syncfs``) a copy of each record goes to the shared commit log
(:mod:`tether.archive.commit_log`), and one ``fdatasync`` of that single file
covers every session; a ``syncfs`` every few megabytes (a checkpoint) makes
the journal files durable themselves and empties the log. Otherwise a flush
is one ``syncfs``, or one ``fdatasync`` per dirty file where ``syncfs`` is
missing.

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
import resource
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tether.archive import commit_log, durable, records, spares
from tether.archive.paths import DataDir
from tether.core.choices import parse_choice
from tether.core.ids import log_ref
from tether.core.transcript import Message
from tether.errors import ArchiveError, InvalidInput
from tether.types import SessionId, UserId

log = logging.getLogger("tether.archive")

FDATASYNC_UP_TO = 4
"""A flush of this many files or fewer syncs each one: ``syncfs`` flushes the
whole filesystem and costs several single-file syncs, so it only pays off for
bigger batches."""


HANDOVER_AT = 32
"""Appends after which a burst goes to an idle flusher before the loop iteration
ends. A hundred sessions resume together after a flush; handing their appends
over in one piece would leave the disk idle while the loop writes them all and
the loop idle while the disk flushes them. Handing over the first 32 at once
lets the two overlap (about 1.2x the appends per second at 100 sessions here),
and 32 still share each flush."""


def default_max_open_files() -> int:
    """Journal files kept open: a small share of the process's descriptors.

    Sockets need descriptors far more: a server holding 20k connections
    under a 20k limit must not spend a thousand on journals. A journal not
    kept open is simply reopened by its next message (one ``open`` call).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return min(1024, max(16, soft // 64))


class FsyncPolicy(StrEnum):
    """When journal appends are flushed to stable storage (``TETHER_FSYNC``)."""

    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


def parse_fsync_policy(value: object) -> FsyncPolicy:
    """``value`` as an :class:`FsyncPolicy`, or :class:`InvalidInput` naming the choices."""
    return parse_choice(FsyncPolicy, value, "fsync policy")


@dataclass(slots=True)
class _Closing:
    """An fd to close (and maybe a journal to delete) once the next flush is done.

    The loop never closes a journal fd itself: the flusher may be syncing it.
    """

    fd: int | None
    unlink: Path | None = None
    done: asyncio.Future[None] | None = None


@dataclass(slots=True)
class _Handoff:
    """What the loop hands the flusher thread; guarded by ``FileJournal._lock``."""

    acks: list[asyncio.Future[None]] = field(default_factory=list)
    logged: list[bytes] = field(default_factory=list)
    """Commit-log entries (copies of records written since the last handoff)."""
    dirty: dict[int, Path] = field(default_factory=dict)
    new_dirs: set[Path] = field(default_factory=set)
    closing: list[_Closing] = field(default_factory=list)


class FileJournal:
    """Crash-safe per-session transcript journals under ``{data_dir}/users/*/dialogs/current``.

    ``begin`` when a session starts, ``append`` for each message (both return
    once durable under the fsync policy), ``config`` when its config changes,
    ``remove`` once its archive is durable.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy | str = FsyncPolicy.ALWAYS,
        use_syncfs: bool | None = None,
        use_commit_log: bool | None = None,
        max_open_files: int | None = None,
        spare_files: int = spares.DEFAULT_CAP,
    ) -> None:
        self.paths = DataDir(data_dir)
        # A removed journal becomes a spare file for a later archive instead
        # of being deleted (see tether.archive.spares); only archive writers
        # with syncfs take spares, so without it they would only pile up.
        self._spare_cap = spare_files
        self._spares: spares.SparePool | None = None
        if spare_files > 0 and durable.syncfs is not None:
            self._spares = spares.pool_for(self.paths.root)
        self.fsync = parse_fsync_policy(fsync)
        syncfs = durable.syncfs if use_syncfs is not False else None
        if use_syncfs and syncfs is None:
            raise InvalidInput("syncfs is not available on this platform")
        self._syncfs = syncfs
        if use_commit_log and (syncfs is None or self.fsync is not FsyncPolicy.ALWAYS):
            raise InvalidInput("the commit log needs syncfs and fsync=always")
        self._log: commit_log.CommitLog | None = None
        if use_commit_log is not False and syncfs is not None and self.fsync is FsyncPolicy.ALWAYS:
            self._log = commit_log.CommitLog(self.paths.commit_logs, self.paths.root, syncfs)
        self._log_tags: dict[SessionId, bytes] = {}
        self._max_open = max(1, max_open_files or default_max_open_files())
        self._closed = False
        # Loop side. Each live session's journal path is built and checked
        # once, at begin(): resolving a path walks the filesystem.
        self._paths: dict[SessionId, Path] = {}
        self._fds: OrderedDict[SessionId, int] = OrderedDict()
        self._broken: set[SessionId] = set()
        # Appends waiting for a flush, handed to the flusher together once per
        # loop iteration: the first append of a burst schedules the handover,
        # so a flush starts with the whole burst rather than its first record.
        self._waiting = _Handoff()
        self._handover_scheduled = False
        # Shared with the flusher thread:
        self._lock = threading.Condition(threading.Lock())
        self._handoff = _Handoff()
        self._idle = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._root_fd: int | None = None
        self._last_flush = time.monotonic()
        self.batches = 0
        """Flushes so far: with many sessions far fewer than appends (group commit)."""

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
        self._check_open()
        data = records.header_record(session_id, user, kind, created_at, config)
        loop = asyncio.get_running_loop()
        try:
            path, fd, dirs = await loop.run_in_executor(None, self._create, user, session_id, data)
        except OSError as exc:
            raise ArchiveError(f"cannot create the journal: {exc.strerror or exc}") from None
        self._paths[session_id] = path
        # The file is closed once flushed and reopened by the first message:
        # a session that never speaks holds no descriptor, so idle sessions
        # cost no file descriptors beside their sockets.
        done: asyncio.Future[None] | None = None
        if self._log is not None:
            # The log's copy makes the header durable; the file and its
            # folders become durable at the next checkpoint.
            tag = self._log_tags[session_id] = commit_log.tag(session_id, user)
            self._waiting.logged.append(commit_log.entry(tag, data))
        elif self.fsync is not FsyncPolicy.NO:
            self._waiting.dirty[fd] = path
            self._waiting.new_dirs.update(dirs)
        if self.fsync is FsyncPolicy.ALWAYS:
            done = loop.create_future()
            self._waiting.acks.append(done)
        self._hand_over(_Closing(fd))
        if done is not None:
            await done

    async def append(self, session_id: SessionId, message: Message) -> None:
        """Append ``message``; returns once it is durable under the fsync policy.

        Raises :class:`InvalidInput` for content that cannot be stored and
        :class:`ArchiveError` if the disk refused the write or the flush.
        """
        done = self._write(session_id, self._path(session_id), records.message_record(message))
        if done is not None:
            await done

    def config(self, session_id: SessionId, config: dict[str, Any], ts: float) -> None:
        """Record a replaced config (written now, made durable with the next flush)."""
        path = self._paths.get(session_id)
        if path is not None and session_id not in self._broken:
            try:
                data = records.config_record(config, ts)
                fd = self._write_now(session_id, path, data)
                if self._log is not None:
                    self._waiting.logged.append(commit_log.entry(self._log_tags[session_id], data))
                elif self.fsync is FsyncPolicy.ALWAYS:
                    self._waiting.dirty[fd] = path  # a small flush may sync files one by one
            except ArchiveError as exc:
                log.error("journal config write failed session=%s: %s", log_ref(session_id), exc)

    async def remove(self, session_id: SessionId) -> None:
        """Close and delete the session's journal: call only once its archive is durable.

        The file is closed first, then kept as a spare file for a later
        archive (up to ``spare_files`` of them) or unlinked.
        """
        path = self._paths.pop(session_id, None)
        if path is None:
            return
        self._broken.discard(session_id)
        self._log_tags.pop(session_id, None)
        done = asyncio.get_running_loop().create_future()
        self._hand_over(_Closing(self._fds.pop(session_id, None), path, done))
        await done

    def knows(self, session_id: SessionId) -> bool:
        """Whether this journal holds a live journal for the session."""
        return session_id in self._paths

    async def aclose(self) -> None:
        """Flush and close every file, then stop the flusher thread."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._move_waiting()
            self._handoff.closing.extend(_Closing(fd) for fd in self._fds.values())
            self._fds.clear()
            self._stopping = True
            self._lock.notify()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    # -- the loop side -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ArchiveError("the journal is closed")
        if self._thread is None:
            self._root_fd = durable.open_root(self.paths.root)
            self._thread = threading.Thread(
                target=self._run,
                args=(asyncio.get_running_loop(),),
                name="tether-journal",
                daemon=True,  # it only ever holds unacknowledged work
            )
            self._thread.start()

    def _path(self, session_id: SessionId) -> Path:
        path = self._paths.get(session_id)
        if path is None:
            raise ArchiveError("no journal for this session (it was never begun here)")
        return path

    def _write(self, session_id: SessionId, path: Path, data: bytes) -> asyncio.Future[None] | None:
        """Write ``data`` now; the acknowledgement to wait for under ``always``.

        A plain function, not a coroutine: appends are the hot path, so the
        caller awaits the acknowledgement itself, one coroutine fewer each.
        """
        fd = self._write_now(session_id, path, data)
        if self.fsync is not FsyncPolicy.ALWAYS:
            return None
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._waiting.acks.append(done)
        if self._log is not None:
            self._waiting.logged.append(commit_log.entry(self._log_tags[session_id], data))
        else:
            self._waiting.dirty[fd] = path
        if not self._handover_scheduled:
            self._handover_scheduled = True
            loop.call_soon(self._hand_over_waiting)
        elif self._idle and len(self._waiting.acks) >= HANDOVER_AT:
            # An unlocked read of _idle: a stale answer only moves this
            # handover to the end of the loop iteration.
            self._hand_over_waiting()
        return done

    def _hand_over_waiting(self) -> None:
        with self._lock:
            self._move_waiting()
            if self._idle:
                self._lock.notify()

    def _move_waiting(self) -> None:
        """Move waiting appends into the handoff (hold ``_lock``).

        Always before anything is queued for closing: the flusher must sync a
        file before it closes it (its fd number could be reused).
        """
        waiting, self._waiting = self._waiting, _Handoff()
        self._handover_scheduled = False
        self._handoff.acks.extend(waiting.acks)
        self._handoff.logged.extend(waiting.logged)
        self._handoff.dirty.update(waiting.dirty)
        self._handoff.new_dirs.update(waiting.new_dirs)

    def _write_now(self, session_id: SessionId, path: Path, data: bytes) -> int:
        """Write ``data`` to the session's journal; the fd written to."""
        self._check_open()
        if session_id in self._broken:
            raise ArchiveError("an earlier write to this journal failed; it takes no more")
        try:
            fd = self._fds.get(session_id)
            if fd is None:
                fd = self._remember_fd(session_id, durable.open_append(path))
            else:
                self._fds.move_to_end(session_id)
            durable.write_all(fd, data)
        except OSError as exc:
            # A partial record may now end the file; nothing may follow it.
            self._broken.add(session_id)
            raise ArchiveError(f"journal write failed: {exc.strerror or exc}") from None
        if self.fsync is FsyncPolicy.EVERYSEC:
            with self._lock:
                if not self._handoff.dirty and self._idle:
                    self._lock.notify()  # it may be waiting with no deadline
                self._handoff.dirty[fd] = path
        return fd

    def _remember_fd(self, session_id: SessionId, fd: int) -> int:
        self._fds[session_id] = fd
        if len(self._fds) > self._max_open:
            _, oldest = self._fds.popitem(last=False)
            self._hand_over(_Closing(oldest))
        return fd

    def _hand_over(self, closing: _Closing) -> None:
        with self._lock:
            self._move_waiting()
            self._handoff.closing.append(closing)
            if self._idle:
                self._lock.notify()

    def _create(
        self, user: UserId, session_id: SessionId, header: bytes
    ) -> tuple[Path, int, list[Path]]:
        """Build, check and create a journal holding ``header`` (on a worker thread).

        Returns the path, its open fd, and the folders whose entries the next
        flush must make durable (the journal's own and those of any folder
        created here): one flush covers them all, instead of a sync per level.
        """
        path = self.paths.journal(user, session_id)
        created = durable.make_dirs(path.parent, self.paths.root)
        fd = durable.open_append(path)
        try:
            durable.write_all(fd, header)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return path, fd, [path.parent, *(folder.parent for folder in created)]

    def _settle(self, acks: list[asyncio.Future[None]], error: OSError | None) -> None:
        if error is not None:
            log.error("journal flush failed: %s", error)
        for done in acks:
            if done.done():
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(ArchiveError(f"journal flush failed: {error.strerror}"))

    # -- the flusher thread --------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush whatever was written, acknowledge it, close what was handed over."""
        while True:
            with self._lock:
                while not self._has_work():
                    self._idle = True
                    self._lock.wait(self._flush_wait())
                    self._idle = False
                work, self._handoff = self._handoff, _Handoff()
                stopping = self._stopping
            error: OSError | None = None
            try:
                self._flush(work)
            except OSError as exc:
                error = exc
            except Exception as exc:  # a bug must not leave appends waiting forever
                log.exception("journal flush crashed")
                error = OSError(5, str(exc))
            self._close(work.closing)
            if work.acks or work.closing:
                try:
                    loop.call_soon_threadsafe(self._settle_all, work, error)
                except RuntimeError:  # the loop is gone: nobody is waiting any more
                    return
            if stopping:
                self._stop()
                return

    def _settle_all(self, work: _Handoff, error: OSError | None) -> None:
        self._settle(work.acks, error)
        self._settle([c.done for c in work.closing if c.done is not None], None)

    def _has_work(self) -> bool:
        handoff = self._handoff
        return bool(
            handoff.acks
            or handoff.closing
            or self._stopping
            or (
                self.fsync is FsyncPolicy.EVERYSEC
                and handoff.dirty
                and time.monotonic() - self._last_flush >= 1.0
            )
        )

    def _flush_wait(self) -> float | None:
        if self.fsync is FsyncPolicy.EVERYSEC and self._handoff.dirty:
            return max(0.0, 1.0 - (time.monotonic() - self._last_flush))
        return None

    def _stop(self) -> None:
        """A clean stop: journals flushed, the commit log emptied and deleted."""
        if self._root_fd is None:
            return
        try:
            if self._log is not None:
                self._log.close(self._root_fd)
        except OSError as exc:  # the log stays for recovery, which merges it back
            log.error("commit log not removed at stop: %s", exc)
        finally:
            os.close(self._root_fd)

    def _flush(self, work: _Handoff) -> None:
        """Make every record written before this call durable, and new folders too."""
        if self._log is not None and self._root_fd is not None:
            if work.logged:
                self.batches += 1
                self._log.append(work.logged)
                if self._log.checkpoint_due():
                    try:
                        self._log.checkpoint(self._root_fd)
                    except OSError as exc:  # the log keeps every copy; retried next flush
                        log.error("journal checkpoint failed: %s", exc)
            return
        if not (work.dirty or work.new_dirs):
            return
        self.batches += 1
        self._last_flush = time.monotonic()
        few = len(work.dirty) + len(work.new_dirs) <= FDATASYNC_UP_TO
        if self._syncfs is not None and self._root_fd is not None and not few:
            self._syncfs(self._root_fd)
            return
        for fd in work.dirty:
            os.fdatasync(fd)
        for directory in work.new_dirs:
            durable.fsync_dir(directory)

    def _close(self, closing: list[_Closing]) -> None:
        for item in closing:
            try:
                if item.fd is not None:
                    os.close(item.fd)
                if item.unlink is not None:
                    self._discard(item.unlink)
            except OSError as exc:  # recovery finds a journal left behind
                log.error("journal close or removal failed: %s", exc)

    def _discard(self, path: Path) -> None:
        """Drop a closed journal: into the spare pool if there is room, else unlinked.

        Not flushed: if a crash loses the rename, the journal is back in
        ``current/`` and recovery archives it again, which is idempotent.
        """
        if self._spares is None:
            path.unlink(missing_ok=True)
        else:
            self._spares.put(path, self._spare_cap)
