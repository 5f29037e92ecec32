"""Transcript caps: the rule every store applies (``tether.core.caps``)."""

from __future__ import annotations

import pytest

from tether.core.caps import UNCAPPED, TranscriptCap, message_size
from tether.errors import ConfigError, MessageTooLarge, TranscriptFull


def test_message_size_counts_utf8_content_and_compact_metadata() -> None:
    """Size is UTF-8 content bytes plus the metadata's compact JSON bytes."""
    assert message_size("abc", None) == 3
    assert message_size("é", None) == 2
    assert message_size("", {"a": 1}) == len('{"a":1}')
    assert message_size("x", {"k": "é"}) == 1 + len('{"k":"é"}'.encode())


def test_an_append_that_reaches_a_cap_exactly_is_allowed() -> None:
    """count + 1 == max_messages and bytes + size == max_bytes pass."""
    cap = TranscriptCap(max_message_bytes=10, max_messages=3, max_bytes=30)
    cap.check(count=2, stored_bytes=20, size=10)


def test_an_append_past_a_cap_names_the_cap() -> None:
    """Past max_messages: "messages"; past max_bytes: "bytes"; one big message: MessageTooLarge."""
    cap = TranscriptCap(max_message_bytes=10, max_messages=3, max_bytes=30)
    with pytest.raises(TranscriptFull) as by_count:
        cap.check(count=3, stored_bytes=0, size=1)
    assert by_count.value.limit == "messages"
    with pytest.raises(TranscriptFull) as by_bytes:
        cap.check(count=0, stored_bytes=25, size=6)
    assert by_bytes.value.limit == "bytes"
    with pytest.raises(MessageTooLarge):
        cap.check(count=0, stored_bytes=0, size=11)


def test_uncapped_allows_anything() -> None:
    """UNCAPPED never refuses and tells scripts "0" (no cap)."""
    UNCAPPED.check(count=10**9, stored_bytes=10**12, size=10**9)
    assert UNCAPPED.script_args() == ("0", "0")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_a_cap_must_be_a_positive_integer(bad: object) -> None:
    """A zero, negative, fractional or boolean cap is a ConfigError."""
    with pytest.raises(ConfigError):
        TranscriptCap(max_messages=bad)  # type: ignore[arg-type]
