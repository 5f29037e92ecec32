"""What the service learns from the manager's hooks.

* which sessions are in a warning right now (``/metrics`` reports live
  sessions by state without listing them all);
* who is waiting for a user's next session (``observe {user: "me"}``: seed
  001's frontend that opens before the call it will watch has started).
"""

from __future__ import annotations

import asyncio

from tether.core.session import SessionInfo
from tether.runtime.manager import SessionManager
from tether.types import SessionId


class SessionWatch:
    """Follows warnings and starts through the manager's hooks."""

    def __init__(self) -> None:
        self.warning: set[SessionId] = set()
        self._waiters: dict[str, set[asyncio.Future[SessionInfo]]] = {}
        self._manager: SessionManager | None = None
        self._watching_starts = False

    def bind(self, manager: SessionManager) -> None:
        """Register the hooks on ``manager`` (once)."""
        if self._manager is manager:
            return
        self._manager = manager
        manager.on_warning(self._warned)
        manager.on_active(self._cleared)
        manager.on_ended(self._cleared)

    def _warned(self, info: SessionInfo) -> None:
        self.warning.add(info.id)

    def _cleared(self, info: SessionInfo) -> None:
        self.warning.discard(info.id)

    def _started(self, info: SessionInfo) -> None:
        for future in self._waiters.get(info.user, ()):
            if not future.done():
                future.set_result(info)

    async def next_session(self, user: str, wait_s: float) -> SessionInfo | None:
        """The next session ``user`` starts within ``wait_s`` seconds, or ``None``."""
        if self._manager is not None and not self._watching_starts:
            # Registered on first use: a start hook costs every start a task,
            # and most deployments never wait for one.
            self._watching_starts = True
            self._manager.on_started(self._started)
        future: asyncio.Future[SessionInfo] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(user, set())
        waiters.add(future)
        try:
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            return None
        finally:
            waiters.discard(future)
            if not waiters:
                self._waiters.pop(user, None)
