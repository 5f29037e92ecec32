"""Prometheus metrics for ``/metrics``.

Totals (started, ended by reason, warnings, extensions, failures) come from
the manager's own counters, read at scrape time, so they are right even for
a manager the service did not build. The session-length histogram needs
every end as it happens, so :class:`PrometheusSink` is also a
:class:`~tether.metrics.MetricsSink`; a manager built by
:func:`tether.service.create_app` feeds it.

Each exporter has its own ``CollectorRegistry``, so several apps in one
process (tests, embedded routers) never collide. Labels are end reason,
session state and transport: never a user or session id, and never ``kind``
(clients choose it, so its values are unbounded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tether.runtime.manager import ManagerMetrics
from tether.types import EndReason

CONTENT_TYPE = CONTENT_TYPE_LATEST

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200)
"""Session lengths in seconds: from a bounced page to a long call."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one scrape reports besides the histogram."""

    manager: ManagerMetrics
    warning: int
    websocket_connections: int
    sse_connections: int


class _SnapshotCollector(Collector):
    """Exposes the latest :class:`Snapshot` (set just before each render)."""

    def __init__(self) -> None:
        self.latest: Snapshot | None = None

    # Long: one flat list of metric families, read best side by side.
    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snap = self.latest
        if snap is None:
            return
        m = snap.manager
        active = GaugeMetricFamily(
            "tether_sessions_active", "Live sessions, by state.", labels=["state"]
        )
        warning = min(snap.warning, m.active)
        active.add_metric(["active"], m.active - warning)
        active.add_metric(["warning"], warning)
        yield active
        yield CounterMetricFamily(
            "tether_sessions_started", "Sessions started.", value=m.total_created
        )
        ended = CounterMetricFamily(
            "tether_sessions_ended", "Sessions ended, by reason.", labels=["reason"]
        )
        for reason in EndReason:
            ended.add_metric([reason.value], m.ended_by_reason.get(reason, 0))
        yield ended
        yield CounterMetricFamily(
            "tether_session_warnings", "Warnings sent before an end.", value=m.warnings
        )
        yield CounterMetricFamily(
            "tether_sessions_extended_after_warning",
            "Warnings cleared by activity.",
            value=m.extended_after_warning,
        )
        yield CounterMetricFamily(
            "tether_cleanup_failures",
            "Cleanup callbacks that failed or timed out.",
            value=m.cleanup_failures,
        )
        yield CounterMetricFamily(
            "tether_hook_failures", "Lifecycle hooks that raised.", value=m.hook_failures
        )
        yield CounterMetricFamily(
            "tether_archive_failures",
            "Sessions whose archive could not be written.",
            value=m.archive_failures,
        )
        yield CounterMetricFamily(
            "tether_store_losses",
            "Times the shared store was found to have come back without its data.",
            value=m.store_losses,
        )
        yield CounterMetricFamily(
            "tether_store_sessions_lost",
            "Sessions ended with reason error because the shared store lost them.",
            value=m.sessions_lost,
        )
        yield CounterMetricFamily(
            "tether_journals_recovered",
            "Journals archived by start-up recovery after an unclean stop.",
            value=m.journals_recovered,
        )
        connections = GaugeMetricFamily(
            "tether_connections", "Open client connections, by transport.", labels=["transport"]
        )
        connections.add_metric(["websocket"], snap.websocket_connections)
        connections.add_metric(["sse"], snap.sse_connections)
        yield connections


class _TasksCollector(Collector):
    """``tether_asyncio_tasks``: the tasks alive in the loop that serves the scrape.

    A soak compares it at rest before and after hours of churn: a task leaked
    per session or per connection shows up as growth.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            count = len(asyncio.all_tasks())
        except RuntimeError:  # scraped outside a running loop: nothing to count
            return
        yield GaugeMetricFamily("tether_asyncio_tasks", "Live asyncio tasks.", value=count)


class PrometheusSink:
    """The Prometheus exporter, and a ``MetricsSink`` for what only events can tell.

    Every sink method is cheap and never raises.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)
        self.registry.register(_TasksCollector())
        self.duration = Histogram(
            "tether_session_duration_seconds",
            "Session length at its end, by end reason.",
            ["reason"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        for reason in EndReason:  # present from the first scrape, so rate() starts at zero
            self.duration.labels(reason.value)
        self.client_errors = Counter(
            "tether_client_errors",
            "Client input refused or client misbehaviour absorbed, by transport and error code "
            "(never logged one by one).",
            ["transport", "code"],
            registry=self.registry,
        )

    def client_error(self, transport: str, code: str) -> None:
        """Count one error a client caused (``code`` is tether's error code: a bounded set)."""
        self.client_errors.labels(transport, code).inc()

    # -- MetricsSink ----------------------------------------------------------------

    def session_started(self, kind: str) -> None:
        return None

    def session_warned(self, reason: EndReason) -> None:
        return None

    def session_reactivated(self) -> None:
        return None

    def session_ended(self, reason: EndReason, duration: float) -> None:
        self.duration.labels(reason.value).observe(max(0.0, duration))

    def cleanup_failed(self) -> None:
        return None

    def hook_failed(self) -> None:
        return None

    def archive_failed(self) -> None:
        return None

    def journals_recovered(self, count: int) -> None:
        return None

    # -- scrape -------------------------------------------------------------------------

    def render(self, snapshot: Snapshot) -> bytes:
        """The exposition text for ``snapshot`` plus the histogram."""
        self._snapshot.latest = snapshot
        return generate_latest(self.registry)
