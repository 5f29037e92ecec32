"""Late writes: messages appended after a session's end was decided, before its archive.

The store refuses appends to an ended session. But the end pipeline first
cancels the session's tasks and cuts its streaming replies, and their
``finally`` blocks (a reply storing what it streamed, ``partial: true``)
must still reach the archive. While the pipeline runs that step on this
node, a window is open for the session: an append the store refuses as
ended is numbered after the store's last message and kept here, and the
pipeline hands what the window holds to the archive with the store's
transcript. Nothing else may write then: a user's message is still refused.
"""

from __future__ import annotations

from typing import Any

from tether.core.transcript import Message, Role
from tether.types import SessionId


class LateWrites:
    """The open windows, by session: the store's message count, and what came late."""

    def __init__(self) -> None:
        self._windows: dict[SessionId, tuple[int, list[Message]]] = {}
        self._kept: dict[SessionId, tuple[Message, ...]] = {}

    def open(self, session_id: SessionId, stored: int) -> None:
        """Accept late messages for the session; ``stored``: the store's message count."""
        self._windows[session_id] = (stored, [])

    def accepts(self, session_id: SessionId) -> bool:
        """Whether a window is open for the session."""
        return session_id in self._windows

    def append(
        self,
        session_id: SessionId,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> Message:
        """Keep one late message (the window must be open) and return it, numbered."""
        stored, late = self._windows[session_id]
        message = Message(stored + len(late) + 1, role, content, now, metadata or None)
        late.append(message)
        return message

    def close(self, session_id: SessionId) -> tuple[Message, ...]:
        """Close the window; what came late is kept until :meth:`archived`."""
        _, late = self._windows.pop(session_id, (0, []))
        if late:
            self._kept[session_id] = tuple(late)
        return tuple(late)

    def kept(self, session_id: SessionId) -> tuple[Message, ...]:
        """The late messages of a session whose archive is not written yet (a retry)."""
        return self._kept.get(session_id, ())

    def archived(self, session_id: SessionId) -> None:
        """The archive holds them: forget the session's late messages."""
        self._kept.pop(session_id, None)
