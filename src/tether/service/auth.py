"""Who is calling: HS256 bearer tokens and the admin token.

A bad token raises :class:`~tether.errors.Unauthorized`; a caller asking for
what only an admin may do, :class:`~tether.errors.Forbidden`.

A token's ``sub`` is the user id and ``exp`` its expiry; ``adm: true`` marks
an admin token minted by ``tether token --admin``; ``obs: true`` an
observe-only token (``tether token --observe``): it can watch its user's
sessions and read them, and nothing else. Admin rights, by either
that claim or the static ``TETHER_ADMIN_TOKEN``, exist only while
``TETHER_ADMIN_TOKEN`` is set: an operator who never set it has no admin
surface at all.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import jwt

from tether.core.ids import validate_user_id
from tether.errors import Forbidden, InvalidInput, Unauthorized
from tether.types import UserId

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
"""An HS256 key shorter than its hash is guessable (RFC 7518, section 3.2)."""
LEEWAY_S = 5.0
"""Clock skew tolerated on ``exp``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``user`` is ``None`` only for the static admin token, which belongs to
    nobody: it can read and end every session but cannot own one.
    """

    user: UserId | None
    admin: bool = False
    observe_only: bool = False
    """An observe-only token: it watches its user's sessions and changes nothing."""

    def require_admin(self) -> None:
        """Raise :class:`Forbidden` unless this is an admin."""
        if not self.admin:
            raise Forbidden("admin only")

    def require_participant(self) -> None:
        """Raise :class:`Forbidden` (``observe_only``) for an observe-only token."""
        if self.observe_only:
            raise Forbidden("this token can only observe sessions", code="observe_only")

    def check_role(self, role: object) -> None:
        """Clients append only ``user`` messages; admins any role (``forbidden_role``)."""
        if role != "user" and not self.admin:
            raise Forbidden("clients may append only role: user messages", code="forbidden_role")


class TokenAuthority:
    """Mints and verifies bearer tokens with one HS256 key."""

    def __init__(self, secret: str, *, admin_token: str | None = None) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise InvalidInput(
                f"the token secret must be at least {MIN_SECRET_BYTES} bytes (RFC 7518 3.2)"
            )
        self._secret = secret
        self._admin_token = admin_token or None

    @property
    def admin_enabled(self) -> bool:
        """Whether admin calls are possible at all."""
        return self._admin_token is not None

    def mint(
        self,
        user: str,
        *,
        ttl: float = 3600.0,
        admin: bool = False,
        observe: bool = False,
        now: float | None = None,
    ) -> str:
        """A signed token for ``user`` valid for ``ttl`` seconds (``observe``: watch only)."""
        if admin and observe:
            raise InvalidInput("a token is either admin or observe-only, not both")
        user_id = validate_user_id(user)
        issued = time.time() if now is None else now
        claims: dict[str, object] = {"sub": user_id, "iat": int(issued), "exp": int(issued + ttl)}
        if admin:
            claims["adm"] = True
        if observe:
            claims["obs"] = True
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str | None) -> Principal:
        """The caller behind ``token``, or :class:`Unauthorized` (never says which check failed)."""
        if not token:
            raise Unauthorized("missing bearer token")
        if self._admin_token is not None and hmac.compare_digest(
            token.encode(), self._admin_token.encode()
        ):
            return Principal(None, admin=True)
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub"]},
                leeway=LEEWAY_S,
            )
            user = validate_user_id(claims["sub"])
        except (jwt.PyJWTError, InvalidInput):
            raise Unauthorized("invalid or expired token") from None
        admin = claims.get("adm") is True and self.admin_enabled
        observe_only = claims.get("obs") is True
        return Principal(user, admin=admin and not observe_only, observe_only=observe_only)


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer ...`` header, if there is one."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
