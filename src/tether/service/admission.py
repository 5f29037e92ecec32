"""How many connections may be open before anyone has said who they are.

A connection costs the server memory and a descriptor from its first byte,
but only proves anything once its request headers are complete (HTTP) or it
has sent a valid ``hello`` (WebSocket). :class:`Admission` counts the
connections in that state, across both, against
``TETHER_MAX_UNAUTHENTICATED``: past it, a new HTTP connection is answered
``503`` and closed, a new WebSocket ``error too_many_unauthenticated`` and
close 1013. Read timeouts (``TETHER_HEADER_TIMEOUT``, ``TETHER_HELLO_TIMEOUT``)
bound how long each one may stay counted, so the cap cannot be held forever.
"""

from __future__ import annotations

RETRY_AFTER_S = 1
"""What a refused client is told to wait: pending connections clear within a timeout."""


class Admission:
    """A count of unauthenticated connections against one limit."""

    __slots__ = ("limit", "pending", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0
        """Connections counted now."""
        self.refused = 0
        """Connections refused since start (for metrics and tests)."""

    def enter(self) -> bool:
        """Count one more, or ``False`` (and count a refusal) when at the limit."""
        if self.pending >= self.limit:
            self.refused += 1
            return False
        self.pending += 1
        return True

    def leave(self) -> None:
        """Count one fewer: the connection authenticated, or went away."""
        self.pending -= 1
