"""The fake OpenAI-compatible server (bench/fake_llm.py) as a process for the tests.

Started once per module on a free loopback port, stopped by pid. The request
log it keeps is how tests see what the endpoint was sent, and that a
cancelled reply closed its connection.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bench.fake_llm import FakeLLMProcess, launch


class FakeLLM(FakeLLMProcess):
    """A running fake endpoint: ``base_url`` for clients, ``requests()`` for assertions."""

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    async def requests(self) -> list[dict[str, Any]]:
        """Every chat request so far, oldest first."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            return list((await http.get(self.root + "/_requests")).json())

    async def last(self) -> dict[str, Any]:
        """The latest chat request."""
        return (await self.requests())[-1]

    async def forget(self) -> None:
        """Clear the request log."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            await http.delete(self.root + "/_requests")


def start_fake_llm() -> FakeLLM:
    """Launch the server and wait until it listens (a failure fails the test, never skips)."""
    try:
        started = launch()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    return FakeLLM(started.process, started.base_url)
