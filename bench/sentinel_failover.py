"""Sentinel failover under load, with two real ``tether serve`` processes: what it costs.

``python -m bench.sentinel_failover`` (figures to ``bench/results/sentinel_failover.json``);
``tests/cluster/test_cluster_sentinel.py`` runs the same scenario and asserts on it.

A primary, its replica and three Sentinels (:mod:`bench.sentinel_server`); nodes
A and B on ``redis+sentinel://``, one shared data dir, short cluster timings
(1 s node lease, 2 s presence timeout: an outage the nodes did not treat as
such would end the REST-heartbeating sessions ``client_gone``). Under load
(a third of the sessions heartbeat over REST, the others' WebSockets ping;
REST writers post user messages through both nodes; a
writer ends some sessions as their user) the primary is SIGKILLed and the
Sentinels promote the replica. Counted:

* sessions wrongly ended: any session ended with a reason other than the one
  the run gave it (``client_ended`` for the ones it ended, ``admin`` for the
  rest, ended by an admin once the load stops);
* archives per session (exactly one each);
* writes answered 503 during the switch, writes that succeeded after it (the
  same processes, no restart), any other answer;
* messages and ends acknowledged before the failover and lost with the
  replica's lag (read back from the archives), and that lag itself: how many
  bytes of the replication stream the replica lacked just before the kill
  (the replica's offset read first, then the primary's: an upper estimate).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.redis_end import Node
from bench.sentinel_server import sentinel_set
from tether.service.auth import TokenAuthority

RESULTS = Path(__file__).parent / "results" / "sentinel_failover.json"
SECRET = "sentinel-failover-secret-0123456789abcdef"
ADMIN_TOKEN = "sentinel-failover-admin-token"
TOKENS = TokenAuthority(SECRET, admin_token=ADMIN_TOKEN)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PRESENCE = 2.0
NODE_LEASE = 1.0
WAIT = 30.0  # a bound for anything on a loaded machine, never a figure
PING_EVERY = 0.3
WRITERS = 6
WARM_WRITES = 150
AFTER_WRITES = 150
ENDS = 10


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.mint(user, ttl=3600)}"}


async def poll(condition: Callable[[], Awaitable[bool] | bool], within: float, what: str) -> None:
    """Until ``condition()`` holds, for at most ``within`` seconds (``RuntimeError`` after)."""
    deadline = time.monotonic() + within
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Client:
    """One user's session and WebSocket, and what the socket was told."""

    user: str
    node: Node
    sid: str = ""
    conn: ClientConnection | None = None
    ended: list[str] = field(default_factory=list)
    """Reasons of the ``session.ended`` frames received."""
    refused: int = 0
    """``error`` frames with code ``store_unavailable`` (pings during the switch)."""
    reconnects: int = 0
    rest: bool = False
    """Heartbeats over REST (no socket): its presence is its heartbeats alone."""


async def _hello(client: Client, first: dict[str, Any], expect: str) -> dict[str, Any]:
    conn = await connect(client.node.ws, compression=None, open_timeout=WAIT)
    hello = {"type": "hello", "token": TOKENS.mint(client.user, ttl=3600), "v": 1}
    await conn.send(json.dumps(hello))
    while True:
        frame = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
        if frame["type"] == "welcome":
            await conn.send(json.dumps(first))
        elif frame["type"] == expect:
            client.conn = conn
            return dict(frame)
        elif frame["type"] == "error":
            await conn.close()
            raise ConnectionError(frame.get("code"))


async def _open(client: Client, http: httpx.AsyncClient) -> None:
    if client.rest:
        made = await http.post(
            f"{client.node.http}/api/v1/sessions", json={"kind": "chat"}, headers=_auth(client.user)
        )
        made.raise_for_status()
        client.sid = made.json()["id"]
        return
    frame = await _hello(client, {"type": "start", "kind": "chat"}, "session.started")
    client.sid = frame["session"]["id"]


