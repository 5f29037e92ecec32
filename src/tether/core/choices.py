"""Parsing a caller's string into one of a fixed set of choices."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from tether.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)


def parse_choice(choices: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``choices``, or :class:`InvalidInput` naming every choice."""
    if isinstance(value, str):
        try:
            return choices(value)
        except ValueError:
            pass
    allowed = " | ".join(choice.value for choice in choices)
    raise InvalidInput(f"invalid {what} {value!r}: expected one of {allowed}")
