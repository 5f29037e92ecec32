"""Run one file of examples/ exactly as its docstring says: ``uvicorn examples.NAME:app``.

A real process on a free loopback port, its environment built from nothing but
what the test gives (plus a fixed secret and a data dir), stopped by its pid
with SIGTERM (the signal a deploy sends) and waited for.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from service_kit import SECRET, WAIT

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.05
"""Between two looks at the example over REST: well inside its per-user rate limit."""
START_WITHIN = 20.0
"""Seconds for a cold interpreter to import FastAPI and tether on a busy machine."""


@dataclass
class Example:
    """A running example: where it listens, and its log."""

    port: int
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http, timeout=WAIT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def run_example(name: str, data_dir: Path, **env: str) -> AsyncIterator[Example]:
    """``uvicorn examples.{name}:app`` with ``TETHER_SECRET``, ``TETHER_DATA_DIR`` and ``env``."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TETHER_", "LLM_"))}
    base.update(TETHER_SECRET=SECRET, TETHER_DATA_DIR=str(data_dir), **env)
    log = data_dir / f"{name}.log"
    command = [sys.executable, "-m", "uvicorn", f"examples.{name}:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=base, stdout=out, stderr=out
        )
    example = Example(port, log)
    try:
        await _until_healthy(example, process)
        yield example
    finally:
        if process.returncode is None:
            process.terminate()  # by its pid: SIGTERM, what a deploy sends
        try:
            await asyncio.wait_for(process.wait(), WAIT * 2)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _until_healthy(example: Example, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_WITHIN
    async with example.client() as http:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise AssertionError(f"the example exited at start:\n{example.output()}")
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"the example did not answer /health:\n{example.output()}")


async def poll(condition: Callable[[], Awaitable[bool]], what: str, within: float = WAIT) -> None:
    """Ask ``condition()`` every :data:`POLL_S` until it holds; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"no {what} within {within}s")
        await asyncio.sleep(POLL_S)
