"""The journal's flusher thread: makes handed-over writes durable, acknowledges them, closes files.

The event loop writes journal records itself (a ``write`` into the page
cache, microseconds) and hands the flusher a :class:`Batch` of what those
writes need to become durable. One flush covers every batch handed over since
the last one (group commit), and it runs here, never on the loop. Redis's AOF
makes the same split: ``write`` in the main thread, ``fsync`` in a background
one. *When* a batch is handed over is the loop's business
(:mod:`tether.archive.durability`); this thread only ever waits for work.

How a flush makes a hundred files durable: under ``always`` (where the
platform has ``syncfs``) a copy of each record goes to the shared commit log
(:mod:`tether.archive.commit_log`), and one ``fdatasync`` of that single file
covers every session; a ``syncfs`` every few megabytes (a checkpoint) makes
the journal files durable themselves and empties the log. Otherwise a flush
is one ``syncfs``, or one ``fdatasync`` per dirty file where ``syncfs`` is
missing or the batch is small.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tether.archive import commit_log, durable, spares
from tether.errors import ArchiveError

log = logging.getLogger("tether.archive")

FDATASYNC_UP_TO = 4
"""A flush of this many files or fewer syncs each one: ``syncfs`` flushes the
whole filesystem and costs several single-file syncs, so it only pays off for
bigger batches."""


@dataclass(slots=True)
class Closing:
    """An fd to close (and maybe a journal to delete) once the next flush is done.

    The loop never closes a journal fd itself: the flusher may be syncing it.
    """

    fd: int | None
    unlink: Path | None = None
    done: asyncio.Future[None] | None = None


@dataclass(slots=True)
class Batch:
    """What the loop hands the flusher: writes to make durable, and who waits for them."""

    acks: list[asyncio.Future[None]] = field(default_factory=list)
    logged: list[bytes] = field(default_factory=list)
    """Commit-log entries (copies of records written since the last handoff)."""
    dirty: dict[int, Path] = field(default_factory=dict)
    new_dirs: set[Path] = field(default_factory=set)
    closing: list[Closing] = field(default_factory=list)

    def needs_sync(self) -> bool:
        """Whether this batch holds writes to make durable."""
        return bool(self.logged or self.dirty or self.new_dirs)

    def take(self, other: Batch) -> None:
        """Add ``other``'s writes and acknowledgements (not its closings) to this batch."""
        self.acks.extend(other.acks)
        self.logged.extend(other.logged)
        self.dirty.update(other.dirty)
        self.new_dirs.update(other.new_dirs)


Syncfs = Callable[[int], None]


class Flusher:
    """The thread that flushes handed-over batches and settles their futures on the loop."""

    def __init__(
        self,
        root: Path,
        *,
        syncfs: Syncfs | None,
        log: commit_log.CommitLog | None,
        spare_pool: spares.SparePool | None,
        spare_cap: int,
    ) -> None:
        self._root = root
        self._syncfs = syncfs
        self._log = log
        self._spares = spare_pool
        self._spare_cap = spare_cap
        self._lock = threading.Condition(threading.Lock())
        self._handoff = Batch()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._root_fd: int | None = None
        self.idle = False
        """Whether the thread waits for work (read unlocked by the loop, as a hint)."""
        self.batches = 0
        """Flushes so far: with many sessions far fewer than appends (group commit)."""

    @property
    def started(self) -> bool:
        """Whether the thread was started (it then runs until :meth:`stop`)."""
        return self._thread is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the thread; it settles acknowledgements on ``loop``."""
        self._root_fd = durable.open_root(self._root)
        self._thread = threading.Thread(
            target=self._run,
            args=(loop,),
            name="tether-journal",
            daemon=True,  # it only ever holds unacknowledged work
        )
        self._thread.start()

    def hand_over(self, batch: Batch | None, closing: Iterable[Closing] = ()) -> None:
        """Queue ``batch`` for the next flush, then ``closing`` for after it.

        The writes always go first: the flusher must sync a file before it
        closes it (its fd number could be reused).
        """
        with self._lock:
            if batch is not None:
                self._handoff.take(batch)
            self._handoff.closing.extend(closing)
            if self.idle:
                self._lock.notify()

    async def stop(self, batch: Batch, closing: Iterable[Closing]) -> None:
        """Flush ``batch``, close ``closing``, stop the thread and wait for it."""
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._handoff.take(batch)
            self._handoff.closing.extend(closing)
            self._stopping = True
            self._lock.notify()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def quiet(self) -> bool:
        """Whether the thread is waiting and nothing is queued for it."""
        with self._lock:
            handoff = self._handoff
            return self.idle and not (handoff.acks or handoff.closing or handoff.needs_sync())

    # -- the thread ----------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush whatever was handed over, acknowledge it, close what was handed over."""
        while True:
            with self._lock:
                while not self._has_work():
                    self.idle = True
                    self._lock.wait()
                    self.idle = False
                work, self._handoff = self._handoff, Batch()
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
                    loop.call_soon_threadsafe(_settle_all, work, error)
                except RuntimeError:  # the loop is gone: nobody is waiting any more
                    return
            if stopping:
                self._stop()
                return

    def _has_work(self) -> bool:
        handoff = self._handoff
        return bool(
            handoff.acks
            or handoff.closing
            or self._stopping
            # A batch of writes with nobody waiting (everysec, or a config
            # record): the loop hands it over only once it is due.
            or handoff.needs_sync()
        )

    def _flush(self, work: Batch) -> None:
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
        few = len(work.dirty) + len(work.new_dirs) <= FDATASYNC_UP_TO
        if self._syncfs is not None and self._root_fd is not None and not few:
            self._syncfs(self._root_fd)
            return
        for fd in work.dirty:
            os.fdatasync(fd)
        for directory in work.new_dirs:
            durable.fsync_dir(directory)

    def _close(self, closing: list[Closing]) -> None:
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


# -- on the loop -----------------------------------------------------------------


def _settle_all(work: Batch, error: OSError | None) -> None:
    """Resolve a flushed batch's acknowledgements, and its closings' (which never fail)."""
    _settle(work.acks, error)
    _settle([c.done for c in work.closing if c.done is not None], None)


def _settle(acks: list[asyncio.Future[None]], error: OSError | None) -> None:
    if error is not None:
        log.error("journal flush failed: %s", error)
    for done in acks:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(ArchiveError(f"journal flush failed: {error.strerror}"))
