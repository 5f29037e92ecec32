"""Tokens, the Origin check and log redaction (limits: test_service_limits.py)."""

from __future__ import annotations

import logging
import time

import jwt
import pytest
from starlette.requests import ClientDisconnect

from tether.core.ids import log_ref
from tether.errors import Forbidden, InvalidInput, Unauthorized
from tether.service.auth import Principal, TokenAuthority, bearer
from tether.service.errors import problem_for
from tether.service.logs import RedactFilter, redact
from tether.service.origin import origin_allowed

SECRET = "guards-secret-0123456789abcdefghij"


def test_a_minted_token_verifies_to_its_user() -> None:
    """sub is the user; an ordinary token is not admin."""
    authority = TokenAuthority(SECRET, admin_token="adm")
    assert authority.verify(authority.mint("alice")) == Principal("alice", admin=False)


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "not-a-jwt",
        jwt.encode(
            {"sub": "alice", "exp": int(time.time()) + 60},
            "another-secret-entirely-0123456789abcdef",
        ),
        jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
        jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "../etc", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET * 2, algorithm="HS512"),
    ],
    ids=["none", "empty", "garbage", "forged", "no-exp", "no-sub", "bad-sub", "wrong-alg"],
)
def test_bad_tokens_are_refused(token: str | None) -> None:
    """Missing, malformed, forged, incomplete or wrongly signed tokens are Unauthorized."""
    with pytest.raises(Unauthorized):
        TokenAuthority(SECRET).verify(token)


def test_expired_tokens_are_refused() -> None:
    """A token past its exp (beyond the small leeway) is Unauthorized."""
    authority = TokenAuthority(SECRET)
    stale = authority.mint("alice", ttl=60, now=time.time() - 3600)
    with pytest.raises(Unauthorized):
        authority.verify(stale)


def test_admin_needs_the_admin_token_to_be_configured() -> None:
    """The static admin token and adm-claim tokens are admin only while admin is enabled."""
    enabled = TokenAuthority(SECRET, admin_token="the-admin-token")
    assert enabled.verify("the-admin-token") == Principal(None, admin=True)
    assert enabled.verify(enabled.mint("ops", admin=True)).admin
    disabled = TokenAuthority(SECRET)
    assert not disabled.verify(disabled.mint("ops", admin=True)).admin
    with pytest.raises(Unauthorized):
        disabled.verify("the-admin-token")
    with pytest.raises(Forbidden):
        Principal("alice").require_admin()


def test_short_secrets_are_refused() -> None:
    """An HS256 key under 32 bytes is guessable: refused outright."""
    with pytest.raises(InvalidInput, match="32"):
        TokenAuthority("short")


def test_bearer_header_parsing() -> None:
    """Only 'Bearer <token>' yields a token."""
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "a.example", (), True),
        ("https://a.example", "a.example", (), True),
        ("https://a.example", "a.example:443", (), True),
        ("http://127.0.0.1:8765", "127.0.0.1:8765", (), True),
        ("http://127.0.0.1:9999", "127.0.0.1:8765", (), False),
        ("https://evil.example", "a.example", (), False),
        ("null", "a.example", (), False),
        ("https://app.example", "api.example", ("https://app.example",), True),
        ("https://app.example/", "api.example", ("https://app.example",), True),
        ("https://app.example:8443", "api.example", ("https://app.example",), False),
        ("https://api.example", "api.example", ("https://app.example",), False),
    ],
)
def test_origin_check(origin: str | None, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    """Same origin by default, the exact allowlist when set; no Origin is a non-browser."""
    assert origin_allowed(origin, host, allowed) is ok


def test_redaction_hides_session_ids_and_tokens() -> None:
    """Session ids become their log_ref; token query values and bearer tokens vanish."""
    sid = "0123456789abcdef0123456789abcdef"
    line = redact(f'GET /api/v1/sessions/{sid}/events?token=eyJ.abc.def&x=1 "Bearer eyJ.x.y"')
    assert sid not in line
    assert log_ref(sid) in line
    assert "eyJ" not in line


def test_redact_filter_keeps_access_log_arguments_positional() -> None:
    """The filter rewrites string arguments in place, as uvicorn's access formatter needs."""
    sid = "fedcba9876543210fedcba9876543210"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s" %d',
        ("127.0.0.1", "GET", f"/api/v1/sessions/{sid}?token=t0k", 200),
        None,
    )
    assert RedactFilter().filter(record)
    assert isinstance(record.args, tuple)
    assert len(record.args) == 4
    assert sid not in record.getMessage()
    assert "t0k" not in record.getMessage()


def test_a_client_hanging_up_mid_body_is_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ClientDisconnect maps to a quiet client_disconnected problem: no ERROR record, no 500."""
    with caplog.at_level(logging.DEBUG, logger="tether.service"):
        problem = problem_for(ClientDisconnect())
    assert (problem.status, problem.code) == (400, "client_disconnected")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
