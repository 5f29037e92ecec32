"""``YamlArchive``: one YAML file per ended session, written so a crash never half-writes it.

Files live at ``users/{user}/dialogs/archived/{archive-id}.yaml``. The archive
id is derived from the session (start stamp plus a hash of its id), so the
same session always maps to the same file, and the file is created only if
absent: archiving a session again leaves the first archive as it is (it was
written by the real end, and knows the true reason; a retry after a crash
knows less). That is what makes archiving idempotent.

Reading uses a safe loader only, so a file carrying a Python tag is refused,
never turned into an object.

The blocking work (YAML encoding, write, fsync, rename, fsync of the folder)
runs on a small thread pool, so ending thousands of sessions at once never
stalls the event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tether.archive import durable
from tether.archive.base import ArchivedDialog, ArchiveSummary
from tether.archive.paths import ARCHIVE_SUFFIX, DataDir
from tether.core.ids import validate_archive_id, validate_user_id
from tether.core.transcript import Message, parse_role
from tether.errors import ArchiveError, ArchiveNotFound, InvalidInput
from tether.types import EndReason, SessionId, UserId

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_ARCHIVE_BYTES = 64 << 20
T = TypeVar("T")


class YamlArchive:
    """The :class:`~tether.archive.base.Archiver` that writes YAML files under the data dir."""

    def __init__(self, data_dir: str | os.PathLike[str], *, threads: int = 4) -> None:
        self.paths = DataDir(data_dir)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tether-archive")

    async def archive(self, dialog: ArchivedDialog) -> str:
        """Write ``dialog`` durably unless it is already archived; returns its id."""
        path = self.paths.archive(dialog.user, dialog.archive_id)
        data = dialog_to_yaml(dialog)
        await self._run(durable.write_once, path, data, self.paths.root)
        return dialog.archive_id

    async def list(
        self, user: str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[ArchiveSummary]:
        """The user's archives, newest start first (archive ids sort by start stamp)."""
        if limit < 0 or offset < 0:
            raise InvalidInput("limit and offset must not be negative")
        folder = self.paths.archived_dir(user)
        return await self._run(self._list, folder, validate_user_id(user), limit, offset)

    async def read(self, user: str, archive_id: str) -> ArchivedDialog:
        """One archive of ``user``, validated on the way in and on the way out."""
        path = self.paths.archive(user, archive_id)
        return await self._run(self._read, path, validate_user_id(user))

    async def aclose(self) -> None:
        """Wait for running writes and stop the threads."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)

    # -- worker-thread side -------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except OSError as exc:
            raise ArchiveError(f"archive I/O failed: {exc.strerror or exc}") from None

    def _list(
        self, folder: Path, user: UserId, limit: int, offset: int
    ) -> builtins.list[ArchiveSummary]:
        try:
            names = [n for n in os.listdir(folder) if n.endswith(ARCHIVE_SUFFIX)]
        except FileNotFoundError:
            return []
        ids = sorted((n[: -len(ARCHIVE_SUFFIX)] for n in names if _is_archive_id(n)), reverse=True)
        out = []
        for archive_id in ids[offset : offset + limit]:
            try:
                out.append(self._read(folder / (archive_id + ARCHIVE_SUFFIX), user).summary())
            except (ArchiveError, FileNotFoundError):
                continue  # unreadable files are reported when read, not in listings
        return out

    def _read(self, path: Path, user: UserId) -> ArchivedDialog:
        try:
            data = durable.read_bytes(path, MAX_ARCHIVE_BYTES)
        except FileNotFoundError:
            raise ArchiveNotFound() from None
        try:
            doc = yaml.load(data, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise ArchiveError(f"archive {path.stem} is not plain YAML data: {exc}") from None
        dialog = dialog_from_doc(doc, path.stem)
        if dialog.user != user:
            raise ArchiveNotFound()
        return dialog


def _is_archive_id(name: str) -> bool:
    try:
        validate_archive_id(name[: -len(ARCHIVE_SUFFIX)])
    except InvalidInput:
        return False
    return True


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def dialog_to_yaml(dialog: ArchivedDialog) -> bytes:
    """The YAML document of one dialog: readable by people, timestamps as ISO 8601 UTC."""
    doc: dict[str, Any] = {
        "archive_id": dialog.archive_id,
        "session_id": dialog.session_id,
        "user": dialog.user,
        "kind": dialog.kind,
        "config": dialog.config,
        "started_at": _iso(dialog.started_at),
        "ended_at": _iso(dialog.ended_at),
        "end_reason": dialog.end_reason.value,
        "duration_s": round(dialog.ended_at - dialog.started_at, 3),
        "message_count": len(dialog.messages),
        "recovered": dialog.recovered,
    }
    if dialog.notes:
        doc["notes"] = list(dialog.notes)
    doc["messages"] = [
        {
            "seq": m.seq,
            "role": m.role.value,
            "content": m.content,
            "at": _iso(m.ts),
            **({"metadata": m.metadata} if m.metadata else {}),
        }
        for m in dialog.messages
    ]
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return text.encode("utf-8")


def dialog_from_doc(doc: object, name: str) -> ArchivedDialog:
    """Check a loaded YAML document field by field; :class:`ArchiveError` if it is not one."""
    try:
        if not isinstance(doc, dict):
            raise TypeError("top level is not a mapping")
        config = doc.get("config") or {}
        notes = doc.get("notes") or []
        if not isinstance(config, dict) or not isinstance(notes, list):
            raise TypeError("config or notes have the wrong type")
        return ArchivedDialog(
            session_id=SessionId(_text(doc["session_id"])),
            user=validate_user_id(doc["user"]),
            kind=_text(doc["kind"]),
            config=config,
            started_at=_ts(doc["started_at"]),
            ended_at=_ts(doc["ended_at"]),
            end_reason=EndReason(doc["end_reason"]),
            messages=tuple(_message(m) for m in doc.get("messages") or []),
            recovered=bool(doc.get("recovered", False)),
            notes=tuple(str(n) for n in notes),
        )
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        raise ArchiveError(f"archive {name} is not a tether archive: {exc}") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _ts(value: object) -> float:
    if isinstance(value, datetime):  # YAML may have parsed the ISO stamp itself
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        stamp = datetime.fromisoformat(_text(value))
    return stamp.timestamp()


def _message(item: object) -> Message:
    if not isinstance(item, dict):
        raise TypeError("a message is not a mapping")
    seq, metadata = item["seq"], item.get("metadata")
    if not isinstance(seq, int) or (metadata is not None and not isinstance(metadata, dict)):
        raise TypeError("message fields have the wrong types")
    return Message(seq, parse_role(item["role"]), _text(item["content"]), _ts(item["at"]), metadata)
