"""The command line: serve's flags, token, sessions against a live server, archives on disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from service_kit import ADMIN, ADMIN_TOKEN, SECRET, asgi_client, auth, live_server, make_settings

from tether.cli import main
from tether.cli.output import add_row, age, fmt, print_table, table
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
        assert all(s["id"][:8] in listed.output for s in made)
        assert "interview" in listed.output
        shown = await cli("sessions", "show", made[0]["id"])
        assert "alice" in shown.output
        assert made[0]["id"] in shown.output
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
        (4 * 86400.0, "4.0d"),
    ],
)
def test_ages_are_short(seconds: float, shown: str) -> None:
    """Tables show ages in seconds, then minutes, then hours; never negative."""
    assert age(seconds) == shown


def test_values_print_on_one_line() -> None:
    """Objects flatten to k=v pairs, null to '-', empty objects to '{}'."""
    assert fmt({"at": 1.5, "reason": None, "policy": {}}) == "at=1.5, reason=-, policy={}"


def _piped(*args: str, env: dict[str, str] | None = None) -> Result:
    # No COLUMNS: stdout is not a terminal, as under a pipe or in a cron job.
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


async def _realistic_sessions(client: httpx.AsyncClient) -> list[dict[str, object]]:
    """Sessions as a deployment has them: e-mail user ids, hyphenated kinds, a transcript."""
    made = []
    for user, kind in (
        ("alice@example.com", "support-chat"),
        ("bob", "interview"),
        ("carol_1987", "voice-call"),
    ):
        created = await client.post("/api/v1/sessions", headers=auth(user), json={"kind": kind})
        made.append(created.json())
    await client.post(
        f"/api/v1/sessions/{made[1]['id']}/messages",
        headers=auth("bob"),
        json={"role": "user", "content": "hello"},
    )
    return made


def _fits_80_columns(output: str) -> None:
    lines = output.splitlines()
    assert lines, output
    assert max(len(line) for line in lines) <= 80, output
    assert "\u2026" not in output, output  # rich's ellipsis: a squashed cell


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "80-column terminal"])
async def test_sessions_ls_fits_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    """Piped or on an 80-column terminal, `sessions ls` prints realistic rows whole, one line
    each of at most 80 characters, with no squashed cell."""
    if terminal:
        from rich.console import Console

        screen = Console(width=80, force_terminal=True, color_system=None)
        monkeypatch.setattr("tether.cli.output.console", lambda: screen)
    settings = make_settings(tmp_path, presence_timeout=60.0)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        made = await _realistic_sessions(client)
        env = {"TETHER_URL": served.http, "TETHER_ADMIN_TOKEN": ADMIN_TOKEN}
        listed = await asyncio.to_thread(_piped, "sessions", "ls", env=env)
    assert listed.exit_code == 0
    _fits_80_columns(listed.output)
    header, *rows = listed.output.splitlines()
    assert header.split() == ["ID", "USER", "KIND", "STATE", "AGE", "IDLE", "CONN", "NEXT"]
    assert len(rows) == 3
    for session in made:
        row = next(r for r in rows if r.startswith(str(session["id"])[:8]))
        cells = row.split()
        assert cells[1:4] == [session["user"], session["kind"], "active"]
        # nothing attached and no heartbeat: no presence clock (docs/lifecycle.md), so the
        # next deadline is the idle warning, 10m - 2m after the start
        assert cells[6:] == ["0", "warn", "8m"]


async def test_sessions_json_is_the_rest_api_objects(tmp_path: Path) -> None:
    """`sessions ls --json` and `show --json` print the REST objects; show takes a prefix."""
    settings = make_settings(tmp_path, presence_timeout=60.0)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        made = await _realistic_sessions(client)
        env = {"TETHER_URL": served.http, "TETHER_ADMIN_TOKEN": ADMIN_TOKEN}

        async def cli(*args: str) -> Result:
            return await asyncio.to_thread(_piped, *args, env=env)

        listed = json.loads((await cli("sessions", "ls", "--json")).output)
        rest = (await client.get("/api/v1/sessions", headers=ADMIN)).json()
        shown = await cli("sessions", "show", str(made[1]["id"])[:8], "--json")
        too_short = await cli("sessions", "show", "ab")
        unknown = await cli("sessions", "show", "0000000")
    assert sorted(s["id"] for s in listed["sessions"]) == sorted(s["id"] for s in made)
    assert [sorted(s) for s in listed["sessions"]] == [sorted(s) for s in rest["sessions"]]
    one = json.loads(shown.output)
    assert (one["id"], one["user"], one["message_count"]) == (made[1]["id"], "bob", 1)
    assert too_short.exit_code == 2
    assert "at least 4 of its first hex characters" in too_short.output
    assert unknown.exit_code == 1
    assert "no session id starts with 0000000" in unknown.output


async def _archived(tmp_path: Path, content: str) -> str:
    """End one of alice's sessions with one message; its archive id."""
    app = create_app(make_settings(tmp_path))
    async with asgi_client(app) as client:
        sid = (
            await client.post("/api/v1/sessions", headers=auth("alice"), json={"kind": "interview"})
        ).json()["id"]
        await client.post(
            f"/api/v1/sessions/{sid}/messages",
            headers=auth("alice"),
            json={"role": "user", "content": content},
        )
        await client.post(f"/api/v1/sessions/{sid}/end", headers=auth("alice"))
        listing = await client.get("/api/v1/users/alice/archives", headers=auth("alice"))
        archive_id: str = listing.json()["archives"][0]["archive_id"]
        return archive_id


