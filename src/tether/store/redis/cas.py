"""The one compare-and-set retry loop every Redis step that may race goes through.

A step reads a session, decides with the core, and commits only if the
session is still at the version it decided on; a commit that meets a newer
version is decided again on the fresh state. :func:`retry` runs such an
attempt until it settles, and gives up (``StoreUnavailable``) on a session
that keeps changing, rather than spinning forever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from tether.errors import StoreUnavailable
from tether.store.redis.codec import text

R = TypeVar("R")

MAX_ATTEMPTS = 64
"""Compare-and-set rounds before a step gives up on a session that keeps changing."""


class Again:
    """An attempt's answer: the session moved, decide again."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "AGAIN"


AGAIN: Final = Again()


def contention() -> StoreUnavailable:
    """The error of a step that gave up."""
    return StoreUnavailable(f"a session kept changing: gave up after {MAX_ATTEMPTS} attempts")


async def retry(attempt: Callable[[], Awaitable[R | Again]]) -> R:
    """Run ``attempt`` until it returns anything but :data:`AGAIN` (at most ``MAX_ATTEMPTS``)."""
    for _ in range(MAX_ATTEMPTS):
        result = await attempt()
        if not isinstance(result, Again):
            return result
    raise contention()


def ok(reply: Any) -> bool:
    """Whether a script reply is ``{'OK', ...}`` (the change was made)."""
    return isinstance(reply, list) and text(reply[0]) == "OK"
