"""Timeout policy: the numbers that govern a session's three clocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tether.errors import PolicyError


@dataclass(frozen=True, slots=True)
class Policy:
    """How long a session may idle, last, and go unseen.

    All values are seconds.

    * ``idle_timeout``: no user activity this long ends the session (``idle_timeout``).
    * ``warn_before``: a warning this long before an idle or max-duration end;
      ``0`` disables warnings.
    * ``max_duration``: absolute cap on a session's life (``max_duration``).
    * ``presence_timeout``: no attached connection and no heartbeat this long ends
      the session (``client_gone``). It is also the reconnect grace. ``0`` ends a
      session the moment its last connection closes.

    Raises :class:`~tether.errors.PolicyError` naming the field when a value is
    invalid, so a bad setting fails at start-up rather than at the first timeout.
    """

    idle_timeout: float = 600.0
    warn_before: float = 120.0
    max_duration: float = 1800.0
    presence_timeout: float = 60.0

    def __post_init__(self) -> None:
        for field in ("idle_timeout", "warn_before", "max_duration", "presence_timeout"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(field, f"must be a number of seconds, got {value!r}")
            if not math.isfinite(value):
                raise PolicyError(field, f"must be finite, got {value!r}")
            if value < 0:
                raise PolicyError(field, f"must not be negative, got {value!r}")
        if self.idle_timeout == 0:
            raise PolicyError("idle_timeout", "must be greater than 0")
        if self.max_duration == 0:
            raise PolicyError("max_duration", "must be greater than 0")
        if self.warn_before and self.warn_before >= self.idle_timeout:
            raise PolicyError(
                "warn_before",
                f"must be less than idle_timeout ({self.warn_before} >= {self.idle_timeout})",
            )
        if self.warn_before and self.warn_before >= self.max_duration:
            raise PolicyError(
                "warn_before",
                f"must be less than max_duration ({self.warn_before} >= {self.max_duration})",
            )
