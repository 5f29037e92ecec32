"""``tether archive ls|show``: archived dialogs, read straight from the data directory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tether.cli.output import age
from tether.errors import TetherError

F = TypeVar("F", bound=Callable[..., Any])


def _data_dir_option(command: F) -> F:
    return click.option(
        "--data-dir",
        envvar="TETHER_DATA_DIR",
        default="./data",
        show_default=True,
        help="the server's data directory [TETHER_DATA_DIR]",
    )(command)


def _read(data_dir: str, use: Callable[[Any], Any]) -> Any:
    """Run ``use(archive)`` on the data dir's archive; a readable error if it fails."""
    from tether.archive.yaml_archive import YamlArchive

    async def read() -> Any:
        store = YamlArchive(data_dir)
        try:
            return await use(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(read())
    except TetherError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
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

    found = _read(data_dir, lambda store: store.list(user, limit=limit))
    table = Table(title=f"{user}: {len(found)} archived dialog(s)")
    for column in ("archive id", "kind", "started", "duration", "ended by", "messages"):
        table.add_column(column, no_wrap=column == "archive id")
    for a in found:
        table.add_row(
            a.archive_id,
            a.kind,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.started_at)),
            age(a.ended_at - a.started_at),
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

    dialog = _read(data_dir, lambda store: store.read(user, archive_id))
    console = Console()
    console.print(
        f"[bold]{dialog.archive_id}[/bold]  {dialog.kind}  user={dialog.user}  "
        f"ended by {dialog.end_reason.value} after {age(dialog.ended_at - dialog.started_at)}"
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
