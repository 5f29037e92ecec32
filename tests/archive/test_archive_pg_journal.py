"""PostgreSQL archives keep the journal rule: a journal goes only once its row is committed.

While PostgreSQL cannot take the row, the end stays open and the journal
stays in the data dir; the next start-up with PostgreSQL back archives it
from the journal (exactly once) and only then drops it.
"""

from __future__ import annotations

import socket
from pathlib import Path

from pg_kit import count_rows
from tether.archive.journal import FileJournal
from tether.archive.pg_archive import PgArchive
from tether.core.policy import Policy
from tether.testing import fake_manager
from tether.types import SessionId

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


def journal(root: Path, session: SessionId, user: str = "alice") -> Path:
    return root / "users" / user / "dialogs" / "current" / session


def closed_port_url() -> str:
    """A PostgreSQL URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres:hunter2@127.0.0.1:{port}/tether"


async def test_the_journal_stays_until_the_row_is_committed(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL down: the end keeps its journal; back up: recovery writes one row, drops it."""
    down = PgArchive(closed_port_url(), timeout=0.3)
    async with fake_manager(policy=POLICY, journal=FileJournal(tmp_path), archiver=down) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "keep me")
        await kit.manager.end(session.id)
        await kit.manager.wait_idle()
        assert (await kit.manager.metrics()).archive_failures == 1
        assert journal(tmp_path, session.id).exists()
    assert journal(tmp_path, session.id).exists()
    up = PgArchive(pg_url)
    async with fake_manager(policy=POLICY, journal=FileJournal(tmp_path), archiver=up) as kit:
        assert kit.manager.recovery is not None
        assert kit.manager.recovery.recovered == 1
        [summary] = await up.list("alice")
        dialog = await up.read("alice", summary.archive_id)
        assert [m.content for m in dialog.messages] == ["keep me"]
        assert dialog.recovered
    assert not journal(tmp_path, session.id).exists()
    assert await count_rows(pg_url, session.id) == 1


async def test_a_row_committed_by_the_end_is_not_duplicated_by_recovery(
    tmp_path: Path, pg_url: str
) -> None:
    """An end that archived drops its journal; a later start-up finds nothing to recover."""
    archive = PgArchive(pg_url)
    async with fake_manager(policy=POLICY, journal=FileJournal(tmp_path), archiver=archive) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "hello")
        await kit.manager.end(session.id)
        await kit.manager.wait_idle()
        assert not journal(tmp_path, session.id).exists()
    again = PgArchive(pg_url)
    async with fake_manager(policy=POLICY, journal=FileJournal(tmp_path), archiver=again) as kit:
        assert kit.manager.recovery is not None
        assert kit.manager.recovery.recovered == 0
    assert await count_rows(pg_url) == 1
