"""Twilio Media Streams messages: parsed as documented, refused with a clear code otherwise."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from twilio_kit import CALL_SID, STREAM_SID, connected, dtmf, mark, media, start, stop

from tether.errors import FrameError
from tether.service.twilio.messages import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    clear_message,
    mark_message,
    media_message,
    parse,
)


def text(message: dict[str, Any]) -> str:
    return json.dumps(message)


def test_every_documented_message_from_twilio_parses() -> None:
    """connected, start, media, dtmf, mark and stop parse into their fields, counters as ints."""
    assert parse(text(connected())) == Connected("Call", "1.0.0")
    started = parse(text(start({"token": "t", "job": "pm"})))
    assert isinstance(started, Start)
    assert started.stream_sid == STREAM_SID
    assert started.call_sid == CALL_SID
    assert started.custom_parameters == {"token": "t", "job": "pm"}
    assert (started.encoding, started.sample_rate, started.channels) == ("audio/x-mulaw", 8000, 1)
    assert started.tracks == ("inbound",)
    assert started.sequence_number == 1
    frame = parse(text(media(b"\x01\x02\xff", seq=3, chunk=2)))
    assert frame == Media(STREAM_SID, "inbound", b"\x01\x02\xff", 2, 40, 3)
    assert parse(text(dtmf("#", seq=4))) == Dtmf(STREAM_SID, "#", "inbound_track", 4)
    assert parse(text(mark("greeting", seq=5))) == Mark(STREAM_SID, "greeting", 5)
    assert parse(text(stop(seq=6))) == Stop(STREAM_SID, CALL_SID, 6)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[" * 100 + "]" * 100, "bad_json"),
        ("[1, 2]", "invalid_message"),
        ('{"event": 5}', "invalid_message"),
        ('{"event": "hangup"}', "unknown_event"),
        ('{"event": "media", "streamSid": "MZ1"}', "invalid_message"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": 12}}', "invalid_message"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "@@@"}}', "bad_payload"),
        ('{"event": "media", "media": {"payload": ""}}', "invalid_message"),
        ('{"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "x"}}', "invalid_message"),
        ('{"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "12"}}', "invalid_message"),
        ('{"event": "mark", "streamSid": "MZ1", "mark": {}}', "invalid_message"),
        ('{"event": "start", "start": {}}', "invalid_message"),
    ],
)
def test_bad_messages_raise_frame_errors_with_a_code(raw: str, code: str) -> None:
    """Each malformed message is a FrameError whose code says what was wrong (never a crash)."""
    with pytest.raises(FrameError) as caught:
        parse(raw)
    assert caught.value.code == code


def test_start_with_another_media_format_is_refused() -> None:
    """A start whose mediaFormat is not mu-law 8 kHz mono is unsupported_media_format."""
    for fmt in ({"encoding": "audio/l16"}, {"sampleRate": 16000}, {"channels": 2}):
        with pytest.raises(FrameError) as caught:
            parse(text(start({"token": "t"}, **fmt)))
        assert caught.value.code == "unsupported_media_format"


def test_start_parameters_must_be_strings() -> None:
    """customParameters with a non-string or huge value is refused as invalid_message."""
    for params in ({"token": 5}, {"token": "x" * 5000}):
        message = start({})
        message["start"]["customParameters"] = params
        with pytest.raises(FrameError) as caught:
            parse(text(message))
        assert caught.value.code == "invalid_message"


def test_messages_to_twilio_have_the_documented_shape() -> None:
    """media carries base64 mu-law, mark its name, clear only the streamSid."""
    assert media_message("MZ1", b"\x00\xff") == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": base64.b64encode(b"\x00\xff").decode()},
    }
    assert mark_message("MZ1", "said") == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "said"},
    }
    assert clear_message("MZ1") == {"event": "clear", "streamSid": "MZ1"}
    with pytest.raises(FrameError):
        mark_message("MZ1", "")
