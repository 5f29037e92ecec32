"""A real ``redis-server`` for the store and cluster tests: started in a temp dir, stopped by pid.

Missing ``redis-server`` fails the tests that need it (it never skips them):
``make test`` installs it.
"""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import redis.asyncio

READY = "Ready to accept connections"
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis_server(directory: Path) -> RedisServer:
    """Start a throwaway server (no persistence) in ``directory`` and wait until it is ready."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server missing: run make test (installs it)", pytrace=False)
    output: list[str] = []
    for _ in range(3):  # another process may take the free port first
        port = _free_port()
        process = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
        output = []
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                line = None
            if line is None:
                break
            output.append(line)
            if READY in line:
                return RedisServer(process, port)
        RedisServer(process, port).kill()
    pytest.fail("redis-server did not start:\n" + "".join(output[-20:]), pytrace=False)


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Hand the server's output over line by line, and keep draining it until it exits."""
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            lines.put(line)
    lines.put(None)


async def flush(url: str) -> None:
    """Empty the database at ``url``."""
    admin = redis.asyncio.from_url(url)
    try:
        await admin.flushdb()
    finally:
        await admin.aclose()
