"""Twilio's side of a Media Stream: the messages exactly as Twilio documents them.

https://www.twilio.com/docs/voice/media-streams/websocket-messages. Counters
(``sequenceNumber``, ``chunk``, ``timestamp``) are decimal strings, as Twilio
sends them; audio is base64 mu-law, 8 kHz mono, 160 bytes per 20 ms.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from service_kit import WAIT, Served
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ACCOUNT_SID = "AC" + "0" * 32
CALL_SID = "CA" + "1" * 32
STREAM_SID = "MZ" + "2" * 32
FRAME = 160


def connected() -> dict[str, Any]:
    return {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def start(
    params: dict[str, str], *, stream_sid: str = STREAM_SID, seq: int = 1, **fmt: Any
) -> dict[str, Any]:
    media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **fmt}
    return {
        "event": "start",
        "sequenceNumber": str(seq),
        "start": {
            "accountSid": ACCOUNT_SID,
            "streamSid": stream_sid,
            "callSid": CALL_SID,
            "tracks": ["inbound"],
            "mediaFormat": media_format,
            "customParameters": params,
        },
        "streamSid": stream_sid,
    }


def media(
    audio: bytes, *, seq: int, chunk: int, track: str = "inbound", stream_sid: str = STREAM_SID
) -> dict[str, Any]:
    return {
        "event": "media",
        "sequenceNumber": str(seq),
        "media": {
            "track": track,
            "chunk": str(chunk),
            "timestamp": str(chunk * 20),
            "payload": base64.b64encode(audio).decode(),
        },
        "streamSid": stream_sid,
    }


def dtmf(digit: str, *, seq: int, stream_sid: str = STREAM_SID) -> dict[str, Any]:
    return {
        "event": "dtmf",
        "streamSid": stream_sid,
        "sequenceNumber": str(seq),
        "dtmf": {"track": "inbound_track", "digit": digit},
    }


def mark(name: str, *, seq: int, stream_sid: str = STREAM_SID) -> dict[str, Any]:
    return {
        "event": "mark",
        "sequenceNumber": str(seq),
        "streamSid": stream_sid,
        "mark": {"name": name},
    }


def stop(*, seq: int, stream_sid: str = STREAM_SID) -> dict[str, Any]:
    return {
        "event": "stop",
        "sequenceNumber": str(seq),
        "stop": {"accountSid": ACCOUNT_SID, "callSid": CALL_SID},
        "streamSid": stream_sid,
    }


class TwilioCall:
    """A fake Twilio: one Media Stream socket, numbering its messages as Twilio does."""

    def __init__(self, conn: ClientConnection, stream_sid: str = STREAM_SID) -> None:
        self.conn = conn
        self.stream_sid = stream_sid
        self._seq = itertools.count(2)  # 1 is start
        self._chunk = itertools.count(1)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.conn.send(message if isinstance(message, str) else json.dumps(message))

    async def begin(self, params: dict[str, str]) -> None:
        """``connected`` then ``start`` with ``params`` as customParameters."""
        await self.send(connected())
        await self.send(start(params, stream_sid=self.stream_sid))

    async def audio(self, audio: bytes) -> None:
        """Send ``audio`` as 20 ms media frames."""
        for i in range(0, len(audio), FRAME):
            await self.send(
                media(
                    audio[i : i + FRAME],
                    seq=next(self._seq),
                    chunk=next(self._chunk),
                    stream_sid=self.stream_sid,
                )
            )

    async def dtmf(self, digit: str) -> None:
        await self.send(dtmf(digit, seq=next(self._seq), stream_sid=self.stream_sid))

    async def mark(self, name: str) -> None:
        await self.send(mark(name, seq=next(self._seq), stream_sid=self.stream_sid))

    async def stop(self) -> None:
        await self.send(stop(seq=next(self._seq), stream_sid=self.stream_sid))

    async def recv(self, within: float = WAIT) -> dict[str, Any]:
        """The next message tether sent to Twilio."""
        data = await asyncio.wait_for(self.conn.recv(), within)
        message: dict[str, Any] = json.loads(data)
        return message

    async def closed(self, within: float = WAIT) -> int | None:
        """Read until tether closes the socket; the close code."""

        async def drain() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.conn.recv()

        await asyncio.wait_for(drain(), within)
        return self.conn.close_code


@asynccontextmanager
async def twilio_call(served: Served, stream_sid: str = STREAM_SID) -> AsyncIterator[TwilioCall]:
    """A socket on ``/twilio/media``, as Twilio opens it."""
    url = f"ws://127.0.0.1:{served.port}/twilio/media"
    async with connect(url, compression=None, open_timeout=WAIT) as conn:
        yield TwilioCall(conn, stream_sid)
