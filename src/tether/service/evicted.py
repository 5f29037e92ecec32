"""Reads of ended sessions the store has forgotten, answered from their archive.

A store retains an ended session for ``TETHER_ENDED_RETENTION`` (and, in
memory, within ``TETHER_MAX_ENDED`` / ``TETHER_MAX_ENDED_BYTES``). After
that, ``GET /api/v1/sessions/{id}`` and ``.../messages`` still answer the
session's owner from its archive instead of 404. The archive is looked up
under the caller's own user (an admin's token owns no archives, so an
admin gets 404 for a forgotten session, as before); writes to a forgotten
session still answer 404.
"""

from __future__ import annotations

from tether.archive.base import ArchivedDialog, ArchiveFinder
from tether.core.ids import validate_session_id
from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.errors import InvalidInput, SessionNotFound
from tether.service.auth import Principal
from tether.service.state import Service
from tether.types import SessionState


async def readable(
    svc: Service, caller: Principal, session_id: str
) -> tuple[SessionInfo, ArchivedDialog | None]:
    """The caller's session from the store, else from its archive (with the dialog).

    Raises :class:`SessionNotFound` when neither has it.
    """
    try:
        return await svc.owned(caller, session_id), None
    except SessionNotFound:
        dialog = await _archived(svc, caller, session_id)
        if dialog is None:
            raise
        return info_from_archive(dialog, svc.manager.policy), dialog


async def _archived(svc: Service, caller: Principal, session_id: str) -> ArchivedDialog | None:
    if caller.user is None:
        return None
    archiver = svc.manager.archiver
    if not isinstance(archiver, ArchiveFinder):
        return None
    try:
        sid = validate_session_id(session_id)
    except InvalidInput:
        return None
    dialog = await archiver.find(caller.user, sid)
    if dialog is None or dialog.user != caller.user:
        return None
    return dialog


def info_from_archive(dialog: ArchivedDialog, policy: Policy) -> SessionInfo:
    """The ended session as its archive records it.

    An archive keeps no presence or activity times, so both read as the end;
    ``policy`` (the server's default) stands in for the session's own.
    """
    return SessionInfo(
        id=dialog.session_id,
        user=dialog.user,
        kind=dialog.kind,
        state=SessionState.ENDED,
        created_at=dialog.started_at,
        last_activity=dialog.ended_at,
        last_seen=dialog.ended_at,
        connections=0,
        message_count=len(dialog.messages),
        config=dialog.config,
        policy=policy,
        warning=None,
        next_deadline=None,
        ended_at=dialog.ended_at,
        end_reason=dialog.end_reason,
    )
