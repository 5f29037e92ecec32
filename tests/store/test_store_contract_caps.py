"""The ``SessionStore`` contract for transcript caps, run against every implementation.

An append that would take a transcript past a cap (messages, bytes, or one
message's size) is refused whole with the core's error; nothing already
stored changes, the session stays live, and it still ends and hands its
whole transcript to its pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tether.core.caps import TranscriptCap
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.core.transcript import Role
from tether.errors import MessageTooLarge, TranscriptFull
from tether.store.base import SessionStore
from tether.types import EndReason, SessionId, SessionState, UserId

StoreFactory = Callable[..., AbstractAsyncContextManager[SessionStore]]
T0 = 1_700_000_000.0
QUIET = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)
CAP = TranscriptCap(max_message_bytes=100, max_messages=4, max_bytes=250)


@pytest.fixture
async def capped(store_factory: StoreFactory) -> AsyncIterator[SessionStore]:
    """A fresh store of the implementation under test, with :data:`CAP`."""
    async with store_factory(transcript_cap=CAP) as fresh:
        yield fresh


async def new_session(store: SessionStore) -> SessionId:
    """A new empty session."""
    record = SessionRecord(new_session_id(), UserId("u1"), "chat", QUIET, T0)
    await store.create(record, max_per_user=None)
    return record.id


async def contents(store: SessionStore, session_id: SessionId) -> list[str]:
    """The stored messages' contents, oldest first."""
    return [m.content for m in await store.transcript(session_id)]


class TestTranscriptCapContract:
    """Behaviour of capped appends every store must show."""

    async def test_the_append_past_the_message_cap_is_refused_and_nothing_changes(
        self, capped: SessionStore
    ) -> None:
        """The fifth append of a 4-message cap raises TranscriptFull("messages"); the four stay."""
        sid = await new_session(capped)
        for i in range(4):
            await capped.append(sid, Role.USER, f"m{i + 1}", None, T0 + i)
        with pytest.raises(TranscriptFull) as refused:
            await capped.append(sid, Role.USER, "m5", None, T0 + 5)
        assert refused.value.limit == "messages"
        assert await contents(capped, sid) == ["m1", "m2", "m3", "m4"]
        info = await capped.get(sid)
        assert info is not None
        assert info.message_count == 4
        assert info.state is SessionState.ACTIVE

    async def test_the_byte_cap_refuses_only_an_append_that_would_pass_it(
        self, capped: SessionStore
    ) -> None:
        """At 200 of 250 bytes, 60 more are refused and exactly 50 more are taken."""
        sid = await new_session(capped)
        await capped.append(sid, Role.USER, "a" * 100, None, T0)
        await capped.append(sid, Role.ASSISTANT, "b" * 100, None, T0 + 1)
        with pytest.raises(TranscriptFull) as refused:
            await capped.append(sid, Role.USER, "c" * 60, None, T0 + 2)
        assert refused.value.limit == "bytes"
        message = await capped.append(sid, Role.USER, "d" * 50, None, T0 + 3)
        assert message.seq == 3
        with pytest.raises(TranscriptFull):
            await capped.append(sid, Role.USER, "e", None, T0 + 4)
        assert [len(c) for c in await contents(capped, sid)] == [100, 100, 50]

    async def test_metadata_and_utf8_bytes_count_toward_the_caps(
        self, capped: SessionStore
    ) -> None:
        """Sizes are UTF-8 content bytes plus metadata JSON bytes, checked per message."""
        sid = await new_session(capped)
        with pytest.raises(MessageTooLarge):
            await capped.append(sid, Role.USER, "é" * 51, None, T0)  # 102 bytes
        with pytest.raises(MessageTooLarge):
            await capped.append(sid, Role.USER, "é" * 30, {"k": "x" * 40}, T0)  # 60 + 48
        await capped.append(sid, Role.USER, "é" * 50, None, T0)  # exactly 100
        assert await contents(capped, sid) == ["é" * 50]

    async def test_an_oversized_message_is_refused_and_the_transcript_is_unchanged(
        self, capped: SessionStore
    ) -> None:
        """One message over max_message_bytes raises MessageTooLarge and stores nothing."""
        sid = await new_session(capped)
        await capped.append(sid, Role.USER, "ok", None, T0)
        with pytest.raises(MessageTooLarge):
            await capped.append(sid, Role.USER, "x" * 101, None, T0 + 1)
        assert await contents(capped, sid) == ["ok"]
        nxt = await capped.append(sid, Role.USER, "next", None, T0 + 2)
        assert nxt.seq == 2  # the refused message took no number

    async def test_a_full_session_still_ends_with_its_whole_transcript(
        self, capped: SessionStore
    ) -> None:
        """After a refusal the session ends normally and its transcript still has every message."""
        sid = await new_session(capped)
        for i in range(4):
            await capped.append(sid, Role.USER, f"m{i + 1}", None, T0 + i)
        with pytest.raises(TranscriptFull):
            await capped.append(sid, Role.USER, "m5", None, T0 + 5)
        claim = await capped.end(sid, EndReason.CLIENT_ENDED, T0 + 6)
        assert claim is not None
        assert claim.session.end_reason is EndReason.CLIENT_ENDED
        assert await contents(capped, sid) == ["m1", "m2", "m3", "m4"]

    async def test_caps_are_per_session(self, capped: SessionStore) -> None:
        """A full session does not stop another session from appending."""
        full, other = await new_session(capped), await new_session(capped)
        for i in range(4):
            await capped.append(full, Role.USER, f"m{i + 1}", None, T0 + i)
        with pytest.raises(TranscriptFull):
            await capped.append(full, Role.USER, "m5", None, T0 + 5)
        message = await capped.append(other, Role.USER, "hi", None, T0 + 6)
        assert message.seq == 1
