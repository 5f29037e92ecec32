"""The ``MetricsSink`` port: what the runtime reports as sessions live and end.

Labels are low-cardinality only (kind, reason): never a user or session id.
"""

from __future__ import annotations

from typing import Protocol

from tether.types import EndReason


class MetricsSink(Protocol):
    """Receives lifecycle facts; implementations must be cheap and never raise."""

    def session_started(self, kind: str) -> None: ...

    def session_warned(self, reason: EndReason) -> None: ...

    def session_reactivated(self) -> None:
        """A warning was cleared by activity: the session was extended."""
        ...

    def session_ended(self, reason: EndReason, duration: float) -> None: ...

    def cleanup_failed(self) -> None: ...

    def hook_failed(self) -> None: ...

    def archive_failed(self) -> None:
        """An ended session could not be archived (its journal is kept for recovery)."""
        ...

    def journals_recovered(self, count: int) -> None:
        """Start-up recovery archived ``count`` journals left by an unclean stop."""
        ...


class Tee:
    """Forwards every fact to several sinks."""

    def __init__(self, *sinks: MetricsSink) -> None:
        self._sinks = sinks

    def session_started(self, kind: str) -> None:
        for sink in self._sinks:
            sink.session_started(kind)

    def session_warned(self, reason: EndReason) -> None:
        for sink in self._sinks:
            sink.session_warned(reason)

    def session_reactivated(self) -> None:
        for sink in self._sinks:
            sink.session_reactivated()

    def session_ended(self, reason: EndReason, duration: float) -> None:
        for sink in self._sinks:
            sink.session_ended(reason, duration)

    def cleanup_failed(self) -> None:
        for sink in self._sinks:
            sink.cleanup_failed()

    def hook_failed(self) -> None:
        for sink in self._sinks:
            sink.hook_failed()

    def archive_failed(self) -> None:
        for sink in self._sinks:
            sink.archive_failed()

    def journals_recovered(self, count: int) -> None:
        for sink in self._sinks:
            sink.journals_recovered(count)
