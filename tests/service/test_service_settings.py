"""Settings: durations with units, the seeds' aliases, and errors that name the variable."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_kit import SECRET, WAIT, auth, until_ready

from tether.core.timings import DEFAULTS, Conflict, Timings, fit_timings, timing_conflicts
from tether.errors import ConfigError
from tether.service import Settings, load_settings
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
        ("TETHER_BARGE_IN", "maybe"),
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


# -- defaults that fit what was set ------------------------------------------------------


def test_fitted_timings_with_nothing_given_are_the_documented_defaults() -> None:
    """fit_timings({}) is exactly the documented defaults: 10m, 2m, 30m, 60s, 25s."""
    assert fit_timings({}) == Timings(600.0, 120.0, 1800.0, 60.0, 25.0) == DEFAULTS


def test_an_unset_warning_is_a_fifth_of_the_shortest_warned_clock_at_most_2m() -> None:
    """warn_before defaults to min(2m, min(idle, max) / 5)."""
    assert fit_timings({"idle_timeout": 60.0}).warn_before == 12.0
    assert fit_timings({"max_duration": 100.0}).warn_before == 20.0
    assert fit_timings({"idle_timeout": 300.0, "max_duration": 50.0}).warn_before == 10.0
    assert fit_timings({"idle_timeout": 3600.0}).warn_before == 120.0


def test_an_unset_max_duration_leaves_room_for_three_idle_periods() -> None:
    """max_duration defaults to max(30m, 3 x idle), so a long chosen idle timeout can fire."""
    assert fit_timings({"idle_timeout": 60.0}).max_duration == 1800.0
    assert fit_timings({"idle_timeout": 7200.0}).max_duration == 21600.0
    assert fit_timings({"idle_timeout": 7200.0, "max_duration": 600.0}).max_duration == 600.0


def test_an_unset_heartbeat_fits_twice_into_the_presence_timeout() -> None:
    """heartbeat_interval defaults to min(25s, presence / 2); 25s when presence is 0."""
    assert fit_timings({"presence_timeout": 10.0}).heartbeat_interval == 5.0
    assert fit_timings({"presence_timeout": 0.0}).heartbeat_interval == 25.0
    assert fit_timings({"presence_timeout": 600.0}).heartbeat_interval == 25.0


def test_given_timings_are_kept_as_given() -> None:
    """A value the user set is never changed by fitting, even when it conflicts."""
    given = {"idle_timeout": 60.0, "warn_before": 120.0, "heartbeat_interval": 90.0}
    fitted = fit_timings(given)
    assert (fitted.idle_timeout, fitted.warn_before, fitted.heartbeat_interval) == (60, 120, 90)
    assert timing_conflicts(fitted) == [
        Conflict("warn_before", "idle_timeout"),
        Conflict("heartbeat_interval", "presence_timeout"),
    ]


def test_fit_timings_refuses_an_unknown_name() -> None:
    """A misspelt timing is a KeyError naming it, not a silent default."""
    with pytest.raises(KeyError, match="idle_timout"):
        fit_timings({"idle_timout": 60.0})


_GRID = {
    "idle_timeout": (0.5, 60.0, 600.0, 7200.0),
    "warn_before": (0.0, 12.0, 120.0, 900.0),
    "max_duration": (0.5, 60.0, 1800.0),
    "presence_timeout": (0.0, 1.0, 60.0),
    "heartbeat_interval": (0.2, 25.0, 90.0),
}


def _givens() -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    names = list(_GRID)
    for size in range(len(names) + 1):
        for chosen in itertools.combinations(names, size):
            for values in itertools.product(*(_GRID[n] for n in chosen)):
                out.append(dict(zip(chosen, values, strict=True)))
    return out


def test_every_conflict_involves_a_given_setting() -> None:
    """Over a grid of given subsets and values, no conflict is between two fitted defaults,
    and idle/max/presence alone (with warning and heartbeat unset) never conflict."""
    for given in _givens():
        for conflict in timing_conflicts(fit_timings(given)):
            assert conflict.setting in given or conflict.bound in given, given
            assert conflict.setting in given, given  # a fitted value never needs changing
        if not {"warn_before", "heartbeat_interval"} & set(given):
            assert timing_conflicts(fit_timings(given)) == [], given


@pytest.mark.parametrize(
    "environment", [{"TETHER_IDLE_TIMEOUT": "60s"}, {"SESSION_TIMEOUT": "60000"}]
)
def test_a_short_idle_timeout_alone_loads_and_still_warns(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    """TETHER_IDLE_TIMEOUT=60s (or SESSION_TIMEOUT=60000) alone: a policy warning 12s ahead."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    policy = settings.policy()
    assert (policy.idle_timeout, policy.warn_before, policy.max_duration) == (60, 12, 1800)
    assert any("TETHER_WARN_BEFORE is unset: 12s" in note for note in settings.notes())


