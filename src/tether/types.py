"""The vocabulary every layer shares: identifiers, session states and end reasons.

One vocabulary everywhere: the same ``EndReason`` values appear in events, close
codes, metric labels, archive records and logs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

SessionId = NewType("SessionId", str)
"""128 bits from ``secrets``, as 32 hex characters. Never logged raw."""

UserId = NewType("UserId", str)
"""A validated user id (see :func:`tether.core.ids.validate_user_id`)."""


class SessionState(StrEnum):
    """Where a session is in its life. ``ENDED`` is final."""

    ACTIVE = "active"
    WARNING = "warning"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why a session ended. Every end has exactly one."""

    CLIENT_ENDED = "client_ended"
    CLIENT_GONE = "client_gone"
    IDLE_TIMEOUT = "idle_timeout"
    MAX_DURATION = "max_duration"
    REPLACED = "replaced"
    ADMIN = "admin"
    SERVER_SHUTDOWN = "server_shutdown"
    ERROR = "error"
