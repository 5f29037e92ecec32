"""The ``tether`` command line.

* ``tether serve``: the service (every ``TETHER_*`` setting is also a flag);
* ``tether token USER``: a signed bearer token;
* ``tether sessions ls|show|end|cleanup``: a running server, with the admin token;
* ``tether archive ls|show``: archived dialogs, read straight from the data dir;
* ``tether demo``: the lifecycle on the real clock, in the terminal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from tether.core.policy import Policy
from tether.errors import ConfigError, TetherError
from tether.runtime.manager import SessionManager

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URL = "http://127.0.0.1:8765"


@click.group()
@click.version_option(package_name="tether")
def main() -> None:
    """tether: the whole life of real-time conversational sessions."""


# -- serve --------------------------------------------------------------------------------


def _settings_options(command: F) -> F:
    """One ``--flag`` per :class:`~tether.service.Settings` field (flags beat the environment)."""
    from tether.service.settings import Settings, env_name

    for name, field in reversed(list(Settings.model_fields.items())):
        if isinstance(field.validation_alias, str):
            continue  # the seeds' aliases are environment-only
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description} [{env_name(name)}]"
        if field.annotation is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
        else:
            option = click.option(flag, name, default=None, metavar="VALUE", help=help_text)
        command = option(command)
    return command


@main.command()
@_settings_options
def serve(**flags: Any) -> None:
    """Serve the HTTP, WebSocket and SSE API (SIGTERM ends every session first)."""
    from tether.service import create_app, load_settings
    from tether.service.server import run

    try:
        settings = load_settings(**flags)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        app = create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    run(app, settings)


# -- token --------------------------------------------------------------------------------


@main.command()
@click.argument("user")
@click.option("--ttl", default="1h", show_default=True, help="lifetime (90s, 10m, 1h, ...)")
@click.option("--admin", is_flag=True, help="an admin token (honoured while admin is enabled)")
@click.option(
    "--secret", envvar="TETHER_SECRET", help="signing key [TETHER_SECRET]", show_envvar=False
)
def token(user: str, ttl: str, admin: bool, secret: str | None) -> None:
    """Print a signed bearer token for USER."""
    from tether.service.auth import TokenAuthority
    from tether.service.durations import parse_duration

    if not secret:
        raise click.ClickException(
            "set TETHER_SECRET (or --secret) to the server's key: a token signed with "
            "any other key is refused"
        )
    try:
        lifetime = parse_duration(ttl)
        click.echo(TokenAuthority(secret).mint(user, ttl=lifetime, admin=admin))
    except (ValueError, TetherError) as exc:
        raise click.ClickException(str(exc)) from None


# -- sessions -----------------------------------------------------------------------------


def _client_options(command: F) -> F:
    command = click.option(
        "--admin-token",
        envvar="TETHER_ADMIN_TOKEN",
        help="the server's admin token [TETHER_ADMIN_TOKEN]",
    )(command)
    command = click.option(
        "--url",
        envvar="TETHER_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="the server [TETHER_URL]",
    )(command)
    return command


def _call(url: str, admin_token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One admin request; a readable error for every failure."""
    import httpx

    if not admin_token:
        raise click.ClickException("set TETHER_ADMIN_TOKEN (or --admin-token)")
    headers = {"Authorization": f"Bearer {admin_token}"}
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, headers=headers, timeout=30.0, **kwargs
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise click.ClickException(f"{response.status_code} {message}")
    return response.json()


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@main.group()
def sessions() -> None:
    """Inspect and end sessions on a running server (needs the admin token)."""


@sessions.command("ls")
@_client_options
@click.option("--user", help="only this user's sessions")
@click.option("--state", type=click.Choice(["active", "warning", "ended"]), help="only this state")
def sessions_ls(url: str, admin_token: str | None, user: str | None, state: str | None) -> None:
    """List sessions."""
    from rich.console import Console
    from rich.table import Table

    params = {k: v for k, v in (("user", user), ("state", state)) if v}
    found = _call(url, admin_token, "GET", "/api/v1/sessions", params=params)["sessions"]
    now = time.time()
    table = Table(title=f"{len(found)} session(s)")
    for column in ("id", "user", "kind", "state", "age", "idle", "conns", "msgs", "ends"):
        table.add_column(column, no_wrap=column == "id")
    for s in found:
        deadline = s.get("next_deadline") or {}
        ends = s.get("end_reason") or (
            f"{deadline.get('reason')} in {_age(deadline['at'] - now)}" if deadline else ""
        )
        table.add_row(
            s["id"],
            s["user"],
            s["kind"],
            s["state"],
            _age(now - s["created_at"]),
            _age(now - s["last_activity"]),
            str(s["connections"]),
            str(s["message_count"]),
            ends,
        )
    Console().print(table)


@sessions.command("show")
@_client_options
@click.argument("session_id")
def sessions_show(url: str, admin_token: str | None, session_id: str) -> None:
    """Show one session."""
    from rich.console import Console
    from rich.table import Table

    s = _call(url, admin_token, "GET", f"/api/v1/sessions/{session_id}")
    table = Table(show_header=False, title=f"session {s['id']}")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in s.items():
        table.add_row(key, _fmt(value))
    Console().print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "{}"
    return "-" if value is None else str(value)


