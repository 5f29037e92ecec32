"""A client worker of ``bench/ws_idle.py``: one process, one loop, its share of connections.

``python -m bench.ws_idle_client '{"contender": ..., "url": ..., ...}'`` talks
to the bench over stdin (commands, one a line) and stdout (JSON events, one a
line):

* at start it mints one token per connection (users ``{prefix}{i}``) and
  prints ``{"event": "ready"}``;
* ``go``: opens ``count`` connections, at most ``inflight`` at once, each
  ``hello`` then ``start``, done when the session's started reply is in; then
  prints ``held`` (successes, errors, first attempt and last start as
  ``time.time()``) and starts heartbeating: every connection sends one
  heartbeat each ``heartbeat`` seconds, phases spread evenly over the period;
* ``report``: prints the connections still open, the ones dropped, the
  heartbeats sent and their replies;
* ``close``: closes every connection cleanly, prints ``closed`` and exits.

``tether`` clients use ``websockets`` (no compression, no client pings: the
server pings); ``python-socketio`` clients its own ``AsyncClient``, WebSocket
transport only, sharing one ``aiohttp`` session per worker, no reconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import jwt
import socketio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.ws_idle_server import raise_nofile


@dataclass
class Stats:
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    beats: int = 0
    pongs: int = 0
    stopping: bool = False


class Conn(Protocol):
    alive: bool

    async def open(self, token: str) -> None: ...

    async def beat(self) -> None: ...

    async def close(self) -> None: ...


class TetherConn:
    """A ``websockets`` client speaking tether's protocol."""

    def __init__(self, url: str, stats: Stats, timeout: float) -> None:
        self.url = url
        self.stats = stats
        self.timeout = timeout
        self.alive = False
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None

    async def open(self, token: str) -> None:
        self.ws = ws = await connect(
            self.url,
            compression=None,
            ping_interval=None,
            open_timeout=self.timeout,
            close_timeout=2,
            max_size=65536,
        )
        await ws.send(json.dumps({"type": "hello", "token": token, "v": 1}))
        await self._until("welcome")
        await ws.send('{"type":"start"}')
        await self._until("session.started")
        self.alive = True
        self.reader = asyncio.get_running_loop().create_task(self._listen())

    async def _until(self, kind: str) -> None:
        assert self.ws is not None
        while True:
            frame = json.loads(await self.ws.recv())
            if frame["type"] == kind:
                return
            if frame["type"] == "error":
                raise RuntimeError(f"error {frame.get('code')}")

    async def _listen(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                if message == '{"type":"pong"}':
                    self.stats.pongs += 1
        except ConnectionClosed:
            pass
        finally:
            self.alive = False
            if not self.stats.stopping:
                self.stats.dropped += 1

    async def beat(self) -> None:
        assert self.ws is not None
        await self.ws.send('{"type":"ping"}')

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


class SocketIOConn:
    """python-socketio's own client doing the same: ``hello``, ``start``, heartbeats."""

    def __init__(self, url: str, stats: Stats, timeout: float, http: aiohttp.ClientSession):
        self.url = url
        self.stats = stats
        self.timeout = timeout
        self.alive = False
        self.waiting: dict[str, asyncio.Future[None]] = {}
        client = socketio.AsyncClient(
            reconnection=False, handle_sigint=False, http_session=http, request_timeout=timeout
        )
        client.on("welcome", lambda *_: self._arrived("welcome"))
        client.on("started", lambda *_: self._arrived("started"))
        client.on("pong", self._pong)
        client.on("error", self._error)
        client.on("disconnect", self._disconnected)
        self.client = client

    def _arrived(self, kind: str) -> None:
        future = self.waiting.pop(kind, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _pong(self, *_: Any) -> None:
        self.stats.pongs += 1

    def _error(self, data: Any = None) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(RuntimeError(f"error {data}"))

    def _disconnected(self, *_: Any) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("disconnected"))
        if self.alive and not self.stats.stopping:
            self.stats.dropped += 1
        self.alive = False

    async def _call(self, event: str, data: Any, reply: str) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting[reply] = future
        await self.client.emit(event, data)
        await future

    async def open(self, token: str) -> None:
        await self.client.connect(self.url, transports=["websocket"], wait_timeout=self.timeout)
        await self._call("hello", {"token": token, "v": 1}, "welcome")
        await self._call("start", {}, "started")
        self.alive = True

    async def beat(self) -> None:
        await self.client.emit("heartbeat")

    async def close(self) -> None:
        await self.client.disconnect()


@dataclass
class Args:
    contender: str
    url: str
    secret: str
    prefix: str
    count: int
    inflight: int
    heartbeat: float
    timeout: float
    users: int = 0  # distinct users, connections spread round-robin; 0: one per connection


def tokens(args: Args) -> list[str]:
    now = int(time.time())
    return [
        jwt.encode(
            {
                "sub": f"{args.prefix}{i % (args.users or args.count)}",
                "iat": now,
                "exp": now + 86400,
            },
            args.secret,
            algorithm="HS256",
        )
        for i in range(args.count)
    ]


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


async def command() -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip() or "close"  # EOF: the bench is gone


async def open_all(args: Args, minted: list[str], make: Any, stats: Stats) -> list[Conn]:
    held: list[Conn] = []
    pending = iter(minted)

    async def opener() -> None:
        for token in pending:
            conn: Conn = make()
            try:
                async with asyncio.timeout(args.timeout):
                    await conn.open(token)
            except Exception as exc:
                stats.errors[type(exc).__name__ + (f": {exc}"[:80] if str(exc) else "")] += 1
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
                continue
            stats.ok += 1
            held.append(conn)

    await asyncio.gather(*(opener() for _ in range(max(1, args.inflight))))
    return held


async def heartbeats(conns: list[Conn], every: float, stats: Stats) -> None:
    """Each connection beats once per ``every`` seconds, their phases spread evenly."""
    if not conns:
        return
    loop = asyncio.get_running_loop()
    start, n, sent = loop.time(), len(conns), 0
    while True:
        due = int((loop.time() - start) * n / every)
        while sent < due:
            conn = conns[sent % n]
            sent += 1
            if conn.alive:
                with contextlib.suppress(Exception):
                    await conn.beat()
                    stats.beats += 1
        await asyncio.sleep(min(0.05, every / n))


async def main(args: Args) -> None:
    raise_nofile()
    minted = tokens(args)
    stats = Stats()
    http: aiohttp.ClientSession | None = None
    if args.contender == "tether":

        def make() -> Conn:
            return TetherConn(args.url.replace("http", "ws", 1) + "/ws", stats, args.timeout)

    else:
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        def make() -> Conn:
            assert http is not None
            return SocketIOConn(args.url, stats, args.timeout, http)

    emit("ready")
    beating: asyncio.Task[None] | None = None
    conns: list[Conn] = []
    while True:
        cmd = await command()
        if cmd == "go":
            first = time.time()
            conns = await open_all(args, minted, make, stats)
            emit("held", ok=stats.ok, errors=dict(stats.errors), first=first, last=time.time())
            beating = asyncio.get_running_loop().create_task(
                heartbeats(conns, args.heartbeat, stats)
            )
        elif cmd == "report":
            alive = sum(conn.alive for conn in conns)
            emit(
                "report",
                open=alive,
                dropped=stats.dropped,
                beats=stats.beats,
                pongs=stats.pongs,
            )
        elif cmd == "close":
            stats.stopping = True
            if beating is not None:
                beating.cancel()
            for i in range(0, len(conns), 200):
                await asyncio.gather(
                    *(conn.close() for conn in conns[i : i + 200]), return_exceptions=True
                )
            if http is not None:
                await http.close()
            emit("closed")
            return


if __name__ == "__main__":
    asyncio.run(main(Args(**json.loads(sys.argv[1]))))
