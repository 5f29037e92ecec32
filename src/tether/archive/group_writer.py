"""``GroupWriter``: create many small files durably, sharing the flushes between them.

Writing one file crash-safely costs two flushes (the temp file's data before
its rename, then the folder). When thousands of sessions end at once that is
thousands of flushes, each waiting on the disk, and as many threads fighting
the event loop for the GIL. Here one writer thread takes every file queued so
far as a batch and, where ``syncfs`` exists, writes all their temp files,
flushes the filesystem once, links them all into place, and flushes once
more: two flushes per batch instead of two per file, with the same guarantee
(no file is visible before its data is durable; once acknowledged it survives
a power cut). Without ``syncfs`` each file falls back to its own fsyncs.

Where it can, a batch writes its temp files over spare files (journals whose
archives are durable, see :mod:`tether.archive.spares`) instead of creating
new ones: renamed to the temp name, overwritten in place and cut to length,
then the same flush, link, flush. On disks where creating and freeing files
is the slow part this is the bulk of the saving. Batches are capped at
:data:`MAX_BATCH` files so that, when thousands of sessions end together, the
journals freed by the first batches become the files of the later ones.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tether.archive import durable, spares
from tether.archive.folders import FolderCache

MAX_BATCH = 256
"""Files per batch at most: two flushes per batch are cheap at this size, and a
smaller batch lets freed journals become spares for the next one sooner."""

Render = Callable[[], tuple[Path, bytes]]
"""Builds (on the writer thread) the target path and the bytes to write there."""


@dataclass(slots=True)
class _Job:
    render: Render
    done: asyncio.Future[bool]


class GroupWriter:
    """Creates files once each (first writer wins), durably, in batches."""

    def __init__(
        self, root: Path, *, use_syncfs: bool | None = None, max_batch: int = MAX_BATCH
    ) -> None:
        self.root = root
        self._syncfs = durable.syncfs if use_syncfs is not False else None
        # Only batches flushed by syncfs take spares: that one flush makes the
        # renames that freed and took each spare durable before any link.
        # Per-file fsyncs would need every folder involved synced as well.
        self._spares = spares.pool_for(root) if self._syncfs is not None else None
        self._max_batch = max(1, max_batch)
        self.recycled = 0
        """Archives written over a spare file instead of a new one."""
        self._lock = threading.Condition(threading.Lock())
        self._jobs: list[_Job] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._root_fd: int | None = None
        self._folders = FolderCache()
        """Recent folders known to exist (touched only by the writer thread)."""

    async def write(self, render: Render) -> bool:
        """Create the file ``render()`` describes unless it exists; ``True`` if this call did.

        Raises ``OSError`` (for the caller to translate) if the disk refused.
        """
        loop = asyncio.get_running_loop()
        if self._thread is None:
            if self._stopping:
                raise OSError(9, "the archive writer is closed")
            self._root_fd = durable.open_root(self.root)
            self._thread = threading.Thread(
                target=self._run, args=(loop,), name="tether-archive", daemon=True
            )
            self._thread.start()
        done: asyncio.Future[bool] = loop.create_future()
        with self._lock:
            if self._stopping:
                raise OSError(9, "the archive writer is closed")
            self._jobs.append(_Job(render, done))
            self._lock.notify()
        return await done

    async def aclose(self) -> None:
        """Finish queued files and stop the thread."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    # -- the writer thread ---------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            with self._lock:
                while not self._jobs and not self._stopping:
                    self._lock.wait()
                jobs = self._jobs[: self._max_batch]
                del self._jobs[: self._max_batch]
                stopping = self._stopping
            if jobs:
                results = self._batch(jobs)
                try:
                    loop.call_soon_threadsafe(_settle, jobs, results)
                except RuntimeError:  # the loop is gone
                    return
            if stopping and not jobs:
                if self._root_fd is not None:
                    os.close(self._root_fd)
                return

    def _batch(self, jobs: list[_Job]) -> list[bool | BaseException]:
        results: list[bool | BaseException] = []
        if self._syncfs is None or self._root_fd is None:
            for job in jobs:
                try:
                    path, data = job.render()
                    results.append(durable.write_once(path, data, self.root))
                except Exception as exc:
                    results.append(exc)
            return results
        staged: list[tuple[int, Path, Path]] = []  # (index, temp, final)
        for index, job in enumerate(jobs):
            try:
                path, data = job.render()
                staged.append((index, self._stage(path, data), path))
                results.append(False)
            except Exception as exc:
                results.append(exc)
        try:
            self._syncfs(self._root_fd)  # every temp file's data is durable
            for index, temp, final in staged:
                results[index] = self._link(temp, final)
            self._syncfs(self._root_fd)  # and now every name
        except OSError as exc:
            for index, temp, _ in staged:
                results[index] = exc
                temp.unlink(missing_ok=True)
        return results

    def _stage(self, path: Path, data: bytes) -> Path:
        """Write ``data`` to a temp file beside ``path``, over a spare if there is one."""
        folder = path.parent
        if self._folders.get(folder) is None:
            # Not synced here: the batch's first syncfs makes new
            # folders durable along with the temp files, before any link.
            durable.make_dirs(folder, self.root)
            self._folders.put(folder, folder)
        temp = durable.temp_name(path)
        if self._spares is not None and self._spares.take(temp):
            try:
                durable.overwrite(temp, data)
                self.recycled += 1
                return temp
            except OSError:  # not a file we may reuse: drop it, write a new one
                temp.unlink(missing_ok=True)
        return durable.write_temp(path, data)

    def _link(self, temp: Path, final: Path) -> bool:
        """Link ``temp`` into place unless ``final`` exists; ``True`` if this call created it.

        A retry whose archive was already written keeps its file as a spare.
        """
        keep = self._spares.put if self._spares is not None else None
        return durable.link_once(temp, final, keep_unused=keep)


def _settle(jobs: list[_Job], results: list[bool | BaseException]) -> None:
    for job, result in zip(jobs, results, strict=True):
        if job.done.done():
            continue
        if isinstance(result, BaseException):
            job.done.set_exception(result)
        else:
            job.done.set_result(result)
