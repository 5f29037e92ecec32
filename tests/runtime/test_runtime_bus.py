"""The event bus port: message wire form, and the single-process LocalBus."""

from __future__ import annotations

import json

import pytest

from tether.core.events import (
    AppEvent,
    ReplyDelta,
    SessionActive,
    SessionConfig,
    SessionEndedEvent,
    SessionWarning,
    TranscriptAppended,
)
from tether.core.transcript import Message, Role
from tether.runtime.bus import (
    Ack,
    BusMessage,
    Close,
    LocalBus,
    MalformedMessage,
    Poke,
    Publish,
    decode,
    encode,
)
from tether.types import EndReason, SessionId

SID = SessionId("ab" * 16)
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "message",
    [
        Publish(SID, SessionConfig({"voice": "calm", "n": [1, 2]})),
        Publish(SID, SessionActive()),
        Publish(SID, TranscriptAppended(Message(3, Role.USER, "héllo", NOW, {"k": "v"}))),
        Publish(SID, TranscriptAppended(Message(4, Role.ASSISTANT, "hi", NOW, None))),
        Publish(SID, ReplyDelta("r1", "assistant", "Hel lo")),
        Publish(SID, AppEvent("speaking", {"on": True, "n": [1]})),
        Close(SID, EndReason.IDLE_TIMEOUT, "2024-01-01-00-00-00-abcdef", ("n1", "n2"), "a1"),
        Close(SID, EndReason.CLIENT_ENDED),
        Ack("a1", "n2"),
        Poke(NOW + 0.125),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_round_trips_with_its_origin(message: BusMessage) -> None:
    """decode(encode(m)) gives back the message and the publishing node's origin stamp."""
    assert decode(encode(message, "node-1"), NOW) == ("node-1", message)


def test_a_warning_arrives_with_the_time_left_by_the_receivers_clock() -> None:
    """seconds_left is recomputed from ends_at at the receiver (never negative)."""
    sent = Publish(SID, SessionWarning(EndReason.MAX_DURATION, 120.0, NOW + 120.0))
    payload = encode(sent, "n")
    _, early = decode(payload, NOW + 20.0)
    _, late = decode(payload, NOW + 500.0)
    assert early == Publish(SID, SessionWarning(EndReason.MAX_DURATION, 100.0, NOW + 120.0))
    assert late == Publish(SID, SessionWarning(EndReason.MAX_DURATION, 0.0, NOW + 120.0))


def test_session_ended_does_not_travel_as_a_plain_event() -> None:
    """Ends travel as Close (which carries the acknowledgement), never as a Publish."""
    with pytest.raises(TypeError):
        encode(Publish(SID, SessionEndedEvent(EndReason.ADMIN)), "n")


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        json.dumps({"k": "p", "t": 1.0}),
        json.dumps({"o": "n", "k": "?"}),
        json.dumps({"o": "n", "k": "x", "s": SID, "r": "nope", "a": None, "x": [], "i": ""}),
        json.dumps({"o": "n", "k": "e", "s": SID, "e": {"t": "config", "config": [1]}}),
        json.dumps({"o": "n", "k": "e", "s": SID, "e": {"t": "session.started"}}),
        json.dumps({"o": "n", "k": "e", "s": SID, "e": {"t": "message", "m": [1, "x"]}}),
        json.dumps({"o": "n", "k": "p", "t": "soon"}),
    ],
)
def test_malformed_payloads_raise_malformed_message(payload: str | bytes) -> None:
    """Anything that is not a message of this version is refused with MalformedMessage."""
    with pytest.raises(MalformedMessage):
        decode(payload, NOW)


async def test_the_local_bus_carries_nothing_and_is_not_shared() -> None:
    """LocalBus (one process) is not shared; publishing, flushing and closing do nothing."""
    bus = LocalBus()
    heard: list[BusMessage] = []
    await bus.start(heard.append, lambda: None)
    bus.publish(Poke(1.0))
    await bus.flush()
    await bus.aclose()
    assert not bus.shared
    assert heard == []
