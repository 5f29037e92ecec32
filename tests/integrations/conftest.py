"""One fake LLM server process per test module (tests/llm_kit.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_kit import FakeLLM, start_fake_llm

# The end-to-end tests drive a real tether server with the service tests' kit
# (tests/service/service_kit.py), which is importable from there only.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    """A running fake OpenAI-compatible endpoint, stopped by pid after the module."""
    server = start_fake_llm()
    try:
        yield server
    finally:
        server.stop()
