"""The responder's settings: TETHER_LLM_*, checked at load time, never logging the key."""

from __future__ import annotations

import os

import pytest

from tether.errors import ConfigError
from tether.service import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TETHER_* variable from the outside leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("TETHER_"):
            monkeypatch.delenv(name)


def test_the_responder_is_off_by_default() -> None:
    """With nothing set there is no base URL, model, key or prompt, and a 60s timeout."""
    settings = load_settings()
    assert settings.llm_base_url is None
    assert (settings.llm_model, settings.llm_api_key, settings.llm_system_prompt) == (
        None,
        None,
        None,
    )
    assert settings.llm_timeout == 60.0


def test_the_variables_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_LLM_BASE_URL, _MODEL, _API_KEY, _SYSTEM_PROMPT and _TIMEOUT (with units)."""
    monkeypatch.setenv("TETHER_LLM_BASE_URL", "http://127.0.0.1:11434/v1/")
    monkeypatch.setenv("TETHER_LLM_MODEL", "llama3.2")
    monkeypatch.setenv("TETHER_LLM_API_KEY", "sk-test-key")
    monkeypatch.setenv("TETHER_LLM_SYSTEM_PROMPT", "You are an interviewer.")
    monkeypatch.setenv("TETHER_LLM_TIMEOUT", "90s")
    settings = load_settings()
    assert settings.llm_base_url == "http://127.0.0.1:11434/v1"  # trailing slash dropped
    assert settings.llm_model == "llama3.2"
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-test-key"
    assert settings.llm_system_prompt == "You are an interviewer."
    assert settings.llm_timeout == 90.0


def test_a_base_url_without_a_model_is_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TETHER_LLM_BASE_URL alone fails at start-up: TETHER_LLM_MODEL must be set with it."""
    monkeypatch.setenv("TETHER_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    with pytest.raises(
        ConfigError, match="TETHER_LLM_MODEL: must be set when TETHER_LLM_BASE_URL is"
    ):
        load_settings()
    with pytest.raises(ConfigError, match="must be set when --llm-base-url is"):
        load_settings(from_flags=True, llm_base_url="http://127.0.0.1:11434/v1")


@pytest.mark.parametrize("url", ["localhost:11434", "ftp://host/v1", "http://", "11434"])
def test_a_base_url_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """A base URL must be http(s)://host...; anything else names TETHER_LLM_BASE_URL."""
    monkeypatch.setenv("TETHER_LLM_BASE_URL", url)
    monkeypatch.setenv("TETHER_LLM_MODEL", "m")
    with pytest.raises(ConfigError, match=r"TETHER_LLM_BASE_URL: .* must look like http"):
        load_settings()


def test_an_empty_base_url_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_LLM_BASE_URL= (empty) is the responder off, not an error."""
    monkeypatch.setenv("TETHER_LLM_BASE_URL", "")
    assert load_settings().llm_base_url is None


@pytest.mark.parametrize("timeout", ["0", "-1s", "soon"])
def test_a_timeout_must_be_a_positive_duration(
    monkeypatch: pytest.MonkeyPatch, timeout: str
) -> None:
    """TETHER_LLM_TIMEOUT must be a duration above zero."""
    monkeypatch.setenv("TETHER_LLM_TIMEOUT", timeout)
    with pytest.raises(ConfigError, match="TETHER_LLM_TIMEOUT"):
        load_settings()


def test_the_start_up_note_names_model_and_host_never_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log line says which model at which host answers; no key, no URL credentials."""
    monkeypatch.setenv("TETHER_LLM_BASE_URL", "https://user:pw@llm.example.com/v1")
    monkeypatch.setenv("TETHER_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("TETHER_LLM_API_KEY", "sk-very-secret")
    settings = load_settings()
    notes = "\n".join(settings.notes())
    assert "answered by gpt-4o-mini at llm.example.com" in notes
    assert "sk-very-secret" not in notes + repr(settings)
    assert "pw" not in notes


def test_llm_variables_without_a_base_url_are_reported_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model or key set while the base URL is not is one note each, not silence."""
    monkeypatch.setenv("TETHER_LLM_MODEL", "m")
    monkeypatch.setenv("TETHER_LLM_API_KEY", "k")
    notes = load_settings().notes()
    assert "TETHER_LLM_MODEL is ignored: TETHER_LLM_BASE_URL is unset" in notes
    assert "TETHER_LLM_API_KEY is ignored: TETHER_LLM_BASE_URL is unset" in notes
