"""One fake LLM server process per test module (tests/llm_kit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_kit import FakeLLM, start_fake_llm


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    """A running fake OpenAI-compatible endpoint, stopped by pid after the module."""
    server = start_fake_llm()
    try:
        yield server
    finally:
        server.stop()
