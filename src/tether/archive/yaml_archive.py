"""``YamlArchive``: one YAML file per ended session, written so a crash never half-writes it.

Files live at ``users/{user}/dialogs/archived/{archive-id}.yaml``. The archive
id is derived from the session (start stamp plus a hash of its id), so the
same session always maps to the same file, and the file is created only if
absent: archiving a session again leaves the first archive as it is (it was
written by the real end, and knows the true reason; a retry after a crash
knows less). That is what makes archiving idempotent.

Reading uses a safe loader only, so a file carrying a Python tag is refused,
never turned into an object.

The blocking work (YAML encoding, writes, flushes) runs on one writer thread
that commits archives in batches (see :mod:`tether.archive.group_writer`),
so ending thousands of sessions at once neither stalls the event loop nor
costs two disk flushes per session.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tether.archive import durable
from tether.archive.base import ArchivedDialog, ArchiveSummary
from tether.archive.folders import FolderCache
from tether.archive.group_writer import GroupWriter
from tether.archive.paths import ARCHIVE_SUFFIX, DataDir
from tether.core.ids import (
    archive_short_id,
    validate_archive_id,
    validate_session_id,
    validate_user_id,
)
from tether.core.transcript import Message, parse_role
from tether.errors import ArchiveError, ArchiveNotFound, InvalidInput, TetherError
from tether.types import EndReason, SessionId, UserId

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_ARCHIVE_BYTES = 64 << 20
T = TypeVar("T")


class YamlArchive:
    """The :class:`~tether.archive.base.Archiver` that writes YAML files under the data dir."""

    def __init__(self, data_dir: str | os.PathLike[str], *, use_syncfs: bool | None = None) -> None:
        self.paths = DataDir(data_dir)
        self._writer = GroupWriter(self.paths.root, use_syncfs=use_syncfs)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="tether-archive-read")
        # Recent users' archive folders, checked (symlinks resolved) once
        # while remembered: the check walks the filesystem, and the file names
        # are validated anyway. Bounded: users come and go (tether.archive.folders).
        self._folders = FolderCache()

    async def archive(self, dialog: ArchivedDialog) -> str:
        """Write ``dialog`` durably unless it is already archived; returns its id."""
        try:
            await self._writer.write(lambda: self._render(dialog))
        except OSError as exc:
            raise ArchiveError(f"archive I/O failed: {exc.strerror or exc}") from None
        except TetherError:
            raise
        except Exception as exc:  # e.g. a config YAML cannot represent
            raise ArchiveError(f"cannot archive this session: {exc!r}") from None
        return dialog.archive_id

    async def list(
        self, user: str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[ArchiveSummary]:
        """The user's archives, newest start first (archive ids sort by start stamp)."""
        if limit < 0 or offset < 0:
            raise InvalidInput("limit and offset must not be negative")
        return await self._run(self._list, validate_user_id(user), limit, offset)

    async def read(self, user: str, archive_id: str) -> ArchivedDialog:
        """One archive of ``user``, validated on the way in and on the way out."""
        return await self._run(
            self._read_id, validate_user_id(user), validate_archive_id(archive_id)
        )

    async def find(self, user: str, session_id: str) -> ArchivedDialog | None:
        """The user's archive of ``session_id``, or ``None``.

        An archive's name ends with a hash of its session id, so only the
        user's archives with that ending are read (normally exactly one).
        """
        return await self._run(self._find, validate_user_id(user), validate_session_id(session_id))

    async def aclose(self) -> None:
        """Finish queued writes and stop the threads."""
        await self._writer.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)

    # -- worker-thread side -------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except OSError as exc:
            raise ArchiveError(f"archive I/O failed: {exc.strerror or exc}") from None

    # Paths are built on the worker threads: checking them resolves symlinks.

    def _render(self, dialog: ArchivedDialog) -> tuple[Path, bytes]:
        """The archive's path and bytes (runs on the writer thread)."""
        folder = self._folders.get(dialog.user)
        if folder is None:
            folder = self.paths.archived_dir(dialog.user)
            self._folders.put(dialog.user, folder)
        name = validate_archive_id(dialog.archive_id) + ARCHIVE_SUFFIX
        return folder / name, dialog_to_yaml(dialog)

    def _read_id(self, user: UserId, archive_id: str) -> ArchivedDialog:
        return self._read(self.paths.archive(user, archive_id), user)

    def _find(self, user: UserId, session_id: SessionId) -> ArchivedDialog | None:
        folder = self.paths.archived_dir(user)
        ending = "-" + archive_short_id(session_id) + ARCHIVE_SUFFIX
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(ending))
        except FileNotFoundError:
            return None
        for name in names:
            if not _is_archive_id(name):
                continue
            try:
                dialog = self._read(folder / name, user)
            except ArchiveNotFound:
                continue  # gone since the listing
            if dialog.session_id == session_id:
                return dialog
        return None

    def _list(self, user: UserId, limit: int, offset: int) -> builtins.list[ArchiveSummary]:
        folder = self.paths.archived_dir(user)
        try:
            names = [n for n in os.listdir(folder) if n.endswith(ARCHIVE_SUFFIX)]
        except FileNotFoundError:
            return []
        ids = sorted((n[: -len(ARCHIVE_SUFFIX)] for n in names if _is_archive_id(n)), reverse=True)
        out = []
        for archive_id in ids[offset : offset + limit]:
            try:
                out.append(self._read(folder / (archive_id + ARCHIVE_SUFFIX), user).summary())
            except (ArchiveError, OSError):
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
    """The YAML document of one dialog: block style, timestamps as ISO 8601 UTC.

    Emitted directly rather than through ``yaml.dump``, whose representer is
    pure Python and costs about half a millisecond per dialog while holding
    the GIL: with thousands of sessions ending at once that starved the event
    loop. Every scalar is written as a JSON string or number, which YAML reads
    back exactly (a property test checks the round trip through
    ``yaml.safe_load``); config and metadata, free-form, still go through
    the YAML emitter.

    What is accepted today always fits the emitter (see
    :func:`tether.core.jsonvalue.check_json_object`), but a journal written
    before those limits, or a value the emitter still cannot represent,
    must never block the archive forever: such a field is written as
    ``{"$json": "<the value as JSON text>"}`` and a note says which field.
    """
    fallbacks: list[str] = []
    body = ["messages:" if dialog.messages else "messages: []"]
    for m in dialog.messages:
        body.append(f"- seq: {m.seq}")
        body.append(f"  role: {_quote(m.role.value)}")
        body.append(f"  content: {_quote(m.content)}")
        body.append(f"  at: {_quote(_iso(m.ts))}")
        if m.metadata:
            body.append(f"  metadata: {_flow(m.metadata, f'message {m.seq} metadata', fallbacks)}")
    lines = [
        f"archive_id: {_quote(dialog.archive_id)}",
        f"session_id: {_quote(dialog.session_id)}",
        f"user: {_quote(dialog.user)}",
        f"kind: {_quote(dialog.kind)}",
        f"config: {_flow(dialog.config, 'config', fallbacks)}",
        f"started_at: {_quote(_iso(dialog.started_at))}",
        f"ended_at: {_quote(_iso(dialog.ended_at))}",
        f"end_reason: {_quote(dialog.end_reason.value)}",
        f"duration_s: {round(dialog.ended_at - dialog.started_at, 3)!r}",
        f"message_count: {len(dialog.messages)}",
        f"recovered: {'true' if dialog.recovered else 'false'}",
    ]
    notes = [*dialog.notes, *fallbacks]
    if notes:
        lines.append("notes:")
        lines.extend(f"- {_quote(note)}" for note in notes)
    lines.extend(body)
    lines.append("")
    return "\n".join(lines).encode("utf-8")


