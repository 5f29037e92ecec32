"""What the model is told: system prompt choice and the transcript as chat history."""

from __future__ import annotations

from tether.core.transcript import Message, Role
from tether.integrations.openai import chat_messages, system_prompt_for


def line(seq: int, role: Role, content: str) -> Message:
    return Message(seq, role, content, 1_700_000_000.0 + seq)


def test_the_sessions_system_prompt_wins_over_the_default() -> None:
    """config.system_prompt, when it is non-blank text, replaces the responder's default."""
    assert system_prompt_for({"system_prompt": "Be a pirate."}, "Be kind.") == "Be a pirate."


def test_a_blank_or_non_text_system_prompt_falls_back_to_the_default() -> None:
    """An empty, blank or non-string config.system_prompt leaves the default in place."""
    for config in ({}, {"system_prompt": ""}, {"system_prompt": "  "}, {"system_prompt": 7}):
        assert system_prompt_for(config, "Be kind.") == "Be kind."
    assert system_prompt_for({}, None) is None
    assert system_prompt_for({}, "") is None


def test_history_is_the_system_prompt_then_user_and_assistant_turns_in_order() -> None:
    """System first, then every user and assistant message in transcript order."""
    transcript = [
        line(1, Role.USER, "hi"),
        line(2, Role.ASSISTANT, "Hello! How can I help?"),
        line(3, Role.USER, "tell me a joke"),
    ]
    assert chat_messages(transcript, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "tell me a joke"},
    ]


def test_system_and_tool_lines_of_the_transcript_are_not_turns() -> None:
    """The application's system and tool notes in a transcript are left out of the history."""
    transcript = [
        line(1, Role.SYSTEM, "call started"),
        line(2, Role.USER, "hi"),
        line(3, Role.TOOL, '{"weather": "rain"}'),
    ]
    assert chat_messages(transcript, None) == [{"role": "user", "content": "hi"}]
