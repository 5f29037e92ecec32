"""Cross-node end latency: an end decided on node C, the close frame at node A's client.

Two real ``tether serve`` processes (A and C) on one fresh ``redis-server``
(persistence off), started and stopped by pid, the same secret, admin token
and data directory, ``TETHER_FSYNC=no``, warning-level logs and long timeouts
(nothing ends by itself). 1k clients (100 in quick mode) each hold a
WebSocket on A (``websockets``, ``hello`` then ``start``: one session each,
each its own user). Then, one session at a time, the bench calls C's admin
end (``POST /api/v1/sessions/{id}/end`` with the admin token) and measures
from just before the call to the moment A's client sees its connection
closed (the close frame, code 4004). The end travels C -> Redis (the claim,
``end.lua``) -> pub/sub -> A, which tells and closes the client, and acks.

Baseline, the floor of any cross-node notice: one Redis pub/sub hop, a
``PUBLISH`` from one redis-py connection to a ``SUBSCRIBE``d other one in
the bench process, timed the same way (1k hops, p50 and p99).

Target: p99 <= 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

import httpx
import redis.asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import Row, Target
from bench.redis_server import redis_server
from tether.service.auth import TokenAuthority

TETHER = Path(sys.executable).with_name("tether")
TARGET = Target("<=", 100.0)
BASELINE = "redis pub/sub hop"
START_TIMEOUT = 30.0
INFLIGHT = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Node:
    """One ``tether serve`` process on a loopback port; its output goes to a log file."""

    def __init__(self, name: str, env: dict[str, str], directory: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.log = directory / f"tether-{name}.log"
        full = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(directory)),
            "TETHER_HOST": "127.0.0.1",
            "TETHER_PORT": str(self.port),
            **env,
        }
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(
                [str(TETHER), "serve"],
                env=full,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=self.http, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"tether {self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.02)
        raise RuntimeError(f"tether {self.name} not ready:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM by pid and wait (SIGKILL if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()


@contextmanager
def _nodes(url: str, secret: str, admin: str, directory: Path) -> Iterator[tuple[Node, Node]]:
    data = directory / "data"
    data.mkdir()
    env = {
        "TETHER_REDIS_URL": url,
        "TETHER_SECRET": secret,
        "TETHER_ADMIN_TOKEN": admin,
        "TETHER_DATA_DIR": str(data),
        "TETHER_IDLE_TIMEOUT": "1h",
        "TETHER_PRESENCE_TIMEOUT": "1h",
        "TETHER_MAX_DURATION": "1d",
        "TETHER_HELLO_TIMEOUT": "60s",
        "TETHER_MAX_REQUESTS_PER_MINUTE": "1000000",
        "TETHER_REQUEST_BURST": "100000",
        "TETHER_LOG_LEVEL": "warning",
        "TETHER_FSYNC": "no",
    }
    nodes = (Node("a", env, directory), Node("c", env, directory))
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def _open(url: str, token: str) -> tuple[ClientConnection, str]:
    """A WebSocket authenticated with ``token`` that started a session: (socket, id)."""
    conn = await connect(url, compression=None, open_timeout=START_TIMEOUT, max_queue=None)
    await conn.send(json.dumps({"type": "hello", "token": token, "v": 1}))
    while True:
        frame = json.loads(await asyncio.wait_for(conn.recv(), START_TIMEOUT))
        if frame["type"] == "welcome":
            await conn.send(json.dumps({"type": "start", "kind": "chat"}))
        elif frame["type"] == "session.started":
            return conn, str(frame["session"]["id"])


async def _closed_at(conn: ClientConnection) -> float:
    """When the connection's close frame arrived (frames before it are read and dropped)."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await conn.recv()
    return perf_counter()


async def _tether(n: int) -> list[float]:
    secret, admin = secrets.token_hex(32), secrets.token_hex(16)
    tokens = TokenAuthority(secret, admin_token=admin)
    with (
        redis_server() as server,
        tempfile.TemporaryDirectory(prefix="tether-bench-end-") as directory,
        _nodes(server.url, secret, admin, Path(directory)) as (a, c),
    ):
        try:
            await asyncio.gather(a.ready(), c.ready())
            gate = asyncio.Semaphore(INFLIGHT)

            async def open_one(i: int) -> tuple[ClientConnection, str]:
                async with gate:
                    return await _open(a.ws, tokens.mint(f"user{i}", ttl=3600))

            opened = await asyncio.gather(*(open_one(i) for i in range(n)))
            readers = [asyncio.create_task(_closed_at(conn)) for conn, _ in opened]
            latencies: list[float] = []
            headers = {"Authorization": f"Bearer {admin}"}
            async with httpx.AsyncClient(base_url=c.http, headers=headers, timeout=30) as http:
                await http.get("/ready")  # the connection is open before the first timing
                for (conn, sid), reader in zip(opened, readers, strict=True):
                    t0 = perf_counter()
                    reply = await http.post(f"/api/v1/sessions/{sid}/end")
                    closed = await asyncio.wait_for(reader, 30)
                    if reply.status_code != 200 or conn.close_code != 4004:
                        raise RuntimeError(
                            f"end of {sid}: HTTP {reply.status_code} {reply.text}, "
                            f"close code {conn.close_code}"
                        )
                    latencies.append((closed - t0) * 1000)
            return latencies
        except Exception:
            for node in (a, c):
                print(f"  tether {node.name} log:\n{node.tail()}", file=sys.stderr)
            raise


async def _pubsub(url: str, n: int) -> list[float]:
    publisher = redis.asyncio.Redis.from_url(url)
    subscriber = redis.asyncio.Redis.from_url(url)
    pubsub = subscriber.pubsub()
    try:
        await pubsub.subscribe("bench:hop")
        await pubsub.get_message(timeout=5)  # the subscribe confirmation
        latencies: list[float] = []
        for i in range(n):
            t0 = perf_counter()
            await publisher.publish("bench:hop", str(i))
            while await pubsub.get_message(timeout=5) is None:
                pass
            latencies.append((perf_counter() - t0) * 1000)
        return latencies
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await publisher.aclose()
        await subscriber.aclose()


async def _baseline(n: int) -> list[float]:
    with redis_server() as server:
        return await _pubsub(server.url, n)


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def run(quick: bool) -> list[Row]:
    n = 100 if quick else 1000
    ours = asyncio.run(_tether(n))
    base = asyncio.run(_baseline(n))
    print(
        f"  {n:,} ends: max {max(ours):.1f} ms; pub/sub hop max {max(base):.2f} ms",
        file=sys.stderr,
    )
    case = f"{n:,} sessions"
    rows = []
    for label, q, target in (("p50", 50, None), ("p99", 99, TARGET)):
        rows.append(Row("redis_end", f"{case} {label}", BASELINE, _p(base, q), "ms", base))
        rows.append(
            Row(
                "redis_end",
                f"{case} {label}",
                "tether C->A close",
                _p(ours, q),
                "ms",
                ours,
                BASELINE,
                _p(base, q),
                target,
            )
        )
    return rows
