"""``Calls``: the calls this node holds, by session, and the application's hooks on them.

The application finds a session's call with :meth:`Calls.get` or is told of
each new one by :meth:`Calls.on_start`; then it speaks on it through the
:class:`~tether.service.twilio.stream.CallStream`. For example, to say the
idle warning on the phone::

    calls = app.state.tether.calls          # or mount(app).calls

    @manager.on_warning
    async def warn(session):
        call = calls.get(session.id)
        if call is not None:
            await call.send_audio(warning_audio)   # mu-law 8 kHz
            await call.mark("idle-warning")

Every connection of a call's session gets ``call.status_changed
{status, session_id, stream_sid}``: ``in-progress`` once the call is
attached, ``ended`` when the session ends, before ``session.ended``
(an ending hook on the manager sends it, whatever ended the session).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from tether.core.events import CallStatusChanged
from tether.core.ids import log_ref
from tether.core.session import SessionInfo
from tether.errors import FrameError
from tether.runtime.manager import SessionManager
from tether.service.twilio.stream import CallStream
from tether.types import SessionId

log = logging.getLogger("tether.service")

IN_PROGRESS = "in-progress"
ENDED = "ended"

StartHook = Callable[[CallStream], Awaitable[object] | object]
S = TypeVar("S", bound=StartHook)


class Calls:
    """The live calls of one service on this node, one per session at most."""

    def __init__(self) -> None:
        self._streams: dict[SessionId, CallStream] = {}
        self._on_start: list[StartHook] = []
        self._manager: SessionManager | None = None

    def bind(self, manager: SessionManager) -> None:
        """Serve ``manager``'s sessions: announce each call's end before ``session.ended``."""
        self._manager = manager
        manager.on_ending(self._ending)

    # -- what the application uses ------------------------------------------------------

    def get(self, session_id: str) -> CallStream | None:
        """The open call of the session on this node, if any."""
        return self._streams.get(SessionId(session_id))

    def __iter__(self) -> Iterator[CallStream]:
        return iter(list(self._streams.values()))

    def __len__(self) -> int:
        return len(self._streams)

    def status(self, session_id: str) -> list[CallStatusChanged]:
        """``[in-progress]`` for a session whose call is live here, else ``[]``.

        What a connection attaching to the session after the call started is
        sent, so that it knows of the call too (one attaching at the very
        moment the call starts may be told twice).
        """
        stream = self._streams.get(SessionId(session_id))
        if stream is None or not stream.started_announced or stream.ended_announced:
            return []
        return [CallStatusChanged(IN_PROGRESS, stream.session_id, stream.stream_sid)]

    def on_start(self, hook: S) -> S:
        """Register ``hook(call)`` for every call, once it is attached; usable as a decorator.

        A plain function or a coroutine function; one that raises is logged,
        and the call goes on.
        """
        self._on_start.append(hook)
        return hook

    # -- what the bridge does -----------------------------------------------------------

    def add(self, stream: CallStream) -> None:
        """Hold ``stream`` as its session's call; a session has one call at a time."""
        current = self._streams.get(stream.session_id)
        if current is not None and not current.closed:
            raise FrameError("call_in_progress", "this session already has a call")
        self._streams[stream.session_id] = stream

    def remove(self, stream: CallStream) -> None:
        """Forget ``stream`` (its socket closed)."""
        if self._streams.get(stream.session_id) is stream:
            del self._streams[stream.session_id]
        stream.ended()

    async def announce_start(self, stream: CallStream) -> None:
        """Send ``call.status_changed in-progress`` to the session's connections."""
        await self._announce(stream, IN_PROGRESS)

    async def run_start_hooks(self, stream: CallStream) -> None:
        """Call the :meth:`on_start` hooks (in the background: they may wait on the call)."""
        for hook in list(self._on_start):
            try:
                result = hook(stream)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("call start hook %s failed", getattr(hook, "__qualname__", hook))

    async def _ending(self, info: SessionInfo) -> None:
        """The manager's ending hook: ``ended`` goes out before ``session.ended``."""
        stream = self._streams.get(info.id)
        if stream is not None:
            await self._announce(stream, ENDED)

    async def _announce(self, stream: CallStream, status: str) -> None:
        if stream.ended_announced or self._manager is None:
            return
        if status == ENDED:
            stream.ended_announced = True
        else:
            stream.started_announced = True
        event = CallStatusChanged(status, stream.session_id, stream.stream_sid)
        await self._manager.send_event(stream.session_id, event)
        log.info("call %s session=%s", status, log_ref(stream.session_id))