_JSON = json.JSONEncoder(ensure_ascii=False)
# JSON leaves these unescaped, but YAML 1.1 reads them as line breaks or
# refuses them as non-printable, so they are escaped too (all in the BMP, so
# a \uXXXX escape reads back as the same single character).
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (a JSON string, made YAML-safe)."""
    quoted: str = _JSON.encode(text)
    if _YAML_UNSAFE.search(quoted):
        quoted = _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)
    return quoted


FALLBACK_KEY = "$json"
"""The one key of a mapping that stands for a field YAML could not represent."""


def _flow(value: dict[str, Any], what: str, fallbacks: list[str]) -> str:
    """A small free-form mapping on one line, through the YAML emitter.

    A value the emitter refuses (nested past the recursion limit, a type it
    cannot represent) becomes ``{"$json": text}``, noted in ``fallbacks``.
    """
    if not value:
        return "{}"
    try:
        text: str = yaml.dump(
            value, Dumper=_Dumper, default_flow_style=True, allow_unicode=True, width=1 << 30
        )
        return text.strip()
    except (RecursionError, yaml.YAMLError, TypeError, ValueError):
        pass
    try:
        encoded = json.dumps(value, default=repr)  # ASCII: lone surrogates too
    except (RecursionError, TypeError, ValueError):
        encoded = f"<{what} could not be encoded>"
    fallbacks.append(f"{what} could not be written as YAML; kept as JSON text under {FALLBACK_KEY}")
    return f"{{{_quote(FALLBACK_KEY)}: {_quote(encoded)}}}"


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
