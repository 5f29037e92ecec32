"""In-process counters behind ``SessionManager.metrics()``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tether.types import EndReason


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """Totals since the process started."""

    total_created: int
    total_ended: int
    ended_by_reason: dict[EndReason, int]
    warnings: int
    extended_after_warning: int
    cleanup_failures: int
    hook_failures: int
    archive_failures: int
    journals_recovered: int


class SessionCounters:
    """A :class:`~tether.metrics.MetricsSink` that keeps plain totals."""

    def __init__(self) -> None:
        self._created = 0
        self._ended: Counter[EndReason] = Counter()
        self._warnings = 0
        self._extended = 0
        self._cleanup_failures = 0
        self._hook_failures = 0
        self._archive_failures = 0
        self._recovered = 0

    def session_started(self, kind: str) -> None:
        self._created += 1

    def session_warned(self, reason: EndReason) -> None:
        self._warnings += 1

    def session_reactivated(self) -> None:
        self._extended += 1

    def session_ended(self, reason: EndReason, duration: float) -> None:
        self._ended[reason] += 1

    def cleanup_failed(self) -> None:
        self._cleanup_failures += 1

    def hook_failed(self) -> None:
        self._hook_failures += 1

    def archive_failed(self) -> None:
        self._archive_failures += 1

    def journals_recovered(self, count: int) -> None:
        self._recovered += count

    def snapshot(self) -> CounterSnapshot:
        """The current totals."""
        return CounterSnapshot(
            total_created=self._created,
            total_ended=sum(self._ended.values()),
            ended_by_reason={reason: self._ended[reason] for reason in EndReason},
            warnings=self._warnings,
            extended_after_warning=self._extended,
            cleanup_failures=self._cleanup_failures,
            hook_failures=self._hook_failures,
            archive_failures=self._archive_failures,
            journals_recovered=self._recovered,
        )
