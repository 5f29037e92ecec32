"""Durable appends per second with 1, 10 and 100 concurrent sessions under ``fsync=always``.

Every contender acknowledges an append only once it is on stable storage.
Each of N sessions appends ~200-byte messages in a loop, one outstanding
append per session (a client waits for its acknowledgement); a run lasts
about half a second and counts acknowledged appends.

* ``naive``: what an app writes by hand (the seeds' ``fs.writeFile``): per
  message, ``write`` then ``fsync`` of the session's file, on the event loop.
  This is the baseline.
* ``naive-thread``: the same per message, but each in ``asyncio.to_thread``,
  so several fsyncs can be in flight at once.
* ``journal``: :class:`FileJournal` as configured by default: group commit,
  each batch made durable by one ``fdatasync`` of the shared commit log (and
  a ``syncfs`` checkpoint every few megabytes).
* ``journal-syncfs``: group commit without the commit log: one ``syncfs`` per
  batch.
* ``journal-fdatasync``: group commit without ``syncfs``: one ``fdatasync``
  per dirty file per batch, for platforms without it.
* ``manager.append``: the whole ``SessionManager.append`` path (memory store,
  fan-out, journal), i.e. what a client's acknowledgement costs.

Contenders run interleaved, repeat by repeat, so they share the machine's
noise. Target: ``journal`` >= 10x ``naive`` at 100 sessions.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import FAR, Row, Target, rows_vs
from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.transcript import Message, Role
from tether.runtime.manager import SessionManager
from tether.types import SessionId, UserId

Append = Callable[[int, int], Awaitable[None]]
TARGET = Target(">=", 10.0, on="ratio")
CONTENT = "a message of about two hundred bytes, " * 5


async def _rate(append: Append, sessions: int, seconds: float) -> float:
    """Acknowledged appends per second with ``sessions`` concurrent appenders."""
    counts = [0] * sessions
    stop = time.perf_counter() + seconds

    async def session(index: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            n += 1
            await append(index, n)
        counts[index] = n

    started = time.perf_counter()
    await asyncio.gather(*(session(i) for i in range(sessions)))
    return sum(counts) / (time.perf_counter() - started)


class _Naive:
    """write + fsync per message, per-session files kept open."""

    def __init__(self, root: Path, sessions: int, threaded: bool) -> None:
        self.fds = [
            os.open(root / f"naive-{i}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            for i in range(sessions)
        ]
        self.threaded = threaded

    def _write(self, index: int, n: int) -> None:
        fd = self.fds[index]
        os.write(fd, f"{n}\t{CONTENT}\n".encode())
        os.fsync(fd)

    async def append(self, index: int, n: int) -> None:
        if self.threaded:
            await asyncio.to_thread(self._write, index, n)
        else:
            self._write(index, n)

    async def aclose(self) -> None:
        for fd in self.fds:
            os.close(fd)


class _Journal:
    def __init__(self, root: Path, sessions: int, use_syncfs: bool, use_commit_log: bool) -> None:
        self.journal = FileJournal(
            root, fsync="always", use_syncfs=use_syncfs, use_commit_log=use_commit_log
        )
        self.ids = [SessionId(f"{i:032x}") for i in range(sessions)]

    async def open(self) -> None:
        for sid in self.ids:
            await self.journal.begin(sid, UserId("bench"), "chat", time.time(), {})

    async def append(self, index: int, n: int) -> None:
        await self.journal.append(self.ids[index], Message(n, Role.USER, CONTENT, time.time()))

    async def aclose(self) -> None:
        await self.journal.aclose()


class _Manager:
    def __init__(self, root: Path, sessions: int) -> None:
        self.manager = SessionManager(
            policy=FAR,
            max_sessions_per_user=None,
            journal=FileJournal(root, fsync="always"),
            archiver=YamlArchive(root),
        )
        self.sessions = sessions
        self.ids: list[SessionId] = []

    async def open(self) -> None:
        await self.manager.open()
        for i in range(self.sessions):
            self.ids.append((await self.manager.start(f"bench{i % 10}")).id)

    async def append(self, index: int, n: int) -> None:
        await self.manager.append(self.ids[index], "user", CONTENT)

    async def aclose(self) -> None:
        await self.manager.aclose()


async def _one(name: str, root: Path, sessions: int, seconds: float) -> float:
    contender: _Naive | _Journal | _Manager
    if name.startswith("naive"):
        contender = _Naive(root, sessions, threaded=name == "naive-thread")
    elif name == "manager.append":
        contender = _Manager(root, sessions)
        await contender.open()
    else:
        contender = _Journal(
            root,
            sessions,
            use_syncfs=name != "journal-fdatasync",
            use_commit_log=name == "journal",
        )
        await contender.open()
    try:
        return await _rate(contender.append, sessions, seconds)
    finally:
        await contender.aclose()


CONTENDERS = (
    "naive",
    "naive-thread",
    "journal",
    "journal-syncfs",
    "journal-fdatasync",
    "manager.append",
)


def run(quick: bool) -> list[Row]:
    repeats, seconds = (2, 0.2) if quick else (5, 0.5)
    rows: list[Row] = []
    for sessions in (1, 10, 100):
        samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        for _ in range(repeats):
            for name in CONTENDERS:
                root = Path(tempfile.mkdtemp(prefix="tether-bench-", dir=_bench_dir()))
                try:
                    samples[name].append(asyncio.run(_one(name, root, sessions, seconds)))
                finally:
                    shutil.rmtree(root, ignore_errors=True)
        targets = {"journal": TARGET} if sessions == 100 else {}
        rows += rows_vs(
            "durable appends",
            f"{sessions} session{'s' if sessions > 1 else ''}, fsync=always",
            "appends/s",
            samples,
            baseline="naive",
            targets=targets,
            higher_is_better=True,
        )
    return rows


def _bench_dir() -> str | None:
    """Where to put the files: ``TETHER_BENCH_DIR`` or the system temp dir."""
    return os.environ.get("TETHER_BENCH_DIR") or None