def test_a_short_max_duration_alone_loads_and_still_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_MAX_DURATION=1m alone: the warning shrinks to 12s instead of refusing."""
    monkeypatch.setenv("TETHER_MAX_DURATION", "1m")
    policy = load_settings().policy()
    assert (policy.max_duration, policy.warn_before, policy.idle_timeout) == (60, 12, 600)


def test_a_long_idle_timeout_alone_raises_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_IDLE_TIMEOUT=2h alone: max_duration becomes 6h, and the start-up log says so."""
    monkeypatch.setenv("TETHER_IDLE_TIMEOUT", "2h")
    settings = load_settings()
    assert settings.policy().max_duration == 6 * 3600
    assert "TETHER_MAX_DURATION is unset: 6h (not 30m) to fit the timeouts that are set" in (
        settings.notes()
    )


def test_a_short_presence_timeout_alone_shortens_the_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TETHER_PRESENCE_TIMEOUT=10s alone: clients are told to heartbeat every 5s."""
    monkeypatch.setenv("TETHER_PRESENCE_TIMEOUT", "10s")
    assert load_settings().heartbeat_interval == 5


def test_settings_built_in_code_fit_too() -> None:
    """Settings(idle_timeout=60) fits its defaults the same way the environment does."""
    settings = Settings(idle_timeout=60)
    assert (settings.warn_before, settings.policy().warn_before) == (12, 12)
    assert "warn_before" not in settings.model_fields_set


def test_an_idle_timeout_past_the_cap_is_allowed_and_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TETHER_IDLE_TIMEOUT >= TETHER_MAX_DURATION, both set: it loads, and a note says why."""
    monkeypatch.setenv("TETHER_IDLE_TIMEOUT", "1h")
    monkeypatch.setenv("TETHER_MAX_DURATION", "30m")
    settings = load_settings()
    assert settings.policy().idle_timeout == 3600
    assert any("before it can idle out" in note for note in settings.notes())


_NAMES = re.compile(r"TETHER_[A-Z_]+|SESSION_TIMEOUT|AUTO_ARCHIVE_ON_DISCONNECT|--[a-z-]+")


