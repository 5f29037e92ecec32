"""The ``SessionStore`` contract for ``retract``, run against every implementation.

A retracted message is one whose append was never acknowledged (the journal
refused it): it leaves the transcript, later messages keep their numbers, and
numbers are never reused.
"""

from __future__ import annotations

from typing import Any

from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.core.transcript import Role
from tether.store.base import SessionStore
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0
QUIET = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)


async def session_with(store: SessionStore, count: int) -> SessionId:
    """A new session holding messages m1..m<count>."""
    record = SessionRecord(new_session_id(), UserId("u1"), "chat", QUIET, T0)
    await store.create(record, max_per_user=None)
    for i in range(count):
        await store.append(record.id, Role.USER, f"m{i + 1}", None, T0 + i)
    return record.id


async def seqs(store: SessionStore, session_id: SessionId, **kwargs: Any) -> list[int]:
    """The seqs ``transcript`` returns."""
    return [m.seq for m in await store.transcript(session_id, **kwargs)]


class TestRetractContract:
    """Behaviour of ``retract`` every store must show."""

    async def test_retract_removes_the_message_and_keeps_later_numbers(
        self, store: SessionStore
    ) -> None:
        """A retracted message is gone; the others keep their seqs and contents."""
        session_id = await session_with(store, 4)
        await store.retract(session_id, 2)
        messages = await store.transcript(session_id)
        assert [(m.seq, m.content) for m in messages] == [(1, "m1"), (3, "m3"), (4, "m4")]

    async def test_seqs_are_never_reused_after_a_retract(self, store: SessionStore) -> None:
        """The next append after a retract of the last message still gets a new seq."""
        session_id = await session_with(store, 3)
        await store.retract(session_id, 3)
        message = await store.append(session_id, Role.USER, "again", None, T0 + 9.0)
        assert message.seq == 4
        assert await seqs(store, session_id) == [1, 2, 4]

    async def test_after_and_limit_count_only_remaining_messages(self, store: SessionStore) -> None:
        """``after`` is a seq and ``limit`` counts messages returned, gaps notwithstanding."""
        session_id = await session_with(store, 8)
        for seq in (2, 3, 6):
            await store.retract(session_id, seq)
        assert await seqs(store, session_id) == [1, 4, 5, 7, 8]
        assert await seqs(store, session_id, limit=2) == [1, 4]
        assert await seqs(store, session_id, after=1, limit=3) == [4, 5, 7]
        assert await seqs(store, session_id, after=2) == [4, 5, 7, 8]
        assert await seqs(store, session_id, after=5, limit=10) == [7, 8]
        assert await seqs(store, session_id, after=8) == []
        assert await seqs(store, session_id, limit=0) == []

    async def test_retract_of_missing_messages_or_sessions_is_a_no_op(
        self, store: SessionStore
    ) -> None:
        """Retracting an unknown or retracted seq, or in an unknown session, does nothing."""
        session_id = await session_with(store, 2)
        await store.retract(session_id, 2)
        await store.retract(session_id, 2)
        await store.retract(session_id, 0)
        await store.retract(session_id, 99)
        await store.retract(new_session_id(), 1)
        assert await seqs(store, session_id) == [1]

    async def test_retract_works_on_a_retained_ended_session(self, store: SessionStore) -> None:
        """An ended session's retained transcript can still lose an unacknowledged message."""
        session_id = await session_with(store, 3)
        await store.end(session_id, EndReason.CLIENT_ENDED, T0 + 10.0)
        await store.retract(session_id, 3)
        assert await seqs(store, session_id) == [1, 2]
