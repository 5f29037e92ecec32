"""Issue 15's growth probes, against a real ``tether serve`` on loopback.

``python -m bench.bounds slowloris [--connections 200] [--seconds 40]``
    opens that many connections trickling request headers one byte every
    2 s (the issue's probe) and reports how many the server still holds
    after ``--seconds``, and how long a well-behaved ``GET /health`` took
    meanwhile. Before the read timeouts: all 200 open after 40 s.

``python -m bench.bounds transcript [--seconds 30]``
    one user appends 60 KB messages to one session as fast as its request
    rate allows and reports the server's RSS growth and how many appends
    were stored vs refused ``413 transcript_full``. Before the caps: RSS
    +298 MB in 30 s.

The server runs with its defaults (``TETHER_*`` from the environment apply)
in a child process on a free port, and is stopped by its pid at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx

SECRET = "bench-bounds-secret-0123456789abcdef0123"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(port: int, data_dir: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "TETHER_SECRET": SECRET, "TETHER_LOG_LEVEL": "warning"}
    argv = [
        sys.executable,
        "-m",
        "tether.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        data_dir,
    ]
    proc = subprocess.Popen(argv, env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("tether serve did not start")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _slowloris(port: int, connections: int, seconds: float) -> None:
    open_now = 0
    closed_at: list[float] = []
    began = time.monotonic()

    async def one() -> None:
        nonlocal open_now
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        open_now += 1
        try:
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(), 2.0) is not None:
                        break  # the server answered and closed (read returns at EOF)
                except TimeoutError:
                    continue
        except OSError:
            pass
        finally:
            open_now -= 1
            closed_at.append(time.monotonic() - began)
            writer.close()

    tasks = [asyncio.create_task(one()) for _ in range(connections)]
    probe_at = min(5.0, seconds / 2)  # while every slow connection is still open
    await asyncio.sleep(probe_at)
    async with httpx.AsyncClient() as client:
        t0 = time.perf_counter()
        status = (await client.get(f"http://127.0.0.1:{port}/health")).status_code
        health_ms = (time.perf_counter() - t0) * 1000
    await asyncio.sleep(seconds - probe_at)
    still = open_now
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    closed = sorted(closed_at)
    print(f"slowloris connections: {connections}, trickling 1 byte / 2 s")
    print(f"still open after {seconds:g} s: {still}")
    if closed and still < connections:
        print(f"closed by the server between {closed[0]:.1f} s and {closed[-1]:.1f} s")
    print(f"GET /health at {probe_at:g} s: {status} in {health_ms:.1f} ms")


async def _transcript(port: int, pid: int, seconds: float) -> None:
    from tether.service.auth import TokenAuthority

    token = TokenAuthority(SECRET).mint("flooder", ttl=3600)
    headers = {"Authorization": f"Bearer {token}"}
    content = "x" * 60_000
    stored = refused = throttled = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        sid = (await client.post("/api/v1/sessions")).json()["id"]
        before = _rss_kb(pid)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r = await client.post(
                f"/api/v1/sessions/{sid}/messages", json={"role": "user", "content": content}
            )
            if r.status_code == 201:
                stored += 1
            elif r.status_code == 413:
                refused += 1
            elif r.status_code == 429:
                throttled += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
        after = _rss_kb(pid)
        count = (await client.get(f"/api/v1/sessions/{sid}")).json()["message_count"]
    print(f"{seconds:g} s of 60 KB appends by one user to one session")
    print(f"stored {stored} (message_count {count}), 413 {refused}, 429 {throttled}")
    print(
        f"server RSS: {before / 1024:.1f} MB -> {after / 1024:.1f} MB "
        f"(+{(after - before) / 1024:.1f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bounds", description=__doc__)
    parser.add_argument("probe", choices=["slowloris", "transcript"])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir, _server(port, data_dir) as proc:
        if args.probe == "slowloris":
            asyncio.run(_slowloris(port, args.connections, args.seconds or 40.0))
        else:
            asyncio.run(_transcript(port, proc.pid, args.seconds or 30.0))


if __name__ == "__main__":
    main()
