"""The client process of ``bench/responder.py``: both contenders, one loop, one process.

``python -m bench.responder_client '{"plan": ..., ...}'`` runs the plan's
measurements in order and prints one JSON line per measurement
(``{"event": "measured", "contender", "concurrency", "repeat", "ms": [...]}``),
then ``{"event": "done"}``. Both contenders run in this same process with the
same concurrency and the same conversation shape, so the client's own costs
(an event loop, JSON, a socket read per frame) are alike on both sides.

A measurement at concurrency ``c``: ``c`` workers at once, each holding
``sessions`` conversations one after the other, each of ``turns`` turns; a
turn is a pause (``think`` seconds on average, uniform in ``[0, 2 * think]``),
one user message and its whole reply: the next message waits for the reply,
as a person chatting does. One sample per
turn: the milliseconds from just before the message is sent to the first
piece of reply text.

* ``tether``: a ``websockets`` connection per conversation (``hello``, then
  ``start``, not timed), then per turn ``message {role: "user", content}``,
  timed until the first ``reply.delta``; the reply is complete at its
  ``transcript.message`` (role ``assistant``). The conversation ends with
  ``end``.
* ``direct``: an ``httpx`` streaming client (``httpx-sse`` for the framing,
  what tether's own client uses) posting ``{model, messages, stream: true}``
  to the fake LLM's ``/chat/completions``, timed until the first chunk with
  non-empty ``delta.content``, then read to ``[DONE]``. It keeps the
  conversation as tether does (the user and assistant messages so far), so
  both send the same requests. Its pool is sized for the concurrency: no
  request waits for a connection, every connection is kept alive.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
import httpx_sse
import jwt
from websockets.asyncio.client import ClientConnection, connect

CONTENT = "how long until the first token arrives"


@dataclass
class Args:
    ws_url: str  # tether's /ws
    llm_url: str  # the fake LLM's API root (…/v1)
    model: str
    secret: str
    plan: list[list[Any]]  # [contender, concurrency, repeat, sessions, turns, think], in order
    timeout: float = 30.0


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


class Tether:
    """Conversations over tether's WebSocket protocol."""

    def __init__(self, args: Args) -> None:
        self.args = args
        self.users = 0

    def _token(self) -> str:
        # A user per conversation: no per-user session or connection limit is reached.
        self.users += 1
        now = int(time.time())
        claims = {"sub": f"bench-{self.users}", "iat": now, "exp": now + 86400}
        return jwt.encode(claims, self.args.secret, algorithm="HS256")

    async def conversation(self, turns: int, think: float, samples: list[float]) -> None:
        async with connect(
            self.args.ws_url, compression=None, ping_interval=None, max_size=2**20
        ) as ws:
            await ws.send(json.dumps({"type": "hello", "token": self._token(), "v": 1}))
            await _until(ws, "welcome")
            await ws.send('{"type":"start"}')
            await _until(ws, "session.started")
            message = json.dumps({"type": "message", "role": "user", "content": CONTENT})
            for _ in range(turns):
                await pause(think)
                t0 = time.perf_counter()
                await ws.send(message)
                await _until(ws, "reply.delta")
                samples.append((time.perf_counter() - t0) * 1000)
                while True:  # the reply is complete when its message is stored
                    frame = await _until(ws, "transcript.message")
                    if frame["message"]["role"] == "assistant":
                        break
            await ws.send('{"type":"end"}')
            await _until(ws, "session.ended")


async def _until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await ws.recv())
        if frame["type"] == kind:
            return frame
        if frame["type"] == "error":
            raise RuntimeError(f"error frame {frame.get('code')}: {frame.get('message')}")


class Direct:
    """Conversations straight with the fake LLM, as an app without tether would hold them."""

    def __init__(self, args: Args, http: httpx.AsyncClient) -> None:
        self.args = args
        self.http = http
        self.url = args.llm_url.rstrip("/") + "/chat/completions"

    async def conversation(self, turns: int, think: float, samples: list[float]) -> None:
        history: list[dict[str, str]] = []
        for _ in range(turns):
            await pause(think)
            history.append({"role": "user", "content": CONTENT})
            body = {"model": self.args.model, "messages": history, "stream": True}
            t0 = time.perf_counter()
            parts: list[str] = []
            async with httpx_sse.aconnect_sse(self.http, "POST", self.url, json=body) as source:
                source.response.raise_for_status()
                async for event in source.aiter_sse():
                    if event.data.strip() == "[DONE]":
                        break
                    content = json.loads(event.data)["choices"][0]["delta"].get("content")
                    if content:
                        if not parts:
                            samples.append((time.perf_counter() - t0) * 1000)
                        parts.append(content)
            history.append({"role": "assistant", "content": "".join(parts)})


async def pause(think: float) -> None:
    """A person's pause before a message: uniform in ``[0, 2 * think]`` (none at 0)."""
    if think > 0:
        await asyncio.sleep(random.uniform(0, 2 * think))


async def measure(
    contender: Any, concurrency: int, sessions: int, turns: int, think: float
) -> list[float]:
    samples: list[float] = []

    async def worker() -> None:
        for _ in range(sessions):
            await contender.conversation(turns, think, samples)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def main(args: Args) -> None:
    top = max(c for _, c, *_ in args.plan)
    limits = httpx.Limits(max_connections=top + 16, max_keepalive_connections=top + 16)
    async with httpx.AsyncClient(timeout=httpx.Timeout(args.timeout), limits=limits) as http:
        contenders = {"tether": Tether(args), "direct": Direct(args, http)}
        for name, concurrency, repeat, sessions, turns, think in args.plan:
            async with asyncio.timeout((args.timeout + 2 * think) * sessions * turns + 30):
                ms = await measure(contenders[name], concurrency, sessions, turns, think)
            emit("measured", contender=name, concurrency=concurrency, repeat=repeat, ms=ms)
    emit("done")


if __name__ == "__main__":
    asyncio.run(main(Args(**json.loads(sys.argv[1]))))