class Run:
    """The load and its counts."""

    def __init__(self, nodes: tuple[Node, Node], sessions: int) -> None:
        self.nodes = nodes
        # Every third session heartbeats over REST, the others hold a WebSocket.
        self.clients = [
            Client(f"user{i:03d}", nodes[i % 2], rest=i % 3 == 2) for i in range(sessions)
        ]
        self.open: set[str] = set()
        self.by_sid: dict[str, Client] = {}
        self.acked: dict[str, list[str]] = {}
        self.statuses: Counter[int] = Counter()
        self.transport_errors = 0
        self.after = 0
        self.refused_at: list[float] = []
        self.killed_at = 0.0
        self.promoted_at = 0.0
        self.ended_by_run: dict[str, str] = {}
        self.end_refused = 0
        self.raced_end = 0
        self.stop = asyncio.Event()
        self.second_half = asyncio.Event()

    async def beat(self, http: httpx.AsyncClient, client: Client) -> None:
        """Heartbeat over REST every ``PING_EVERY`` s until the run ends the session."""
        url = f"{client.node.http}/api/v1/sessions/{client.sid}/heartbeat"
        while not self.stop.is_set() and client.sid in self.open:
            try:
                answer = await http.post(url, headers=_auth(client.user))
            except httpx.TransportError:
                self.transport_errors += 1
                continue
            if answer.status_code == 503:
                client.refused += 1
            elif answer.status_code == 410 and client.sid in self.open:
                client.ended.append(str(answer.json()))  # ended, and not by the run
                return
            elif answer.status_code not in (200, 410):
                self.statuses[answer.status_code] += 1
            await asyncio.sleep(PING_EVERY)

    async def keep(self, client: Client) -> None:
        """Ping every ``PING_EVERY`` s, read frames; come back with ``resume`` if dropped."""
        while not self.stop.is_set():
            conn = client.conn
            assert conn is not None
            try:
                await conn.send('{"type":"ping"}')
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_EVERY):
                        while True:
                            frame = json.loads(await conn.recv())
                            if frame["type"] == "session.ended":
                                client.ended.append(frame["reason"])
                            elif frame["type"] == "error":
                                client.refused += frame.get("code") == "store_unavailable"
            except ConnectionClosed:
                if client.ended or conn.close_code not in (1001, 1006, 1011, None):
                    return
                while not self.stop.is_set():  # a drop, not an end: come back
                    try:
                        resume = {"type": "resume", "session_id": client.sid}
                        await _hello(client, resume, "session.resumed")
                        client.reconnects += 1
                        break
                    except (OSError, ConnectionError, ConnectionClosed, InvalidStatus):
                        await asyncio.sleep(0.1)

    async def write(self, http: httpx.AsyncClient, seed: int) -> None:
        """Post user messages to random open sessions through random nodes."""
        rng = random.Random(seed)
        n = 0
        while not self.stop.is_set():
            if not self.open:
                await asyncio.sleep(0.05)
                continue
            sid = rng.choice(sorted(self.open))
            node = rng.choice(self.nodes)
            content = f"w{seed}-{n}"
            n += 1
            sent = time.monotonic()
            try:
                answer = await http.post(
                    f"{node.http}/api/v1/sessions/{sid}/messages",
                    json={"role": "user", "content": content},
                    headers=_auth(self.by_sid[sid].user),
                )
            except httpx.TransportError:
                self.transport_errors += 1
                continue
            if answer.status_code == 410 and sid not in self.open:
                self.raced_end += 1  # the run ended it while this post was on its way
                continue
            self.statuses[answer.status_code] += 1
            if answer.status_code == 201:
                self.acked[sid].append(content)
                if self.promoted_at and sent > self.promoted_at:
                    self.after += 1
            elif answer.status_code == 503:
                self.refused_at.append(time.monotonic())
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)

    async def end(self, http: httpx.AsyncClient) -> None:
        """End ``ENDS`` sessions as their users: half before the kill, half from it on."""
        order = [c.sid for c in self.clients[:ENDS]]
        for i, sid in enumerate(order):
            if i == ENDS // 2:
                await self.second_half.wait()
            self.open.discard(sid)  # no writer picks it from now on
            while not self.stop.is_set():
                node = self.by_sid[sid].node
                try:
                    answer = await http.post(
                        f"{node.http}/api/v1/sessions/{sid}/end",
                        headers=_auth(self.by_sid[sid].user),
                    )
                except httpx.TransportError:
                    self.transport_errors += 1
                    continue
                self.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    self.ended_by_run[sid] = answer.json()["reason"]
                    break
                self.end_refused += answer.status_code == 503
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)

    def writes(self) -> int:
        return sum(map(len, self.acked.values()))


