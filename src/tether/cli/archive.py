"""``tether archive ls|show|export``: archived dialogs, read straight from where they are kept.

That is the data directory's YAML files, or, with ``--archive-url`` (or
``TETHER_ARCHIVE_URL``, as the server reads it), the PostgreSQL table every
node writes to.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tether.cli.output import add_row, age, json_option, print_json, print_table, table
from tether.errors import TetherError

F = TypeVar("F", bound=Callable[..., Any])


def _source_options(command: F) -> F:
    command = click.option(
        "--archive-url",
        envvar="TETHER_ARCHIVE_URL",
        default=None,
        help="read archives from PostgreSQL at this postgresql:// URL [TETHER_ARCHIVE_URL]",
    )(command)
    return click.option(
        "--data-dir",
        envvar="TETHER_DATA_DIR",
        default="./data",
        show_default=True,
        type=click.Path(file_okay=False),
        help="the server's data directory [TETHER_DATA_DIR]",
    )(command)


def _where(data_dir: str, archive_url: str | None) -> str:
    """Where archives are read from, for messages (a URL without its password)."""
    if archive_url is None:
        return data_dir
    from tether.service.app import redacted_url

    return redacted_url(archive_url)


def _read(data_dir: str, archive_url: str | None, use: Callable[[Any], Any]) -> Any:
    """Run ``use(archive)`` on the archive the options name; a readable error if it fails."""
    from tether.archive.base import Archiver
    from tether.archive.yaml_archive import YamlArchive
    from tether.service.app import pg_archiver

    if archive_url is None and not os.path.isdir(data_dir):
        # Reading archives never creates the directory, and a typo is an
        # error (exit 2), not an empty listing.
        raise click.BadParameter(
            f"Directory '{data_dir}' does not exist.", param_hint="'--data-dir'"
        )

    async def read() -> Any:
        store: Archiver = YamlArchive(data_dir) if archive_url is None else pg_archiver(archive_url)
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
    """Read archived dialogs from the data directory (or PostgreSQL: --archive-url)."""


@archive.command("ls")
@_source_options
@click.argument("user")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def archive_ls(
    data_dir: str, archive_url: str | None, user: str, limit: int, as_json: bool
) -> None:
    """List USER's archived dialogs, newest first (the id starts with the start time, UTC)."""
    found = _read(data_dir, archive_url, lambda store: store.list(user, limit=limit))
    if as_json:
        print_json({"archives": [a.to_dict() for a in found]})
        return
    if not found:
        click.echo(f"no archived dialogs for {user} in {_where(data_dir, archive_url)}")
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
@_source_options
@click.argument("user")
@click.argument("archive_id")
@json_option
def archive_show(
    data_dir: str, archive_url: str | None, user: str, archive_id: str, as_json: bool
) -> None:
    """Print one archived dialog."""
    dialog = _read(data_dir, archive_url, lambda store: store.read(user, archive_id))
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


@archive.command("export")
@_source_options
@click.argument("user")
@click.argument("archive_id")
def archive_export(data_dir: str, archive_url: str | None, user: str, archive_id: str) -> None:
    """Print one archived dialog as its YAML document (the file archiver's bytes)."""
    from tether.archive.yaml_archive import dialog_to_yaml

    dialog = _read(data_dir, archive_url, lambda store: store.read(user, archive_id))
    click.echo(dialog_to_yaml(dialog), nl=False)
