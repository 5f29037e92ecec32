"""Twilio Media Streams messages, parsed and built; sans-I/O (no socket, no clock).

Twilio's documented messages (https://www.twilio.com/docs/voice/media-streams/websocket-messages),
JSON text frames tagged by ``event``:

From Twilio: ``connected {protocol, version}``; ``start {sequenceNumber, streamSid,
start: {streamSid, accountSid, callSid, tracks, customParameters, mediaFormat:
{encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1}}}``; ``media {sequenceNumber,
streamSid, media: {track, chunk, timestamp, payload}}`` (``payload``: base64 mu-law);
``dtmf {streamSid, sequenceNumber, dtmf: {track, digit}}``; ``mark {sequenceNumber,
streamSid, mark: {name}}`` (the echo of a mark we sent: the audio before it played, or was
cleared); ``stop {sequenceNumber, streamSid, stop: {accountSid, callSid}}``.

To Twilio (bidirectional streams): ``media {streamSid, media: {payload}}``,
``mark {streamSid, mark: {name}}`` and ``clear {streamSid}``.

:func:`parse` raises only :class:`~tether.errors.FrameError`, whose ``code`` names what
was wrong; the bridge counts it and carries on (Twilio has no error message to answer
with, and one bad frame must not hang up a call). Fields tether does not use are kept
loose (Twilio adds fields over time); the ones it acts on are checked.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from tether.core.jsonvalue import loads
from tether.errors import BadJson, FrameError

MULAW = "audio/x-mulaw"
"""The only encoding Twilio streams (and the one it plays back)."""
SAMPLE_RATE = 8000
MAX_PARAMETER_CHARS = 4096
"""Longest ``customParameters`` value tether accepts (a bearer token fits easily)."""
MAX_MARK_NAME = 256


@dataclass(frozen=True, slots=True)
class Connected:
    """``connected``: the first message of a stream."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    """``start``: the stream's metadata, once, right after ``connected``."""

    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str]
    encoding: str
    sample_rate: int
    channels: int
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """``media``: one chunk of audio (20 ms, 160 mu-law bytes, on a Twilio call)."""

    stream_sid: str
    track: str
    payload: bytes = field(repr=False)
    chunk: int | None = None
    timestamp: int | None = None
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    """``dtmf``: the caller pressed a key."""

    stream_sid: str
    digit: str
    track: str = "inbound_track"
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """``mark``: the audio sent before our mark ``name`` has played (or was cleared)."""

    stream_sid: str
    name: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """``stop``: the stream is over (the call hung up, or the stream was stopped)."""

    stream_sid: str
    call_sid: str | None = None
    sequence_number: int | None = None


TwilioMessage = Connected | Start | Media | Dtmf | Mark | Stop
DTMF_DIGITS = frozenset("0123456789*#ABCD")


def parse(text: str | bytes) -> TwilioMessage:
    """One Twilio message from a text frame, or :class:`FrameError` saying what is wrong."""
    return parse_object(decode(text))


