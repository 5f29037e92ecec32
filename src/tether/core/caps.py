"""Transcript caps: how much one session's transcript may hold.

The rule lives here, once, and every store applies it at the moment it
appends (``MemoryStore`` in Python, ``RedisStore`` mirrors the arithmetic in
``append.lua`` and hands the numbers back here to word the refusal): an
append is refused whole, before anything is stored, when it would take the
transcript past a cap. Nothing already stored is touched, so a full
transcript still ends and archives with every message it holds.

A message's *size* is what it costs to keep: the UTF-8 bytes of its content
plus those of its metadata as compact JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tether.errors import ConfigError, MessageTooLarge, TranscriptFull

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_TRANSCRIPT_BYTES = 8 * 1024 * 1024


def message_size(content: str, metadata: dict[str, Any] | None) -> int:
    """What a message counts against the caps: content bytes plus metadata JSON bytes."""
    size = len(content) if content.isascii() else len(content.encode("utf-8"))
    if metadata:
        packed = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
        size += len(packed) if packed.isascii() else len(packed.encode("utf-8"))
    return size


@dataclass(frozen=True, slots=True)
class TranscriptCap:
    """The caps on one session's transcript; ``None`` leaves that one unbounded.

    * ``max_message_bytes``: the largest single message (:func:`message_size`);
    * ``max_messages``: messages one session may append;
    * ``max_bytes``: the sum of the sizes of a session's stored messages.
    """

    max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES
    max_messages: int | None = DEFAULT_MAX_MESSAGES
    max_bytes: int | None = DEFAULT_MAX_TRANSCRIPT_BYTES

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_messages", "max_bytes"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"transcript cap {name} must be a positive integer or None")

    def check_message(self, size: int) -> None:
        """Raise :class:`MessageTooLarge` if one message of ``size`` is over the per-message cap."""
        limit = self.max_message_bytes
        if limit is not None and size > limit:
            raise MessageTooLarge(f"message is {size} bytes, over the limit of {limit}")

    def check(self, *, count: int, stored_bytes: int, size: int) -> None:
        """Raise unless a transcript of ``count`` messages and ``stored_bytes`` takes one more.

        :class:`MessageTooLarge` for a message over the per-message cap,
        :class:`TranscriptFull` when the append would exceed the session's caps.
        """
        self.check_message(size)
        if self.max_messages is not None and count + 1 > self.max_messages:
            raise TranscriptFull(
                f"the transcript holds its limit of {self.max_messages} messages", "messages"
            )
        if self.max_bytes is not None and stored_bytes + size > self.max_bytes:
            raise TranscriptFull(
                f"the transcript holds {stored_bytes} bytes; {size} more would pass its "
                f"limit of {self.max_bytes}",
                "bytes",
            )

    def script_args(self) -> tuple[str, str]:
        """``max_messages`` and ``max_bytes`` for a store script: ``"0"`` means no cap."""
        return str(self.max_messages or 0), str(self.max_bytes or 0)


UNCAPPED = TranscriptCap(None, None, None)
"""No caps at all (for tests and callers that bound transcripts themselves)."""
