"""Identifiers: minting session ids, validating user ids, redacting ids for logs."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from tether.errors import InvalidInput
from tether.types import SessionId, UserId

_USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
_ARCHIVE_ID = re.compile(r"[0-9]{4}(?:-[0-9]{2}){5}-[0-9a-f]{12}")

# Per-process salt: log references are stable within a process (so one session's
# lines can be followed) but cannot be reversed or matched across processes.
_LOG_SALT = secrets.token_bytes(16)


def new_session_id() -> SessionId:
    """A fresh session id: 128 random bits from ``secrets`` as 32 hex characters."""
    return SessionId(secrets.token_hex(16))


def validate_user_id(value: object) -> UserId:
    """Return ``value`` as a :class:`UserId` or raise :class:`InvalidInput`.

    User ids end up as path components (``users/{user}/dialogs``), so the
    pattern is an allowlist: ASCII letters, digits and ``_ . @ -``, 1 to 128
    characters, and never ``.`` or ``..``.
    """
    if not isinstance(value, str) or not _USER_ID.fullmatch(value) or value in {".", ".."}:
        raise InvalidInput("invalid user id: use 1-128 of A-Z a-z 0-9 _ . @ - (not '.' or '..')")
    return UserId(value)


def validate_session_id(value: object) -> SessionId:
    """Return ``value`` as a :class:`SessionId` or raise :class:`InvalidInput`."""
    if not isinstance(value, str) or not _SESSION_ID.fullmatch(value):
        raise InvalidInput("invalid session id: expected 32 lowercase hex characters")
    return SessionId(value)


def log_ref(session_id: str) -> str:
    """A salted hash of ``session_id`` for logs: raw ids never reach a log line."""
    return hashlib.blake2b(session_id.encode(), key=_LOG_SALT, digest_size=6).hexdigest()


def archive_id_for(session_id: SessionId, created_at: float) -> str:
    """The archive id of a session: ``{YYYY-MM-DD-HH-MM-SS}-{short-id}``.

    The stamp is the session's start (UTC) and the short id a hash of its id,
    so every node, and every retry after a crash, names the same session's
    archive the same way: that is what makes archiving idempotent. The short
    id is a hash rather than a prefix so an archive name never reveals the
    session id.
    """
    stamp = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d-%H-%M-%S")
    return f"{stamp}-{archive_short_id(session_id)}"


def archive_short_id(session_id: SessionId) -> str:
    """The last part of a session's archive id: a hash of the id (see :func:`archive_id_for`)."""
    return hashlib.blake2b(session_id.encode(), digest_size=6).hexdigest()


def validate_archive_id(value: object) -> str:
    """Return ``value`` if it has the shape of an archive id, else raise :class:`InvalidInput`."""
    if not isinstance(value, str) or not _ARCHIVE_ID.fullmatch(value):
        raise InvalidInput("invalid archive id: expected YYYY-MM-DD-HH-MM-SS-<12 hex>")
    return value
