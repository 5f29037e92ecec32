"""What every bench shares: result rows and targets, timing, the naive contender, the table.

A bench returns :class:`Row` objects. A row holds one contender's median figure,
its raw samples, and optionally the baseline it is compared with and the
target it must meet. ``ratio`` is oriented so that above 1 always means
"better than the baseline": ``baseline / value`` for costs (time, bytes),
``value / baseline`` for rates (rows with ``higher_is_better``).
"""

from __future__ import annotations

import gc
import json
import operator
import secrets
import socket
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from tether.core.policy import Policy

RESULTS = Path(__file__).parent / "results" / "lifecycle.json"

# Nothing comes due while touches or memory are measured: one shared far policy.
FAR = Policy(idle_timeout=3600.0, warn_before=0.0, max_duration=86400.0, presence_timeout=86400.0)

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """A bound on a row's ``value`` or ``ratio``: e.g. ``ratio >= 2``."""

    op: str
    bound: float
    on: str = "value"

    def text(self, unit: str) -> str:
        if self.on == "ratio" or unit == "x":
            return f"{self.op} {self.bound:g}x"
        return f"{self.op} {self.bound:g} {unit}"

    def met(self, row: Row) -> bool:
        figure = row.ratio if self.on == "ratio" else row.value
        return figure is not None and _OPS[self.op](figure, self.bound)


@dataclass
class Row:
    """One contender's result in one case of one bench."""

    bench: str
    case: str
    contender: str
    value: float
    unit: str
    samples: list[float] = field(default_factory=list)
    baseline: str | None = None
    baseline_value: float | None = None
    target: Target | None = None
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.baseline_value is None or self.value == 0 or self.baseline_value == 0:
            return None
        if self.higher_is_better:
            return self.value / self.baseline_value
        return self.baseline_value / self.value

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met(self)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = None if self.target is None else self.target.text(self.unit)
        data["ratio"] = self.ratio
        data["passed"] = self.passed
        return data


def rows_vs(
    bench: str,
    case: str,
    unit: str,
    samples: dict[str, list[float]],
    baseline: str,
    targets: dict[str, Target] | None = None,
    *,
    higher_is_better: bool = False,
) -> list[Row]:
    """One row per contender, each compared with the median of ``baseline``."""
    base = statistics.median(samples[baseline])
    targets = targets or {}
    return [
        Row(
            bench,
            case,
            name,
            statistics.median(values),
            unit,
            values,
            None if name == baseline else baseline,
            None if name == baseline else base,
            targets.get(name),
            higher_is_better,
        )
        for name, values in samples.items()
    ]


def loopback_listener() -> socket.socket:
    """A listening TCP socket on a free loopback port, to hand to a server process by its fd."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    return listener


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic collector off while timing, as ``timeit`` does.

    With millions of objects alive, a full collection landing inside one
    contender's timed region would be charged to it alone.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def session_ids(n: int) -> list[str]:
    """Ids shaped like tether's own: 128 random bits as 32 hex characters."""
    return [secrets.token_hex(16) for _ in range(n)]


class NaiveSession:
    """The seeds' design (seed 004): an object per session, scanned by ``cleanup()``."""

    __slots__ = ("created_at", "last_accessed", "user")

    def __init__(self, user: str, now: float) -> None:
        self.user = user
        self.created_at = now
        self.last_accessed = now


def naive_cleanup(sessions: dict[str, NaiveSession], now: float, timeout: float) -> int:
    """The seeds' ``cleanup()``: look at every session, delete the idle ones."""
    expired = [sid for sid, s in sessions.items() if now - s.last_accessed > timeout]
    for sid in expired:
        del sessions[sid]
    return len(expired)


# -- output -------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


HEADER = ("bench", "case", "contender", "median", "unit", "baseline", "base", "ratio", "target")
RIGHT = {3, 6, 7}  # numeric columns


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.bench,
        row.case,
        row.contender,
        _fmt(row.value),
        row.unit,
        row.baseline or "-",
        _fmt(row.baseline_value),
        "-" if row.ratio is None else f"{row.ratio:.2f}x",
        "-" if row.target is None else row.target.text(row.unit),
        {None: "", True: "PASS", False: "MISS"}[row.passed],
    )


def table(rows: list[Row]) -> str:
    """The rows as an aligned plain-text table, a blank line between benches."""
    lines = [(*HEADER, "verdict"), *(_cells(row) for row in rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]

    def render(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in RIGHT else c.ljust(w) for i, (c, w) in pairs).rstrip()

    out = [render(lines[0]), "  ".join("-" * w for w in widths)]
    for previous, line in pairwise(lines):
        if previous is not lines[0] and line[0] != previous[0]:
            out.append("")
        out.append(render(line))
    return "\n".join(out)


def write_json(
    rows: list[Row], meta: dict[str, Any], path: Path = RESULTS, detail: Any = None
) -> Path:
    """Write a run's rows (and, for fuzz and soak, its raw ``detail``) to ``path``."""
    path.parent.mkdir(exist_ok=True)
    payload: dict[str, Any] = {"meta": meta, "results": [row.to_json() for row in rows]}
    if detail is not None:
        payload["detail"] = detail
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
