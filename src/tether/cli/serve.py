"""``tether serve``: the HTTP, WebSocket and SSE service, one flag per setting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tether.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _settings_options(command: F) -> F:
    """One ``--flag`` per :class:`~tether.service.Settings` field (flags beat the environment)."""
    from tether.service.settings import Settings, env_name, flag_name

    for name, field in reversed(list(Settings.model_fields.items())):
        if isinstance(field.validation_alias, str):
            continue  # the seeds' aliases are environment-only
        flag = flag_name(name)
        help_text = f"{field.description} [{env_name(name)}]"
        if field.annotation is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
        else:
            option = click.option(flag, name, default=None, metavar="VALUE", help=help_text)
        command = option(command)
    return command


@click.command()
@_settings_options
def serve(**flags: Any) -> None:
    """Serve the HTTP, WebSocket and SSE API (SIGTERM ends every session first)."""
    from tether.service import create_app, load_settings
    from tether.service.app import check_store
    from tether.service.server import run

    try:
        settings = load_settings(from_flags=True, **flags)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        app = create_app(settings)
        # Unreachable Redis: one line naming TETHER_REDIS_URL, not a lifespan traceback.
        asyncio.run(check_store(settings))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    run(app, settings)
