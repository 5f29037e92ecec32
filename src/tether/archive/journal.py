"""``FileJournal``: each live session's transcript, appended durably with group commit.

Every live session has one append-only file (see :mod:`tether.archive.records`
for the format). An append writes its record at once, on the event loop (a
``write`` into the page cache, microseconds), and under ``fsync=always`` then
waits for a flush. One flusher thread (:mod:`tether.archive.flusher`) makes
every record written so far durable at once and acknowledges them all;
appends that arrive while a flush runs wait for the next one. So many
concurrent sessions share each flush (group commit), and the flush itself,
the slow part, never runs on the loop.

This module is the loop side: the API the runtime calls, the open files, and
the batch of writes waiting to be handed to the flusher. When that batch goes
and who waits for it is the fsync policy's :class:`~tether.archive.durability.Durability`,
chosen once at construction (``always``, ``everysec`` or ``no``, as in Redis's
``appendfsync``), with the time read from an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tether.archive import commit_log, durable, records, spares
from tether.archive.durability import FsyncPolicy, durability_for, parse_fsync_policy
from tether.archive.flusher import FDATASYNC_UP_TO, Batch, Closing, Flusher, Syncfs
from tether.archive.paths import DataDir
from tether.clock import Clock, SystemClock, TimerHandle
from tether.core.ids import log_ref
from tether.core.transcript import Message
from tether.errors import ArchiveError, InvalidInput
from tether.types import SessionId, UserId

__all__ = [
    "FDATASYNC_UP_TO",
    "HANDOVER_AT",
    "FileJournal",
    "FsyncPolicy",
    "default_max_open_files",
    "parse_fsync_policy",
]

log = logging.getLogger("tether.archive")


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


class FileJournal:
    """Crash-safe per-session transcript journals under ``{data_dir}/users/*/dialogs/current``.

    ``begin`` when a session starts, ``append`` for each message (both return
    once durable under the fsync policy), ``config`` when its config changes,
    ``remove`` once its archive is durable. ``clock`` times ``everysec``'s
    flushes (a :class:`tether.testing.FakeClock` drives them in tests).
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
        clock: Clock | None = None,
    ) -> None:
        self.paths = DataDir(data_dir)
        self.fsync = parse_fsync_policy(fsync)
        self._clock: Clock = clock or SystemClock()
        self._durability = durability_for(self.fsync, self._clock)
        syncfs = durable.syncfs if use_syncfs is not False else None
        if use_syncfs and syncfs is None:
            raise InvalidInput("syncfs is not available on this platform")
        self._log = self._commit_log(use_commit_log, syncfs)
        # A removed journal becomes a spare file for a later archive instead
        # of being deleted (see tether.archive.spares); only archive writers
        # with syncfs take spares, so without it they would only pile up.
        pool = None
        if spare_files > 0 and durable.syncfs is not None:
            pool = spares.pool_for(self.paths.root)
        self._flusher = Flusher(
            self.paths.root, syncfs=syncfs, log=self._log, spare_pool=pool, spare_cap=spare_files
        )
        self._log_tags: dict[SessionId, bytes] = {}
        self._max_open = max(1, max_open_files or default_max_open_files())
        self._closed = False
        # Each live session's journal path is built and checked once, at
        # begin(): resolving a path walks the filesystem.
        self._paths: dict[SessionId, Path] = {}
        self._fds: OrderedDict[SessionId, int] = OrderedDict()
        self._broken: set[SessionId] = set()
        # Writes waiting for a flush, handed to the flusher together when the
        # durability says (under always, once per loop iteration: the first
        # append of a burst schedules the handover, so a flush starts with
        # the whole burst rather than its first record).
        self._waiting = Batch()
        self._handover: TimerHandle | None = None

    def _commit_log(
        self, wanted: bool | None, syncfs: Syncfs | None
    ) -> commit_log.CommitLog | None:
        """The shared commit log, used by default where ``always`` has ``syncfs``."""
        if syncfs is None or self.fsync is not FsyncPolicy.ALWAYS:
            if wanted:
                raise InvalidInput("the commit log needs syncfs and fsync=always")
            return None
        if wanted is False:
            return None
        return commit_log.CommitLog(self.paths.commit_logs, self.paths.root, syncfs)

    @property
    def batches(self) -> int:
        """Flushes so far: with many sessions far fewer than appends (group commit)."""
        return self._flusher.batches

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
        if self._log is not None:
            self._log_tags[session_id] = commit_log.tag(session_id, user)
        # The log's copy (if any) makes the header durable; the file and its
        # folders become durable at the next checkpoint.
        done = self._track(session_id, fd, path, data, dirs)
        # The file is closed once flushed and reopened by the first message:
        # a session that never speaks holds no descriptor, so idle sessions
        # cost no file descriptors beside their sockets.
        self._hand_over((Closing(fd),))
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
        """Record a replaced config (written now, made durable by a coming flush, unawaited)."""
        path = self._paths.get(session_id)
        if path is not None and session_id not in self._broken:
            try:
                self._write(session_id, path, records.config_record(config, ts), acknowledge=False)
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
        self._hand_over((Closing(self._fds.pop(session_id, None), path, done),))
        await done

    def knows(self, session_id: SessionId) -> bool:
        """Whether this journal holds a live journal for the session."""
        return session_id in self._paths

    async def aclose(self) -> None:
        """Flush and close every file, then stop the flusher thread."""
        if self._closed:
            return
        self._closed = True
        waiting = self._take_waiting()
        closing = [Closing(fd) for fd in self._fds.values()]
        self._fds.clear()
        await self._flusher.stop(waiting, closing)

    # -- writing -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ArchiveError("the journal is closed")
        if not self._flusher.started:
            self._flusher.start(asyncio.get_running_loop())

    def _path(self, session_id: SessionId) -> Path:
        path = self._paths.get(session_id)
        if path is None:
            raise ArchiveError("no journal for this session (it was never begun here)")
        return path

    def _write(
        self, session_id: SessionId, path: Path, data: bytes, *, acknowledge: bool = True
    ) -> asyncio.Future[None] | None:
        """Write ``data`` now; the acknowledgement to wait for, if the policy has one.

        A plain function, not a coroutine: appends are the hot path, so the
        caller awaits the acknowledgement itself, one coroutine fewer each.
        """
        fd = self._write_now(session_id, path, data)
        return self._track(session_id, fd, path, data, acknowledge=acknowledge)

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
        return fd

    def _remember_fd(self, session_id: SessionId, fd: int) -> int:
        self._fds[session_id] = fd
        if len(self._fds) > self._max_open:
            _, oldest = self._fds.popitem(last=False)
            self._hand_over((Closing(oldest),))
        return fd

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

    # -- handing writes to the flusher ---------------------------------------------

    def _track(
        self,
        session_id: SessionId,
        fd: int,
        path: Path,
        data: bytes,
        new_dirs: Iterable[Path] = (),
        *,
        acknowledge: bool = True,
    ) -> asyncio.Future[None] | None:
        """Add a write to the waiting batch as the policy says; the acknowledgement to await."""
        durability = self._durability
        if not durability.syncs:
            return None
        waiting = self._waiting
        if self._log is not None:
            # The log's copy makes the record durable: the journal file (and
            # its new folders) become durable at the next checkpoint.
            waiting.logged.append(commit_log.entry(self._log_tags[session_id], data))
        else:
            waiting.dirty[fd] = path
            waiting.new_dirs.update(new_dirs)
        done: asyncio.Future[None] | None = None
        if acknowledge and durability.acknowledges:
            done = asyncio.get_running_loop().create_future()
            waiting.acks.append(done)
        if self._handover is None:
            delay = durability.handover_delay()
            if delay > 0:
                self._handover = self._clock.call_later(delay, self._handover_due)
            else:
                self._handover = asyncio.get_running_loop().call_soon(self._handover_due)
        elif self._flusher.idle and len(waiting.acks) >= HANDOVER_AT:
            # An unlocked read of idle: a stale answer only moves this
            # handover to the end of the loop iteration.
            self._hand_over_waiting()
        return done

    def _handover_due(self) -> None:
        self._handover = None  # running now: nothing left to cancel
        self._hand_over_waiting()

    def _hand_over_waiting(self) -> None:
        self._flusher.hand_over(self._take_waiting())

    def _hand_over(self, closing: Iterable[Closing]) -> None:
        """Hand over ``closing`` along with every waiting write, which it must follow."""
        self._flusher.hand_over(self._take_waiting(), closing)

    def _take_waiting(self) -> Batch:
        """The waiting writes, now in no one's hands but the caller's: hand them over."""
        waiting, self._waiting = self._waiting, Batch()
        handover, self._handover = self._handover, None
        if handover is not None:
            handover.cancel()
        if waiting.needs_sync():
            self._durability.handed_over()
        return waiting
