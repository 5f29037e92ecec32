"""Service settings: ``TETHER_*`` environment variables, the seeds' aliases, flags on top.

Every setting is a field of :class:`Settings`; ``tether serve`` turns each
into a flag, and flags win over the environment. :func:`load_settings` is the
one entry point that turns every invalid value into a
:class:`~tether.errors.ConfigError` naming the variable, so a typo fails at
start-up rather than at the first timeout.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tether.core.policy import Policy
from tether.errors import ConfigError, PolicyError
from tether.service.auth import MIN_SECRET_BYTES
from tether.service.durations import Duration

ENV_PREFIX = "TETHER_"


class Settings(BaseSettings):
    """Everything ``tether serve`` (or :func:`tether.service.create_app`) can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8765, ge=0, le=65535, description="port to listen on (0: any free one)")
    idle_timeout: Duration = Field(600.0, description="no user activity this long ends a session")
    warn_before: Duration = Field(120.0, description="warning lead before an end; 0: no warnings")
    max_duration: Duration = Field(1800.0, description="absolute cap on a session's life")
    presence_timeout: Duration = Field(
        60.0, description="no connection or heartbeat this long: client_gone; reconnect grace"
    )
    heartbeat_interval: Duration = Field(25.0, description="heartbeat period clients are told")
    redis_url: str | None = Field(None, description="Redis URL; unset: the memory store")
    redis_fallback: Literal["none", "memory"] = Field(
        "none",
        description="Redis unreachable at start-up: none (refuse to start) or memory (run alone)",
    )
    node_lease: Duration = Field(
        15.0, gt=0, description="Redis: a node not renewing its lease this long is given up"
    )
    end_lease: Duration = Field(
        30.0, gt=0, description="Redis: an unfinished end is handed to another node after this"
    )
    cluster_poll: Duration = Field(
        5.0, gt=0, description="Redis: the longest a node waits between looks at the deadlines"
    )
    data_dir: Path = Field(Path("./data"), description="journals and archives live here")
    fsync: Literal["always", "everysec", "no"] = Field(
        "always", description="when transcript journals reach the disk (like Redis's appendfsync)"
    )
    secret: SecretStr | None = Field(
        None, description="HS256 key for bearer tokens; unset: random per process (demo only)"
    )
    admin_token: SecretStr | None = Field(
        None, description="bearer token for admin calls; unset: admin calls are refused"
    )
    allowed_origins: str = Field(
        "", description="comma-separated exact Origins for WebSocket upgrades; empty: same origin"
    )
    max_message_bytes: int = Field(
        65536, ge=256, description="largest WebSocket frame (1009) and HTTP body (413)"
    )
    max_sessions_per_user: int = Field(
        5, ge=1, description="live sessions per user; the next start replaces the oldest"
    )
    max_connections_per_user: int = Field(
        20, ge=1, description="open WebSocket and SSE connections per user"
    )
    max_messages_per_minute: int = Field(
        600, ge=1, description="client frames per WebSocket connection per minute"
    )
    message_burst: int = Field(60, ge=1, description="frames a connection may send at once")
    max_requests_per_minute: int = Field(
        600, ge=1, description="REST requests per user per minute (then 429 with Retry-After)"
    )
    request_burst: int = Field(120, ge=1, description="REST requests a user may make at once")
    hello_timeout: Duration = Field(5.0, description="time a WebSocket has to send hello")
    sse_ping_interval: Duration = Field(15.0, description="comment heartbeat on SSE streams")
    shutdown_grace: Duration = Field(10.0, description="bound on ending sessions at SIGTERM")
    demo: bool = Field(False, description="serve the demo page and let it mint demo tokens")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="log level"
    )
    test_archive_hold: Duration = Field(
        0.0,
        ge=0,
        description="testing only: hold each end pipeline this long after its archive is "
        "written (to kill a node mid-pipeline); keep 0",
    )

    # Bounds on what one client can make the server hold (docs/operations.md, "Bounds").
    header_timeout: Duration = Field(
        10.0, gt=0, description="a request's headers must all arrive within this (else 408, close)"
    )
    body_timeout: Duration = Field(
        30.0, gt=0, description="a request's body must all arrive within this (else 408, close)"
    )
    max_unauthenticated: int = Field(
        1024,
        ge=1,
        description="connections still sending headers or not yet past WebSocket hello; "
        "beyond it new ones get 503 (HTTP) or close 1013 (WebSocket)",
    )
    max_content_bytes: int = Field(
        262144, ge=1, description="largest transcript message: content plus metadata JSON bytes"
    )
    max_transcript_messages: int = Field(
        10000, ge=1, description="messages one session's transcript may hold (then 413)"
    )
    max_transcript_bytes: int = Field(
        8388608, ge=1, description="bytes one session's transcript may hold (then 413)"
    )
    ended_retention: Duration = Field(
        3600.0, gt=0, description="how long an ended session is still answered from the store"
    )
    max_ended: int = Field(
        10000, ge=0, description="memory store: most ended sessions retained (oldest go first)"
    )
    max_ended_bytes: int = Field(
        268435456,
        ge=0,
        description="memory store: most transcript bytes of retained ended sessions",
    )

    # The seeds' names, in their own units. Explicit TETHER_* values win.
    session_timeout_ms: float | None = Field(
        None, ge=1, validation_alias="SESSION_TIMEOUT", description="alias: idle timeout in ms"
    )
    session_check_interval_ms: float | None = Field(
        None,
        ge=0,
        validation_alias="SESSION_CHECK_INTERVAL",
        description="alias: accepted and unused (expiry is deadline-driven)",
    )
    auto_archive_on_disconnect: bool | None = Field(
        None,
        validation_alias="AUTO_ARCHIVE_ON_DISCONNECT",
        description="alias: true means a presence timeout of 0",
    )

    _generated_secret: str | None = PrivateAttr(None)

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_SECRET_BYTES} bytes; try: openssl rand -hex 32"
            )
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _join_origins(cls, value: object) -> object:
        # Accept a list from code and a comma-separated string from the environment.
        if isinstance(value, list | tuple):
            return ",".join(str(v) for v in value)
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _clean_origins(cls, value: str) -> str:
        origins = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        for origin in origins:
            if origin != "null" and "://" not in origin:
                raise ValueError(f"origin {origin!r} must look like https://host[:port]")
        return ",".join(origins)

    # -- derived values ---------------------------------------------------------------

    @property
    def origins(self) -> tuple[str, ...]:
        """The allowlist; empty means "the server's own origin only"."""
        return tuple(o for o in self.allowed_origins.split(",") if o)

    @property
    def effective_idle_timeout(self) -> float:
        """``TETHER_IDLE_TIMEOUT``, else ``SESSION_TIMEOUT`` (ms), else the default."""
        if "idle_timeout" not in self.model_fields_set and self.session_timeout_ms is not None:
            return self.session_timeout_ms / 1000.0
        return self.idle_timeout

    @property
    def effective_presence_timeout(self) -> float:
        """``TETHER_PRESENCE_TIMEOUT``, else 0 under ``AUTO_ARCHIVE_ON_DISCONNECT=true``."""
        if "presence_timeout" not in self.model_fields_set and self.auto_archive_on_disconnect:
            return 0.0
        return self.presence_timeout

    def policy(self) -> Policy:
        """The default session policy, or :class:`ConfigError` naming the variable."""
        try:
            return Policy(
                idle_timeout=self.effective_idle_timeout,
                warn_before=self.warn_before,
                max_duration=self.max_duration,
                presence_timeout=self.effective_presence_timeout,
            )
        except PolicyError as exc:
            name = env_name(exc.field)
            if exc.field == "idle_timeout" and "idle_timeout" not in self.model_fields_set:
                name = f"{name} (or SESSION_TIMEOUT)"
            raise ConfigError(f"{name}: {exc}") from None

    def signing_secret(self) -> str:
        """The token key: ``TETHER_SECRET``, or one random key kept for this object's life."""
        if self.secret is not None:
            return self.secret.get_secret_value()
        if self._generated_secret is None:
            self._generated_secret = secrets.token_urlsafe(32)
        return self._generated_secret

    def notes(self) -> list[str]:
        """Things worth one log line at start-up (aliases used or ignored, demo secrets)."""
        out = []
        if self.session_check_interval_ms is not None:
            out.append(
                "SESSION_CHECK_INTERVAL is accepted but unused: sessions end at their "
                "deadlines, there is no polling interval"
            )
        if self.session_timeout_ms is not None:
            if "idle_timeout" in self.model_fields_set:
                out.append("SESSION_TIMEOUT is ignored: TETHER_IDLE_TIMEOUT is set")
            else:
                idle = self.effective_idle_timeout
                out.append(f"SESSION_TIMEOUT sets the idle timeout to {idle:g}s")
        if self.auto_archive_on_disconnect and "presence_timeout" in self.model_fields_set:
            out.append("AUTO_ARCHIVE_ON_DISCONNECT is ignored: TETHER_PRESENCE_TIMEOUT is set")
        if self.secret is None:
            out.append("TETHER_SECRET is unset: tokens are signed with a random per-process key")
        if self.admin_token is None:
            out.append("TETHER_ADMIN_TOKEN is unset: admin calls are refused")
        if self.redis_url is None and self.redis_fallback != "none":
            out.append("TETHER_REDIS_FALLBACK is ignored: TETHER_REDIS_URL is unset")
        if self.demo:
            root = f"http://{self.host}:{self.port}"
            dashboard = "" if self.admin_token else " (set TETHER_ADMIN_TOKEN to use it)"
            out.append(f"demo page: {root}/ ; dashboard: {root}/dashboard{dashboard}")
        return out


def env_name(field: str) -> str:
    """The environment variable behind a settings field."""
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return ENV_PREFIX + field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, apply ``overrides`` (flags), and check everything.

    Raises :class:`~tether.errors.ConfigError` whose message names each
    offending variable and what was wrong with it.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = field if field.isupper() else env_name(field)
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    settings.policy()
    return settings
