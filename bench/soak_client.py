"""Churn clients for ``make soak``: one worker process starting sessions at a steady rate.

:func:`worker` starts ``rate`` sessions a second for ``seconds``, each with a
fate drawn from a seeded generator, and checks that it ends for the one
reason its fate implies:

==========  ===========================================================  ===============
fate        what the client does                                         expected end
==========  ===========================================================  ===============
ws_end      WS hello, start, 3 x (ping, activity, message), ``end``      client_ended
ws_idle     WS hello, start, one message, then only pings                idle_timeout
ws_drop     WS hello, start, 2 messages, then drops the TCP connection   client_gone
rest_end    REST start, heartbeat, 2 messages, end                       client_ended
rest_gone   REST start, heartbeat, one message, then nothing             client_gone
==========  ===========================================================  ===============

An end the client does not see itself (``ws_drop``, ``rest_gone``) is read
back with ``GET /api/v1/sessions/{id}`` once the presence timeout has passed.
Every session lands in ``ends[fate][reason]``; anything else (an error frame,
a 5xx, an unexpected close, a missing end) is counted in ``errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.fuzz_server import mint

FATES = {"ws_end": 0.35, "ws_idle": 0.15, "ws_drop": 0.2, "rest_end": 0.15, "rest_gone": 0.15}
EXPECTED = {
    "ws_end": "client_ended",
    "ws_idle": "idle_timeout",
    "ws_drop": "client_gone",
    "rest_end": "client_ended",
    "rest_gone": "client_gone",
}


class Churn:
    """One worker's sessions and counters."""

    def __init__(self, args: dict[str, Any], client: httpx.AsyncClient) -> None:
        self.args = args
        self.client = client
        self.rng = random.Random(args["seed"])
        self.started = 0
        self.ends: dict[str, Counter[str]] = {fate: Counter() for fate in FATES}
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.live = 0

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        if self.errors[kind] <= 3:  # a few of each kind
            self.samples.append(f"{kind}: {detail}"[:300])

    async def session(self, n: int) -> None:
        fate = self.rng.choices(list(FATES), list(FATES.values()))[0]
        user = f"{self.args['prefix']}{n % self.args['users']}"
        token = mint(self.args["secret"], user)
        self.live += 1
        try:
            reason = await getattr(self, fate)(token)
        except (OSError, ConnectionClosed, httpx.HTTPError, TimeoutError) as exc:
            self.error(f"{fate}:{type(exc).__name__}", str(exc))
            reason = None
        finally:
            self.live -= 1
        self.ends[fate][reason or "unaccounted"] += 1
        if reason != EXPECTED[fate]:
            self.error(f"{fate}:ended {reason}", f"expected {EXPECTED[fate]}")

    # -- WebSocket fates ----------------------------------------------------------------

    async def _open(self, token: str) -> tuple[ClientConnection, str]:
        ws = await connect(
            self.args["ws"], compression=None, open_timeout=30, close_timeout=10, ping_interval=None
        )
        await ws.send(json.dumps({"type": "hello", "token": token, "v": 1}))
        await ws.send('{"type":"start","kind":"soak"}')
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if frame["type"] == "session.started":
                return ws, frame["session"]["id"]
            if frame["type"] == "error":
                raise OSError(f"error frame {frame.get('code')} while starting")

    async def _read_until_end(self, ws: ClientConnection, within: float) -> str | None:
        """Frames until ``session.ended``; its reason. Errors and stray frames are counted."""
        reason = None

        async def read() -> None:
            nonlocal reason
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    frame = json.loads(raw)
                    kind = frame["type"]
                    if kind == "session.ended":
                        reason = frame.get("reason")
                    elif kind == "error":
                        self.error(f"ws error {frame.get('code')}", frame.get("message", ""))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), within)
        return reason

    async def ws_end(self, token: str) -> str | None:
        ws, _ = await self._open(token)
        async with ws:
            for i in range(3):
                await ws.send('{"type":"ping"}')
                await ws.send('{"type":"activity"}')
                await ws.send(json.dumps({"type": "message", "role": "user", "content": f"m{i}"}))
                await asyncio.sleep(1.0)
            await ws.send('{"type":"end"}')
            reason = await self._read_until_end(ws, 30)
        if ws.close_code != 1000:
            self.error("ws_end close", str(ws.close_code))
        return reason

    async def ws_idle(self, token: str) -> str | None:
        ws, _ = await self._open(token)
        async with ws:
            await ws.send(json.dumps({"type": "message", "role": "user", "content": "then idle"}))

            async def beat() -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await asyncio.sleep(self.args["heartbeat"])
                        await ws.send('{"type":"ping"}')

            beating = asyncio.create_task(beat())
            reason = await self._read_until_end(ws, self.args["idle_timeout"] + 30)
            beating.cancel()
        if ws.close_code != 4001:
            self.error("ws_idle close", str(ws.close_code))
        return reason

    async def ws_drop(self, token: str) -> str | None:
        ws, sid = await self._open(token)
        for i in range(2):
            await ws.send(json.dumps({"type": "message", "role": "user", "content": f"d{i}"}))
            await asyncio.sleep(0.5)
        ws.transport.abort()
        return await self._ended_reason(token, sid)

    # -- REST fates ---------------------------------------------------------------------

    async def _rest_start(self, headers: dict[str, str]) -> str:
        r = await self.client.post("/api/v1/sessions", json={"kind": "soak"}, headers=headers)
        self._check(r, 201)
        sid: str = r.json()["id"]
        return sid

    def _check(self, r: httpx.Response, *ok: int) -> None:
        if r.status_code not in ok:
            self.error(f"http {r.status_code}", f"{r.request.method} {r.text[:200]}")

    async def rest_end(self, token: str) -> str | None:
        headers = {"Authorization": f"Bearer {token}"}
        sid = await self._rest_start(headers)
        base = f"/api/v1/sessions/{sid}"
        self._check(await self.client.post(f"{base}/heartbeat", headers=headers), 200)
        for i in range(2):
            body = {"role": "user", "content": f"r{i}"}
            self._check(await self.client.post(f"{base}/messages", json=body, headers=headers), 201)
            await asyncio.sleep(0.5)
        self._check(await self.client.post(f"{base}/end", headers=headers), 200)
        return await self._ended_reason(token, sid, wait=0.0)

    async def rest_gone(self, token: str) -> str | None:
        headers = {"Authorization": f"Bearer {token}"}
        sid = await self._rest_start(headers)
        # the heartbeat is what starts a REST client's presence clock (docs/lifecycle.md);
        # without it the session is HTTP-only and ends idle_timeout
        self._check(
            await self.client.post(f"/api/v1/sessions/{sid}/heartbeat", headers=headers), 200
        )
        body = {"role": "user", "content": "then gone"}
        r = await self.client.post(f"/api/v1/sessions/{sid}/messages", json=body, headers=headers)
        self._check(r, 201)
        return await self._ended_reason(token, sid)

    async def _ended_reason(self, token: str, sid: str, wait: float | None = None) -> str | None:
        """The end reason the server reports for ``sid``, once its presence has run out."""
        await asyncio.sleep(self.args["presence_timeout"] + 1.0 if wait is None else wait)
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = await self.client.get(f"/api/v1/sessions/{sid}", headers=headers)
            if r.status_code == 200 and r.json().get("state") == "ended":
                reason: str | None = r.json().get("end_reason")
                return reason
            if r.status_code not in (200, 410):
                self._check(r, 200)
                return None
            if r.status_code == 410:
                data = r.json().get("error", {})
                reason = data.get("reason") or data.get("end_reason")
                return reason if isinstance(reason, str) else "ended"
            await asyncio.sleep(1.0)
        return None


async def _run(args: dict[str, Any]) -> dict[str, Any]:
    # Idle keep-alive connections are dropped well before uvicorn's 5 s timeout: a request
    # sent on a connection the server is closing would fail for the harness's sake.
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=args["http"], timeout=30, limits=limits) as client:
        churn = Churn(args, client)
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = 0
        late = 0.0
        while loop.time() - t0 < args["seconds"]:
            due = t0 + n / args["rate"]
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                late = max(late, now - due)
            task = loop.create_task(churn.session(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        spawned_s = loop.time() - t0
        if tasks:
            await asyncio.wait(tasks, timeout=args["idle_timeout"] + 120)
        return {
            "started": n,
            "spawn_seconds": spawned_s,
            "max_lateness_s": late,
            "unfinished": len(tasks),
            "ends": {fate: dict(c) for fate, c in churn.ends.items()},
            "errors": dict(churn.errors),
            "samples": churn.samples,
        }


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """Entry point of one worker process (``args``: see :func:`bench.soak.churn_jobs`)."""
    return asyncio.run(_run(args))
