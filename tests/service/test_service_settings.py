"""Settings: durations with units, the seeds' aliases, and errors that name the variable."""

from __future__ import annotations

import pytest

from tether.errors import ConfigError
from tether.service import load_settings
from tether.service.durations import format_duration, parse_duration


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TETHER_* or seed variable from the outside leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("TETHER_") or name in {
            "SESSION_TIMEOUT",
            "SESSION_CHECK_INTERVAL",
            "AUTO_ARCHIVE_ON_DISCONNECT",
        }:
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0), ("1.5s", 1.5), ("500ms", 0.5)],
)
def test_durations_accept_seconds_and_units(text: str, seconds: float) -> None:
    """A duration is seconds, or a number with ms, s, m or h."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10 minutes", "-5", "1e9999", "nan"])
def test_bad_durations_are_refused(text: str) -> None:
    """Anything else is a ValueError that shows the accepted forms."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_uses_the_largest_whole_unit() -> None:
    """Durations print as 1h, 10m or 90s."""
    assert [format_duration(s) for s in (3600, 600, 90, 1.5)] == ["1h", "10m", "90s", "1.5s"]


def test_defaults_match_the_protocol() -> None:
    """With nothing set, the documented defaults apply."""
    settings = load_settings()
    policy = settings.policy()
    assert (policy.idle_timeout, policy.warn_before) == (600, 120)
    assert (policy.max_duration, policy.presence_timeout) == (1800, 60)
    assert settings.heartbeat_interval == 25
    assert settings.max_message_bytes == 65536
    assert settings.max_sessions_per_user == 5
    assert settings.origins == ()
    assert settings.port == 8765


def test_environment_durations_with_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_IDLE_TIMEOUT=10m and friends are read with their units."""
    monkeypatch.setenv("TETHER_IDLE_TIMEOUT", "15m")
    monkeypatch.setenv("TETHER_WARN_BEFORE", "90s")
    monkeypatch.setenv("TETHER_PRESENCE_TIMEOUT", "0")
    policy = load_settings().policy()
    assert (policy.idle_timeout, policy.warn_before, policy.presence_timeout) == (900, 90, 0)


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value passed in (a CLI flag) beats the environment; None means "not given"."""
    monkeypatch.setenv("TETHER_IDLE_TIMEOUT", "15m")
    assert load_settings(idle_timeout="20m").idle_timeout == 1200
    assert load_settings(idle_timeout=None).idle_timeout == 900


def test_session_timeout_alias_is_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """SESSION_TIMEOUT (seed 004) sets the idle timeout in milliseconds."""
    monkeypatch.setenv("SESSION_TIMEOUT", "300000")
    settings = load_settings()
    assert settings.policy().idle_timeout == 300
    assert any("SESSION_TIMEOUT sets" in note for note in settings.notes())


def test_tether_variable_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    """With both set, TETHER_IDLE_TIMEOUT wins and the alias is reported ignored."""
    monkeypatch.setenv("SESSION_TIMEOUT", "300000")
    monkeypatch.setenv("TETHER_IDLE_TIMEOUT", "7m")
    settings = load_settings()
    assert settings.policy().idle_timeout == 420
    assert any("SESSION_TIMEOUT is ignored" in note for note in settings.notes())


def test_check_interval_is_accepted_and_reported_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    """SESSION_CHECK_INTERVAL changes nothing and says so."""
    monkeypatch.setenv("SESSION_CHECK_INTERVAL", "30000")
    settings = load_settings()
    assert settings.policy() == load_settings(session_check_interval_ms=None).policy()
    assert any("SESSION_CHECK_INTERVAL" in note and "unused" in note for note in settings.notes())


def test_auto_archive_on_disconnect_means_zero_presence(monkeypatch: pytest.MonkeyPatch) -> None:
    """AUTO_ARCHIVE_ON_DISCONNECT=true ends a session when its last connection closes."""
    monkeypatch.setenv("AUTO_ARCHIVE_ON_DISCONNECT", "true")
    assert load_settings().policy().presence_timeout == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TETHER_IDLE_TIMEOUT", "soon"),
        ("TETHER_MAX_MESSAGE_BYTES", "lots"),
        ("TETHER_PORT", "70000"),
        ("TETHER_FSYNC", "sometimes"),
        ("TETHER_ALLOWED_ORIGINS", "example.com"),
        ("SESSION_TIMEOUT", "x"),
    ],
)
def test_an_invalid_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A bad value fails at load time with a ConfigError naming the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_inconsistent_policy_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warning lead longer than the idle timeout is reported against TETHER_WARN_BEFORE."""
    monkeypatch.setenv("TETHER_IDLE_TIMEOUT", "60")
    monkeypatch.setenv("TETHER_WARN_BEFORE", "2m")
    with pytest.raises(ConfigError, match="TETHER_WARN_BEFORE"):
        load_settings()


def test_origins_are_a_comma_separated_exact_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_ALLOWED_ORIGINS splits on commas, trims spaces and trailing slashes."""
    monkeypatch.setenv("TETHER_ALLOWED_ORIGINS", "https://app.example.com/, http://localhost:3000")
    assert load_settings().origins == ("https://app.example.com", "http://localhost:3000")


def test_without_a_secret_one_random_key_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset TETHER_SECRET yields one random key per settings object, and a note."""
    settings = load_settings()
    assert settings.signing_secret() == settings.signing_secret()
    assert settings.signing_secret() != load_settings().signing_secret()
    assert any("TETHER_SECRET is unset" in note for note in settings.notes())
    monkeypatch.setenv("TETHER_SECRET", "k" * 32)
    assert load_settings().signing_secret() == "k" * 32


def test_a_short_secret_is_refused_at_load_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_SECRET under 32 bytes is a ConfigError naming the variable."""
    monkeypatch.setenv("TETHER_SECRET", "hunter2")
    with pytest.raises(ConfigError, match="TETHER_SECRET"):
        load_settings()


def test_every_setting_is_documented_with_its_default() -> None:
    """docs/configuration.md has a row for every variable, with the true default of each count."""
    from pathlib import Path

    from tether.service import Settings
    from tether.service.settings import env_name

    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`").split("=")[0]: line.split("|")[2].strip()
        for line in docs.splitlines()
        if line.startswith("| `")
    }
    missing = [env_name(name) for name in Settings.model_fields if env_name(name) not in rows]
    assert missing == []
    defaults = Settings()
    wrong = [
        (env_name(name), rows[env_name(name)], value)
        for name in Settings.model_fields
        if type(value := getattr(defaults, name)) is int and rows[env_name(name)] != f"`{value}`"
    ]
    assert wrong == []