def decode(text: str | bytes) -> dict[str, Any]:
    """The JSON object of a text frame (depth-bounded), or :class:`FrameError`."""
    try:
        data = loads(text)
    except BadJson as exc:
        raise FrameError("bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise FrameError("invalid_message", "a Twilio message is a JSON object")
    return data


def parse_object(data: dict[str, Any]) -> TwilioMessage:
    """One Twilio message from its decoded JSON object, or :class:`FrameError`."""
    event = data.get("event")
    if event == "media":  # the hot path: 50 a second per call
        return _media(data)
    if event == "start":
        return _start(data)
    if event == "connected":
        return Connected(_opt_str(data, "protocol") or "", _opt_str(data, "version") or "")
    if event == "dtmf":
        return _dtmf(data)
    if event == "mark":
        body = _object(data, "mark")
        name = _str(body, "mark.name", max_len=MAX_MARK_NAME)
        return Mark(_sid(data), name, _seq(data))
    if event == "stop":
        return Stop(_sid(data), _opt_str(data.get("stop"), "callSid"), _seq(data))
    if not isinstance(event, str):
        raise FrameError("invalid_message", "a Twilio message has a string event")
    raise FrameError("unknown_event", f"unknown event {event[:40]!r}")


def _start(data: dict[str, Any]) -> Start:
    body = _object(data, "start")
    stream_sid = _str(body, "start.streamSid")
    fmt = body.get("mediaFormat", {"encoding": MULAW, "sampleRate": SAMPLE_RATE, "channels": 1})
    if not isinstance(fmt, dict):
        raise FrameError("invalid_message", "start.mediaFormat must be an object")
    encoding = fmt.get("encoding")
    rate = fmt.get("sampleRate")
    channels = fmt.get("channels", 1)
    if encoding != MULAW or rate != SAMPLE_RATE or channels != 1:
        raise FrameError(
            "unsupported_media_format",
            f"start.mediaFormat must be {MULAW} at {SAMPLE_RATE} Hz, mono",
        )
    params = body.get("customParameters", {})
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_PARAMETER_CHARS
        for k, v in params.items()
    ):
        raise FrameError(
            "invalid_message",
            f"start.customParameters must map names to strings of at most "
            f"{MAX_PARAMETER_CHARS} characters",
        )
    tracks = body.get("tracks", ["inbound"])
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise FrameError("invalid_message", "start.tracks must be a list of strings")
    return Start(
        stream_sid=stream_sid,
        account_sid=_opt_str(body, "accountSid") or "",
        call_sid=_opt_str(body, "callSid") or "",
        tracks=tuple(tracks),
        custom_parameters=dict(params),
        encoding=MULAW,
        sample_rate=SAMPLE_RATE,
        channels=1,
        sequence_number=_seq(data),
    )


def _media(data: dict[str, Any]) -> Media:
    body = _object(data, "media")
    payload = body.get("payload")
    if not isinstance(payload, str):
        raise FrameError("invalid_message", "media.payload must be a base64 string")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FrameError("bad_payload", "media.payload is not valid base64") from None
    return Media(
        stream_sid=_sid(data),
        track=_opt_str(body, "track") or "inbound",
        payload=audio,
        chunk=_int(body.get("chunk")),
        timestamp=_int(body.get("timestamp")),
        sequence_number=_seq(data),
    )


def _dtmf(data: dict[str, Any]) -> Dtmf:
    body = _object(data, "dtmf")
    digit = _str(body, "dtmf.digit", max_len=1)
    if digit not in DTMF_DIGITS:
        raise FrameError("invalid_message", "dtmf.digit must be one of 0-9, *, #, A-D")
    return Dtmf(_sid(data), digit, _opt_str(body, "track") or "inbound_track", _seq(data))


# -- what tether sends to Twilio --------------------------------------------------------


def media_message(stream_sid: str, audio: bytes) -> dict[str, Any]:
    """``media``: mu-law 8 kHz mono ``audio`` (no file header) for Twilio to play."""
    payload = base64.b64encode(audio).decode("ascii")
    return {"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}


def mark_message(stream_sid: str, name: str) -> dict[str, Any]:
    """``mark``: Twilio echoes it back once the audio sent before it has played."""
    if not isinstance(name, str) or not name or len(name) > MAX_MARK_NAME:
        raise FrameError("invalid_mark", f"a mark name is 1 to {MAX_MARK_NAME} characters")
    return {"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}


def clear_message(stream_sid: str) -> dict[str, Any]:
    """``clear``: drop the audio Twilio has buffered (its pending marks come back)."""
    return {"event": "clear", "streamSid": stream_sid}


# -- field checks ---------------------------------------------------------------------


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise FrameError("invalid_message", f"{data.get('event')} needs a {key!r} object")
    return value


def _str(data: dict[str, Any], path: str, *, max_len: int = 128) -> str:
    value = data.get(path.rsplit(".", 1)[-1])
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise FrameError(
            "invalid_message", f"{path} must be a non-empty string of at most {max_len} characters"
        )
    return value


def _opt_str(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _sid(data: dict[str, Any]) -> str:
    return _str(data, "streamSid")


def _int(value: object) -> int | None:
    """Twilio sends counters as decimal strings; anything else is treated as absent."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _seq(data: dict[str, Any]) -> int | None:
    return _int(data.get("sequenceNumber"))
