"""The admin feed: every session's lifecycle, for ``GET /api/v1/admin/events``.

The dashboard (``/dashboard``) listens here instead of polling. A stream
starts with a ``snapshot`` (live sessions, recently ended ones and the ends
of the last hour by reason), then carries changes as they happen:

* ``session.started``, ``session.warning``, ``session.active`` and
  ``session.ended`` come from the manager's public hooks;
* ``session.updated`` follows the manager's ``on_changed`` hook (messages,
  user activity, a new config, connections attaching or leaving),
  coalesced over :data:`UPDATE_DELAY`;
* a fresh ``snapshot`` every :data:`SNAPSHOT_INTERVAL` seconds.

Hooks fire on the node where a transition happens, and ``manager.list()``
reads the shared store: on a cluster the snapshots cover every node, the
live events the node the stream is connected to. Every event carries
``now``, the server's clock, so a client can count down deadlines without
trusting its own clock. Nothing here costs anything while no stream is open:
the hooks are registered on the first subscriber, and changes are only
tracked while someone listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from tether.core.session import SessionInfo
from tether.errors import SessionNotFound, TetherError
from tether.runtime.manager import SessionManager
from tether.service.models import admin_view
from tether.transports.sse import RETRY_MS, format_sse
from tether.types import SessionId, SessionState

log = logging.getLogger("tether.service")

SNAPSHOT_INTERVAL = 10.0
"""Seconds between two full snapshots on one stream (also its keep-alive)."""
UPDATE_DELAY = 0.25
"""``session.updated`` for a session is sent at most this often (changes are coalesced)."""
QUEUE_SIZE = 1024
"""Events buffered per stream; a stream that falls further behind gets a fresh snapshot."""
MAX_LIVE = 5000
"""Most live sessions in one snapshot (``truncated`` says when there were more)."""
MAX_ENDED = 200
"""Most recently ended sessions listed in one snapshot (newest first)."""
ENDS_WINDOW = 3600.0
"""The snapshot counts the ends of this many past seconds, by reason."""
ENDS_BUCKET = 300.0
"""...in buckets this long, aligned to multiples of it since the epoch."""

_CLOSE = object()
"""Queued to a stream to end it."""

Spawn = Callable[[Coroutine[Any, Any, Any]], None]


def ends_by_bucket(ended: list[SessionInfo], now: float) -> list[dict[str, Any]]:
    """Counts of the ends of the last :data:`ENDS_WINDOW` seconds, by bucket and reason."""
    counts: dict[tuple[float, str], int] = {}
    horizon = now - ENDS_WINDOW
    for info in ended:
        if info.ended_at is None or info.ended_at < horizon or info.end_reason is None:
            continue
        start = math.floor(info.ended_at / ENDS_BUCKET) * ENDS_BUCKET
        key = (start, info.end_reason.value)
        counts[key] = counts.get(key, 0) + 1
    return [
        {"start": start, "reason": reason, "count": n}
        for (start, reason), n in sorted(counts.items())
    ]


class _Subscriber:
    """One open stream: its queue, and whether it fell behind."""

    __slots__ = ("queue", "stale")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_SIZE)
        self.stale = False


class AdminFeed:
    """Fans session lifecycle changes out to the open admin streams."""

    def __init__(self, spawn: Spawn) -> None:
        self._spawn = spawn
        self._manager: SessionManager | None = None
        self._subscribers: set[_Subscriber] = set()
        self._hooked: SessionManager | None = None
        self._pending: set[SessionId] = set()
        self._flushing = False
        self._closed = False
        self.snapshot_interval = SNAPSHOT_INTERVAL
        self.update_delay = UPDATE_DELAY

    def bind(self, manager: SessionManager) -> None:
        """Report on ``manager`` from now on."""
        self._manager = manager

    @property
    def listening(self) -> int:
        """Open streams."""
        return len(self._subscribers)

    # -- changes in -------------------------------------------------------------------

    def _changed(self, session_id: SessionId) -> None:
        """The manager's ``on_changed`` hook: a ``session.updated`` is due for the session."""
        if not self._subscribers or self._manager is None:
            return
        self._pending.add(session_id)
        if not self._flushing:
            self._flushing = True
            self._spawn(self._flush())

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(self.update_delay)
            pending, self._pending = self._pending, set()
            manager = self._manager
            if manager is None or not self._subscribers:
                return
            for session_id in pending:
                try:
                    info = await manager.get(session_id)
                except (SessionNotFound, TetherError):
                    continue
                if info.state is not SessionState.ENDED:  # an end has its own event
                    self._publish("session.updated", info)
        finally:
            self._flushing = False
            if self._pending and self._subscribers:
                self._flushing = True
                self._spawn(self._flush())

    def _hook(self, kind: str) -> Callable[[SessionInfo], None]:
        def hook(info: SessionInfo) -> None:
            self._publish(kind, info)

        hook.__qualname__ = f"AdminFeed.{kind}"
        return hook

    def _publish(self, kind: str, info: SessionInfo) -> None:
        if not self._subscribers:
            return
        event = {"type": kind, "now": self._now(), "session": admin_view(info)}
        for sub in self._subscribers:
            if sub.stale:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.stale = True  # it gets a snapshot instead of what it missed

    def _now(self) -> float:
        assert self._manager is not None
        return self._manager.clock.now()

    # -- streams out ------------------------------------------------------------------

    def subscribe(self) -> _Subscriber:
        """A new stream's queue; the first one registers the hooks."""
        manager = self._manager
        if manager is None:
            raise TetherError("the service is starting")
        if self._hooked is not manager:
            # Registered on first use: a start hook costs every start a task,
            # and most deployments never open the dashboard.
            self._hooked = manager
            manager.on_started(self._hook("session.started"))
            manager.on_warning(self._hook("session.warning"))
            manager.on_active(self._hook("session.active"))
            manager.on_ended(self._hook("session.ended"))
            manager.on_changed(self._changed)
        sub = _Subscriber()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        """The stream is gone."""
        self._subscribers.discard(sub)

    def close(self) -> None:
        """End every stream (shutdown); new ones end after their snapshot."""
        self._closed = True
        for sub in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(_CLOSE)

    async def snapshot(self) -> dict[str, Any]:
        """Everything a dashboard needs to start from."""
        manager = self._manager
        if manager is None:
            raise TetherError("the service is starting")
        live = await manager.list()
        ended = await manager.list(state=SessionState.ENDED)
        now = manager.clock.now()
        newest_ended = sorted(ended, key=lambda s: s.ended_at or 0.0, reverse=True)
        return {
            "type": "snapshot",
            "now": now,
            "interval_s": self.snapshot_interval,
            "sessions": [admin_view(s) for s in live[:MAX_LIVE]],
            "truncated": len(live) > MAX_LIVE,
            "ended": [admin_view(s) for s in newest_ended[:MAX_ENDED]],
            "ends": ends_by_bucket(ended, now),
            "ends_bucket_s": ENDS_BUCKET,
        }

    async def stream(self) -> AsyncIterator[str]:
        """A response body: a snapshot, then changes, a fresh snapshot now and then."""
        loop = asyncio.get_running_loop()
        sub = self.subscribe()
        try:
            yield f": tether admin events\nretry: {RETRY_MS}\n\n"
            yield format_sse(await self.snapshot())
            due = loop.time() + self.snapshot_interval
            while not self._closed:
                if sub.stale:
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                    sub.stale = False
                    due = loop.time()
                try:
                    event = await asyncio.wait_for(sub.queue.get(), max(0.0, due - loop.time()))
                except TimeoutError:
                    try:
                        snapshot = await self.snapshot()
                    except TetherError as exc:
                        # The store is away: end the stream; the client reconnects.
                        log.warning("admin event stream ends: no snapshot (%s)", exc)
                        return
                    yield format_sse(snapshot)
                    due = loop.time() + self.snapshot_interval
                    continue
                if event is _CLOSE:
                    return
                assert isinstance(event, dict)
                yield format_sse(event)
        finally:
            self.unsubscribe(sub)
