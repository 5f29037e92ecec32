"""The ``tether_archives`` table: its schema, and dialogs turned into rows and back, without I/O.

One row per ended session, keyed by the session id (so a second write of
the same session, from a retry or from another node, is a no-op), with the
user, kind, start and end times (epoch seconds, ``double precision``: read
back to the exact float), reason, message count and recovery flag as
columns, and the config, messages and notes as ``jsonb``.

``jsonb`` cannot hold every value tether accepts exactly: it refuses the
NUL character in text, and its ``numeric`` prints ``1e300`` as an integer
and has no ``-0.0``. A column whose JSON contains one of these holds its
JSON *text* instead, as a ``jsonb`` string (config and notes are otherwise
an object and an array, so a string is never ambiguous). Every archive thus
reads back exactly as it was written, and its YAML export is byte for byte
the file archiver's.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tether.archive.base import ArchivedDialog, ArchiveSummary
from tether.core.ids import validate_user_id
from tether.core.transcript import Message, parse_role
from tether.errors import ArchiveError, InvalidInput
from tether.types import EndReason, SessionId

TABLE = "tether_archives"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    session_id    text PRIMARY KEY,
    archive_id    text NOT NULL,
    user_id       text NOT NULL,
    kind          text NOT NULL,
    started_at    double precision NOT NULL,
    ended_at      double precision NOT NULL,
    end_reason    text NOT NULL,
    message_count integer NOT NULL,
    recovered     boolean NOT NULL,
    config        jsonb NOT NULL,
    messages      jsonb NOT NULL,
    notes         jsonb NOT NULL,
    written_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {TABLE}_user_archive ON {TABLE} (user_id, archive_id DESC);
"""
"""Idempotent: every node runs it at start-up (under an advisory lock, see ``PgArchive``)."""

COLUMNS = (
    "session_id, archive_id, user_id, kind, started_at, ended_at, end_reason, "
    "message_count, recovered, config, messages, notes"
)
INSERT = (
    f"INSERT INTO {TABLE} ({COLUMNS}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb) "
    "ON CONFLICT (session_id) DO NOTHING"
)
"""First writer wins: the real end knows the true reason, a retry after a crash knows less."""

SUMMARY_COLUMNS = (
    "archive_id, session_id, user_id, kind, started_at, ended_at, end_reason, "
    "message_count, recovered"
)

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def to_row(dialog: ArchivedDialog) -> tuple[Any, ...]:
    """The ``INSERT`` parameters of one dialog (JSON as text, cast to ``jsonb`` by the server)."""
    try:
        return (
            dialog.session_id,
            dialog.archive_id,
            dialog.user,
            dialog.kind,
            dialog.started_at,
            dialog.ended_at,
            dialog.end_reason.value,
            len(dialog.messages),
            dialog.recovered,
            _jsonb(dialog.config),
            _jsonb([m.to_dict() for m in dialog.messages]),
            _jsonb(list(dialog.notes)),
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise ArchiveError(f"cannot archive this session: {exc!r}") from None


def _jsonb(value: dict[str, Any] | list[Any]) -> str:
    """``value`` as JSON text for a ``jsonb`` column, or as a JSON string of that text.

    The fast check looks at the text alone; only text that might hold a
    value ``jsonb`` would change (an escaped NUL, an exponent, a ``-0.0``)
    is walked to be sure.
    """
    text: str = _JSON.encode(value)
    if ("\\u0000" in text or "e+" in text or "-0.0" in text) and not _jsonb_exact(value):
        return _JSON.encode(text)
    return text


def _jsonb_exact(value: object) -> bool:
    """Whether ``jsonb`` gives ``value`` back unchanged (see the module docstring)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if any("\x00" in key for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
        elif isinstance(item, float) and (
            "e+" in repr(item) or (item == 0.0 and math.copysign(1.0, item) < 0)
        ):
            return False
    return True


def _unjsonb(value: object) -> Any:
    """A ``jsonb`` column's value: itself, or the JSON text it holds parsed."""
    return json.loads(value) if isinstance(value, str) else value


def summary_from_row(row: tuple[Any, ...]) -> ArchiveSummary:
    """An :class:`ArchiveSummary` from the :data:`SUMMARY_COLUMNS` of a row."""
    archive_id, session_id, user, kind, started, ended, reason, count, recovered = row
    return ArchiveSummary(
        archive_id,
        SessionId(session_id),
        validate_user_id(user),
        kind,
        started,
        ended,
        EndReason(reason),
        count,
        recovered,
    )


def dialog_from_row(row: tuple[Any, ...]) -> ArchivedDialog:
    """An :class:`ArchivedDialog` from the :data:`COLUMNS` of a row, or :class:`ArchiveError`."""
    try:
        (session_id, _archive_id, user, kind, started, ended, reason, _count, recovered,
         config, messages, notes) = row  # fmt: skip
        config, messages, notes = _unjsonb(config), _unjsonb(messages), _unjsonb(notes)
        if not isinstance(config, dict) or not isinstance(messages, list):
            raise TypeError("config or messages have the wrong type")
        if not isinstance(notes, list):
            raise TypeError("notes have the wrong type")
        return ArchivedDialog(
            session_id=SessionId(session_id),
            user=validate_user_id(user),
            kind=kind,
            config=config,
            started_at=started,
            ended_at=ended,
            end_reason=EndReason(reason),
            messages=tuple(_message(m) for m in messages),
            recovered=bool(recovered),
            notes=tuple(str(n) for n in notes),
        )
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        name = row[1] if len(row) > 1 else "?"
        raise ArchiveError(f"archive row {name!r} is not a tether archive: {exc}") from None


def _message(item: object) -> Message:
    if not isinstance(item, dict):
        raise TypeError("a message is not an object")
    seq, content, ts, metadata = item["seq"], item["content"], item["ts"], item.get("metadata")
    if (
        not isinstance(seq, int)
        or not isinstance(content, str)
        or not isinstance(ts, int | float)
        or (metadata is not None and not isinstance(metadata, dict))
    ):
        raise TypeError("message fields have the wrong types")
    return Message(seq, parse_role(item["role"]), content, float(ts), metadata)
