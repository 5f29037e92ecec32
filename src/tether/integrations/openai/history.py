"""What the model is told: the system prompt, then the transcript as chat history.

Pure functions over :class:`~tether.core.transcript.Message`; the responder
calls them with the session's transcript and config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tether.core.transcript import Message, Role

SYSTEM_PROMPT_KEY = "system_prompt"
"""The session config key that overrides the responder's default system prompt."""

HISTORY_ROLES = frozenset({Role.USER, Role.ASSISTANT})
"""Transcript roles the model sees: the conversation itself. System and tool lines
in a transcript are the application's notes, not turns of the dialogue."""


def system_prompt_for(config: Mapping[str, Any], default: str | None) -> str | None:
    """The session's ``config.system_prompt`` if it is non-blank text, else ``default``."""
    value = config.get(SYSTEM_PROMPT_KEY)
    if isinstance(value, str) and value.strip():
        return value
    return default or None


def chat_messages(transcript: Iterable[Message], system_prompt: str | None) -> list[dict[str, str]]:
    """Chat Completions ``messages``: the system prompt (if any), then each user and
    assistant message of ``transcript`` in order (a partial reply included: the user saw it)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.extend(
        {"role": m.role.value, "content": m.content} for m in transcript if m.role in HISTORY_ROLES
    )
    return messages
