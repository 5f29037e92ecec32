"""Hostile REST requests for ``make fuzz``: one worker process, a seeded mutation generator.

Every operation of the app's own OpenAPI document (read from ``/openapi.json``
at start, so a new endpoint is fuzzed without a change here) is called with
mutated parts, each drawn from a seeded :class:`random.Random`:

* auth: the caller's token, none, garbage, expired, another user's, the admin
  token, or the token in the query under encoded and cased names
  (``token=``, ``%74oken=``, ``TOKEN=``, repeated);
* path ids: one of the caller's live sessions, another user's, random,
  upper-case, 31/33 characters, ``..``, percent-encoded junk, 2,000 characters;
* query: junk, repeated and percent-encoded names;
* bodies: valid, one field of a wrong type (from the shared hostile value pool),
  JSON nested thousands deep, over the size limit, invalid JSON, truncated,
  invalid UTF-8, not an object, the wrong content type;
* a client hanging up mid-body (raw socket: a ``Content-Length`` it never
  finishes) or mid-stream (an SSE stream read once, then dropped).

A 5xx is a failure whatever the request was. The admin token never calls
``cleanup`` with ``all``/``inactive`` (it would rightly end the well-behaved session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

import httpx

from bench.fuzz_gen import MAX_BYTES, deep, hostile_value
from bench.fuzz_server import mint

USERS_PER_WORKER = 40


class Stats:
    """One worker's counters."""

    def __init__(self) -> None:
        self.requests = 0
        self.status: Counter[str] = Counter()
        self.by_op: Counter[str] = Counter()
        self.five_xx: list[str] = []
        self.disconnects = 0
        self.transport_errors: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "status": dict(self.status),
            "operations": dict(self.by_op),
            "five_xx": len(self.five_xx),
            "five_xx_samples": self.five_xx[:20],
            "client_disconnects": self.disconnects,
            "transport_errors": dict(self.transport_errors),
        }


