"""One exception tree for the whole project.

::

    TetherError
    ├── ConfigError                 a setting or policy value is invalid
    │   └── PolicyError             names the offending Policy field
    ├── InvalidInput                a caller sent something malformed (bad user id, role, ...)
    │   ├── BadJson                 text that is not JSON, or JSON nested too deep
    │   ├── MessageTooLarge         one message over the per-message cap
    │   ├── TooLarge                a request body over the service's size limit
    │   └── MalformedMessage        a payload on the cluster bus that is no message of ours
    ├── FrameError                  a WebSocket frame the service refuses; ``code`` says why
    ├── Unauthorized                no token, or an expired, forged or malformed one
    ├── Forbidden                   a valid caller asked for what it may not do; ``code`` says why
    ├── Throttled                   too many requests or connections; ``retry_after_s``
    ├── SessionError                about one session
    │   ├── SessionNotFound         unknown id (or not the caller's: same answer)
    │   ├── SessionEnded            the session has ended; carries the reason
    │   ├── TranscriptFull          the transcript is at its cap; nothing was stored
    │   ├── DuplicateSession        a new session's id is taken; nothing was stored
    │   ├── TooManyTasks            a session holds its most session-owned tasks already
    │   └── ReplyClosed             a streamed reply was cut short (an end, a barge-in)
    ├── StoreError                  the session store misbehaved
    │   └── StoreUnavailable        the store cannot be reached right now
    └── ArchiveError                journals and archives on disk
        ├── ArchiveNotFound         no such archive for that user
        └── JournalCorrupt          a journal is damaged beyond its torn tail

Lower-layer errors (``OSError``, ``redis.RedisError``, ...) are translated into
this tree once, at the seam where they occur, so callers catch only these.
Each class is re-exported from :mod:`tether`.

Two exception classes stand outside the tree on purpose. They are signals,
not errors: each is raised and caught inside its own package and never
reaches a caller, and neither may be caught by the handlers that answer a
``TetherError`` to a client:

* ``tether.service.ws.closes.Closed``: the WebSocket connection is over
  (closed by either side); :class:`~tether.service.ws.Connection` unwinds.
* ``tether.store.redis.codec.Unresolved``: a stored session names an
  interned config the reader has not cached yet; the store fetches it and
  decodes again.

``tests/test_errors.py`` holds every exception class under ``src/tether`` to
this rule.
"""

from __future__ import annotations

import math

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


class TooLarge(InvalidInput):
    """A request body over ``TETHER_MAX_MESSAGE_BYTES`` (413; a frame closes 1009)."""


class MalformedMessage(InvalidInput):
    """A payload on the cluster bus that is not a message of this version (it is dropped)."""


class FrameError(TetherError):
    """A WebSocket frame the service cannot act on; ``code`` is machine-readable.

    The connection answers it with an ``error {code, message}`` frame and stays open.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Unauthorized(TetherError):
    """No token, or one that is expired, forged or malformed (401 / close 1008)."""


class Forbidden(TetherError):
    """A valid caller asked for something it may not do (403).

    ``code`` is machine-readable: ``forbidden`` (admin only), ``forbidden_role``
    (a client may append only ``role: user``), ``observe_only`` (the token can
    only watch).
    """

    def __init__(self, message: str, *, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


class Throttled(TetherError):
    """Too many requests or connections (429 / close 4029).

    ``retry_after_s`` is how long the client should wait before trying again.
    """

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


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


class DuplicateSession(SessionError):
    """A new session's id is already taken, live or retained; nothing was stored.

    Ids are 128 random bits, so only an ``id_factory`` that repeats itself meets this.
    """

    def __init__(self, message: str = "duplicate session id") -> None:
        super().__init__(message)


class TooManyTasks(SessionError):
    """``manager.spawn``: the session already holds its limit of session-owned tasks.

    Nothing was started (the coroutine is closed); ``limit`` is the bound.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"the session already runs {limit} tasks")
        self.limit = limit


class ReplyClosed(SessionError):
    """A streamed reply was cut short (its session ended, or a barge-in); it takes no more."""

    def __init__(self, message: str = "the reply was cut short") -> None:
        super().__init__(message)


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
