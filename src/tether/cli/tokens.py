"""``tether token USER``: a bearer token signed with the server's key."""

from __future__ import annotations

import click

from tether.errors import TetherError


@click.command()
@click.argument("user")
@click.option("--ttl", default="1h", show_default=True, help="lifetime (90s, 10m, 1h, ...)")
@click.option("--admin", is_flag=True, help="an admin token (honoured while admin is enabled)")
@click.option(
    "--observe", is_flag=True, help="an observe-only token: it can only watch USER's sessions"
)
@click.option(
    "--secret", envvar="TETHER_SECRET", help="signing key [TETHER_SECRET]", show_envvar=False
)
def token(user: str, ttl: str, admin: bool, observe: bool, secret: str | None) -> None:
    """Print a signed bearer token for USER."""
    from tether.service.auth import TokenAuthority
    from tether.service.durations import parse_duration

    if not secret:
        raise click.ClickException(
            "set TETHER_SECRET (or --secret) to the server's key: a token signed with "
            "any other key is refused"
        )
    try:
        lifetime = parse_duration(ttl)
        click.echo(TokenAuthority(secret).mint(user, ttl=lifetime, admin=admin, observe=observe))
    except (ValueError, TetherError) as exc:
        raise click.ClickException(str(exc)) from None
