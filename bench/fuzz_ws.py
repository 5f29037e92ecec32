"""Hostile WebSocket clients for ``make fuzz``: one worker process, many connections.

:func:`worker` (run in a ``multiprocessing`` pool) opens connections to
``/ws``, ``concurrency`` at a time, until it has sent its share of frames.
Each connection, drawn from a seeded generator:

* sometimes sends a few hostile frames before ``hello``, then ``hello`` with a
  valid token (a few connections send a bad one: 1008 by contract);
* sends 50-400 frames from :func:`bench.fuzz_gen.hostile_frame`, pipelined,
  a ``ping`` probe every 50;
* then either closes normally after its last probe is answered (so every frame
  was read and answered), ends with a terminal frame (oversized: 1009, invalid
  UTF-8: 1007), or drops its TCP connection without a close frame.

A concurrent reader counts every ``error`` frame by code. An *abnormal close*
is a server that hangs up without a close frame (1006) or closes with 1011;
any other server close code is tallied by code and checked against what the
connection asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.fuzz_gen import hostile_frame, terminal_frame
from bench.fuzz_server import mint

PROBE_EVERY = 50
CONTRACT_CLOSES = {1000, 1001, 1007, 1008, 1009, 4001, 4002, 4003, 4004, 4029, 4404}
"""Closes the protocol prescribes for what a hostile client sends (1011 and 1006 are not)."""


class Stats:
    """One worker's counters (merged by the orchestrator)."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.connections = 0
        self.categories: Counter[str] = Counter()
        self.error_codes: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        self.abnormal = 0
        self.abnormal_after: Counter[str] = Counter()
        self.unexpected_close = 0
        self.stalled = 0
        self.connect_failures = 0
        self.samples: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "bytes": self.bytes,
            "connections": self.connections,
            "categories": dict(self.categories),
            "error_codes": dict(self.error_codes),
            "close_codes": dict(self.close_codes),
            "abnormal_closes": self.abnormal,
            "abnormal_after": dict(self.abnormal_after),
            "unexpected_closes": self.unexpected_close,
            "stalled": self.stalled,
            "connect_failures": self.connect_failures,
            "samples": self.samples[:20],
        }


async def _reader(ws: ClientConnection, stats: Stats, pongs: list[int], last: list[str]) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            try:
                frame = json.loads(raw)
            except ValueError:
                stats.error_codes["server_sent_bad_json"] += 1
                continue
            kind = frame.get("type")
            if kind == "pong":
                pongs[0] += 1
            elif kind == "error":
                code = str(frame.get("code"))
                stats.error_codes[code] += 1
                if code == "internal" and len(stats.samples) < 20:
                    stats.samples.append(f"internal after: {last[0][:200]!r}")


async def _send(ws: ClientConnection, frame: str | bytes, *, text: bool | None = None) -> None:
    if isinstance(frame, bytes) and text:
        await ws.send(frame, text=True)
    else:
        await ws.send(frame)