async def _scenario(
    run: Run, promoted: Callable[[], Awaitable[bool]], kill: Callable[[], int], data: Path
) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_connections=64)) as http:
        for client in run.clients:
            await _open(client, http)
            run.open.add(client.sid)
            run.by_sid[client.sid] = client
            run.acked[client.sid] = []
        tasks = [
            asyncio.create_task(run.beat(http, c) if c.rest else run.keep(c)) for c in run.clients
        ]
        tasks += [asyncio.create_task(run.write(http, seed)) for seed in range(WRITERS)]
        ender = asyncio.create_task(run.end(http))
        await poll(
            lambda: run.writes() >= WARM_WRITES and len(run.ended_by_run) >= ENDS // 2,
            WAIT,
            "the warm-up writes",
        )
        acked_before = run.writes()
        lag = kill()
        run.killed_at = time.monotonic()
        run.second_half.set()
        await poll(promoted, WAIT, "the Sentinels to promote the replica")
        run.promoted_at = time.monotonic()
        # Load goes on past a presence timeout plus a node lease after the switch:
        # an outage taken for clients' silence would have ended sessions by then.
        settle = run.promoted_at + PRESENCE + NODE_LEASE + 1.0
        await poll(
            lambda: run.after >= AFTER_WRITES and ender.done() and time.monotonic() > settle,
            WAIT,
            "writes after the switch",
        )
        run.stop.set()
        await asyncio.gather(*tasks, ender)
        for client in run.clients:
            if client.conn is not None:
                await client.conn.close()
        # Every session the run did not end is ended by an admin now.
        live_again = 0
        wrongly = 0
        for client in run.clients:
            answer = await http.post(
                f"{run.nodes[0].http}/api/v1/sessions/{client.sid}/end", headers=ADMIN
            )
            answer.raise_for_status()
            body = answer.json()
            if client.sid in run.ended_by_run:
                live_again += bool(body["ended"])  # its acknowledged end was lost
            elif not body["ended"] or body["reason"] != "admin":
                wrongly += 1
    wrongly += sum(
        1
        for c in run.clients
        if any(r != "client_ended" for r in c.ended) or (c.ended and c.sid not in run.ended_by_run)
    )
    wrongly += sum(1 for r in run.ended_by_run.values() if r != "client_ended")

    def archives(user: str) -> list[Path]:
        folder = data / "users" / user / "dialogs" / "archived"
        return sorted(folder.iterdir()) if folder.exists() else []

    await poll(lambda: all(archives(c.user) for c in run.clients), WAIT, "every archive")
    duplicates = lost = repeated = 0
    reasons: Counter[str] = Counter()
    for client in run.clients:
        files = archives(client.user)
        duplicates += len(files) - 1
        doc = yaml.safe_load(files[0].read_text())
        reasons[doc["end_reason"]] += 1
        expected = "client_ended" if client.sid in run.ended_by_run else "admin"
        wrongly += doc["end_reason"] != expected
        stored = [m["content"] for m in doc.get("messages") or []]
        repeated += len(stored) - len(set(stored))
        missing = set(run.acked[client.sid]) - set(stored)
        lost += len(missing)
    refused = run.refused_at
    return {
        "sessions": len(run.clients),
        "nodes": len(run.nodes),
        "writes_acknowledged": run.writes(),
        "writes_acknowledged_before_kill": acked_before,
        "writes_503": run.statuses[503],
        "ends_503": run.end_refused,
        "ws_pings_refused": sum(c.refused for c in run.clients if not c.rest),
        "rest_heartbeats_503": sum(c.refused for c in run.clients if c.rest),
        "ws_reconnects": sum(c.reconnects for c in run.clients),
        "writes_after_switch": run.after,
        "other_answers": {str(k): v for k, v in run.statuses.items() if k not in (200, 201, 503)},
        "transport_errors": run.transport_errors,
        "writes_410_racing_an_end": run.raced_end,
        "replica_behind_at_kill_bytes": lag,
        "unavailable_s": round(refused[-1] - run.killed_at, 3) if refused else 0.0,
        "promoted_after_s": round(run.promoted_at - run.killed_at, 3),
        "sessions_ended_by_run": len(run.ended_by_run),
        "sessions_wrongly_ended": wrongly,
        "archive_reasons": dict(reasons),
        "duplicate_archives": duplicates,
        "acknowledged_messages_lost": lost,
        "acknowledged_ends_lost": live_again,
        "messages_stored_twice": repeated,
    }


