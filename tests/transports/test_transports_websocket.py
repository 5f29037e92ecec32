"""WebSocketChannel: one writer at a time, replies ahead of held events, no send after close."""

from __future__ import annotations

import asyncio
import json

import pytest

from tether.core.events import SessionActive, SessionConfig, TranscriptAppended
from tether.core.transcript import Message, Role
from tether.transports import TranscriptCursor, WebSocketChannel


class FakeSocket:
    """Records frames and closes; can be told to fail."""

    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []
        self.closes: list[tuple[int, str | None]] = []
        self.fail = False

    async def send_text(self, data: str) -> None:
        if self.fail:
            raise RuntimeError("peer gone")
        self.frames.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self.fail:
            raise RuntimeError("peer gone")
        self.closes.append((code, reason))


def _message(seq: int) -> TranscriptAppended:
    return TranscriptAppended(Message(seq, Role.USER, f"m{seq}", 1.0))


async def test_events_are_written_as_type_tagged_json() -> None:
    """send() writes each event's wire form as one JSON text frame."""
    socket = FakeSocket()
    channel = WebSocketChannel(socket)
    await channel.send(SessionConfig({"a": 1}))
    await channel.send(SessionActive())
    assert socket.frames == [
        {"type": "session.config", "config": {"a": 1}},
        {"type": "session.active"},
    ]


async def test_hold_parks_runtime_events_behind_the_endpoints_reply() -> None:
    """While held, runtime events wait; a direct reply goes first, then the parked events."""
    socket = FakeSocket()
    channel = WebSocketChannel(socket)
    channel.hold()
    parked = asyncio.ensure_future(channel.send(SessionConfig({})))
    await asyncio.sleep(0)
    assert socket.frames == []
    await channel.send_json({"type": "session.resumed"})
    channel.release()
    await parked
    assert [f["type"] for f in socket.frames] == ["session.resumed", "session.config"]


async def test_cursor_drops_messages_already_replayed() -> None:
    """Transcript messages at or below the cursor are not sent twice; later ones are."""
    socket = FakeSocket()
    channel = WebSocketChannel(socket)
    channel.cursor.advance(2)
    for seq in (1, 2, 3):
        await channel.send(_message(seq))
    assert [f["message"]["seq"] for f in socket.frames] == [3]  # type: ignore[index]


async def test_close_is_idempotent_and_later_sends_raise() -> None:
    """The first close wins; afterwards send raises ConnectionError and writes nothing."""
    socket = FakeSocket()
    channel = WebSocketChannel(socket)
    await channel.close(4001, "idle_timeout")
    await channel.close(1000, "again")
    assert socket.closes == [(4001, "idle_timeout")]
    assert channel.closed
    assert channel.close_code == 4001
    with pytest.raises(ConnectionError):
        await channel.send(SessionActive())
    assert socket.frames == []


async def test_a_failed_write_marks_the_channel_lost() -> None:
    """A socket that fails to write turns into ConnectionError and a closed (1006) channel."""
    socket = FakeSocket()
    socket.fail = True
    channel = WebSocketChannel(socket)
    with pytest.raises(ConnectionError):
        await channel.send_json({"type": "pong"})
    assert channel.closed
    assert channel.close_code == 1006
    await channel.close(1000, "bye")  # closing a lost channel is harmless


async def test_close_wakes_a_sender_parked_by_hold() -> None:
    """A send parked behind hold() fails promptly once the channel closes."""
    channel = WebSocketChannel(FakeSocket())
    channel.hold()
    parked = asyncio.ensure_future(channel.send(SessionActive()))
    await asyncio.sleep(0)
    await channel.close(1001, "server_shutdown")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(parked, 1)


async def test_long_close_reasons_are_clipped_to_the_protocol_limit() -> None:
    """A close reason longer than 123 bytes is cut, never rejected."""
    socket = FakeSocket()
    await WebSocketChannel(socket).close(1008, "é" * 100)
    reason = socket.closes[0][1]
    assert reason is not None
    assert len(reason.encode()) <= 123


def test_cursor_only_moves_forward() -> None:
    """advance() never moves the cursor back; admit() passes non-message events."""
    cursor = TranscriptCursor(5)
    cursor.advance(3)
    assert cursor.seq == 5
    assert cursor.admit(SessionActive())
    assert not cursor.admit(_message(5))
    assert cursor.admit(_message(6))
    assert cursor.seq == 6
