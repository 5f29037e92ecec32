"""Lifecycle hooks: application callbacks for started, warning, active, ending, ended, changed."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tether.core.session import SessionInfo
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

Hook = Callable[[SessionInfo], Awaitable[object] | object]
H = TypeVar("H", bound=Hook)
ChangeHook = Callable[[SessionId], object]
C = TypeVar("C", bound=ChangeHook)


class Hooks:
    """Registered callbacks; each receives the session's snapshot.

    A hook may be a plain function or a coroutine function. One that raises
    is logged and counted; it never disturbs the session or other hooks.

    ``changed`` hooks are different: they receive only the session's id and
    are called inline, on paths as hot as user activity, so each must be a
    quick plain function (read the session later if it needs it).
    """

    def __init__(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self.started: list[Hook] = []
        self.warning: list[Hook] = []
        self.active: list[Hook] = []
        self.ending: list[Hook] = []
        self.ended: list[Hook] = []
        self.changed: list[ChangeHook] = []

    def session_changed(self, session_id: SessionId) -> None:
        """Call every ``changed`` hook with ``session_id``, inline, in registration order."""
        for hook in self.changed:
            try:
                hook(session_id)
            except Exception:
                self._on_failure()
                log.exception("hook %s failed", getattr(hook, "__qualname__", hook))

    async def emit(self, hooks: list[Hook], info: SessionInfo) -> None:
        """Call every hook in ``hooks`` with ``info``, in registration order."""
        for hook in list(hooks):
            try:
                result = hook(info)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._on_failure()
                log.exception("hook %s failed", getattr(hook, "__qualname__", hook))
