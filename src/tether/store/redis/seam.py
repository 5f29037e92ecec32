"""The seam: every redis-py (and socket) error leaves the Redis store as a tether error.

Nothing above ``tether.store`` imports redis; whatever the client raises is
translated here, once, into :class:`~tether.errors.StoreUnavailable`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from redis.exceptions import RedisError

from tether.errors import StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

FAILURES = (RedisError, OSError)
"""What a Redis call raises when Redis cannot answer."""


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The tether error for a Redis or socket failure ``exc``."""
    return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")


def translated(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Wrap a store method: Redis and socket failures leave it as ``StoreUnavailable``."""

    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except FAILURES as exc:
            raise unavailable(exc) from exc

    functools.update_wrapper(wrapper, method)
    return wrapper
