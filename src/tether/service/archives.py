"""``/api/v1/users/{user}/archives``: a user's archived dialogs.

``?format=yaml`` on one archive answers its YAML document, the same bytes
the file archiver writes, wherever the archive is kept (files or PostgreSQL).

Read through the manager's :class:`~tether.archive.base.Archiver` (its
``archiver`` attribute). Without one, every archive is "not found". A
caller sees only their own archives; another user's answer 404, like an
unknown session.
"""

# No "from __future__ import annotations" here: FastAPI must evaluate the
# route signatures, which name dependencies local to build().

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from tether.archive.base import Archiver
from tether.archive.yaml_archive import dialog_to_yaml
from tether.core.ids import validate_archive_id, validate_user_id
from tether.errors import ArchiveNotFound, InvalidInput
from tether.service.auth import Principal
from tether.service.deps import ArchiveIdPath, UserPath, api_router, caller_dependency
from tether.service.responses import answers
from tether.service.schemas import ArchivedDialog, ArchiveList
from tether.service.state import Service

YAML_MEDIA_TYPE = "application/yaml"


def _archiver(svc: Service, caller: Principal, user: str) -> tuple[Archiver, str]:
    """The archiver and the validated user, or the 404 a stranger gets."""
    if not caller.admin and caller.user != user:
        raise ArchiveNotFound()
    archiver: Archiver | None = getattr(svc.manager, "archiver", None)
    if archiver is None:
        raise ArchiveNotFound("archives are not enabled on this server")
    try:
        return archiver, validate_user_id(user)
    except InvalidInput:
        raise ArchiveNotFound() from None


def build(svc: Service) -> APIRouter:
    """The archive routes of one service."""
    r = api_router(svc, "archives")
    Caller = Annotated[Principal, Depends(caller_dependency(svc))]

    @r.get(
        "/users/{user}/archives",
        summary="A user's archived dialogs, newest first",
        **answers(ArchiveList, "The archives", 404, 422),
    )
    async def list_archives(
        caller: Caller,
        user: UserPath,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        archiver, user_id = _archiver(svc, caller, user)
        found = await archiver.list(user_id, limit=limit, offset=offset)
        return {"archives": [a.to_dict() for a in found]}

    read_answers = answers(ArchivedDialog, "The dialog with its messages", 404, 422)
    read_answers["responses"][200]["content"] = {
        # A YAML document (the seed's dialog format), which parses to a mapping.
        "application/yaml": {
            "schema": {"type": "object", "description": "with ?format=yaml: the YAML document"}
        }
    }

    @r.get(
        "/users/{user}/archives/{archive_id}",
        summary="One archived dialog (as JSON, or with ?format=yaml its YAML document)",
        **read_answers,
    )
    async def read_archive(
        caller: Caller,
        user: UserPath,
        archive_id: ArchiveIdPath,
        format: Annotated[Literal["json", "yaml"], Query()] = "json",
    ) -> Any:
        archiver, user_id = _archiver(svc, caller, user)
        try:
            checked = validate_archive_id(archive_id)
        except InvalidInput:
            raise ArchiveNotFound() from None
        dialog = await archiver.read(user_id, checked)
        if format == "yaml":
            return Response(dialog_to_yaml(dialog), media_type=YAML_MEDIA_TYPE)
        return dialog.to_dict()

    return r
