"""Compare the server's tracemalloc snapshots from ``python -m bench.soak --tracemalloc DIR``.

``python -m bench.leaks DIR [--top N] [--frames N]``: for each snapshot after
the first (``snap-0.tm``, at rest after the warm-up), the allocations that
grew since it, grouped by traceback (innermost ``--frames`` frames of this
project, the stdlib and dependencies), largest growth first. Something that
grows by the same amount per session ended, snapshot after snapshot, is a
leak; something that grows and then holds is a cache or the allocator.
"""

from __future__ import annotations

import argparse
import linecache
import tracemalloc
from pathlib import Path

_IGNORED = (tracemalloc.__file__, linecache.__file__, "<frozen importlib._bootstrap>", "<unknown>")


def load(path: Path) -> tracemalloc.Snapshot:
    """A snapshot without tracemalloc's and the import system's own allocations."""
    snapshot = tracemalloc.Snapshot.load(str(path))
    return snapshot.filter_traces([tracemalloc.Filter(False, f) for f in _IGNORED])


def report(directory: Path, top: int, frames: int, key: str = "traceback") -> str:
    """The growth from the first snapshot to each later one, as text."""
    paths = sorted(directory.glob("snap-*.tm"), key=lambda p: int(p.stem.split("-")[1]))
    if len(paths) < 2:
        return f"{directory}: fewer than 2 snapshots"
    first = load(paths[0])
    base_total = sum(s.size for s in first.statistics("filename"))
    lines = [f"{paths[0].name}: {base_total / 2**20:.2f} MiB traced"]
    for path in paths[1:]:
        snap = load(path)
        total = sum(s.size for s in snap.statistics("filename"))
        lines.append(
            f"\n== {path.name}: {total / 2**20:.2f} MiB traced, "
            f"{(total - base_total) / 2**10:+.0f} KiB since {paths[0].name}"
        )
        for diff in snap.compare_to(first, key)[:top]:
            if diff.size_diff <= 0:
                break
            lines.append(
                f"{diff.size_diff / 2**10:+9.1f} KiB {diff.count_diff:+7d} blocks "
                f"(now {diff.size / 2**10:.1f} KiB in {diff.count})"
            )
            for frame in list(diff.traceback)[-frames:][::-1]:
                lines.append(f"      {frame.filename}:{frame.lineno}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.leaks", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--key", choices=("traceback", "lineno", "filename"), default="traceback")
    args = parser.parse_args()
    print(report(args.directory, args.top, args.frames, args.key))


if __name__ == "__main__":
    main()
