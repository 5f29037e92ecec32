"""Two real ``tether serve`` processes on one Redis and one PostgreSQL, each with its own disk.

Nothing on disk is shared (each node has a data dir of its own): a session
ended on node A is archived as a row by A, and node B lists it, reads it and
exports its YAML, as does ``tether archive`` against the same database.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import yaml
from bench.pg_server import PgServer

from redis_kit import RedisServer, flush
from tether.archive.yaml_archive import dialog_from_doc
from tether.service.auth import TokenAuthority

from .process_kit import spawn_tether, wait_ready

SECRET = "cluster-pg-secret-0123456789abcdef"
ADMIN_TOKEN = "cluster-pg-admin-token"
TOKENS = TokenAuthority(SECRET, admin_token=ADMIN_TOKEN)
TETHER = Path(sys.executable).with_name("tether")


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.mint(user, ttl=600)}"}


async def test_a_session_ended_on_one_node_is_read_on_another(
    tmp_path: Path, redis_server: RedisServer, pg_server: PgServer, pg_url: str
) -> None:
    """Ended on A (own disk), listed, read and exported as YAML on B and by the CLI: one row."""
    await flush(redis_server.url)
    env = {
        "TETHER_REDIS_URL": redis_server.url,
        "TETHER_ARCHIVE_URL": pg_url,
        "TETHER_SECRET": SECRET,
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_LOG_LEVEL": "warning",
        "TETHER_FSYNC": "no",
    }
    nodes = []
    for name in ("a", "b"):
        data = tmp_path / f"data-{name}"
        data.mkdir()
        nodes.append(spawn_tether(name, {**env, "TETHER_DATA_DIR": str(data)}, tmp_path))
    try:
        await asyncio.gather(*(wait_ready(node) for node in nodes))
        a, b = nodes
        async with httpx.AsyncClient(base_url=a.http, timeout=10) as on_a:
            sid = (
                await on_a.post("/api/v1/sessions", headers=_auth("alice"), json={"kind": "chat"})
            ).json()["id"]
            await on_a.post(
                f"/api/v1/sessions/{sid}/messages",
                headers=_auth("alice"),
                json={"role": "user", "content": "written on a"},
            )
            ended = await on_a.post(f"/api/v1/sessions/{sid}/end", headers=_auth("alice"))
            assert ended.status_code == 200
        async with httpx.AsyncClient(base_url=b.http, timeout=10) as on_b:
            listing = await on_b.get("/api/v1/users/alice/archives", headers=_auth("alice"))
            [summary] = listing.json()["archives"]
            assert summary["session_id"] == sid
            archive_id = summary["archive_id"]
            path = f"/api/v1/users/alice/archives/{archive_id}"
            read = (await on_b.get(path, headers=_auth("alice"))).json()
            assert [m["content"] for m in read["messages"]] == ["written on a"]
            exported = await on_b.get(path, params={"format": "yaml"}, headers=_auth("alice"))
            assert exported.headers["content-type"].startswith("application/yaml")
            assert dialog_from_doc(yaml.safe_load(exported.text), archive_id).session_id == sid
            stranger = await on_b.get(path, headers=_auth("bob"))
            assert stranger.status_code == 404
        for name in ("a", "b"):
            assert not list((tmp_path / f"data-{name}").glob("users/*/dialogs/archived/*"))
        cli = await asyncio.create_subprocess_exec(
            str(TETHER), "archive", "export", "alice", archive_id, "--archive-url", pg_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await cli.communicate()
        assert cli.returncode == 0, out
        assert out.decode() == exported.text
    finally:
        for node in nodes:
            node.terminate()
