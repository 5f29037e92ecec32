"""A real PostgreSQL for the archive tests: ``initdb`` in a temp dir, stopped by pid.

Missing PostgreSQL fails the tests that need it (it never skips them):
``make system-deps`` (run by ``make unit``) installs Debian's ``postgresql``.
The server runs as the ``postgres`` system user when the tests run as root
(PostgreSQL refuses root); see ``bench/pg_server.py`` for how.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from bench.pg_server import PgServer, launch

from tether.archive.pg_rows import TABLE


def start_pg_server(directory: Path) -> PgServer:
    """Start a throwaway server in ``directory`` with a ``tether`` database; wait until ready."""
    try:
        return launch(directory)
    except RuntimeError as exc:
        pytest.fail(f"{exc} (make system-deps installs postgresql)", pytrace=False)


def empty(url: str) -> None:
    """Drop the archive table at ``url``: the next archiver creates it afresh."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


async def count_rows(url: str, session_id: str | None = None) -> int:
    """Rows in the archive table (of one session, if given)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        if session_id is None:
            cursor = await conn.execute(f"SELECT count(*) FROM {TABLE}")
        else:
            cursor = await conn.execute(
                f"SELECT count(*) FROM {TABLE} WHERE session_id = %s", (session_id,)
            )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])
