"""What ``SessionManager.metrics()`` reports: this node's counters and the store's counts."""

from __future__ import annotations

from dataclasses import dataclass

from tether.metrics.counters import CounterSnapshot
from tether.store.base import StoreStats
from tether.types import EndReason


@dataclass(frozen=True, slots=True)
class ManagerMetrics:
    """What ``SessionManager.metrics()`` reports (the seeds' getMetrics, plus reasons)."""

    active: int
    total_created: int
    total_ended: int
    ended_by_reason: dict[EndReason, int]
    warnings: int
    extended_after_warning: int
    cleanup_failures: int
    hook_failures: int
    archive_failures: int
    journals_recovered: int
    oldest_age_s: float | None
    newest_age_s: float | None
    store_losses: int = 0
    """Times this node found the shared store had come back without its data."""
    sessions_lost: int = 0
    """Sessions this node ended (``error``) because the store lost them."""

    @classmethod
    def of(
        cls, stats: StoreStats, counts: CounterSnapshot, losses: tuple[int, int], now: float
    ) -> ManagerMetrics:
        """The report from the store's ``stats``, this node's ``counts`` and store ``losses``."""
        oldest, newest = stats.oldest_created_at, stats.newest_created_at
        return cls(
            active=stats.live,
            total_created=counts.total_created,
            total_ended=counts.total_ended,
            ended_by_reason=counts.ended_by_reason,
            warnings=counts.warnings,
            extended_after_warning=counts.extended_after_warning,
            cleanup_failures=counts.cleanup_failures,
            hook_failures=counts.hook_failures,
            archive_failures=counts.archive_failures,
            journals_recovered=counts.journals_recovered,
            store_losses=losses[0],
            sessions_lost=losses[1],
            oldest_age_s=None if oldest is None else now - oldest,
            newest_age_s=None if newest is None else now - newest,
        )
