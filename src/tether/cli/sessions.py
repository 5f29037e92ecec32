"""``tether sessions ls|show|end|cleanup``: sessions on a running server, as its admin."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import click

from tether.cli.output import add_row, age, fmt, json_option, print_json, print_table, table
from tether.cli.remote import call, client_options

CLEANUP_BATCH = 50
"""Session ids per ``specific`` cleanup request in ``cleanup --all``."""


@click.group()
def sessions() -> None:
    """Inspect and end sessions on a running server (needs the admin token)."""


SHORT_ID = 8
"""Hex characters of a session id the table shows; ``show`` and ``end`` take any unique prefix."""
MIN_PREFIX = 4
_SHORT_REASON = {"idle_timeout": "idle", "max_duration": "max", "client_gone": "gone"}


@sessions.command("ls")
@client_options
@click.option("--user", help="only this user's sessions")
@click.option("--state", type=click.Choice(["active", "warning", "ended"]), help="only this state")
@json_option
def sessions_ls(
    url: str, admin_token: str | None, user: str | None, state: str | None, as_json: bool
) -> None:
    """List sessions, newest ids shortened to 8 characters (show and end take them).

    NEXT is what the server will do on its own and in how long: ``warn 8m`` (a
    warning), ``idle 10m``, ``max 29m`` or ``gone 60s`` (the session ends
    idle_timeout, max_duration or client_gone); for an ended session, its end reason.
    """
    params = {k: v for k, v in (("user", user), ("state", state)) if v}
    found = call(url, admin_token, "GET", "/api/v1/sessions", params=params)["sessions"]
    if as_json:
        print_json({"sessions": found})
        return
    if not found:
        click.echo("no sessions")
        return
    now = time.time()
    rows = table("ID", "USER", "KIND", "STATE", "AGE", "IDLE", "CONN", "NEXT", keep=("ID",))
    for s in found:
        add_row(
            rows,
            s["id"][:SHORT_ID],
            s["user"],
            s["kind"],
            s["state"],
            age(now - s["created_at"]),
            age(now - s["last_activity"]),
            str(s["connections"]),
            _next(s, now),
        )
    print_table(rows)


def _next(session: dict[str, Any], now: float) -> str:
    """What the server does next and in how long (``warn 8m``, ``idle 10m``), or the end reason."""
    if session.get("end_reason"):
        return str(session["end_reason"])
    deadline = session.get("next_deadline")
    if not deadline:
        return "-"
    what = "warn" if deadline["action"] == "warn" else _SHORT_REASON.get(deadline["reason"], "end")
    return f"{what} {age(deadline['at'] - now)}"


def _resolve(url: str, admin_token: str | None, prefix: str) -> str:
    """The full id of the one session whose id starts with ``prefix``."""
    if len(prefix) == 32:
        return prefix
    if len(prefix) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
        raise click.BadParameter(
            f"{prefix!r}: give a session id or at least {MIN_PREFIX} of its first hex characters",
            param_hint="SESSION_ID",
        )
    found = call(url, admin_token, "GET", "/api/v1/sessions")["sessions"]
    matches = [s["id"] for s in found if s["id"].startswith(prefix)]
    if len(matches) == 1:
        return str(matches[0])
    if not matches:
        raise click.ClickException(f"no session id starts with {prefix}")
    raise click.ClickException(f"{len(matches)} session ids start with {prefix}: give more of it")


@sessions.command("show")
@client_options
@click.argument("session_id")
@json_option
def sessions_show(url: str, admin_token: str | None, session_id: str, as_json: bool) -> None:
    """Show one session (SESSION_ID: its id or a unique prefix, as `ls` shows)."""
    full = _resolve(url, admin_token, session_id)
    s = call(url, admin_token, "GET", f"/api/v1/sessions/{full}")
    if as_json:
        print_json(s)
        return
    rows = table("FIELD", "VALUE", keep=("FIELD",))
    for key, value in s.items():
        add_row(rows, key, fmt(value))
    print_table(rows)


@sessions.command("end")
@client_options
@click.argument("session_id")
def sessions_end(url: str, admin_token: str | None, session_id: str) -> None:
    """End one session (reason ``admin``); SESSION_ID may be a unique prefix."""
    full = _resolve(url, admin_token, session_id)
    result = call(url, admin_token, "POST", f"/api/v1/sessions/{full}/end")
    verb = "ended" if result["ended"] else "had already ended"
    click.echo(f"{full} {verb} ({result['reason']})")


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
