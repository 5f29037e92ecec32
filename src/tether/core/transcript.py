"""Transcript messages: what a conversation is made of."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tether.core.choices import parse_choice
from tether.core.jsonvalue import check_json_object
from tether.errors import InvalidInput


class Role(StrEnum):
    """Who said it."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


_REPLY_KEYS = ("reply_id", "partial")
"""Metadata a streamed reply sets, repeated at the top of the message on the wire."""


@dataclass(frozen=True, slots=True)
class Message:
    """One transcript line: ``seq`` counts from 1 within its session."""

    seq: int
    role: Role
    content: str
    ts: float
    metadata: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "role": self.role.value,
            "content": self.content,
            "ts": self.ts,
        }
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    def to_wire(self) -> dict[str, Any]:
        """What clients get: :meth:`to_dict`, and a streamed reply's ``reply_id`` and
        ``partial`` at the top as well (the protocol names them on the message)."""
        out = self.to_dict()
        if self.metadata:
            for key in _REPLY_KEYS:
                if key in self.metadata:
                    out[key] = self.metadata[key]
        return out


def parse_role(value: object) -> Role:
    """``value`` as a :class:`Role`, or :class:`InvalidInput` naming the allowed ones."""
    return parse_choice(Role, value, "role")


def check_content(content: object, metadata: object = None) -> None:
    """Raise :class:`InvalidInput` unless the message can be stored as it is.

    ``content`` must be text that UTF-8 can carry (no lone surrogates) and
    ``metadata`` a JSON object within the limits of
    :func:`~tether.core.jsonvalue.check_json_object`. Checked before anything is stored, so a
    message that a journal or archive could not write is refused whole.
    """
    if not isinstance(content, str):
        raise InvalidInput("message content must be a string")
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("message content is not valid Unicode text") from None
    if metadata is not None:
        check_json_object(metadata, "message metadata")
