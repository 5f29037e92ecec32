"""SSEChannel: replay first, then live events with transcript ids, comments while idle."""

from __future__ import annotations

import asyncio
import json

import pytest

from tether.core.events import SessionActive, SessionConfig, SessionEndedEvent, TranscriptAppended
from tether.core.transcript import Message, Role
from tether.transports import SSEChannel, format_sse
from tether.types import EndReason


def _message(seq: int) -> TranscriptAppended:
    return TranscriptAppended(Message(seq, Role.ASSISTANT, f"m{seq}", 1.0))


def _parse(chunks: list[str]) -> list[tuple[str | None, dict[str, object]]]:
    out = []
    for chunk in chunks:
        fields = dict(
            line.split(": ", 1) for line in chunk.strip().splitlines() if not line.startswith(":")
        )
        if "data" in fields:
            out.append((fields.get("id"), json.loads(fields["data"])))
    return out


def test_format_sse_writes_one_data_line_and_an_optional_id() -> None:
    """A payload with newlines in strings still fits on one data line."""
    text = format_sse({"type": "x", "content": "a\nb"}, "7")
    assert text.startswith("id: 7\ndata: ")
    assert text.endswith("\n\n")
    assert text.count("\n") == 3
    assert format_sse({"type": "x"}).startswith("data: ")


async def test_replay_comes_before_parked_events_and_ids_track_the_transcript() -> None:
    """Replayed messages go first; events parked by hold() follow; ids are transcript seqs."""
    channel = SSEChannel(last_seq=1)
    channel.hold()
    parked = asyncio.ensure_future(channel.send(SessionConfig({"k": 1})))
    stream = channel.stream(10.0, replay=[_message(2), _message(3)])
    chunks = [await anext(stream) for _ in range(4)]
    await asyncio.wait_for(parked, 1)
    await channel.close(1000, "client_ended")
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert chunks[0].startswith(": ")
    assert "retry: " in chunks[0]
    events = _parse(chunks)
    assert [(i, e["type"]) for i, e in events] == [
        ("2", "transcript.message"),
        ("3", "transcript.message"),
        ("3", "session.config"),
    ]


async def test_idle_stream_sends_comment_heartbeats() -> None:
    """With nothing to send, the stream yields a comment every ping interval."""
    channel = SSEChannel()
    stream = channel.stream(0.001)
    await anext(stream)  # preamble
    assert (await asyncio.wait_for(anext(stream), 1)).startswith(": ping")


async def test_close_flushes_queued_events_then_ends() -> None:
    """Events queued before close are still written; then the stream stops."""
    channel = SSEChannel()
    stream = channel.stream(10.0)
    await anext(stream)
    await channel.send(SessionActive())
    await channel.send(SessionEndedEvent(EndReason.IDLE_TIMEOUT))
    await channel.close(4001, "idle_timeout")
    rest = [chunk async for chunk in stream]
    assert [e["type"] for _, e in _parse(rest)] == ["session.active", "session.ended"]
    assert channel.close_code == 4001


async def test_send_after_close_raises() -> None:
    """A closed stream refuses new events with ConnectionError."""
    channel = SSEChannel()
    await channel.close(1000, "client_ended")
    with pytest.raises(ConnectionError):
        await channel.send(SessionActive())


async def test_duplicate_messages_are_dropped() -> None:
    """A message at or below the stream's position is not queued again."""
    channel = SSEChannel(last_seq=4)
    stream = channel.stream(10.0)
    await anext(stream)
    await channel.send(_message(4))
    await channel.send(_message(5))
    await channel.close(1000, "client_ended")
    rest = [chunk async for chunk in stream]
    assert [i for i, _ in _parse(rest)] == ["5"]
