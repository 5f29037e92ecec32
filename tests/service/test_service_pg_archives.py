"""The service with ``TETHER_ARCHIVE_URL``: archives in PostgreSQL through REST and the CLI.

Also ``?format=yaml`` on either archiver, and the one-line error when
PostgreSQL does not answer at start-up (its password never printed).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from service_kit import asgi_client, auth, make_settings

from tether.archive.yaml_archive import dialog_to_yaml
from tether.cli import main
from tether.errors import ConfigError
from tether.service import create_app
from tether.service.app import check_store, open_manager


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "240"}, catch_exceptions=False)


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://tether:s3cret-pw@127.0.0.1:{port}/tether?connect_timeout=1"


async def _end_one(client: object, content: str) -> str:
    """Start, write to and end one of alice's sessions through REST; its session id."""
    from httpx import AsyncClient

    assert isinstance(client, AsyncClient)
    sid: str = (
        await client.post("/api/v1/sessions", headers=auth("alice"), json={"kind": "interview"})
    ).json()["id"]
    await client.post(
        f"/api/v1/sessions/{sid}/messages",
        headers=auth("alice"),
        json={"role": "user", "content": content, "metadata": {"x": -0.0, "y": "\x00"}},
    )
    assert (await client.post(f"/api/v1/sessions/{sid}/end", headers=auth("alice"))).is_success
    return sid


async def test_rest_reads_archives_from_postgresql(tmp_path: Path, pg_url: str) -> None:
    """Ended sessions become rows, listed and read through REST; no YAML file, no journal left."""
    app = create_app(make_settings(tmp_path, archive_url=pg_url))
    async with asgi_client(app) as client:
        sid = await _end_one(client, "into postgres")
        [summary] = (
            await client.get("/api/v1/users/alice/archives", headers=auth("alice"))
        ).json()["archives"]
        assert summary["session_id"] == sid
        assert summary["message_count"] == 1
        path = f"/api/v1/users/alice/archives/{summary['archive_id']}"
        dialog = (await client.get(path, headers=auth("alice"))).json()
        assert dialog["messages"][0]["content"] == "into postgres"
        assert dialog["messages"][0]["metadata"] == {"x": -0.0, "y": "\x00"}
        assert (await client.get(path, headers=auth("bob"))).status_code == 404
    assert _files(tmp_path, "users/*/dialogs/archived/*") == []
    assert _files(tmp_path, "users/*/dialogs/current/*") == []


@pytest.mark.parametrize("where", ["files", "postgres"])
async def test_format_yaml_gives_the_archive_file_bytes(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    """?format=yaml answers application/yaml: the file archiver's document, from either archiver."""
    url = request.getfixturevalue("pg_url") if where == "postgres" else None
    app = create_app(make_settings(tmp_path, archive_url=url))
    async with asgi_client(app) as client:
        await _end_one(client, "export me")
        [summary] = (
            await client.get("/api/v1/users/alice/archives", headers=auth("alice"))
        ).json()["archives"]
        archive_id = summary["archive_id"]
        path = f"/api/v1/users/alice/archives/{archive_id}"
        exported = await client.get(path, params={"format": "yaml"}, headers=auth("alice"))
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("application/yaml")
        archiver = app.state.tether.manager.archiver
        assert exported.content == dialog_to_yaml(await archiver.read("alice", archive_id))
        if where == "files":
            file = tmp_path / "users/alice/dialogs/archived" / f"{archive_id}.yaml"
            assert exported.content == file.read_bytes()
        bad = await client.get(path, params={"format": "xml"}, headers=auth("alice"))
        assert bad.status_code == 422
        again = await client.get(path, headers=auth("alice"))
        assert again.json()["messages"][0]["content"] == "export me"


async def test_cli_reads_postgresql_archives(tmp_path: Path, pg_url: str) -> None:
    """archive ls / show / export --archive-url read the rows; export equals the REST YAML."""
    app = create_app(make_settings(tmp_path, archive_url=pg_url))
    async with asgi_client(app) as client:
        await _end_one(client, "from the cli")
        [summary] = (
            await client.get("/api/v1/users/alice/archives", headers=auth("alice"))
        ).json()["archives"]
        archive_id = summary["archive_id"]
        rest_yaml = (
            await client.get(
                f"/api/v1/users/alice/archives/{archive_id}",
                params={"format": "yaml"},
                headers=auth("alice"),
            )
        ).text
    missing = str(tmp_path / "no-such-dir")  # the data dir is not needed with a URL
    common = ("--archive-url", pg_url, "--data-dir", missing)
    listed = await asyncio.to_thread(_cli, "archive", "ls", "alice", *common)
    assert listed.exit_code == 0
    assert archive_id in listed.output
    shown = await asyncio.to_thread(_cli, "archive", "show", "alice", archive_id, *common)
    assert shown.exit_code == 0
    assert "from the cli" in shown.output
    exported = await asyncio.to_thread(_cli, "archive", "export", "alice", archive_id, *common)
    assert exported.exit_code == 0
    assert exported.output == rest_yaml
    unknown = await asyncio.to_thread(
        _cli, "archive", "show", "alice", "2020-01-01-00-00-00-000000000000", *common
    )
    assert unknown.exit_code == 1
    assert "unknown archive" in unknown.output
    nobody = await asyncio.to_thread(_cli, "archive", "ls", "carol", *common)
    assert nobody.exit_code == 0
    assert "no archived dialogs for carol" in nobody.output
    assert "s3cret" not in nobody.output


async def test_unreachable_postgresql_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    """PostgreSQL down at start-up: ConfigError naming TETHER_ARCHIVE_URL, password hidden."""
    settings = make_settings(tmp_path, archive_url=_closed_port_url())
    with pytest.raises(ConfigError) as checked:
        await check_store(settings)
    with pytest.raises(ConfigError) as opened:
        await open_manager(settings)
    for exc in (checked.value, opened.value):
        assert "TETHER_ARCHIVE_URL" in str(exc)
        assert "s3cret-pw" not in str(exc)
        assert "\n" not in str(exc)


async def test_a_non_postgresql_url_is_refused(tmp_path: Path) -> None:
    """TETHER_ARCHIVE_URL=redis://... is a ConfigError before anything connects."""
    settings = make_settings(tmp_path, archive_url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="postgresql://"):
        await check_store(settings)