@pytest.mark.parametrize(
    ("environment", "flags", "message"),
    [
        (
            {"TETHER_IDLE_TIMEOUT": "60s", "TETHER_WARN_BEFORE": "2m"},
            {},
            "TETHER_WARN_BEFORE (2m) must be shorter than TETHER_IDLE_TIMEOUT (1m)",
        ),
        (
            {"TETHER_WARN_BEFORE": "15m"},
            {},
            "TETHER_WARN_BEFORE (15m) must be shorter than the idle timeout (10m, the default)",
        ),
        (
            {"SESSION_TIMEOUT": "60000", "TETHER_WARN_BEFORE": "2m"},
            {},
            "TETHER_WARN_BEFORE (2m) must be shorter than SESSION_TIMEOUT (60000 ms = 1m)",
        ),
        (
            {"TETHER_IDLE_TIMEOUT": "1h"},
            {"warn_before": "40m", "max_duration": "30m"},
            "--warn-before (40m) must be shorter than --max-duration (30m)",
        ),
        (
            {"TETHER_HEARTBEAT_INTERVAL": "90s"},
            {},
            "TETHER_HEARTBEAT_INTERVAL (90s) must be shorter than the presence timeout "
            "(1m, the default)",
        ),
        (
            {"TETHER_WARN_BEFORE": "1h", "TETHER_MAX_DURATION": "30m"},
            {},
            "TETHER_WARN_BEFORE (1h) must be shorter than the idle timeout (10m, the default); "
            "TETHER_WARN_BEFORE (1h) must be shorter than TETHER_MAX_DURATION (30m)",
        ),
        ({"TETHER_IDLE_TIMEOUT": "0"}, {}, "TETHER_IDLE_TIMEOUT: must be greater than 0"),
        ({}, {"max_duration": "0"}, "--max-duration: must be greater than 0"),
        (
            {"TETHER_PORT": "70000"},
            {"heartbeat_interval": "0"},
            "TETHER_PORT: Input should be less than or equal to 65535; "
            "--heartbeat-interval: Input should be greater than 0",
        ),
    ],
)
def test_a_refusal_names_exactly_the_settings_given(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    flags: dict[str, str],
    message: str,
) -> None:
    """Each refusal is "invalid configuration: " and names only what the user set, as set."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(from_flags=True, **flags)
    assert str(caught.value) == "invalid configuration: " + message
    given = set(environment) | {"--" + f.replace("_", "-") for f in flags}
    assert set(_NAMES.findall(message)) <= given


def test_auto_archive_on_disconnect_is_reported_like_session_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AUTO_ARCHIVE_ON_DISCONNECT gets a start-up note saying what it did, true or false."""
    monkeypatch.setenv("AUTO_ARCHIVE_ON_DISCONNECT", "true")
    assert any(
        note.startswith("AUTO_ARCHIVE_ON_DISCONNECT=true sets the presence timeout to 0")
        for note in load_settings().notes()
    )
    monkeypatch.setenv("AUTO_ARCHIVE_ON_DISCONNECT", "false")
    assert any(
        note.startswith("AUTO_ARCHIVE_ON_DISCONNECT=false changes nothing")
        for note in load_settings().notes()
    )
    monkeypatch.setenv("TETHER_PRESENCE_TIMEOUT", "30s")
    assert any("AUTO_ARCHIVE_ON_DISCONNECT is ignored" in note for note in load_settings().notes())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("environment", "policy", "logged"),
    [
        (
            {"TETHER_IDLE_TIMEOUT": "60s"},
            {"idle_timeout": 60, "warn_before": 12, "max_duration": 1800, "presence_timeout": 60},
            "TETHER_WARN_BEFORE is unset: 12s (not 2m) to fit the timeouts that are set",
        ),
        (
            {"SESSION_TIMEOUT": "60000"},
            {"idle_timeout": 60, "warn_before": 12, "max_duration": 1800, "presence_timeout": 60},
            "SESSION_TIMEOUT sets the idle timeout to 60s",
        ),
        (
            {"SESSION_TIMEOUT": "60000", "AUTO_ARCHIVE_ON_DISCONNECT": "true"},
            {"idle_timeout": 60, "warn_before": 12, "max_duration": 1800, "presence_timeout": 0},
            "AUTO_ARCHIVE_ON_DISCONNECT=true sets the presence timeout to 0",
        ),
    ],
)
async def test_tether_serve_starts_with_one_short_timeout_and_warns(
    tmp_path: Path, environment: dict[str, str], policy: dict[str, float], logged: str
) -> None:
    """A real `tether serve` with only a 60s idle timeout set (no other timing) starts, logs
    what it chose, and its sessions' policy warns before the idle end."""
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
        "TETHER_PORT": str(port),
        "TETHER_SECRET": SECRET,  # to mint a token; not a timing
        **environment,
    }
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tether.cli",
            "serve",
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:

            def alive() -> None:
                assert process.returncode is None, log.read_text()

            await until_ready(client, alive=alive)
            session = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()
        assert session["policy"] == policy
        assert session["next_deadline"]["action"] == "warn"
        assert session["next_deadline"]["at"] == pytest.approx(
            session["deadlines"]["idle_at"] - policy["warn_before"]
        )
        assert logged in log.read_text()
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), WAIT * 3)
