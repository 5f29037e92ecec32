"""``CallStream``: one Twilio Media Stream, the app's handle on its call.

It is also the :class:`~tether.runtime.Channel` the bridge attaches to the
session, so the call is a participant: it holds presence while its socket is
open, and a tether end (idle timeout, an admin, ...) closes the socket. The
session's events (``session.warning``, ``transcript.message``, ...) are for
browsers; Twilio speaks only its own messages, so :meth:`send` drops them.
The application talks to the caller with :meth:`send_audio`, :meth:`mark`
and :meth:`clear` (bidirectional streams, ``<Connect><Stream>``).
"""

from __future__ import annotations

import asyncio

from tether.core.events import Event
from tether.service.twilio.messages import Start, clear_message, mark_message, media_message
from tether.transports.websocket import WebSocketChannel
from tether.types import SessionId, UserId


class CallStream:
    """A live call: its ids, its custom parameters, and how to speak on it."""

    def __init__(
        self,
        socket: WebSocketChannel,
        start: Start,
        session_id: SessionId,
        user: UserId,
    ) -> None:
        self._socket = socket
        self.session_id = session_id
        """The tether session the call belongs to."""
        self.user = user
        """The user the call's token named."""
        self.stream_sid = start.stream_sid
        """Twilio's id of the stream (``MZ...``)."""
        self.call_sid = start.call_sid
        """Twilio's id of the call (``CA...``)."""
        self.parameters: dict[str, str] = {
            k: v for k, v in start.custom_parameters.items() if k != "token"
        }
        """``start.customParameters``, less the token."""
        self.started_announced = False
        """``call.status_changed in-progress`` has been sent for this call."""
        self.ended_announced = False
        """``call.status_changed ended`` has been sent for this call."""
        self._marks: dict[str, list[asyncio.Future[None]]] = {}

    @property
    def closed(self) -> bool:
        """Whether the call's socket is closed (by either side)."""
        return self._socket.closed

    # -- speaking on the call ---------------------------------------------------------

    async def send_audio(self, audio: bytes) -> None:
        """Play ``audio`` (mu-law, 8 kHz, mono, no file header) to the caller.

        Twilio queues it after what it is already playing. Raises
        ``ConnectionError`` once the call's socket is closed.
        """
        await self._socket.send_json(media_message(self.stream_sid, bytes(audio)))

    async def mark(self, name: str) -> None:
        """Put mark ``name`` after the audio sent so far; Twilio echoes it once that played.

        :meth:`wait_mark` waits for the echo. Raises ``ConnectionError`` once
        the socket is closed, :class:`~tether.errors.FrameError` for a name
        that is empty or longer than 256 characters.
        """
        await self._socket.send_json(mark_message(self.stream_sid, name))

    async def clear(self) -> None:
        """Drop the audio Twilio has queued (a barge-in); its pending marks come back at once."""
        await self._socket.send_json(clear_message(self.stream_sid))

    async def wait_mark(self, name: str) -> None:
        """Return when Twilio echoes mark ``name`` (its audio played, or was cleared).

        Raises ``ConnectionError`` if the call ends first.
        """
        if self.closed:
            raise ConnectionError("the call has ended")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._marks.setdefault(name, [])
        waiters.append(future)
        try:
            await future
        finally:
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._marks.pop(name, None)

    # -- what the bridge tells the stream ---------------------------------------------------

    def marked(self, name: str) -> None:
        """Twilio echoed mark ``name``: wake whoever waits for it."""
        for future in self._marks.pop(name, ()):
            if not future.done():
                future.set_result(None)

    def ended(self) -> None:
        """The call is over: mark waiters get ``ConnectionError``."""
        marks, self._marks = self._marks, {}
        for waiters in marks.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(ConnectionError("the call has ended"))

    # -- the Channel seam ---------------------------------------------------------------

    async def send(self, event: Event) -> None:
        """Drop a session event: Twilio understands only Media Streams messages."""

    async def close(self, code: int, reason: str) -> None:
        """Close the call's socket (a tether end): Twilio then stops the stream."""
        await self._socket.close(code, reason)

    def __repr__(self) -> str:
        return f"<CallStream {self.stream_sid[:8]}... closed={self.closed}>"
