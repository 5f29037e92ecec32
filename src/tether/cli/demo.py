"""``tether demo``: a few sessions on the real clock, their warnings and ends printed."""

from __future__ import annotations

import asyncio
import logging

import click

from tether.core.policy import Policy
from tether.runtime.manager import SessionManager


@click.command()
@click.option("--idle", default=4.0, show_default=True, help="idle timeout in seconds")
@click.option("--warn", default=2.0, show_default=True, help="warning lead in seconds")
@click.option("--max-duration", default=9.0, show_default=True, help="absolute cap in seconds")
def demo(idle: float, warn: float, max_duration: float) -> None:
    """Run a few sessions on the real clock and print their warnings and ends."""
    from tether.cli.terminal_demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    policy = Policy(
        idle_timeout=idle, warn_before=warn, max_duration=max_duration, presence_timeout=1.5
    )
    asyncio.run(run_demo(SessionManager(policy=policy)))
