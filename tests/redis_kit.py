"""A real ``redis-server`` for the store and cluster tests: started in a temp dir, stopped by pid.

Missing ``redis-server`` fails the tests that need it (it never skips them):
``make test`` installs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis.asyncio
from bench.redis_server import launch

START_TIMEOUT_S = 10.0


class RedisServer:
    """One running ``redis-server`` process on a free local port."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        """Stop the server (by its pid) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_redis_server(directory: Path) -> RedisServer:
    """Start a throwaway server (no persistence) in ``directory`` and wait until it is ready."""
    try:
        process, port = launch(str(directory), timeout=START_TIMEOUT_S)
    except RuntimeError as exc:
        pytest.fail(f"{exc} (make test installs redis-server)", pytrace=False)
    return RedisServer(process, port)


async def flush(url: str) -> None:
    """Empty the database at ``url``."""
    admin = redis.asyncio.from_url(url)
    try:
        await admin.flushdb()
    finally:
        await admin.aclose()
