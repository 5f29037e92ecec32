"""Real processes for the multi-node tests: a restartable ``redis-server`` and ``tether serve``.

Everything is started by the test and stopped by its pid (SIGTERM, or
SIGKILL for a crash); nothing is looked up or killed by name. Waiting is on
conditions with deadlines (a process's output line, an HTTP answer), never a
fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

READY = "Ready to accept connections"
START_TIMEOUT_S = 30.0  # a bound on start-up under a loaded machine, not a figure
TETHER = Path(sys.executable).with_name("tether")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None], log: Path) -> None:
    """Copy the process's output to ``log`` and hand it over line by line until it exits."""
    assert process.stdout is not None
    with process.stdout, log.open("a") as sink:
        for line in process.stdout:
            sink.write(line)
            sink.flush()
            lines.put(line)
    lines.put(None)


def _wait_for_line(lines: queue.Queue[str | None], needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return False
        if line is None:
            return False
        if needle in line:
            return True
    return False


@dataclass
class RestartableRedis:
    """A ``redis-server`` with an AOF (fsync always) that can be killed and restarted.

    It keeps its port and its data directory across restarts, so tether's
    connections come back to the same address and the same data; with
    ``appendonly=False`` (no persistence at all) it comes back empty.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    appendonly: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on its port and wait until it accepts connections."""
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server missing: run make test (installs it)", pytrace=False)
        self.process = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        log = self.directory / "redis.log"
        threading.Thread(target=_pump, args=(self.process, lines, log), daemon=True).start()
        if not _wait_for_line(lines, READY, START_TIMEOUT_S):
            self.kill()
            pytest.fail("redis-server did not start:\n" + log.read_text()[-2000:], pytrace=False)

    def kill(self) -> None:
        """SIGKILL the server (by pid), as a crash would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()


@contextmanager
def restartable_redis(directory: Path, *, appendonly: bool = True) -> Iterator[RestartableRedis]:
    """A running :class:`RestartableRedis` for the block, killed afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RestartableRedis(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class TetherProcess:
    """One ``tether serve`` subprocess on a loopback port."""

    name: str
    port: int
    process: subprocess.Popen[str]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM (by pid) and wait; the exit code (SIGKILL after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL (by pid): the node stops dead, closing and deregistering nothing."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def spawn_tether(name: str, env: dict[str, str], log_dir: Path) -> TetherProcess:
    """Start ``tether serve`` with ``env`` on top of a clean environment (no waiting)."""
    port = free_port()
    log = log_dir / f"tether-{name}.log"
    full = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(log_dir)),
        "PYTHONUNBUFFERED": "1",
        "TETHER_HOST": "127.0.0.1",
        "TETHER_PORT": str(port),
        **env,
    }
    process = subprocess.Popen(
        [str(TETHER), "serve"],
        env=full,
        cwd=log_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process, lines, log), daemon=True).start()
    return TetherProcess(name, port, process, log)


async def wait_ready(node: TetherProcess, within: float = START_TIMEOUT_S) -> None:
    """Wait until ``node`` answers ``/ready`` with 200 (fails early if it exited)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=node.http, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                pytest.fail(f"tether {node.name} exited:\n{node.output()[-3000:]}", pytrace=False)
            try:
                if (await client.get("/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.005)
    pytest.fail(f"tether {node.name} not ready:\n{node.output()[-3000:]}", pytrace=False)


async def poll_until(
    condition: Callable[[], Awaitable[bool]], within: float, message: str = "condition never held"
) -> None:
    """Await ``condition()`` every few milliseconds until it holds, for at most ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.005)
