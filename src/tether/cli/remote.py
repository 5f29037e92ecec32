"""Talking to a running server as its admin: the ``--url`` and ``--admin-token`` options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URL = "http://127.0.0.1:8765"


def client_options(command: F) -> F:
    """``--url`` and ``--admin-token`` (also from ``TETHER_URL`` and ``TETHER_ADMIN_TOKEN``)."""
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


def call(url: str, admin_token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One admin request, its decoded JSON; a readable error for every failure."""
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