@sessions.command("end")
@_client_options
@click.argument("session_id")
def sessions_end(url: str, admin_token: str | None, session_id: str) -> None:
    """End one session (reason ``admin``)."""
    result = _call(url, admin_token, "POST", f"/api/v1/sessions/{session_id}/end")
    verb = "ended" if result["ended"] else "had already ended"
    click.echo(f"{session_id} {verb} ({result['reason']})")


@sessions.command("cleanup")
@_client_options
@click.option("--all", "everything", is_flag=True, help="end every live session")
@click.option("--inactive-for", help="end sessions with no activity for this long (e.g. 1h)")
@click.option("--user", help="only this user's sessions")
def sessions_cleanup(
    url: str,
    admin_token: str | None,
    everything: bool,
    inactive_for: str | None,
    user: str | None,
) -> None:
    """End every session (--all) or the inactive ones (--inactive-for 1h)."""
    from rich.progress import Progress

    if everything == (inactive_for is not None):
        raise click.UsageError("give exactly one of --all and --inactive-for")
    if inactive_for is not None:
        body: dict[str, Any] = {"type": "inactive", "inactive_for": inactive_for}
        if user:
            body["user"] = user
        result = _call(url, admin_token, "POST", "/api/v1/sessions/cleanup", json=body)
        click.echo(f"ended {result['ended']} session(s)")
        return
    params = {"user": user} if user else {}
    found = _call(url, admin_token, "GET", "/api/v1/sessions", params=params)["sessions"]
    ids = [s["id"] for s in found]
    ended = 0
    with Progress(transient=True) as progress:
        task = progress.add_task("ending sessions", total=len(ids))
        for batch in _batches(ids, 50):
            body = {"type": "specific", "session_ids": batch}
            result = _call(url, admin_token, "POST", "/api/v1/sessions/cleanup", json=body)
            ended += result["ended"]
            progress.advance(task, len(batch))
    click.echo(f"ended {ended} session(s)")


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- archive ------------------------------------------------------------------------------


def _data_dir_option(command: F) -> F:
    return click.option(
        "--data-dir",
        envvar="TETHER_DATA_DIR",
        default="./data",
        show_default=True,
        help="the server's data directory [TETHER_DATA_DIR]",
    )(command)


@main.group()
def archive() -> None:
    """Read archived dialogs from the data directory."""


@archive.command("ls")
@_data_dir_option
@click.argument("user")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def archive_ls(data_dir: str, user: str, limit: int) -> None:
    """List USER's archived dialogs, newest first."""
    from rich.console import Console
    from rich.table import Table

    from tether.archive.yaml_archive import YamlArchive

    async def read() -> list[Any]:
        store = YamlArchive(data_dir)
        try:
            return await store.list(user, limit=limit)
        finally:
            await store.aclose()

    try:
        found = asyncio.run(read())
    except TetherError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title=f"{user}: {len(found)} archived dialog(s)")
    for column in ("archive id", "kind", "started", "duration", "ended by", "messages"):
        table.add_column(column, no_wrap=column == "archive id")
    for a in found:
        table.add_row(
            a.archive_id,
            a.kind,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.started_at)),
            _age(a.ended_at - a.started_at),
            a.end_reason.value + (" (recovered)" if a.recovered else ""),
            str(a.message_count),
        )
    Console().print(table)


@archive.command("show")
@_data_dir_option
@click.argument("user")
@click.argument("archive_id")
def archive_show(data_dir: str, user: str, archive_id: str) -> None:
    """Print one archived dialog."""
    from rich.console import Console
    from rich.table import Table

    from tether.archive.yaml_archive import YamlArchive

    async def read() -> Any:
        store = YamlArchive(data_dir)
        try:
            return await store.read(user, archive_id)
        finally:
            await store.aclose()

    try:
        dialog = asyncio.run(read())
    except TetherError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    console.print(
        f"[bold]{dialog.archive_id}[/bold]  {dialog.kind}  user={dialog.user}  "
        f"ended by {dialog.end_reason.value} after {_age(dialog.ended_at - dialog.started_at)}"
    )
    for note in dialog.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    table = Table()
    for column in ("seq", "time", "role", "content"):
        table.add_column(column)
    for m in dialog.messages:
        table.add_row(
            str(m.seq), time.strftime("%H:%M:%S", time.localtime(m.ts)), m.role.value, m.content
        )
    console.print(table)


# -- demo ---------------------------------------------------------------------------------


@main.command()
@click.option("--idle", default=4.0, show_default=True, help="idle timeout in seconds")
@click.option("--warn", default=2.0, show_default=True, help="warning lead in seconds")
@click.option("--max-duration", default=9.0, show_default=True, help="absolute cap in seconds")
def demo(idle: float, warn: float, max_duration: float) -> None:
    """Run a few sessions on the real clock and print their warnings and ends."""
    from tether.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    policy = Policy(
        idle_timeout=idle, warn_before=warn, max_duration=max_duration, presence_timeout=1.5
    )
    asyncio.run(run_demo(SessionManager(policy=policy)))


if __name__ == "__main__":  # ``python -m tether.cli``
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
