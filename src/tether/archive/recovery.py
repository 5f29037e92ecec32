"""Start-up recovery: every journal a crash left behind becomes an archive.

A journal still on disk at start-up belongs to a session that never finished
its end pipeline (the process died, or archiving failed). Its records are
read back (a torn last record dropped, damaged regions skipped and noted),
archived with reason ``server_shutdown`` and ``recovered: true``, and only then
is the journal removed. A journal that was partly unreadable is moved to
``dialogs/damaged/`` instead, so a human can look at the original bytes. A
file that is not a tether journal at all is refused: left where it is,
reported, never deleted. Leftover temporary archive files are removed.

Under ``fsync=always`` the journals' commit log (see
:mod:`tether.archive.commit_log`) holds a copy of every record appended since
the last checkpoint. A power cut can take records (or whole new journals) from
the page cache; recovery merges them back from the log, by sequence number,
before archiving, and deletes the log once every session it names is archived.
A session the log names whose journal is gone and whose header the log lacks
was archived before the last checkpoint: there is nothing left to do for it.

Running recovery twice, or after a crash in the middle of it, gives the same
archives: archive ids depend only on the session.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tether.archive import commit_log, durable, records
from tether.archive.base import ArchivedDialog, Archiver
from tether.archive.paths import DataDir
from tether.core.ids import log_ref, validate_session_id, validate_user_id
from tether.errors import ArchiveError, ArchiveNotFound
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
    replayed: int = 0
    """Messages a power cut took from journal files, put back from the commit log."""


async def recover(data_dir: DataDir, archiver: Archiver) -> RecoveryReport:
    """Archive every journal under ``data_dir`` and remove leftover temp files."""
    loop = asyncio.get_running_loop()
    report = RecoveryReport()
    report.temp_files_removed = await loop.run_in_executor(None, _remove_temp_files, data_dir)
    logged, log_files = await loop.run_in_executor(
        None, commit_log.read_all, data_dir.commit_logs, MAX_JOURNAL_BYTES
    )
    for note in logged.damage:
        log.error("commit log damaged: %s", note)
    journals = await loop.run_in_executor(None, lambda: list(data_dir.journals()))
    # The commit logs are deleted only once every session they name is archived.
    keep_logs = False
    for user, session_id, path in journals:
        extra = logged.sessions.pop(session_id, None)
        try:
            done = await _recover_one(data_dir, archiver, user, session_id, path, report, extra)
        except Exception as exc:  # one bad journal must never stop the server starting
            done = False
            report.refused.append(f"{path}: {exc}")
            log.error("journal recovery failed session=%s: %s", log_ref(session_id), exc)
        keep_logs |= extra is not None and not done
    for logged_id, extra in logged.sessions.items():
        try:
            await _recover_logged(archiver, logged_id, extra, report)
        except Exception as exc:
            keep_logs = True
            report.refused.append(f"commit log, session {log_ref(logged_id)}: {exc}")
            log.error("commit log recovery failed session=%s: %s", log_ref(logged_id), exc)
    if log_files and not keep_logs:
        await loop.run_in_executor(None, _remove_logs, log_files)
    if journals or report.temp_files_removed or report.replayed:
        log.warning(
            "recovered %d journal(s) after an unclean stop: %d torn tail(s) dropped, "
            "%d damaged, %d refused, %d empty, %d message(s) put back from the commit log, "
            "%d temp file(s) removed",
            report.recovered,
            report.torn_tails,
            report.damaged,
            len(report.refused),
            report.empty,
            report.replayed,
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
    logged: commit_log.LoggedSession | None,
) -> bool:
    """Archive one journal (merged with its commit-log records); ``False`` if left alone."""
    loop = asyncio.get_running_loop()
    data = await loop.run_in_executor(None, durable.read_bytes, path, MAX_JOURNAL_BYTES)
    contents = records.decode(data)
    if contents.refused is not None:
        report.refused.append(f"{path}: {contents.refused}")
        log.error("journal left alone session=%s: %s", log_ref(session_id), contents.refused)
        return False
    if logged is not None:
        if logged.user != user:
            raise ArchiveError("the commit log names another user for this journal")
        on_disk = len(contents.messages)
        contents = records.merge(contents, records.decode_records(logged.records))
        report.replayed += len(contents.messages) - on_disk
    if contents.header is None:
        if contents.damage:
            raise ArchiveError("journal has no readable header: " + "; ".join(contents.damage))
        report.empty += 1  # torn before its header landed: no message was acknowledged
        await loop.run_in_executor(None, path.unlink)
        return True
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
    return True


async def _recover_logged(
    archiver: Archiver,
    session_id: str,
    logged: commit_log.LoggedSession,
    report: RecoveryReport,
) -> None:
    """A session the commit log names but whose journal file a power cut took (or that ended)."""
    contents = records.decode_records(logged.records)
    if contents.header is None:
        return  # its journal was durable before the last checkpoint, then archived and removed
    user, sid = validate_user_id(logged.user), validate_session_id(session_id)
    dialog = _dialog(contents, user, sid)
    try:
        await archiver.read(user, dialog.archive_id)
        return  # it ended normally after its start was logged: archived already
    except ArchiveNotFound:
        pass
    await archiver.archive(dialog)
    report.recovered += 1
    report.replayed += len(contents.messages)


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


def _remove_logs(files: list[Path]) -> None:
    for path in files:
        path.unlink(missing_ok=True)
    durable.fsync_dir(files[0].parent)


def _move(source: Path, target: Path, root: Path) -> None:
    durable.ensure_dir(target.parent, root)
    os.replace(source, target)
    durable.fsync_dir(target.parent)
