"""Transcript: roles, content checks and the message wire form."""

from __future__ import annotations

import json

import pytest

from tether.core.transcript import Message, Role, check_content, parse_role
from tether.errors import InvalidInput


@pytest.mark.parametrize("value", ["user", "assistant", "system", "tool"])
def test_parse_role_accepts_every_role(value: str) -> None:
    """Each documented role string parses to its Role."""
    assert parse_role(value) is Role(value)


def test_parse_role_accepts_a_role_member() -> None:
    """A Role member passes through as itself."""
    assert parse_role(Role.ASSISTANT) is Role.ASSISTANT


@pytest.mark.parametrize(
    "value", ["", "USER", "User", " user", "admin", "bot", None, 1, b"user", ["user"]], ids=repr
)
def test_parse_role_rejects_others_listing_the_allowed_roles(value: object) -> None:
    """An unknown role raises InvalidInput naming the value and every allowed role."""
    with pytest.raises(InvalidInput) as info:
        parse_role(value)
    message = str(info.value)
    assert repr(value) in message
    for role in ("user", "assistant", "system", "tool"):
        assert role in message


@pytest.mark.parametrize("content", ["", "hello", "multi\nline", "\u00e9\u00e8 \U0001f600"])
@pytest.mark.parametrize("metadata", [None, {}, {"k": [1, 2]}])
def test_check_content_accepts_text_with_optional_dict_metadata(
    content: str, metadata: dict[str, object] | None
) -> None:
    """Any str content with no metadata or a dict of metadata passes."""
    check_content(content, metadata)  # raises on rejection


@pytest.mark.parametrize("content", [None, 1, 1.0, b"hi", ["hi"], {"text": "hi"}], ids=repr)
def test_check_content_rejects_non_text_content(content: object) -> None:
    """Content that is not a str raises InvalidInput."""
    with pytest.raises(InvalidInput, match="content"):
        check_content(content)


@pytest.mark.parametrize("metadata", ["x", 1, [("k", "v")], ["k"], ("k",)], ids=repr)
def test_check_content_rejects_non_dict_metadata(metadata: object) -> None:
    """Metadata that is neither None nor a dict raises InvalidInput."""
    with pytest.raises(InvalidInput, match="metadata"):
        check_content("hello", metadata)


def test_message_to_dict_without_metadata() -> None:
    """A message's dict has seq, role value, content and ts, and no metadata key."""
    msg = Message(1, Role.USER, "hi", 1_700_000_000.5)
    wire = msg.to_dict()
    assert wire == {"seq": 1, "role": "user", "content": "hi", "ts": 1_700_000_000.5}
    assert type(wire["role"]) is str
    json.dumps(wire)


def test_message_to_dict_omits_empty_metadata_and_keeps_present_metadata() -> None:
    """Empty metadata is left out of the dict; non-empty metadata is included."""
    assert "metadata" not in Message(2, Role.TOOL, "x", 1.0, {}).to_dict()
    wire = Message(3, Role.TOOL, "x", 1.0, {"tool": "calc"}).to_dict()
    assert wire["metadata"] == {"tool": "calc"}
