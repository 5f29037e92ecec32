"""Transcript messages: what a conversation is made of."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tether.errors import InvalidInput


class Role(StrEnum):
    """Who said it."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


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


def parse_role(value: object) -> Role:
    """``value`` as a :class:`Role`, or :class:`InvalidInput` naming the allowed ones."""
    try:
        return Role(value) if isinstance(value, str) else Role("")
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"invalid role {value!r}: expected one of {allowed}") from None


def check_content(content: object, metadata: object = None) -> None:
    """Raise :class:`InvalidInput` unless ``content`` is text and ``metadata`` a dict."""
    if not isinstance(content, str):
        raise InvalidInput("message content must be a string")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInput("message metadata must be an object")