async def failover(directory: Path, sessions: int = 40) -> dict[str, Any]:
    """Run the scenario in ``directory`` (servers, data dir, logs); its counts."""
    data = directory / "data"
    data.mkdir(parents=True)
    with sentinel_set(directory / "redis") as sentinels:
        await poll(sentinels.synced, WAIT, "the replica and the Sentinels")
        env = {
            "TETHER_REDIS_URL": sentinels.url,
            "TETHER_SECRET": SECRET,
            "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
            "TETHER_DATA_DIR": str(data),
            "TETHER_PRESENCE_TIMEOUT": f"{PRESENCE}s",
            "TETHER_HEARTBEAT_INTERVAL": "500ms",
            "TETHER_IDLE_TIMEOUT": "10m",
            "TETHER_NODE_LEASE": f"{NODE_LEASE}s",
            "TETHER_END_LEASE": "3s",
            "TETHER_CLUSTER_POLL": "200ms",
            "TETHER_SHUTDOWN_GRACE": "3s",
            "TETHER_MAX_REQUESTS_PER_MINUTE": "1000000",
            "TETHER_REQUEST_BURST": "100000",
            "TETHER_LOG_LEVEL": "warning",
            "TETHER_FSYNC": "no",
        }
        nodes = (Node("a", env, directory), Node("b", env, directory))
        try:
            await asyncio.gather(*(node.ready() for node in nodes))
            run = Run(nodes, sessions)

            def kill() -> int:
                """SIGKILL the primary; how far the replica was behind just before (bytes)."""
                with (
                    redis.Redis(port=sentinels.replica.port) as replica,
                    redis.Redis(port=sentinels.primary.port) as primary,
                ):
                    behind = int(replica.info("replication")["slave_repl_offset"])
                    ahead = int(primary.info("replication")["master_repl_offset"])
                sentinels.primary.process.kill()
                return max(0, ahead - behind)

            result = await _scenario(run, sentinels.promoted, kill, data)
        finally:
            for node in nodes:
                node.stop()
    return result


def main() -> None:
    """Run once and write ``bench/results/sentinel_failover.json``."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="tether-bench-sentinel-") as directory:
        result = asyncio.run(failover(Path(directory)))
    payload = {
        "meta": {
            "bench": "sentinel_failover",
            "started": started,
            "python": sys.version.split()[0],
            "command": "python -m bench.sentinel_failover",
        },
        "results": result,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
