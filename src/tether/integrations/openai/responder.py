"""The responder: each user message answered with a streamed reply.

This is the one module that drives the conversation API of
:class:`~tether.runtime.manager.SessionManager` (``on_message``, ``reply``,
``send_error``). What answers is a :class:`~.sources.PieceSource`: the LLM
endpoint (:class:`~.sources.ChatSource` over :mod:`.client`, the model told
what :mod:`.history` builds) or the demo's scripted interviewer. The manager
is typed by the :class:`ConversationManager` protocol, the part of its API
used here.

Per user message (an ``early`` ``on_message`` hook, run as a task the session
owns as soon as the message is stored: the model's time to its first token
overlaps the journal's flush, and the reply holds its pieces until the
message is durable)::

    async with manager.reply(session_id) as reply:
        async for piece in source.pieces(session, transcript):
            await reply.delta(piece)

An end or a barge-in cancels that task: the ``async for`` is interrupted
inside the HTTP read, which closes the request at once, and the reply is
stored with what was streamed and ``partial: true``. A
:class:`~tether.errors.ReplyFailed` is logged with its cause and answered
with ``error {code: "reply_failed"}`` to the session's connections; the
session itself is untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from tether.core.ids import log_ref
from tether.core.session import SessionInfo
from tether.core.transcript import Message, Role
from tether.errors import ReplyFailed, SessionError
from tether.integrations.openai.client import ChatClient
from tether.integrations.openai.sources import ChatSource, PieceSource
from tether.types import SessionId

log = logging.getLogger("tether.integrations.openai")

REPLY_FAILED = "reply_failed"
"""The ``error`` frame's code when the endpoint failed (PROTOCOL, "A built-in responder")."""

MessageHook = Callable[[SessionInfo, Message], Awaitable[object]]


class ReplyWriter(Protocol):
    """The open reply: each ``delta`` streams a piece to the session's connections."""

    async def delta(self, text: str) -> None: ...


@runtime_checkable
class ConversationManager(Protocol):
    """What the responder needs of a session manager (the conversation API)."""

    def on_message(self, hook: MessageHook, *, early: bool = False) -> MessageHook: ...

    def reply(self, session_id: SessionId) -> AbstractAsyncContextManager[ReplyWriter]: ...

    async def transcript(self, session_id: SessionId) -> list[Message]: ...

    async def send_error(self, session_id: SessionId, code: str, message: str) -> None: ...


class Responder:
    """Answers every user message of every session with a reply streamed from ``source``.

    ``source`` is a :class:`~.sources.PieceSource`, or a :class:`ChatClient`
    (shorthand for ``ChatSource(client, system_prompt=system_prompt)``:
    ``system_prompt`` is the default system message, a session's
    ``config.system_prompt`` overrides it). Call :meth:`install` once; close
    the client after the manager (the responder does not own it).
    """

    def __init__(
        self,
        manager: ConversationManager,
        source: PieceSource | ChatClient,
        *,
        system_prompt: str | None = None,
    ) -> None:
        self.manager = manager
        if isinstance(source, ChatClient):
            source = ChatSource(source, system_prompt=system_prompt)
        self.source: PieceSource = source
        self._installed = False

    def install(self) -> None:
        """Start answering user messages (once; later calls do nothing)."""
        if not self._installed:
            # Early: the request to the model starts while the journal flushes
            # the user's message; the reply holds its pieces until it is saved.
            self.manager.on_message(self._on_message, early=True)
            self._installed = True

    async def _on_message(self, session: SessionInfo, message: Message) -> None:
        if message.role is Role.USER:
            await self.answer(session)

    async def answer(self, session: SessionInfo) -> None:
        """Stream one reply to the session's transcript so far (if the source has one)."""
        try:
            transcript = await self.manager.transcript(session.id)
            pieces = self.source.pieces(session, transcript)
            if pieces is None:
                return
            async with self.manager.reply(session.id) as reply:
                async for piece in pieces:
                    await reply.delta(piece)
        except ReplyFailed as exc:
            log.warning("reply failed session=%s cause=%s: %s", log_ref(session.id), exc.cause, exc)
            await self._tell(session.id, exc)
        except SessionError as exc:  # ended or gone meanwhile: nobody to answer
            log.debug("no reply session=%s: %s", log_ref(session.id), exc)

    async def _tell(self, session_id: SessionId, exc: ReplyFailed) -> None:
        # A session that ended meanwhile has no one left to tell.
        with contextlib.suppress(SessionError):
            await self.manager.send_error(
                session_id, REPLY_FAILED, f"the assistant could not answer ({exc.cause})"
            )
