"""The command line: serve's flags, token, sessions against a live server, archives on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from service_kit import ADMIN_TOKEN, SECRET, asgi_client, auth, live_server, make_settings

from tether.cli import main
from tether.cli.output import age, fmt
from tether.service import Settings, create_app
from tether.service.auth import TokenAuthority


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    # A wide virtual terminal, so rich does not fold the table cells being checked.
    wide = {"COLUMNS": "240", **(env or {})}
    return CliRunner().invoke(main, list(args), env=wide, catch_exceptions=False)


def test_token_prints_a_token_the_server_accepts() -> None:
    """tether token USER signs with TETHER_SECRET; --admin adds the admin claim."""
    result = _run("token", "alice", "--ttl", "10m", env={"TETHER_SECRET": SECRET})
    assert result.exit_code == 0
    authority = TokenAuthority(SECRET, admin_token=ADMIN_TOKEN)
    principal = authority.verify(result.output.strip())
    assert (principal.user, principal.admin) == ("alice", False)
    admin = _run("token", "ops", "--admin", env={"TETHER_SECRET": SECRET})
    assert authority.verify(admin.output.strip()).admin


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("token", "alice"), {"TETHER_SECRET": ""}, "TETHER_SECRET"),
        (("token", "../x"), {"TETHER_SECRET": SECRET}, "invalid user id"),
        (("token", "alice", "--ttl", "soon"), {"TETHER_SECRET": SECRET}, "invalid duration"),
    ],
)
def test_token_explains_what_is_wrong(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """A missing secret, a bad user id or a bad ttl: exit 1 with the reason."""
    result = _run(*args, env=env)
    assert result.exit_code == 1
    assert message in result.output


def test_serve_has_a_flag_for_every_setting() -> None:
    """Every TETHER_* setting has a --flag on tether serve."""
    help_text = _run("serve", "--help").output
    for name, field in Settings.model_fields.items():
        if not isinstance(field.validation_alias, str):
            assert "--" + name.replace("_", "-") in help_text, name


def test_serve_refuses_an_invalid_setting_by_name() -> None:
    """An invalid value stops serve before it starts, named as given: variable or flag."""
    result = _run("serve", env={"TETHER_IDLE_TIMEOUT": "whenever"})
    assert result.exit_code == 1
    assert "Error: invalid configuration: TETHER_IDLE_TIMEOUT: invalid duration" in result.output
    flagged = _run("serve", "--max-message-bytes", "tiny")
    assert flagged.exit_code == 1
    assert "Error: invalid configuration: --max-message-bytes: " in flagged.output
    assert "TETHER_MAX_MESSAGE_BYTES" not in flagged.output


def test_serve_names_a_conflict_by_the_flag_and_variable_given() -> None:
    """A warning lead a flag made too long is reported against that flag and the variable."""
    result = _run("serve", "--warn-before", "2m", env={"TETHER_IDLE_TIMEOUT": "60s"})
    assert result.exit_code == 1
    assert result.output == (
        "Error: invalid configuration: --warn-before (2m) must be shorter than "
        "TETHER_IDLE_TIMEOUT (1m)\n"
    )


async def test_sessions_commands_against_a_live_server(tmp_path: Path) -> None:
    """sessions ls / show / end / cleanup talk to the server with the admin token."""
    settings = make_settings(tmp_path, presence_timeout=60.0)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        env = {"TETHER_URL": served.http, "TETHER_ADMIN_TOKEN": ADMIN_TOKEN}
        made = [
            (await client.post("/api/v1/sessions", headers=auth(user), json={"kind": kind})).json()
            for user, kind in (("alice", "interview"), ("bob", "chat"), ("bob", "call"))
        ]

        async def cli(*args: str, **extra: str) -> Result:
            return await asyncio.to_thread(_run, *args, env={**env, **extra})

        listed = await cli("sessions", "ls")
        assert listed.exit_code == 0
        assert all(s["id"] in listed.output for s in made)
        assert "interview" in listed.output
        shown = await cli("sessions", "show", made[0]["id"])
        assert "alice" in shown.output
        ended = await cli("sessions", "end", made[0]["id"])
        assert f"{made[0]['id']} ended (admin)" in ended.output
        cleaned = await cli("sessions", "cleanup", "--all")
        assert "ended 2 session(s)" in cleaned.output
        again = await cli("sessions", "cleanup", "--inactive-for", "1h")
        assert "ended 0 session(s)" in again.output
        refused = await cli("sessions", "ls", TETHER_ADMIN_TOKEN="wrong")
        assert refused.exit_code == 1
        assert "401" in refused.output
        nothing = await cli("sessions", "cleanup")
        assert nothing.exit_code == 2


async def test_archive_commands_read_the_data_dir(tmp_path: Path) -> None:
    """archive ls USER lists archived dialogs; archive show prints one with its messages."""
    app = create_app(make_settings(tmp_path))
    async with asgi_client(app) as client:
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        await client.post(
            f"/api/v1/sessions/{sid}/messages",
            headers=auth("alice"),
            json={"role": "user", "content": "remember this"},
        )
        ended: httpx.Response = await client.post(
            f"/api/v1/sessions/{sid}/end", headers=auth("alice")
        )
        assert ended.json()["ended"]
        listing = await client.get("/api/v1/users/alice/archives", headers=auth("alice"))
        archive_id = listing.json()["archives"][0]["archive_id"]
    listed = await asyncio.to_thread(_run, "archive", "ls", "alice", "--data-dir", str(tmp_path))
    assert listed.exit_code == 0
    assert archive_id in listed.output
    assert "client_ended" in listed.output
    shown = await asyncio.to_thread(
        _run, "archive", "show", "alice", archive_id, "--data-dir", str(tmp_path)
    )
    assert "remember this" in shown.output
    unknown = "2020-01-01-00-00-00-000000000000"
    missing = await asyncio.to_thread(
        _run, "archive", "show", "alice", unknown, "--data-dir", str(tmp_path)
    )
    assert missing.exit_code == 1


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-3.0, "0s"),
        (42.4, "42s"),
        (119.0, "119s"),
        (600.0, "10m"),
        (7199.0, "120m"),
        (12600.0, "3.5h"),
    ],
)
def test_ages_are_short(seconds: float, shown: str) -> None:
    """Tables show ages in seconds, then minutes, then hours; never negative."""
    assert age(seconds) == shown


def test_values_print_on_one_line() -> None:
    """Objects flatten to k=v pairs, null to '-', empty objects to '{}'."""
    assert fmt({"at": 1.5, "reason": None, "policy": {}}) == "at=1.5, reason=-, policy={}"