async def test_archive_ls_fits_80_columns_and_json_parses(tmp_path: Path) -> None:
    """Piped `archive ls` fits 80 columns whole; --json of ls and show are the REST objects."""
    archive_id = await _archived(tmp_path, "[bold]not markup[/bold] :smile:")
    data = ("--data-dir", str(tmp_path))
    listed = await asyncio.to_thread(_piped, "archive", "ls", "alice", *data)
    as_json = await asyncio.to_thread(_piped, "archive", "ls", "alice", *data, "--json")
    shown = await asyncio.to_thread(_piped, "archive", "show", "alice", archive_id, *data)
    dialog = await asyncio.to_thread(
        _piped, "archive", "show", "alice", archive_id, *data, "--json"
    )
    _fits_80_columns(listed.output)
    header, row = listed.output.splitlines()
    assert header.split() == ["ARCHIVE", "ID", "KIND", "LASTED", "MSGS", "ENDED", "BY"]
    assert row.split()[0] == archive_id
    assert row.split()[1:] == ["interview", "0s", "1", "client_ended"]
    summaries = json.loads(as_json.output)["archives"]
    assert [(a["archive_id"], a["message_count"]) for a in summaries] == [(archive_id, 1)]
    assert "[bold]not markup[/bold] :smile:" in shown.output
    messages = json.loads(dialog.output)["messages"]
    assert [m["content"] for m in messages] == ["[bold]not markup[/bold] :smile:"]


@pytest.mark.parametrize(
    "command", [("ls", "alice"), ("show", "alice", "2020-01-01-00-00-00-000000000000")]
)
def test_archive_with_a_missing_data_dir_is_a_usage_error(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`archive ls|show --data-dir MISSING` exits 2 naming the directory, and creates nothing."""
    missing = tmp_path / "nonexistent"
    result = _piped("archive", *command, "--data-dir", str(missing))
    assert result.exit_code == 2
    assert f"Invalid value for '--data-dir': Directory '{missing}' does not exist." in (
        result.output
    )
    assert "archived dialog" not in result.output
    assert not missing.exists()


def test_print_table_strips_the_padding(capsys: pytest.CaptureFixture[str]) -> None:
    """Piped tables carry no trailing spaces (short last cells are not padded)."""
    rows = table("A", "LONGER")
    add_row(rows, "x", "a long last cell")
    add_row(rows, "y", "z")
    print_table(rows)
    assert all(line == line.rstrip() for line in capsys.readouterr().out.splitlines())
