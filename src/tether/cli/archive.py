"""``tether archive ls|show``: archived dialogs, read straight from the data directory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tether.cli.output import add_row, age, json_option, print_json, print_table, table
from tether.errors import TetherError

F = TypeVar("F", bound=Callable[..., Any])


def _data_dir_option(command: F) -> F:
    return click.option(
        "--data-dir",
        envvar="TETHER_DATA_DIR",
        default="./data",
        show_default=True,
        # Must exist: reading archives never creates the directory, and a typo is
        # an error (exit 2), not an empty listing.
        type=click.Path(exists=True, file_okay=False),
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
@json_option
def archive_ls(data_dir: str, user: str, limit: int, as_json: bool) -> None:
    """List USER's archived dialogs, newest first (the id starts with the start time, UTC)."""
    found = _read(data_dir, lambda store: store.list(user, limit=limit))
    if as_json:
        print_json({"archives": [a.to_dict() for a in found]})
        return
    if not found:
        click.echo(f"no archived dialogs for {user} in {data_dir}")
        return
    rows = table("ARCHIVE ID", "KIND", "LASTED", "MSGS", "ENDED BY", keep=("ARCHIVE ID",))
    for a in found:
        add_row(
            rows,
            a.archive_id,
            a.kind,
            age(a.ended_at - a.started_at),
            str(a.message_count),
            # Recovery always ends server_shutdown; that it was recovered says more.
            "recovered" if a.recovered else a.end_reason.value,
        )
    print_table(rows)


@archive.command("show")
@_data_dir_option
@click.argument("user")
@click.argument("archive_id")
@json_option
def archive_show(data_dir: str, user: str, archive_id: str, as_json: bool) -> None:
    """Print one archived dialog."""
    dialog = _read(data_dir, lambda store: store.read(user, archive_id))
    if as_json:
        print_json(dialog.to_dict())
        return
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(dialog.started_at))
    recovered = " (recovered)" if dialog.recovered else ""
    click.echo(
        f"{dialog.archive_id}  {dialog.kind}  user={dialog.user}  started {started}\n"
        f"ended by {dialog.end_reason.value}{recovered} after "
        f"{age(dialog.ended_at - dialog.started_at)}, {len(dialog.messages)} message(s)"
    )
    for note in dialog.notes:
        click.echo(f"note: {note}")
    if not dialog.messages:
        return
    click.echo()
    rows = table("SEQ", "TIME", "ROLE", "CONTENT")
    for m in dialog.messages:
        add_row(
            rows,
            str(m.seq),
            time.strftime("%H:%M:%S", time.localtime(m.ts)),
            m.role.value,
            m.content,
        )
    print_table(rows)
