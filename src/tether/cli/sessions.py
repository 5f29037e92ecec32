"""``tether sessions ls|show|end|cleanup``: sessions on a running server, as its admin."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import click

from tether.cli.output import age, fmt
from tether.cli.remote import call, client_options

CLEANUP_BATCH = 50
"""Session ids per ``specific`` cleanup request in ``cleanup --all``."""


@click.group()
def sessions() -> None:
    """Inspect and end sessions on a running server (needs the admin token)."""


@sessions.command("ls")
@client_options
@click.option("--user", help="only this user's sessions")
@click.option("--state", type=click.Choice(["active", "warning", "ended"]), help="only this state")
def sessions_ls(url: str, admin_token: str | None, user: str | None, state: str | None) -> None:
    """List sessions."""
    from rich.console import Console
    from rich.table import Table

    params = {k: v for k, v in (("user", user), ("state", state)) if v}
    found = call(url, admin_token, "GET", "/api/v1/sessions", params=params)["sessions"]
    now = time.time()
    table = Table(title=f"{len(found)} session(s)")
    for column in ("id", "user", "kind", "state", "age", "idle", "conns", "msgs", "ends"):
        table.add_column(column, no_wrap=column == "id")
    for s in found:
        deadline = s.get("next_deadline") or {}
        ends = s.get("end_reason") or (
            f"{deadline.get('reason')} in {age(deadline['at'] - now)}" if deadline else ""
        )
        table.add_row(
            s["id"],
            s["user"],
            s["kind"],
            s["state"],
            age(now - s["created_at"]),
            age(now - s["last_activity"]),
            str(s["connections"]),
            str(s["message_count"]),
            ends,
        )
    Console().print(table)


@sessions.command("show")
@client_options
@click.argument("session_id")
def sessions_show(url: str, admin_token: str | None, session_id: str) -> None:
    """Show one session."""
    from rich.console import Console
    from rich.table import Table

    s = call(url, admin_token, "GET", f"/api/v1/sessions/{session_id}")
    table = Table(show_header=False, title=f"session {s['id']}")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in s.items():
        table.add_row(key, fmt(value))
    Console().print(table)


@sessions.command("end")
@client_options
@click.argument("session_id")
def sessions_end(url: str, admin_token: str | None, session_id: str) -> None:
    """End one session (reason ``admin``)."""
    result = call(url, admin_token, "POST", f"/api/v1/sessions/{session_id}/end")
    verb = "ended" if result["ended"] else "had already ended"
    click.echo(f"{session_id} {verb} ({result['reason']})")


@sessions.command("cleanup")
@client_options
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
        result = call(url, admin_token, "POST", "/api/v1/sessions/cleanup", json=body)
        click.echo(f"ended {result['ended']} session(s)")
        return
    params = {"user": user} if user else {}
    found = call(url, admin_token, "GET", "/api/v1/sessions", params=params)["sessions"]
    ids = [s["id"] for s in found]
    ended = 0
    with Progress(transient=True) as progress:
        task = progress.add_task("ending sessions", total=len(ids))
        for batch in _batches(ids, CLEANUP_BATCH):
            body = {"type": "specific", "session_ids": batch}
            result = call(url, admin_token, "POST", "/api/v1/sessions/cleanup", json=body)
            ended += result["ended"]
            progress.advance(task, len(batch))
    click.echo(f"ended {ended} session(s)")


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
