"""Where a reply's pieces come from: the one seam between the responder and what answers.

A :class:`PieceSource` is handed the session and its transcript and gives back
the answer as an async iterator of text pieces (or ``None``: nothing to say
this time). :class:`~tether.integrations.openai.Responder` streams whatever a
source gives with the manager's reply API, so every source gets the same
``reply.delta`` frames, partial storage on an end or barge-in, and
``reply_failed`` errors. Two ship with tether: :class:`ChatSource` (an
OpenAI-compatible endpoint) and the demo's scripted interviewer
(:mod:`tether.service.interviewer`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.integrations.openai.client import ChatClient
from tether.integrations.openai.history import chat_messages, system_prompt_for


@runtime_checkable
class PieceSource(Protocol):
    """Gives the pieces of one reply to a session's transcript so far."""

    def pieces(
        self, session: SessionInfo, transcript: Sequence[Message]
    ) -> AsyncIterator[str] | None:
        """The reply as text pieces, or ``None`` to leave this message unanswered.

        Raise :class:`~tether.errors.ReplyFailed` (from the iterator) for a
        failure the session's connections should hear of as ``reply_failed``.
        """
        ...


class ChatSource:
    """An OpenAI-compatible endpoint as a :class:`PieceSource`.

    The model is told the system prompt (the session's ``config.system_prompt``,
    else ``system_prompt``) and the transcript as history
    (:func:`~tether.integrations.openai.chat_messages`).
    """

    def __init__(self, client: ChatClient, *, system_prompt: str | None = None) -> None:
        self.client = client
        self.system_prompt = system_prompt

    def pieces(self, session: SessionInfo, transcript: Sequence[Message]) -> AsyncIterator[str]:
        """The endpoint's streamed completion of the transcript."""
        prompt = system_prompt_for(session.config, self.system_prompt)
        return self.client.stream(chat_messages(transcript, prompt))
