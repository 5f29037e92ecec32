"""The built-in responder, wired from settings: on when ``TETHER_LLM_BASE_URL`` is set.

:func:`start_responder` builds the :class:`~tether.integrations.openai.ChatClient`
and installs a :class:`~tether.integrations.openai.Responder` on the service's
manager; :func:`~tether.service.app.serving` calls it once the manager is open
and closes the client after the manager, so replies in flight are cancelled
by their sessions' ends rather than cut by a closed connection pool.
"""

from __future__ import annotations

from tether.integrations.openai import ChatClient, Responder
from tether.runtime.manager import SessionManager
from tether.service.settings import Settings


def start_responder(settings: Settings, manager: SessionManager) -> Responder | None:
    """The installed responder, or ``None`` when no base URL is set."""
    if settings.llm_base_url is None:
        return None
    settings.check_llm()
    assert settings.llm_model is not None  # check_llm: a base URL comes with a model
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    client = ChatClient(
        settings.llm_base_url, settings.llm_model, api_key=key, timeout=settings.llm_timeout
    )
    responder = Responder(manager, client, system_prompt=settings.llm_system_prompt)
    responder.install()
    return responder
