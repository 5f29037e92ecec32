"""The conversation commands of the session manager: tasks, replies, app events.

:class:`ConversationCommands` is the part of
:class:`~tether.runtime.manager.SessionManager` that carries the
conversation itself rather than the session's lifecycle: session-owned
tasks (:mod:`tether.runtime.session_tasks`), streamed replies
(:mod:`tether.runtime.replies`), app events, and the ``on_message`` /
``on_config`` hooks run as session-owned tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from tether.core.events import AppEvent, ErrorNotice, Event
from tether.core.ids import log_ref
from tether.core.jsonvalue import check_json_object
from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.errors import InvalidInput, SessionEnded, TetherError
from tether.runtime.busy import busy_time
from tether.runtime.cleanup import CleanupHandle
from tether.runtime.hooks import Hooks
from tether.runtime.replies import Replies, Reply
from tether.runtime.session_tasks import SessionTasks
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

MAX_APP_NAME = 64


class ConversationCommands:
    """Session-owned tasks, streamed replies, app events and errors (mixed into the manager)."""

    _hooks: Hooks
    _session_tasks: SessionTasks
    _replies: Replies
    _broadcast: Callable[[SessionId, Event], None]
    get: Callable[[SessionId], Awaitable[SessionInfo]]
    set_busy: Callable[[SessionId, bool], Awaitable[None]]
    _publish: Callable[[SessionId, Message], Awaitable[None]]

    def spawn(
        self, session_id: SessionId, coro: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the session owns.

        Every end path cancels it and waits for it (bounded by
        ``cleanup_timeout``) before the archive is written, so its ``finally``
        can still append. Raises :class:`~tether.errors.TooManyTasks` past
        ``max_session_tasks`` live tasks, and
        :class:`~tether.errors.SessionEnded` for a session whose end already
        ran here; either way ``coro`` is closed, never started.
        """
        return self._session_tasks.spawn(session_id, coro, name)

    def reply(self, session_id: SessionId, role: str = "assistant") -> Reply:
        """A streamed reply, as an async context manager::

            async with manager.reply(session.id) as reply:
                async for token in model_stream():
                    await reply.delta(token)

        Each piece goes to every attached connection as ``reply.delta``
        (pieces within one loop turn merged); a clean exit stores one
        message with ``metadata.reply_id``. Cut short (an end, a barge-in, an
        exception), it stores the text so far with ``metadata.partial: true``
        and the exception goes on. Entering raises
        :class:`~tether.errors.SessionNotFound` or
        :class:`~tether.errors.SessionEnded` for a session that cannot take it.
        """
        return self._replies.new(session_id, role)

    async def send_app(self, session_id: SessionId, name: str, data: Any = None) -> None:
        """Send ``{"type": "app", "name", "data"}`` to every connection of the session.

        ``data`` is any JSON value (checked like a config). Not stored in
        the transcript. Raises :class:`~tether.errors.InvalidInput` for a bad
        name or data, and the session errors for one that is gone.
        """
        if not isinstance(name, str) or not name or len(name) > MAX_APP_NAME:
            raise InvalidInput(f"an app event's name is a string of 1 to {MAX_APP_NAME} characters")
        check_json_object({"data": data}, "app event data")
        info = await self.get(session_id)
        if info.end_reason is not None:
            raise SessionEnded(info.end_reason)
        self._broadcast(session_id, AppEvent(name, data))

    def busy(self, session_id: SessionId) -> AbstractAsyncContextManager[None]:
        """``async with manager.busy(session_id):`` busy for the block, e.g. while speech plays.

        See :meth:`~tether.runtime.manager.SessionManager.set_busy`; a streamed
        reply is busy time of its own already.
        """
        return busy_time(self.set_busy, session_id)

    async def send_event(self, session_id: SessionId, event: Event) -> None:
        """Send ``event`` to every connection of the session, on this node and the others."""
        self._broadcast(session_id, event)

    async def send_error(self, session_id: SessionId, code: str, message: str) -> None:
        """Send ``error {code, message}`` to every connection of the session (every node).

        For failures of the server side's own work on the session (the
        responder's ``reply_failed``); the session and its clocks are not
        touched. Raises :class:`~tether.errors.SessionEnded` once it has ended.
        """
        info = await self.get(session_id)
        if info.end_reason is not None:
            raise SessionEnded(info.end_reason)
        self._broadcast(session_id, ErrorNotice(code, message))

    def remove_cleanup(self, handle: CleanupHandle) -> bool:
        """Unregister a cleanup before its session ends; ``True`` if it was still registered."""
        return handle.remove()

    async def _publish_heard(self, session_id: SessionId, message: Message) -> None:
        """Publish a stored user message, running the ``on_message`` hooks around it.

        The early hooks start now, while the journal makes it durable; a reply
        they open holds its pieces until the message's own
        ``transcript.message`` is out (or says nothing if the disk refused
        it). The other hooks run once it is durable.
        """
        durable = self._replies.hold(session_id)
        self._heard(session_id, message, early=True)
        try:
            await self._publish(session_id, message)
        except BaseException:
            self._replies.release(session_id, durable, saved=False)
            raise
        self._replies.release(session_id, durable, saved=True)
        self._heard(session_id, message)

    def _heard(self, session_id: SessionId, message: Message, *, early: bool = False) -> None:
        """Run each ``on_message`` hook as a session task: the ``early`` ones once the
        user message is stored, the others once it is durable."""
        for hook in self._hooks.early_message if early else self._hooks.message:
            self._run_hook(session_id, hook, message)

    def _reconfigured(self, info: SessionInfo) -> None:
        """A config is stored: run each ``on_config`` hook as a session task."""
        for hook in self._hooks.config:
            self._run_hook(session_id=info.id, hook=hook, arg=info.config, info=info)

    def _run_hook(
        self,
        session_id: SessionId,
        hook: Callable[[SessionInfo, Any], Awaitable[object]],
        arg: Any,
        info: SessionInfo | None = None,
    ) -> None:
        async def run() -> None:
            try:
                session = info if info is not None else await self.get(session_id)
                await hook(session, arg)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._hooks.failed(hook)

        name = f"tether-hook-{getattr(hook, '__name__', 'hook')}"
        try:
            self._session_tasks.spawn(session_id, run(), name)
        except SessionEnded:
            return  # its end ran meanwhile: nobody to answer
        except TetherError as exc:  # too many tasks: counted as a failed hook
            log.warning("hook not run session=%s: %s", log_ref(session_id), exc)
            self._hooks.failed(hook)
