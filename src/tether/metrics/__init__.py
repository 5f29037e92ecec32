"""Metrics: the :class:`MetricsSink` port and the built-in counters."""

from tether.metrics.counters import CounterSnapshot, SessionCounters
from tether.metrics.sink import MetricsSink, Tee

__all__ = ["CounterSnapshot", "MetricsSink", "SessionCounters", "Tee"]