class Fuzzer:
    """The request generator and its pool of users and sessions."""

    def __init__(self, base: str, secret: str, admin: str, seed: int, ops: list[tuple[str, str]]):
        self.base = base
        self.secret = secret
        self.admin = admin
        self.rng = random.Random(seed)
        self.ops = ops
        prefix = f"rz{self.rng.getrandbits(32):x}"
        self.users = [f"{prefix}u{i}" for i in range(USERS_PER_WORKER)]
        self.tokens = {u: mint(secret, u) for u in self.users}
        self.expired = mint(secret, self.users[0], ttl=1.0, now=time.time() - 3600)
        self.sessions: dict[str, list[str]] = {u: [] for u in self.users}
        self.stats = Stats()

    # -- the parts of a request ---------------------------------------------------------

    def _auth(self, user: str) -> tuple[dict[str, str], dict[str, str], str]:
        """(headers, query, auth kind) for one request."""
        rng = self.rng
        kind = rng.choices(
            ("own", "none", "garbage", "expired", "other", "admin", "query", "bearer_case"),
            (0.62, 0.05, 0.05, 0.03, 0.05, 0.08, 0.08, 0.04),
        )[0]
        token = self.tokens[user]
        if kind == "own":
            return {"Authorization": f"Bearer {token}"}, {}, kind
        if kind == "none":
            return {}, {}, kind
        if kind == "garbage":
            junk = rng.choice(("x", "a.b.c", "Bearer", "A" * 9000, token[:-3] + "abc", "é"))
            return {"Authorization": f"Bearer {junk}".encode()}, {}, kind  # type: ignore[dict-item]
        if kind == "expired":
            return {"Authorization": f"Bearer {self.expired}"}, {}, kind
        if kind == "other":
            other = self.tokens[rng.choice(self.users)]
            return {"Authorization": f"Bearer {other}"}, {}, kind
        if kind == "admin":
            return {"Authorization": f"Bearer {self.admin}"}, {}, kind
        if kind == "bearer_case":
            return (
                {"Authorization": f"{rng.choice(('bearer', 'BEARER', 'Basic'))} {token}"},
                {},
                kind,
            )
        name = rng.choice(("token", "%74oken", "TOKEN", "Token", "%54OKEN", "tok%65n"))
        secret = rng.choice((token, self.admin))
        return {}, {name: secret}, kind

    def _session_id(self, user: str) -> str:
        rng = self.rng
        own = self.sessions[user]
        choice = rng.random()
        if own and choice < 0.6:
            return rng.choice(own)
        if choice < 0.7:
            others = [s for u in self.users for s in self.sessions[u]]
            if others:
                return rng.choice(others)
        return rng.choice(
            (
                f"{rng.getrandbits(128):032x}",
                f"{rng.getrandbits(128):032X}",
                f"{rng.getrandbits(132):033x}",
                f"{rng.getrandbits(124):031x}",
                "..",
                "%2e%2e",
                "%00",
                "x" * 2000,
                quote("é☃"),
                "%ZZ",
            )
        )

    def _body(self, op: str) -> tuple[bytes | None, str | None, str]:
        """(body, content type, body kind) for ``op``."""
        rng = self.rng
        valid: dict[str, Any] = {
            "POST /api/v1/sessions": {"kind": "fuzz", "config": {"a": 1}},
            "POST /api/v1/sessions/{session_id}/messages": {"role": "user", "content": "hi"},
            "PUT /api/v1/sessions/{session_id}/config": {"config": {"lang": "en"}},
            "POST /api/v1/sessions/cleanup": {"type": "specific", "session_ids": ["0" * 32]},
        }.get(op, {})
        kind = rng.choices(
            (
                "valid",
                "wrong_field",
                "deep",
                "huge",
                "bad_json",
                "truncated",
                "utf8",
                "shape",
                "ctype",
                "none",
            ),
            (0.35, 0.2, 0.08, 0.04, 0.06, 0.06, 0.04, 0.07, 0.05, 0.05),
        )[0]
        ctype: str | None = "application/json"
        if kind == "valid":
            body = json.dumps(valid).encode()
        elif kind == "wrong_field":
            fields = {k: json.dumps(v) for k, v in valid.items()}
            target = rng.choice([*fields, "extra"])
            fields[target] = hostile_value(rng)
            body = ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()
        elif kind == "deep":
            where = rng.choice(("config", "metadata", "top"))
            nested = deep(rng, rng.choice((300, 350, 400, 999, 1001, 5000, 20000)))
            if where == "top":
                body = nested.encode()
            elif where == "config":
                body = ('{"config":{"c":' + nested + "}}").encode()
            else:
                body = ('{"role":"user","content":"x","metadata":{"m":' + nested + "}}").encode()
        elif kind == "huge":
            body = json.dumps({"content": "x" * (MAX_BYTES + rng.randrange(1, 10000))}).encode()
        elif kind == "bad_json":
            body = rng.choice((b"{", b"nul", b"{'a':1}", b'{"a":NaN}', b"[1,]", b"\x00"))
        elif kind == "truncated":
            text = json.dumps(valid).encode()
            body = text[: rng.randrange(max(1, len(text)))]
        elif kind == "utf8":
            body = b'{"role":"user","content":"\xff\xfe\xc3("}'
        elif kind == "shape":
            body = hostile_value(rng).encode()
        elif kind == "ctype":
            body = json.dumps(valid).encode()
            ctype = rng.choice(("text/plain", "application/x-www-form-urlencoded", "", "a/b;;"))
        else:
            body, ctype = None, None
        return body, ctype, kind

    def _query(self, op: str) -> dict[str, str]:
        rng = self.rng
        if rng.random() < 0.6:
            return {}
        options = {
            "user": rng.choice(("me", self.users[0], "", "x" * 300, "%00")),
            "state": rng.choice(("active", "ended", "warning", "bogus", "")),
            "after": rng.choice(("0", "-1", "1e999", "x", "99999999999999999999")),
            "limit": rng.choice(("0", "-5", "100000", "abc")),
            "".join(rng.choices(string.ascii_letters + "%", k=8)): "x",
        }
        picked = rng.sample(list(options), rng.randrange(1, 3))
        return {k: options[k] for k in picked}

    # -- sending ------------------------------------------------------------------------

    def _note(self, op: str, status: int, detail: str) -> None:
        self.stats.requests += 1
        self.stats.status[str(status)] += 1
        self.stats.by_op[op] += 1
        if status >= 500 and len(self.stats.five_xx) < 50:
            self.stats.five_xx.append(f"{status} {op} {detail}"[:400])

    async def setup(self, client: httpx.AsyncClient) -> None:
        """Two live sessions per user to aim at."""
        for user in self.users:
            await self.start_session(client, user)
            await self.start_session(client, user)

    async def start_session(self, client: httpx.AsyncClient, user: str) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        r = await client.post("/api/v1/sessions", json={"kind": "fuzz"}, headers=headers)
        self._note("POST /api/v1/sessions", r.status_code, "setup")
        if r.status_code == 201:
            own = self.sessions[user]
            own.append(r.json()["id"])
            del own[:-4]

    async def one(self, client: httpx.AsyncClient) -> None:
        """One fuzzed request."""
        rng = self.rng
        user = rng.choice(self.users)
        if rng.random() < 0.01:
            await self.hang_up_mid_body(user)
            return
        if rng.random() < 0.03:
            await self.start_session(client, user)
            return
        method, path = rng.choice(self.ops)
        op = f"{method} {path}"
        headers, query, auth_kind = self._auth(user)
        body, ctype, body_kind = self._body(op)
        if op == "POST /api/v1/sessions/cleanup" and auth_kind in ("admin", "query"):
            body, ctype = json.dumps({"type": "specific", "session_ids": ["0" * 32]}).encode(), None
            headers, query = {"Authorization": f"Bearer {self.tokens[user]}"}, {}
        url = path.replace("{session_id}", self._session_id(user))
        url = url.replace("{user}", rng.choice((user, "me", "x" * 300, "..", "%2F", "A")))
        url = url.replace("{archive_id}", rng.choice(("0", "x" * 100, "..%2F..%2Fetc", "a b")))
        query.update(self._query(op))
        if query:
            url += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        if ctype:
            headers["Content-Type"] = ctype
        detail = f"{url[:120]} auth={auth_kind} body={body_kind}"
        try:
            if path.endswith("/events"):
                # Headers, at most one read, then hang up mid-stream.
                async with client.stream(method, url, headers=headers, timeout=5) as r:
                    self._note(op, r.status_code, detail)
                    if r.status_code == 200:
                        if rng.random() < 0.2:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(anext(r.aiter_raw()), 0.3)
                        self.stats.disconnects += 1
                return
            sent = body if method in ("POST", "PUT", "PATCH") else None
            r = await client.request(method, url, headers=headers, content=sent)
        except httpx.HTTPError as exc:
            self.stats.transport_errors[type(exc).__name__] += 1
            return
        self._note(op, r.status_code, detail + f" -> {r.text[:120]}")
        if r.status_code == 410 or (op.endswith("/end") and r.status_code == 200):
            sid = url.split("/")[4] if url.count("/") > 4 else ""
            for own in self.sessions.values():
                if sid in own:
                    own.remove(sid)

    async def hang_up_mid_body(self, user: str) -> None:
        """A request whose body never finishes: the client closes after part of it."""
        host, _, port = self.base.removeprefix("http://").partition(":")
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            self.stats.transport_errors[type(exc).__name__] += 1
            return
        sid = self._session_id(user)
        head = (
            f"POST /api/v1/sessions/{sid}/messages HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {self.tokens[user]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {self.rng.randrange(100, MAX_BYTES)}\r\n\r\n"
        )
        writer.write(head.encode() + b'{"role":"user","content":"' + b"x" * 40)
        with contextlib.suppress(OSError):
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.transport.abort()
        self.stats.disconnects += 1
        self.stats.requests += 1
        self.stats.by_op["hang up mid-body"] += 1


async def _run(args: dict[str, Any]) -> Stats:
    ops = [tuple(op) for op in args["ops"]]
    fuzzer = Fuzzer(args["url"], args["secret"], args["admin"], args["seed"], ops)  # type: ignore[arg-type]
    limits = httpx.Limits(max_connections=args["concurrency"], max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=args["url"], timeout=30, limits=limits) as client:
        await fuzzer.setup(client)
        remaining = [args["requests"] - fuzzer.stats.requests]

        async def lane() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await fuzzer.one(client)

        await asyncio.gather(*(lane() for _ in range(args["concurrency"])))
    return fuzzer.stats


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """Entry point of one worker process: url, secret, admin, ops, requests, concurrency, seed."""
    t0 = time.perf_counter()
    stats = asyncio.run(_run(args))
    return {**stats.as_dict(), "seconds": time.perf_counter() - t0}


def operations(base: str) -> list[tuple[str, str]]:
    """Every (method, path) of the server's own OpenAPI document."""
    spec = httpx.get(f"{base}/openapi.json", timeout=30).json()
    methods = ("get", "post", "put", "patch", "delete")
    return [(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in methods]
