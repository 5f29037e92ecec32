"""The ``tether`` command line.

* ``tether serve``: the service (every ``TETHER_*`` setting is also a flag);
* ``tether token USER``: a signed bearer token;
* ``tether sessions ls|show|end|cleanup``: a running server, with the admin token;
* ``tether archive ls|show``: archived dialogs, read straight from the data dir;
* ``tether demo``: the lifecycle on the real clock, in the terminal.

One module per command group; :mod:`~tether.cli.output` holds the shared
formatting and :mod:`~tether.cli.remote` the HTTP calls to a server.
"""

from __future__ import annotations

import click

from tether.cli import archive, demo, serve, sessions, tokens


@click.group()
@click.version_option(package_name="tether")
def main() -> None:
    """tether: the whole life of real-time conversational sessions."""


main.add_command(serve.serve)
main.add_command(tokens.token)
main.add_command(sessions.sessions)
main.add_command(archive.archive)
main.add_command(demo.demo)

__all__ = ["main"]
