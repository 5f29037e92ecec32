"""Seed 003's cleanup strategies: end ``all``, ``inactive`` or ``specific`` sessions.

Callers end their own sessions (``client_ended``); admins end anyone's
(``admin``). Ids that are unknown, already ended or someone else's are
skipped silently and not counted, so a cleanup reveals nothing about
sessions the caller cannot see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tether.core.ids import validate_session_id
from tether.core.session import SessionInfo
from tether.errors import InvalidInput, SessionNotFound
from tether.runtime.manager import SessionManager
from tether.service.auth import Principal
from tether.service.models import CleanupBody
from tether.service.state import Service
from tether.types import EndReason, SessionState

DEFAULT_INACTIVE_FOR = 3600.0
"""Seed 003: "inactive" means no activity for an hour unless told otherwise."""
BATCH = 100
"""Ends run concurrently, this many at a time, so one cleanup cannot swamp the loop."""


async def select(svc: Service, caller: Principal, body: CleanupBody) -> list[SessionInfo]:
    """The live sessions ``body`` names that ``caller`` may end."""
    manager = svc.manager
    if body.type == "specific":
        if not body.session_ids:
            raise InvalidInput("specific cleanup needs session_ids")
        chosen = []
        for raw in dict.fromkeys(body.session_ids):
            try:
                info = await svc.owned(caller, raw)
            except SessionNotFound:
                continue
            if body.user is not None and info.user != body.user:
                continue
            if info.state is not SessionState.ENDED:
                chosen.append(info)
        return chosen
    scope = svc.user_scope(caller, body.user)
    sessions = await manager.list(user=scope)
    if body.type == "inactive":
        horizon = manager.clock.now() - (
            DEFAULT_INACTIVE_FOR if body.inactive_for is None else body.inactive_for
        )
        sessions = [s for s in sessions if s.last_activity <= horizon]
    return sessions


async def end_sessions(
    manager: SessionManager,
    sessions: Iterable[SessionInfo],
    reason_for: Callable[[SessionInfo], EndReason],
) -> int:
    """End each session; how many this call ended (others were ending anyway)."""
    ended = 0
    batch = list(sessions)
    for start in range(0, len(batch), BATCH):
        results = await asyncio.gather(
            *(_end_one(manager, s, reason_for(s)) for s in batch[start : start + BATCH])
        )
        ended += sum(results)
    return ended


async def _end_one(manager: SessionManager, info: SessionInfo, reason: EndReason) -> bool:
    try:
        return await manager.end(validate_session_id(info.id), reason)
    except SessionNotFound:
        return False  # forgotten between the listing and the end
