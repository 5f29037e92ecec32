"""A client worker of ``bench/replies.py``: one process, one loop, its share of sessions.

``python -m bench.replies_client '{"contender": ..., "url": ..., ...}'`` talks
to the bench over stdin (commands, one a line) and stdout (JSON events, one a
line), like ``bench/ws_idle_client.py``:

* at start it mints one token per session (tether) and prints ``ready``;
* ``go``: opens ``count`` WebSockets, at most ``inflight`` at once, each with a
  session of its own, and prints ``held``;
* ``stream T0 W0 W1``: asks every session for a reply of ``pieces`` pieces at
  ``rate``/s, session ``i`` (of ``total`` in all workers) starting at
  ``T0 + i / total / rate`` so that the sessions' pieces are spread evenly
  over time; from then on every piece received is timed. W0..W1 is the
  measurement window (``time.time()`` seconds);
* ``report``: prints the pieces received in all and inside the window (by
  receive time), the added latency in ms of every piece *due* inside the
  window (receive time minus the time the piece says it was due), the pieces
  never received and the ones out of order;
* ``check`` (tether): reads each session's transcript over REST (``GET
  /api/v1/sessions/{id}/messages``) and prints how many hold exactly one
  assistant message, complete (every piece, in order), with a ``reply_id`` and
  not partial;
* ``close``: closes every connection, prints ``closed`` and exits.

Both contenders are read with the same client library, ``websockets`` (no
compression, no client pings): tether speaks its protocol (``hello``,
``start``, a user ``message`` holding the request; ``reply.delta`` frames,
whose text may hold several pieces, split back at ``|``); python-socketio is
spoken as Engine.IO 4 over a WebSocket (``40`` to join the namespace, the
request as ``42["stream", ...]``, pieces as ``42["delta", piece]``; an
Engine.IO ping ``2`` is answered ``3``). The same client code on both sides
means that what differs is the server; python-socketio's own ``AsyncClient``
would cost the socket.io side more CPU per piece in a client sharing the
machine's two CPUs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.replies_server import parse, piece, request
from bench.ws_idle_client import Args as IdleArgs
from bench.ws_idle_client import command, emit, tokens
from bench.ws_idle_server import raise_nofile


@dataclass
class Args:
    contender: str
    url: str
    secret: str
    prefix: str
    count: int  # sessions in this worker
    first: int  # the global index of this worker's first session
    total: int  # sessions in all workers
    rate: float  # pieces per second per reply
    pieces: int  # pieces per reply
    inflight: int
    timeout: float


@dataclass
class Stats:
    received: int = 0
    in_window: int = 0
    frames: int = 0
    disorder: int = 0
    dropped: int = 0
    window: tuple[float, float] = (0.0, 0.0)
    due_in_window: int = 0  # pieces of every reply due inside the window
    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    stopping: bool = False


class Session:
    """One WebSocket, one session, one reply being received."""

    def __init__(self, args: Args, stats: Stats) -> None:
        self.args = args
        self.stats = stats
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.session_id = ""
        self.token = ""
        self.next = 0  # the piece expected next
        self.got = 0  # pieces received
        self.plan: tuple[float, int, float] | None = None

    def take(self, text: str, now: float) -> None:
        """Account for the pieces of one frame, received at ``now``."""
        stats = self.stats
        w0, w1 = stats.window
        stats.frames += 1
        count = 0
        for part in text.split("|"):
            if not part:
                continue
            k, _, due_us = part.partition("@")
            due = int(due_us) / 1e6
            if int(k) != self.next:
                stats.disorder += 1
            self.next = int(k) + 1
            if w0 <= due < w1:
                stats.latencies.append((now - due) * 1000)
            count += 1
        self.got += count
        stats.received += count
        if w0 <= now < w1:
            stats.in_window += count

    async def ask(self, start: float) -> None:
        """Ask for the reply (tether: a user message; socket.io: a ``stream`` event)."""
        text = request(start, self.args.pieces, self.args.rate)
        self.plan = parse(text)  # what the server will read, to the µs
        assert self.plan is not None
        w0, w1 = self.stats.window
        first, count, rate = self.plan
        self.stats.due_in_window += sum(w0 <= first + k / rate < w1 for k in range(count))
        assert self.ws is not None
        await self.ws.send(self.frame(text))

    def frame(self, text: str) -> str:
        raise NotImplementedError

    async def _listen(self) -> None:
        raise NotImplementedError

    async def _read(self) -> None:
        try:
            await self._listen()
        except ConnectionClosed:
            pass
        finally:
            if not self.stats.stopping:
                self.stats.dropped += 1

    def listen(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


def _socket(url: str, timeout: float) -> Any:
    return connect(
        url,
        compression=None,
        ping_interval=None,
        open_timeout=timeout,
        close_timeout=2,
        max_size=2**20,
    )


class TetherSession(Session):
    async def open(self, token: str) -> None:
        self.token = token
        self.ws = ws = await _socket(self.args.url.replace("http", "ws", 1) + "/ws", 60)
        await ws.send(json.dumps({"type": "hello", "token": token, "v": 1}))
        await self._until("welcome")
        await ws.send('{"type":"start"}')
        self.session_id = (await self._until("session.started"))["session"]["id"]
        self.listen()

    async def _until(self, kind: str) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            frame: dict[str, Any] = json.loads(await self.ws.recv())
            if frame["type"] == kind:
                return frame
            if frame["type"] == "error":
                raise RuntimeError(f"error {frame.get('code')}")

    def frame(self, text: str) -> str:
        return json.dumps({"type": "message", "role": "user", "content": text})

    async def _listen(self) -> None:
        assert self.ws is not None
        clock, loads = time.time, json.loads
        async for message in self.ws:
            now = clock()
            frame = loads(message)
            if frame["type"] == "reply.delta":
                self.take(frame["text"], now)
            elif frame["type"] == "error":
                self.stats.errors[f"error {frame.get('code')}"] += 1


class SocketIOSession(Session):
    async def open(self, token: str) -> None:
        url = self.args.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = ws = await _socket(url, 60)
        opened = await ws.recv()
        if not str(opened).startswith("0"):
            raise RuntimeError(f"no Engine.IO open packet: {opened!r:.60}")
        await ws.send("40")
        joined = await ws.recv()
        if not str(joined).startswith("40"):
            raise RuntimeError(f"namespace not joined: {joined!r:.60}")
        self.listen()

    def frame(self, text: str) -> str:
        return "42" + json.dumps(["stream", text])

    async def _listen(self) -> None:
        assert self.ws is not None
        clock, loads = time.time, json.loads
        async for message in self.ws:
            now = clock()
            if message == "2":
                await self.ws.send("3")
                continue
            if isinstance(message, str) and message.startswith("42"):
                event, data = loads(message[2:])
                if event == "delta":
                    self.take(data, now)


async def open_all(args: Args, stats: Stats, minted: list[str]) -> list[Session]:
    kind = TetherSession if args.contender == "tether" else SocketIOSession
    held: list[Session] = []
    pending = iter(minted)

    async def opener() -> None:
        for token in pending:
            session = kind(args, stats)
            try:
                async with asyncio.timeout(args.timeout):
                    await session.open(token)
            except Exception as exc:
                stats.errors[type(exc).__name__ + (f": {exc}"[:80] if str(exc) else "")] += 1
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.close(), 2)
                continue
            held.append(session)

    await asyncio.gather(*(opener() for _ in range(max(1, args.inflight))))
    return held


def _stored_once(messages: list[dict[str, Any]], expected: str) -> str | None:
    """Why the transcript does not hold the reply exactly once, complete; ``None`` if it does."""
    replies = [m for m in messages if m["role"] == "assistant"]
    if len(replies) != 1:
        return f"{len(replies)} assistant messages"
    metadata = replies[0].get("metadata") or {}
    if metadata.get("partial"):
        return "stored partial"
    if not metadata.get("reply_id"):
        return "no reply_id"
    if replies[0]["content"] != expected:
        return "content differs from the pieces"
    return None


async def check(args: Args, sessions: list[Session], wait: float) -> dict[str, Any]:
    """Each session's transcript over REST: one complete reply message, stored once."""
    problems: Counter[str] = Counter()
    ok = 0
    gate = asyncio.Semaphore(50)
    deadline = time.time() + wait

    async def one(http: aiohttp.ClientSession, session: Session) -> None:
        nonlocal ok
        assert session.plan is not None
        start, count, rate = session.plan
        expected = "".join(piece(k, start + k / rate) for k in range(count))
        url = f"{args.url}/api/v1/sessions/{session.session_id}/messages?limit=1000"
        headers = {"Authorization": f"Bearer {session.token}"}
        while True:
            async with gate, http.get(url, headers=headers) as response:
                body = await response.json() if response.status == 200 else {}
            if response.status != 200:
                why: str | None = f"HTTP {response.status}"
            else:
                why = _stored_once(body["messages"], expected)
            if why is None:
                ok += 1
                return
            if why != "0 assistant messages" or time.time() > deadline:
                problems[why] += 1
                return
            await asyncio.sleep(0.2)  # the reply's last piece is out, its message not yet

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(*(one(http, s) for s in sessions if s.plan is not None))
    return {"ok": ok, "problems": dict(problems)}


