"""One exception tree for the whole project.

::

    TetherError
    ├── ConfigError                 a setting or policy value is invalid
    │   └── PolicyError             names the offending Policy field
    ├── InvalidInput                a caller sent something malformed (bad user id, role, ...)
    │   ├── BadJson                 text that is not JSON, or JSON nested too deep
    │   └── MessageTooLarge         one message over the per-message cap
    ├── SessionError                about one session
    │   ├── SessionNotFound         unknown id (or not the caller's: same answer)
    │   ├── SessionEnded            the session has ended; carries the reason
    │   └── TranscriptFull          the transcript is at its cap; nothing was stored
    ├── StoreError                  the session store misbehaved
    │   └── StoreUnavailable        the store cannot be reached right now
    └── ArchiveError                journals and archives on disk
        ├── ArchiveNotFound         no such archive for that user
        └── JournalCorrupt          a journal is damaged beyond its torn tail

Lower-layer errors (``OSError``, ``redis.RedisError``, ...) are translated into
this tree once, at the seam where they occur, so callers catch only these.
"""

from __future__ import annotations

from tether.types import EndReason


class TetherError(Exception):
    """Base of every error tether raises on purpose."""


class ConfigError(TetherError):
    """A configuration value is invalid."""


class PolicyError(ConfigError):
    """A :class:`tether.core.policy.Policy` field is invalid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid policy: {field}: {message}")
        self.field = field


class InvalidInput(TetherError):
    """A caller supplied malformed input; nothing was changed."""


class BadJson(InvalidInput):
    """Text that is not strict JSON, or JSON nested deeper than the edge's limit."""


class MessageTooLarge(InvalidInput):
    """One message is over the per-message cap (``TranscriptCap.max_message_bytes``)."""


class SessionError(TetherError):
    """An operation on one session failed."""


class SessionNotFound(SessionError):
    """No such session (or, at the service edge, not the caller's)."""

    def __init__(self, message: str = "unknown session") -> None:
        super().__init__(message)


class SessionEnded(SessionError):
    """The session has ended and accepts nothing more."""

    def __init__(self, reason: EndReason) -> None:
        super().__init__(f"session ended: {reason.value}")
        self.reason = reason


class TranscriptFull(SessionError):
    """The append would take the transcript past its cap; nothing was stored.

    ``limit`` names the cap: ``"messages"`` or ``"bytes"``. The session goes
    on (it can still be ended, and it archives everything it holds).
    """

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class StoreError(TetherError):
    """The session store failed."""


class StoreUnavailable(StoreError):
    """The session store cannot be reached; nothing was changed."""


class ArchiveError(TetherError):
    """Writing or reading a journal or an archive failed."""


class ArchiveNotFound(ArchiveError):
    """No archive with that id for that user."""

    def __init__(self, message: str = "unknown archive") -> None:
        super().__init__(message)


class JournalCorrupt(ArchiveError):
    """A journal holds a bad record that is not a torn tail; ``offset`` says where."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset
