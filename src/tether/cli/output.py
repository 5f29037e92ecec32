"""How the commands print things: short ages, flattened values, tables, JSON.

Tables are borderless and sized to their content. On a terminal they fit its
width (long cells wrap, headers never break); piped, they are never squashed
to a guessed width: every cell is printed whole, one row per line, so
``grep`` and ``cut`` see what the terminal would. ``--json`` prints the same
objects the REST API returns, for scripts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

PIPED_WIDTH = 1_000_000
"""Console width when stdout is not a terminal: wide enough that no column is squashed."""

json_option = click.option(
    "--json", "as_json", is_flag=True, help="print JSON (the REST API's objects) instead"
)


def age(seconds: float) -> str:
    """A short human form of a length of time (``42s``, ``17m``, ``3.5h``, ``4.0d``)."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def fmt(value: Any) -> str:
    """A JSON value on one line: objects as ``k=v`` pairs, ``null`` as ``-``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "{}"
    return "-" if value is None else str(value)


def console() -> Console:
    """stdout: the terminal's width on a terminal, unlimited when piped."""
    import sys

    from rich.console import Console

    # Ask stdout itself: rich's is_terminal also says yes under FORCE_COLOR, and
    # its width then falls back to COLUMNS or 80, which squashes wide tables.
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPED_WIDTH)


def table(*headers: str, keep: tuple[str, ...] = ()) -> Table:
    """A borderless table; columns in ``keep`` never wrap (ids people copy)."""
    from rich.table import Table

    # No borders: two spaces between columns is all the chrome 80 columns can afford.
    out = Table(box=None, pad_edge=False, header_style="bold")
    for header in headers:
        out.add_column(header, min_width=len(header), no_wrap=header in keep, overflow="fold")
    return out


def add_row(rows: Table, *cells: str) -> None:
    """Add a row of plain text: ``[bold]`` or ``:smile:`` in a message is not markup."""
    from rich.text import Text

    rows.add_row(*(Text(cell) for cell in cells))


def print_table(rows: Table) -> None:
    """Print ``rows`` without the trailing spaces rich pads short cells with."""
    out = console()
    with out.capture() as captured:
        out.print(rows)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))