async def main(args: Args) -> None:
    raise_nofile()
    idle = IdleArgs(args.contender, args.url, args.secret, args.prefix, args.count, 1, 0, 60)
    minted = tokens(idle) if args.contender == "tether" else [""] * args.count
    stats = Stats()
    sessions: list[Session] = []
    emit("ready")
    while True:
        cmd, *values = (await command()).split()
        if cmd == "go":
            sessions = await open_all(args, stats, minted)
            emit("held", ok=len(sessions), errors=dict(stats.errors))
        elif cmd == "stream":
            t0, w0, w1 = map(float, values)
            stats.window = (w0, w1)
            await asyncio.gather(
                *(
                    s.ask(t0 + (args.first + i) / args.total / args.rate)
                    for i, s in enumerate(sessions)
                )
            )
            emit("streaming")
        elif cmd == "report":
            missing = sum(max(0, args.pieces - s.got) for s in sessions)
            emit(
                "report",
                received=stats.received,
                in_window=stats.in_window,
                frames=stats.frames,
                missing=missing,
                disorder=stats.disorder,
                dropped=stats.dropped,
                errors=dict(stats.errors),
                unreceived_in_window=stats.due_in_window - len(stats.latencies),
                latencies=[round(x, 3) for x in stats.latencies],
            )
        elif cmd == "check":
            emit("checked", **await check(args, sessions, float(values[0]) if values else 10.0))
        elif cmd == "close":
            stats.stopping = True
            for i in range(0, len(sessions), 200):
                await asyncio.gather(
                    *(s.close() for s in sessions[i : i + 200]), return_exceptions=True
                )
            emit("closed")
            return


if __name__ == "__main__":
    # uvloop, as the servers run on: the clients share the machine's CPUs with
    # the server, and a cheaper client leaves more of them to it (both contenders).
    uvloop.run(main(Args(**json.loads(sys.argv[1]))))
