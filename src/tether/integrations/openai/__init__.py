"""An OpenAI-compatible responder: user messages answered by a streamed LLM reply.

Embedded in a few lines::

    from tether.integrations.openai import ChatClient, Responder

    client = ChatClient("http://127.0.0.1:11434/v1", "llama3.2", api_key=None)
    Responder(manager, client, system_prompt="You are a helpful interviewer.").install()
    ...
    await manager.aclose()      # ends the sessions: replies in flight are cancelled
    await client.aclose()

``tether serve`` does the same when ``TETHER_LLM_BASE_URL`` is set
(docs/responder.md). :class:`ChatClient` streams from the endpoint and turns
every failure into :class:`~tether.errors.ReplyFailed`; :class:`Responder`
drives the session manager's reply API with it. Any other
:class:`PieceSource` (the demo's scripted interviewer is one) answers through
the same :class:`Responder`.
"""

from tether.integrations.openai.client import ChatClient
from tether.integrations.openai.history import chat_messages, system_prompt_for
from tether.integrations.openai.responder import REPLY_FAILED, ConversationManager, Responder
from tether.integrations.openai.sources import ChatSource, PieceSource

__all__ = [
    "REPLY_FAILED",
    "ChatClient",
    "ChatSource",
    "ConversationManager",
    "PieceSource",
    "Responder",
    "chat_messages",
    "system_prompt_for",
]
