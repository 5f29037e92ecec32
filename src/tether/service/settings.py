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

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from tether.core.policy import Policy
from tether.core.timings import (
    DEFAULTS,
    TIMING_FIELDS,
    Conflict,
    Timings,
    fit_timings,
    timing_conflicts,
)
from tether.errors import ConfigError, PolicyError
from tether.service.auth import MIN_SECRET_BYTES
from tether.service.durations import Duration, format_duration

ENV_PREFIX = "TETHER_"
ERROR_PREFIX = "invalid configuration: "
"""Every settings error starts with this, whatever was wrong."""
_CLOCK_WORDS = {
    "idle_timeout": "the idle timeout",
    "warn_before": "the warning lead",
    "max_duration": "the max duration",
    "presence_timeout": "the presence timeout",
    "heartbeat_interval": "the heartbeat interval",
}


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
    # Timings left unset are fitted to the ones that are set (tether.core.timings);
    # these defaults are what they come to when none is set.
    idle_timeout: Duration = Field(
        DEFAULTS.idle_timeout, description="no user activity this long ends a session"
    )
    warn_before: Duration = Field(
        DEFAULTS.warn_before, description="warning lead before an end; 0: no warnings"
    )
    max_duration: Duration = Field(
        DEFAULTS.max_duration, description="absolute cap on a session's life"
    )
    presence_timeout: Duration = Field(
        DEFAULTS.presence_timeout,
        description="no connection or heartbeat this long: client_gone; reconnect grace",
    )
    heartbeat_interval: Duration = Field(
        DEFAULTS.heartbeat_interval, gt=0, description="heartbeat period clients are told"
    )
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
    barge_in: Literal["cancel", "keep"] = Field(
        "cancel",
        description="a user message while a reply streams: cancel it (stored partial) or keep it",
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
    # How the user spelled each value they gave, for error messages: keyword
    # arguments (or flags, see load_settings) by those names, the rest by variable.
    _spelled: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        for key in values:
            field = _field_of(key)
            if field is not None:
                self._spelled[field] = key

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

    @model_validator(mode="after")
    def _fit_timings(self) -> Settings:
        # The seeds' aliases become the values they stand for, and every timing the
        # user left unset is fitted to those they set. Writing __dict__ keeps
        # model_fields_set as "what the user gave", which the error messages rely on.
        fitted = fit_timings(self._given_timings())
        for name in TIMING_FIELDS:
            self.__dict__[name] = getattr(fitted, name)
        return self

    def _given_timings(self) -> dict[str, float]:
        given = {n: getattr(self, n) for n in TIMING_FIELDS if n in self.model_fields_set}
        if "idle_timeout" not in given and self.session_timeout_ms is not None:
            given["idle_timeout"] = self.session_timeout_ms / 1000.0
        if "presence_timeout" not in given and self.auto_archive_on_disconnect:
            given["presence_timeout"] = 0.0
        return given

    def given_name(self, field: str) -> str | None:
        """How the user set ``field``: its variable, alias, flag or keyword; None if unset.

        The idle and presence timeouts count as set through ``SESSION_TIMEOUT``
        and ``AUTO_ARCHIVE_ON_DISCONNECT=true`` when their own variable is unset.
        """
        source = field
        if field not in self.model_fields_set:
            if field == "idle_timeout" and self.session_timeout_ms is not None:
                source = "session_timeout_ms"
            elif field == "presence_timeout" and self.auto_archive_on_disconnect:
                source = "auto_archive_on_disconnect"
            else:
                return None
        return self._spelled.get(source, env_name(source))

    def timings(self) -> Timings:
        """The session timings in effect, the fitted defaults included."""
        return Timings(**{name: getattr(self, name) for name in TIMING_FIELDS})

    # -- derived values ---------------------------------------------------------------

    @property
    def origins(self) -> tuple[str, ...]:
        """The allowlist; empty means "the server's own origin only"."""
        return tuple(o for o in self.allowed_origins.split(",") if o)

    @property
    def effective_idle_timeout(self) -> float:
        """``TETHER_IDLE_TIMEOUT``, else ``SESSION_TIMEOUT`` (ms), else the default."""
        return self.idle_timeout

    @property
    def effective_presence_timeout(self) -> float:
        """``TETHER_PRESENCE_TIMEOUT``, else 0 under ``AUTO_ARCHIVE_ON_DISCONNECT=true``."""
        return self.presence_timeout

    def policy(self) -> Policy:
        """The default session policy, or :class:`ConfigError` naming what the user set.

        A conflict is reported against the settings the user gave, by the
        names they used; a fitted default is never blamed (it cannot conflict).
        """
        problems = [self._describe(c) for c in timing_conflicts(self.timings())]
        if problems:
            raise ConfigError(ERROR_PREFIX + "; ".join(problems))
        try:
            return Policy(
                idle_timeout=self.idle_timeout,
                warn_before=self.warn_before,
                max_duration=self.max_duration,
                presence_timeout=self.presence_timeout,
            )
        except PolicyError as exc:
            reason = str(exc).removeprefix(f"invalid policy: {exc.field}: ")
            name = self.given_name(exc.field) or env_name(exc.field)
            raise ConfigError(f"{ERROR_PREFIX}{name}: {reason}") from None

    def _describe(self, conflict: Conflict) -> str:
        def named(field: str) -> str:
            seconds = format_duration(getattr(self, field))
            name = self.given_name(field)
            if name is None:  # only ever the bound: a fitted setting never conflicts
                return f"{_CLOCK_WORDS[field]} ({seconds}, the default)"
            if name == "SESSION_TIMEOUT":  # in the alias's own unit, as the user wrote it
                return f"{name} ({self.session_timeout_ms:g} ms = {seconds})"
            return f"{name} ({seconds})"

        return f"{named(conflict.setting)} must be shorter than {named(conflict.bound)}"

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
        if self.auto_archive_on_disconnect is not None:
            if "presence_timeout" in self.model_fields_set:
                out.append("AUTO_ARCHIVE_ON_DISCONNECT is ignored: TETHER_PRESENCE_TIMEOUT is set")
            elif self.auto_archive_on_disconnect:
                out.append(
                    "AUTO_ARCHIVE_ON_DISCONNECT=true sets the presence timeout to 0: a session "
                    "ends (and is archived) when its last connection closes"
                )
            else:
                presence = format_duration(self.presence_timeout)
                out.append(
                    f"AUTO_ARCHIVE_ON_DISCONNECT=false changes nothing: the presence "
                    f"timeout stays {presence}"
                )
        out.extend(self._fitted_notes())
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

    def _fitted_notes(self) -> list[str]:
        out = []
        given = self._given_timings()
        if given:  # with nothing given every timing is its documented default
            for name in TIMING_FIELDS:
                value, default = getattr(self, name), getattr(DEFAULTS, name)
                if name not in given and value != default:
                    out.append(
                        f"{env_name(name)} is unset: {format_duration(value)} (not "
                        f"{format_duration(default)}) to fit the timeouts that are set"
                    )
        if {"idle_timeout", "max_duration"} <= set(given) and (
            self.idle_timeout >= self.max_duration
        ):
            out.append(
                "the idle timeout is not shorter than TETHER_MAX_DURATION: every session "
                "ends max_duration before it can idle out"
            )
        return out


def _field_of(key: str) -> str | None:
    """The field a keyword argument sets: its own name or its alias."""
    if key in Settings.model_fields:
        return key
    for name, info in Settings.model_fields.items():
        if info.validation_alias == key:
            return name
    return None


def flag_name(field: str) -> str:
    """The ``tether serve`` flag behind a settings field."""
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    """The environment variable behind a settings field."""
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return ENV_PREFIX + field.upper()


def load_settings(*, from_flags: bool = False, **overrides: Any) -> Settings:
    """Read the environment, apply ``overrides`` (flags, or values from code), check everything.

    ``None`` overrides count as not given. Raises :class:`~tether.errors.ConfigError`
    starting ``invalid configuration:`` and naming each offending setting the
    way the user gave it: its variable, or the override's keyword (its
    ``tether serve`` flag with ``from_flags=True``).
    """
    given = {k: v for k, v in overrides.items() if v is not None}

    def spelled(key: str) -> str:
        field = _field_of(key) or key
        if key in given:
            return flag_name(field) if from_flags else key
        return env_name(field)

    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{spelled(key)}: {message}")
        raise ConfigError(ERROR_PREFIX + "; ".join(problems)) from None
    if from_flags:
        settings._spelled.update({key: flag_name(key) for key in given})
    settings.policy()
    return settings
