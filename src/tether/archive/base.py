"""The ``Archiver`` port and the dialog it stores.

An archiver turns one ended session into one durable, immutable record. The
runtime calls :meth:`Archiver.archive` from the end pipeline of every
session, and start-up recovery calls it for journals whose session never got
that far; both may call it twice for the same session (a crash between the
archive and the journal's removal, a lease re-claimed by another node), so
archiving must be idempotent per session.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tether.core.ids import archive_id_for
from tether.core.transcript import Message
from tether.types import EndReason, SessionId, UserId


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """One archive as a listing shows it, without its messages."""

    archive_id: str
    session_id: SessionId
    user: UserId
    kind: str
    started_at: float
    ended_at: float
    end_reason: EndReason
    message_count: int
    recovered: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "archive_id": self.archive_id,
            "session_id": self.session_id,
            "user": self.user,
            "kind": self.kind,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason.value,
            "duration_s": round(self.ended_at - self.started_at, 3),
            "message_count": self.message_count,
            "recovered": self.recovered,
        }


@dataclass(frozen=True, slots=True)
class ArchivedDialog:
    """A whole ended session: who, what kind, when, why it ended, and every message."""

    session_id: SessionId
    user: UserId
    kind: str
    config: dict[str, Any]
    started_at: float
    ended_at: float
    end_reason: EndReason
    messages: tuple[Message, ...] = ()
    recovered: bool = False
    """True when start-up recovery archived it from a journal after a crash."""
    notes: tuple[str, ...] = field(default=())
    """What recovery had to drop or could not read, in words, for the reader."""

    @property
    def archive_id(self) -> str:
        """Derived from the session alone, so every retry names the same file."""
        return archive_id_for(self.session_id, self.started_at)

    def summary(self) -> ArchiveSummary:
        """The listing view of this dialog."""
        return ArchiveSummary(
            self.archive_id,
            self.session_id,
            self.user,
            self.kind,
            self.started_at,
            self.ended_at,
            self.end_reason,
            len(self.messages),
            self.recovered,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the summary plus config, notes and messages."""
        out = self.summary().to_dict()
        out["config"] = self.config
        if self.notes:
            out["notes"] = list(self.notes)
        out["messages"] = [m.to_dict() for m in self.messages]
        return out


class Archiver(Protocol):
    """Where ended sessions go. Implementations must be idempotent per session."""

    async def archive(self, dialog: ArchivedDialog) -> str:
        """Store ``dialog`` durably and return its archive id.

        Archiving a session that is already archived leaves exactly one
        archive and returns the same id.
        """
        ...

    async def list(
        self, user: str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[ArchiveSummary]:
        """The user's archives, newest start first, ``limit`` of them after ``offset``.

        Raises :class:`~tether.errors.InvalidInput` for a malformed user id.
        """
        ...

    async def read(self, user: str, archive_id: str) -> ArchivedDialog:
        """One archive; :class:`~tether.errors.ArchiveNotFound` if the user has none by that id.

        Raises :class:`~tether.errors.InvalidInput` for a malformed user or archive id.
        """
        ...

    async def aclose(self) -> None:
        """Release threads and files."""
        ...


@runtime_checkable
class ArchiveFinder(Protocol):
    """Optional: an archiver that can find a session's archive by the session's id.

    Used to answer reads of an ended session the store no longer retains.
    """

    async def find(self, user: str, session_id: str) -> ArchivedDialog | None:
        """The user's archive of session ``session_id``, or ``None`` if there is none."""
        ...