async def _connection(url: str, secret: str, rng: random.Random, n: int, stats: Stats) -> int:
    """One hostile connection carrying ``n`` hostile frames (plus probes); the frames it sent."""
    user = f"fz{rng.getrandbits(48):x}"
    ending = rng.choices(("normal", "terminal", "drop", "bad_token"), (0.88, 0.06, 0.04, 0.02))[0]
    expect: set[int] = {1000}
    sent = 0
    pongs = [0]
    probes = 0
    last = [""]
    last_category = "hello first"  # what the connection did, to say what an abnormal close followed
    try:
        ws = await connect(
            url,
            compression=None,
            max_size=None,
            ping_interval=None,
            open_timeout=30,
            close_timeout=10,
            max_queue=None,
        )
    except (OSError, InvalidHandshake, TimeoutError):
        stats.connect_failures += 1
        return 0
    stats.connections += 1
    reading = asyncio.create_task(_reader(ws, stats, pongs, last))
    try:
        for _ in range(rng.choice((0, 0, 0, 1, 3))):  # frames before hello
            category, frame = hostile_frame(rng)
            last_category = "frames before hello"
            stats.categories["before_hello"] += 1
            await _send(ws, frame)
            sent += 1
        good = ending != "bad_token"
        hello = {"type": "hello", "token": mint(secret, user) if good else "bad.token.x", "v": 1}
        await ws.send(json.dumps(hello))
        sent += 1
        if not good:
            expect = {1008}
        else:
            for i in range(n):
                category, frame = hostile_frame(rng)
                stats.categories[category] += 1
                last[0] = frame if isinstance(frame, str) else repr(frame[:80])
                await _send(ws, frame)
                stats.bytes += len(frame)
                sent += 1
                if i % PROBE_EVERY == PROBE_EVERY - 1:
                    await ws.send('{"type":"ping"}')
                    probes += 1
                    sent += 1
            await ws.send('{"type":"ping"}')
            probes += 1
            sent += 1
            if ending == "terminal":
                category, frame, code = terminal_frame(rng)
                last_category = f"{last_category}, then {category}"
                stats.categories[category] += 1
                await _send(ws, frame, text=category == "invalid_utf8")
                sent += 1
                expect = {code}
            elif ending == "drop":
                # Wait until everything was answered, then vanish without a close frame.
                await _until(lambda: pongs[0] >= probes or reading.done(), 60)
                ws.transport.abort()
                stats.close_codes["client_dropped"] += 1
                return sent
        if expect == {1000}:
            if not await _until(lambda: pongs[0] >= probes or reading.done(), 60):
                stats.stalled += 1
            await ws.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), 30)
    except ConnectionClosed:
        pass
    finally:
        stats.frames += sent
        if not reading.done():
            reading.cancel()
        with contextlib.suppress(BaseException):
            await reading
        if ending != "drop":
            with contextlib.suppress(Exception):
                await ws.close()
            _record_close(ws, expect, stats, last_category)
    return sent


async def _until(condition: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _record_close(ws: ClientConnection, expect: set[int], stats: Stats, after: str) -> None:
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        stats.abnormal += 1
        stats.abnormal_after[after] += 1
        stats.close_codes["1006"] += 1
        return
    code = rcvd.code
    stats.close_codes[str(code)] += 1
    if code == 1011 or code not in CONTRACT_CLOSES:
        stats.abnormal += 1
        stats.abnormal_after[after] += 1
    elif code not in expect and code != 1000:
        stats.unexpected_close += 1
        if len(stats.samples) < 20:
            stats.samples.append(f"close {code} {rcvd.reason!r}, expected {sorted(expect)}")


async def _run(url: str, secret: str, frames: int, concurrency: int, seed: int) -> Stats:
    stats = Stats()
    rng = random.Random(seed)
    remaining = [frames]

    async def lane(lane_seed: int) -> None:
        lane_rng = random.Random(lane_seed)
        while remaining[0] > 0:
            n = min(lane_rng.randrange(50, 400), remaining[0])
            remaining[0] -= n
            sent = await _connection(url, secret, lane_rng, n, stats)
            remaining[0] += max(0, n - sent)  # a refused hello or a failed connect

    await asyncio.gather(*(lane(rng.getrandbits(64)) for _ in range(concurrency)))
    return stats


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """Entry point of one worker process: ``args`` = url, secret, frames, concurrency, seed."""
    t0 = time.perf_counter()
    stats = asyncio.run(
        _run(args["url"], args["secret"], args["frames"], args["concurrency"], args["seed"])
    )
    return {**stats.as_dict(), "seconds": time.perf_counter() - t0}


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the workers' counters."""
    total: dict[str, Any] = {}
    for result in results:
        for key, value in result.items():
            if isinstance(value, dict):
                bucket = total.setdefault(key, Counter())
                bucket.update(value)
            elif isinstance(value, list):
                total.setdefault(key, []).extend(value)
            elif key == "seconds":
                total[key] = max(total.get(key, 0.0), value)
            else:
                total[key] = total.get(key, 0) + value
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in total.items()}
