"""Archiving: 10k sessions end at once while 1k other sessions keep heartbeating.

Setup: a ``SessionManager`` with a ``FileJournal`` (``fsync=always``) and a
``YamlArchive`` in a fresh data dir; 10k sessions of 1,000 users, each with
six journaled messages, plus 1k other live sessions. Then all 10k are ended
at once (``manager.end`` for each, gathered) and the clock runs until the last
end pipeline returned, by which time every archive is durable (temp file,
flush, link, flush) and every journal is removed from ``current/``. Meanwhile each
of the 1k others heartbeats every 100 ms; a heartbeat's latency is the time
from when it was due to when ``manager.heartbeat`` returned, so a blocked
event loop shows up in full.

Contenders, interleaved repeat by repeat:

* ``tether``: ``YamlArchive`` (YAML encoding and file work on one writer
  thread, in batches of up to 256 sharing two ``syncfs`` each). Each archive
  is written over a spare file where there is one: the journals of sessions
  archived by earlier batches are renamed into ``{data_dir}/spare/`` instead
  of being deleted, then overwritten in place (see
  :mod:`tether.archive.spares`), so most of the 10k create no inode and free
  no block;
* ``postgres``: ``PgArchive`` (``TETHER_ARCHIVE_URL``): the same manager and
  journals, each archive a row in a throwaway local PostgreSQL (Debian's,
  ``fsync`` and ``synchronous_commit`` on), written in batches of up to 500
  rows per transaction; a journal goes once its row is committed. Started
  once per run (:mod:`bench.pg_server`), its table dropped before each repeat;
* ``inline``: the same archive format written by blocking calls on the event
  loop, as an app would do by hand: the baseline.
* ``disk alone``: no tether and no Python runtime to speak of, only the file
  system work of a create-and-delete design with one file per session:
  create 10k files of an archive's size in the same folders, flush once,
  delete 10k journal-sized files made beforehand, flush again. It is the
  floor of that design, not of tether's: recycling journals skips both the
  creates and the deletes, so tether can beat it (on shared machines,
  creating a file costs from tens of microseconds to over a millisecond,
  run to run, and deleting one sends discards to the device).

Both run with the garbage-collector settings of ``tether serve``
(:func:`tether.service.server.tune_gc`): at CPython's defaults, full
collections over the 11k sessions' objects stop the process for ~100 ms each,
whatever the code being measured does.

Targets (for ``tether`` and ``postgres``): 10k archived in <= 10 s; heartbeat p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import psycopg

from bench.common import FAR, Row, Target, rows_vs
from bench.pg_server import pg_server
from tether.archive import durable, pg_rows
from tether.archive.base import ArchivedDialog, Archiver
from tether.archive.journal import FileJournal
from tether.archive.pg_archive import PgArchive
from tether.archive.yaml_archive import YamlArchive, dialog_to_yaml
from tether.runtime.manager import SessionManager
from tether.service.server import tune_gc
from tether.types import SessionId

MESSAGES = 6
T = TypeVar("T")
BENCH_DIR = os.environ.get("TETHER_BENCH_DIR")
HEARTBEAT_EVERY = 0.1


class InlineYamlArchive(YamlArchive):
    """The baseline: the same files, written by blocking calls on the event loop."""

    async def archive(self, dialog: ArchivedDialog) -> str:
        path = self.paths.archive(dialog.user, dialog.archive_id)
        durable.write_once(path, dialog_to_yaml(dialog), self.paths.root)
        return dialog.archive_id


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


async def _gather_chunked(coros: Sequence[Awaitable[T]], chunk: int = 500) -> list[T]:
    """Await ``coros`` concurrently, ``chunk`` at a time."""
    out: list[T] = []
    for i in range(0, len(coros), chunk):
        out += await asyncio.gather(*coros[i : i + chunk])
    return out


async def _measure(
    contender: str, ending: int, others: int, root: Path, pg_url: str | None = None
) -> tuple[float, float]:
    """Seconds until ``ending`` sessions are archived, and the heartbeat p99 in ms meanwhile."""
    archiver: Archiver
    if contender == "postgres":
        assert pg_url is not None
        archiver = PgArchive(pg_url)
        await archiver.open()
    else:
        archiver = (YamlArchive if contender == "tether" else InlineYamlArchive)(root)
    manager = SessionManager(
        policy=FAR,
        max_sessions_per_user=None,
        journal=FileJournal(root, fsync="always"),
        archiver=archiver,
    )
    await manager.open()
    users = max(1, ending // 10)
    starts = [manager.start(f"user{i % users}") for i in range(ending)]
    ids: list[SessionId] = [s.id for s in await _gather_chunked(starts)]
    for n in range(MESSAGES):
        role = "user" if n % 2 == 0 else "assistant"
        text = f"message {n}: " + "words " * 30
        await _gather_chunked([manager.append(sid, role, text) for sid in ids])
    starts = [manager.start(f"other{i}") for i in range(others)]
    live = [s.id for s in await _gather_chunked(starts)]

    latencies: list[tuple[float, float]] = []  # (due, latency)
    stop = asyncio.Event()

    async def heartbeat(sid: SessionId, offset: float) -> None:
        due = time.perf_counter() + offset
        while not stop.is_set():
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await manager.heartbeat(sid)
            latencies.append((due, time.perf_counter() - due))
            due += HEARTBEAT_EVERY

    beaters = [
        asyncio.create_task(heartbeat(sid, HEARTBEAT_EVERY * i / len(live)))
        for i, sid in enumerate(live)
    ]
    await asyncio.sleep(0.3)  # heartbeats settle into their rhythm first
    started = time.perf_counter()
    await manager.end_many(ids)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*beaters)

    archived, journals = _count_files(root)
    if pg_url is not None:
        archived = _count_rows(pg_url)
    if archived != ending or journals:
        raise AssertionError(f"{archived} archived, {journals} journals left (want {ending}, 0)")
    window = [lat for due, lat in latencies if started <= due <= started + elapsed]
    await manager.aclose()
    return elapsed, _percentile(window, 0.99) * 1000


@contextlib.contextmanager
def _server_gc() -> Iterator[None]:
    """The garbage-collector settings ``tether serve`` runs with, for one measurement.

    At CPython's defaults a full collection over 11k sessions' objects stops
    every thread for ~100 ms, whatever the code does; the server tunes this
    (:func:`tether.service.server.tune_gc`), and both contenders get the same.
    """
    gc.collect()
    defaults = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*defaults)


def _count_rows(url: str) -> int:
    """Rows in the PostgreSQL archive table."""
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {pg_rows.TABLE}").fetchone()
        return int(row[0]) if row else 0


def _drop_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {pg_rows.TABLE}")


def _count_files(root: Path) -> tuple[int, int]:
    """Archives written and journals of ended sessions left behind."""
    archived = sum(1 for _ in root.glob("users/*/dialogs/archived/*.yaml"))
    journals = sum(1 for _ in root.glob("users/user*/dialogs/current/*"))
    return archived, journals


def _disk_alone(ending: int, root: Path) -> float:
    """Seconds the file system alone takes to create ``ending`` archives and drop their journals."""
    users = max(1, ending // 10)
    folders = [root / f"user{i}" for i in range(users)]
    for folder in folders:
        (folder / "current").mkdir(parents=True)
        (folder / "archived").mkdir()
    journals = [folders[i % users] / "current" / f"s{i}" for i in range(ending)]
    for path in journals:
        path.write_bytes(b"j" * 1500)  # six messages' worth
    archive = b"a" * 2500  # about one archive's YAML
    flush = durable.syncfs or (lambda _fd: os.sync())
    root_fd = durable.open_root(root)
    try:
        flush(root_fd)
        started = time.perf_counter()
        for i in range(ending):
            fd = os.open(folders[i % users] / "archived" / f"s{i}.yaml", os.O_WRONLY | os.O_CREAT)
            os.write(fd, archive)
            os.close(fd)
        flush(root_fd)
        for path in journals:
            path.unlink()
        flush(root_fd)
        return time.perf_counter() - started
    finally:
        os.close(root_fd)


CONTENDERS = ("inline", "tether", "postgres", "disk alone")


def run(quick: bool, contenders: tuple[str, ...] = CONTENDERS, repeats: int = 0) -> list[Row]:
    with pg_server() as server:
        return _run(quick, server.url, contenders, repeats)


def _run(quick: bool, pg_url: str, contenders: tuple[str, ...], repeats: int) -> list[Row]:
    ending, others, default_repeats = (1000, 200, 1) if quick else (10_000, 1000, 3)
    repeats = repeats or default_repeats
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    p99: dict[str, list[float]] = {n: [] for n in contenders if n != "disk alone"}
    for _ in range(repeats):
        for contender in contenders:
            root = Path(tempfile.mkdtemp(prefix="tether-bench-", dir=BENCH_DIR))
            url = pg_url if contender == "postgres" else None
            if url is not None:
                _drop_table(url)
            try:
                if contender == "disk alone":
                    seconds[contender].append(_disk_alone(ending, root))
                    continue
                with _server_gc():
                    elapsed, late = asyncio.run(_measure(contender, ending, others, root, url))
            finally:
                shutil.rmtree(root, ignore_errors=True)
            seconds[contender].append(elapsed)
            p99[contender].append(late)
    case = f"{ending:,} end at once, {others:,} heartbeating"
    rate = {name: [ending / s for s in values] for name, values in seconds.items()}
    rate.pop("disk alone", None)
    baseline = contenders[0]
    rows = rows_vs(
        "archiving",
        case,
        f"s for {ending // 1000}k",
        seconds,
        baseline,
        {
            "tether": Target("<=", 10.0 * ending / 10_000),
            "postgres": Target("<=", 10.0 * ending / 10_000),
        },
    )
    rows += rows_vs("archiving", case, "archived/s", rate, baseline, higher_is_better=True)
    p99_target = {"tether": Target("<=", 50.0), "postgres": Target("<=", 50.0)}
    rows += rows_vs("archiving", case, "heartbeat p99 ms", p99, baseline, p99_target)
    return rows


RESULTS = Path(__file__).parent / "results" / "archiving.json"


def main() -> None:
    """``python -m bench.archiving [--quick]``: this bench alone, into results/archiving.json."""
    import argparse
    import datetime
    import platform

    from bench.common import table, write_json

    parser = argparse.ArgumentParser(prog="python -m bench.archiving", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k ends, 200 heartbeating, 1 repeat")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated, the first is the baseline (default: all)",
    )
    parser.add_argument("--repeats", type=int, default=0, help="default: 3 (1 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON results file")
    args = parser.parse_args()
    contenders = tuple(c for c in args.contenders.split(",") if c)
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    rows = run(args.quick, contenders, args.repeats)
    meta = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "benches": ["archiving"],
        "quick": args.quick,
        "contenders": list(contenders),
        "repeats": args.repeats or (1 if args.quick else 3),
        "wall_s": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    path = write_json(rows, meta, args.out)
    print(table(rows))
    missed = sum(row.passed is False for row in rows)
    print(f"\n{missed} target(s) missed; results in {path}")


if __name__ == "__main__":
    main()
