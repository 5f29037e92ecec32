"""Start-up recovery: every journal a crash left behind becomes an archive.

A journal still on disk at start-up belongs to a session that never finished
its end pipeline (the process died, or archiving failed). Its records are
read back (a torn last record dropped, damaged regions skipped and noted),
archived with reason ``server_shutdown`` and ``recovered: true``, and only then
is the journal removed. A journal that was partly unreadable is moved to
``dialogs/damaged/`` instead, so a human can look at the original bytes. A
file that is not a tether journal at all is refused: left where it is,
reported, never deleted. Leftover temporary archive files are removed.

Running recovery twice, or after a crash in the middle of it, gives the same
archives: archive ids depend only on the session.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tether.archive import durable, records
from tether.archive.base import ArchivedDialog, Archiver
from tether.archive.paths import DataDir
from tether.core.ids import log_ref
from tether.errors import ArchiveError
from tether.types import EndReason, SessionId, UserId

log = logging.getLogger("tether.archive")
MAX_JOURNAL_BYTES = 1 << 30


@dataclass(slots=True)
class RecoveryReport:
    """What one recovery pass did, for logs and metrics."""

    recovered: int = 0
    """Journals archived (including damaged ones)."""
    torn_tails: int = 0
    """Journals whose last record was cut short and dropped."""
    damaged: int = 0
    """Journals with unreadable regions; their originals are in ``dialogs/damaged/``."""
    refused: list[str] = field(default_factory=list)
    """Files left alone because they are not tether journals, with why."""
    empty: int = 0
    """Journals torn before their header was written: nothing to archive."""
    temp_files_removed: int = 0


async def recover(data_dir: DataDir, archiver: Archiver) -> RecoveryReport:
    """Archive every journal under ``data_dir`` and remove leftover temp files."""
    loop = asyncio.get_running_loop()
    report = RecoveryReport()
    report.temp_files_removed = await loop.run_in_executor(None, _remove_temp_files, data_dir)
    journals = await loop.run_in_executor(None, lambda: list(data_dir.journals()))
    for user, session_id, path in journals:
        try:
            await _recover_one(data_dir, archiver, user, session_id, path, report)
        except Exception as exc:  # one bad journal must never stop the server starting
            report.refused.append(f"{path}: {exc}")
            log.error("journal recovery failed session=%s: %s", log_ref(session_id), exc)
    if journals or report.temp_files_removed:
        log.warning(
            "recovered %d journal(s) after an unclean stop: %d torn tail(s) dropped, "
            "%d damaged, %d refused, %d empty, %d temp file(s) removed",
            report.recovered,
            report.torn_tails,
            report.damaged,
            len(report.refused),
            report.empty,
            report.temp_files_removed,
        )
    return report


async def _recover_one(
    data_dir: DataDir,
    archiver: Archiver,
    user: UserId,
    session_id: SessionId,
    path: Path,
    report: RecoveryReport,
) -> None:
    loop = asyncio.get_running_loop()
    data = await loop.run_in_executor(None, durable.read_bytes, path, MAX_JOURNAL_BYTES)
    contents = records.decode(data)
    if contents.refused is not None:
        report.refused.append(f"{path}: {contents.refused}")
        log.error("journal left alone session=%s: %s", log_ref(session_id), contents.refused)
        return
    if contents.header is None:
        if contents.damage:
            raise ArchiveError("journal has no readable header: " + "; ".join(contents.damage))
        report.empty += 1  # torn before its header landed: no message was acknowledged
        await loop.run_in_executor(None, path.unlink)
        return
    dialog = _dialog(contents, user, session_id)
    await archiver.archive(dialog)
    report.recovered += 1
    report.torn_tails += contents.torn_bytes > 0
    if contents.damage:
        report.damaged += 1
        keep = data_dir.damaged_dir(user) / f"{session_id}.journal"
        await loop.run_in_executor(None, _move, path, keep, data_dir.root)
        log.error(
            "journal damaged session=%s: %s; original kept in dialogs/damaged",
            log_ref(session_id),
            "; ".join(contents.damage),
        )
    else:
        await loop.run_in_executor(None, path.unlink)


def _dialog(
    contents: records.JournalContents, user: UserId, session_id: SessionId
) -> ArchivedDialog:
    header = contents.header or {}
    if header.get("session_id") != session_id or header.get("user") != user:
        raise ArchiveError("journal header names another session or user than its path")
    notes = list(contents.damage)
    if contents.torn_bytes:
        notes.append(f"an incomplete last record ({contents.torn_bytes} bytes) was dropped")
    started = float(header["created_at"])
    return ArchivedDialog(
        session_id=session_id,
        user=user,
        kind=str(header.get("kind", "chat")),
        config=contents.config if contents.config is not None else dict(header.get("config") or {}),
        started_at=started,
        ended_at=max(started, contents.last_ts or started),
        end_reason=EndReason.SERVER_SHUTDOWN,
        messages=tuple(contents.messages),
        recovered=True,
        notes=tuple(notes),
    )


def _remove_temp_files(data_dir: DataDir) -> int:
    removed = 0
    for path in data_dir.temp_files():
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("leftover temp file not removed: %s", exc)
            continue
        removed += 1
    return removed


def _move(source: Path, target: Path, root: Path) -> None:
    durable.ensure_dir(target.parent, root)
    os.replace(source, target)
    durable.fsync_dir(target.parent)
