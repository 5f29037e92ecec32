"""Who answers user messages in ``tether serve``: the LLM, the demo's script, or nobody.

:func:`start_responder` picks one :class:`~tether.integrations.openai.Responder`
source from the settings: with ``TETHER_LLM_BASE_URL`` a
:class:`~tether.integrations.openai.ChatSource` on a new
:class:`~tether.integrations.openai.ChatClient` (and nothing else: the
scripted interviewer is not installed, so a demo interview gets one answer,
the model's); else, under ``TETHER_DEMO``, the scripted interviewer of
:mod:`tether.service.interviewer`; else none.
:func:`~tether.service.app.serving` calls it once the manager is open and
closes what it started after the manager, so replies in flight are cancelled
by their sessions' ends rather than cut by a closed connection pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.integrations.openai import ChatClient, ChatSource, Responder
from tether.runtime.manager import SessionManager
from tether.service.interviewer import ScriptedInterviewer
from tether.service.settings import Settings


@dataclass(frozen=True, slots=True)
class Answering:
    """The installed responder and the client it owns (``None`` for the script)."""

    responder: Responder
    client: ChatClient | None = None

    async def aclose(self) -> None:
        """Close the LLM client (after the manager: its sessions' replies are cancelled)."""
        if self.client is not None:
            await self.client.aclose()


def start_responder(settings: Settings, manager: SessionManager) -> Answering | None:
    """Install the responder the settings ask for; ``None`` when nothing answers."""
    if settings.llm_base_url is not None:
        settings.check_llm()
        assert settings.llm_model is not None  # check_llm: a base URL comes with a model
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        client = ChatClient(
            settings.llm_base_url, settings.llm_model, api_key=key, timeout=settings.llm_timeout
        )
        source = ChatSource(client, system_prompt=settings.llm_system_prompt)
        answering = Answering(Responder(manager, source), client)
    elif settings.demo:
        answering = Answering(Responder(manager, ScriptedInterviewer()))
    else:
        return None
    answering.responder.install()
    return answering
