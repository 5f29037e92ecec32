"""The browser client's shared fixtures (tests/fixtures/client) checked against the server.

tether.js's node tests (clients/js/test) prove the client agrees with these
fixtures; the tests here prove the fixtures agree with the server: its
settings, its frame models, its close codes, its routes, its documentation
and the frames a real server sends. So the client cannot drift from the
server without one side failing. The last test runs the node tests, so
``make test`` covers them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tether.core.events import CLOSE_CODES
from tether.service import Settings, create_app
from tether.service.auth import TokenAuthority
from tether.service.frames import PROTOCOL_VERSION, Observe, parse_frame
from tether.service.server import server_config
from tether.service.ws import closes
from tether.types import EndReason

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "client"
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"
SECRET = "client-fixture-test-secret-0123456789"
WAIT = 5.0
FAST = {
    "idle_timeout": 1.2,
    "warn_before": 0.6,
    "max_duration": 30.0,
    "presence_timeout": 0.8,
    "heartbeat_interval": 0.2,
    "hello_timeout": 2.0,
}


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _settings(data_dir: Path) -> Settings:
    return Settings(
        secret=SECRET, data_dir=data_dir, port=0, log_level="warning", fsync="no", **FAST
    )


def _token(user: str = "alice") -> str:
    return TokenAuthority(SECRET).mint(user, ttl=600.0)


def _doc_section(title: str) -> str:
    """The text of the docs/protocol.md section headed ``title`` (up to the next heading)."""
    text = PROTOCOL_DOC.read_text()
    start = text.index(f"\n{title}\n")
    rest = text[start + len(title) + 2 :]
    end = re.search(r"\n#{2,3} ", rest)
    return rest if end is None else rest[: end.start()]


def _table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


# -- settings and backoff -------------------------------------------------------------


def test_client_defaults_are_the_server_defaults() -> None:
    """tether.js's fallback heartbeat, presence timeout and observe wait are the server's."""
    defaults = _fixture("defaults.json")
    fields = Settings.model_fields
    assert defaults["heartbeat_interval_s"] == fields["heartbeat_interval"].default
    assert defaults["presence_timeout_s"] == fields["presence_timeout"].default
    assert defaults["observe_wait_s"] == Observe.model_fields["wait_s"].default


def test_activity_throttle_is_far_below_the_warning_lead() -> None:
    """One activity per throttle window can always clear a warning long before the end."""
    defaults = _fixture("defaults.json")
    fields = Settings.model_fields
    throttle_s = defaults["activity_throttle_ms"] / 1000
    assert throttle_s * 10 <= fields["warn_before"].default
    assert throttle_s < fields["idle_timeout"].default


def _backoff(attempt: int, base: float, cap: float, random: float) -> int:
    ceiling = 0 if base == 0 else min(cap, base * 2 ** max(0, attempt))
    return math.floor(min(max(random, 0.0), 1.0) * ceiling)


def test_backoff_fixture_follows_the_full_jitter_formula() -> None:
    """Each backoff case is floor(random * min(cap, base * 2**attempt)), as the docs say."""
    for case in _fixture("backoff.json")["cases"]:
        expected = _backoff(case["attempt"], case["base"], case["cap"], case["random"])
        assert case["expected"] == expected, case["name"]


def test_default_backoff_fits_several_resumes_into_the_presence_timeout() -> None:
    """Even at the worst jitter, the default backoff tries to resume often within the grace."""
    defaults = _fixture("defaults.json")
    needed = _fixture("backoff.json")["min_attempts_within_presence_timeout"]
    grace_ms = Settings.model_fields["presence_timeout"].default * 1000
    elapsed, attempts = 0.0, 0
    while True:
        elapsed += _backoff(attempts, defaults["backoff_base_ms"], defaults["backoff_cap_ms"], 1.0)
        if elapsed > grace_ms:
            break
        attempts += 1
    assert attempts >= needed
    assert defaults["backoff_cap_ms"] * 2 < grace_ms


# -- close codes ----------------------------------------------------------------------


def _close_fixture() -> dict[int, dict[str, Any]]:
    return {c["code"]: c for c in _fixture("close_codes.json")["codes"]}


def _documented_close_codes() -> dict[int, str]:
    """docs/protocol.md's close code table: code -> yes / no / pause."""
    advice = {}
    for code, _meaning, reconnect in _table_rows(_doc_section("### Close codes")):
        word = reconnect.lower()
        advice[int(code)] = (
            "pause" if "pause" in word else "yes" if word.startswith("yes") else "no"
        )
    return advice


def test_close_code_fixture_is_the_documented_table() -> None:
    """Every documented close code is in the fixture with the documented reconnect advice."""
    documented = _documented_close_codes()
    fixture = _close_fixture()
    assert len(documented) >= 12
    assert {code: fixture[code]["reconnect"] for code in documented} == documented
    assert {c for c, row in fixture.items() if row["documented"]} == set(documented)


def test_close_code_reasons_are_the_servers_end_reasons() -> None:
    """Each end reason's close code carries a reason the server really ends with at that code."""
    fixture = _close_fixture()
    for reason, code in CLOSE_CODES.items():
        row = fixture[code]
        assert row["reason"] in {r.value for r, c in CLOSE_CODES.items() if c == code}, reason
        expected = "yes" if reason in (EndReason.SERVER_SHUTDOWN, EndReason.ERROR) else "no"
        assert row["reconnect"] == expected, reason
    for code, row in fixture.items():
        if row["reason"] is not None:
            assert code in CLOSE_CODES.values(), code


def test_every_close_code_the_server_sends_is_in_the_fixture() -> None:
    """The server's own close constants are known to the client with the right advice."""
    fixture = _close_fixture()
    sent = {
        closes.CLOSE_GOING_AWAY: "yes",
        closes.CLOSE_POLICY: "no",
        closes.CLOSE_TOO_LARGE: "no",
        closes.CLOSE_RATE_LIMITED: "pause",
        closes.CLOSE_UNKNOWN_SESSION: "no",
    }
    assert {code: fixture[code]["reconnect"] for code in sent} == sent
    assert set(CLOSE_CODES.values()) <= set(fixture)


# -- frames -----------------------------------------------------------------------------


def test_client_frames_are_accepted_by_the_servers_parser() -> None:
    """Every frame tether.js builds parses with the server's frame models, field for field."""
    for case in _fixture("client_frames.json")["cases"]:
        frame = case["frame"]
        parsed = parse_frame(json.dumps(frame))
        assert parsed.type == frame["type"], case["name"]
        for key, value in frame.items():
            assert getattr(parsed, key) == value, (case["name"], key)
    hello = parse_frame(json.dumps(_fixture("client_frames.json")["cases"][0]["frame"]))
    assert getattr(hello, "v", None) == PROTOCOL_VERSION


def _documented_server_frames() -> dict[str, set[str]]:
    """docs/protocol.md's "From the server" table: frame type -> its documented fields."""
    out: dict[str, set[str]] = {}
    for cell, _when in _table_rows(_doc_section("### From the server")):
        match = re.fullmatch(r"`([a-z.]+)(?: \{([^}]*)\})?`", cell)
        assert match, cell
        names = (match.group(2) or "").replace("?", "").split(",")
        out[match.group(1)] = {n.strip() for n in names if n.strip() and n.strip() != "..."}
    return out


def test_frame_fixture_knows_exactly_the_documented_server_frames() -> None:
    """The fixture's frame types and fields are the documented ones: required ⊆ doc ⊆ known."""
    frames = _fixture("frames.json")
    documented = _documented_server_frames()
    assert set(frames["required"]) == set(documented)
    for kind, fields in documented.items():
        required = set(frames["required"][kind])
        known = required | set(frames["optional"].get(kind, []))
        assert required <= fields, kind
        assert fields <= known, kind


def _openapi() -> dict[str, Any]:
    doc: dict[str, Any] = create_app(_settings(Path("unused"))).openapi()
    return doc


def _answer_schema(doc: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    """The JSON schema the server's OpenAPI documents for one route's answer."""
    content = doc["paths"][path][method]["responses"][status]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def _problems(value: Any, schema: dict[str, Any], doc: dict[str, Any], at: str = "") -> list[str]:
    """Where ``value`` breaks ``schema`` (the JSON Schema subset pydantic's OpenAPI uses)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _problems(value, doc["components"]["schemas"][name], doc, at)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_problems(value, s, doc, at) for s in schema[key]]
            return [] if any(not o for o in options) else [f"{at}: matches none of {key}"]
    types = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "object": dict,
        "array": list,
        "null": type(None),
    }
    kind = schema.get("type")
    if kind is not None and not isinstance(value, types[kind]):
        return [f"{at}: {value!r} is not {kind}"]
    if isinstance(value, bool) and kind in ("integer", "number"):
        return [f"{at}: {value!r} is not {kind}"]
    out = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{at}: {value!r} != {schema['const']!r}")
    if "minimum" in schema and value < schema["minimum"]:
        out.append(f"{at}: {value!r} < {schema['minimum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(f"{at}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        out += [f"{at}.{k}: missing" for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                out += _problems(value[key], sub, doc, f"{at}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += _problems(item, schema["items"], doc, f"{at}[{i}]")
    return out


def _transcript_messages(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The transcript messages a server frame carries."""
    if frame["type"] == "transcript.message":
        return [frame["message"]]
    tail: list[dict[str, Any]] = frame.get("transcript_tail", [])
    return tail


def _documented_error_codes() -> set[str]:
    def codes(cell: str) -> set[str]:
        # "`a`, `b`, ..." or "`a` (with `field`)": the codes come before any "(".
        return set(re.findall(r"`([a-z_]+)`", cell.split("(")[0]))

    ws = [codes(row[0]) for row in _table_rows(_doc_section("### Error codes"))]
    rest = [codes(row[1]) for row in _table_rows(_doc_section("### Errors"))]
    return set().union(*ws, *rest)


def test_valid_fixture_frames_satisfy_the_servers_schemas() -> None:
    """Fixture sessions, messages, reasons and error codes are ones the server documents."""
    frames = _fixture("frames.json")
    reasons = {r.value for r in EndReason}
    codes = _documented_error_codes()
    doc = _openapi()
    one = "/api/v1/sessions/{session_id}"
    session_schema = _answer_schema(doc, one, "get", "200")
    message_schema = _answer_schema(doc, one + "/messages", "post", "201")
    error_schema = doc["components"]["schemas"]["ErrorDetail"]
    assert _problems({"id": "x"}, session_schema, doc)  # the checker does check
    assert {"unknown_session", "session_ended", "rate_limited"} <= codes
    for case in frames["valid"]:
        frame = case["frame"]
        if "session" in frame:
            assert _problems(frame["session"], session_schema, doc) == [], case["name"]
        for message in _transcript_messages(frame):
            assert _problems(message, message_schema, doc) == [], case["name"]
        if frame["type"] in ("session.warning", "session.ended"):
            assert frame["reason"] in reasons, case["name"]
        if frame["type"] == "error":
            assert frame["code"] in codes, case["name"]
            assert set(frame) - {"type"} <= set(error_schema["properties"]), case["name"]
            assert _problems(frame, error_schema, doc) == [], case["name"]


# -- a real server ----------------------------------------------------------------------


@asynccontextmanager
async def _live(settings: Settings) -> AsyncIterator[int]:
    """The app under real uvicorn on a free loopback port; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(settings), settings))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(WAIT):
            while True:  # uvicorn offers no event for "listening"
                if server.started or task.done():
                    break
                await asyncio.sleep(0.005)
        if task.done():
            task.result()
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT * 2)
        sock.close()


@dataclass
class Observed:
    """What a real server sent: frames by type, and the close code after each ending."""

    frames: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    closes: dict[str, int | None] = field(default_factory=dict)


class _Client:
    def __init__(self, conn: ClientConnection, seen: Observed) -> None:
        self.conn = conn
        self.seen = seen

    async def send(self, **frame: Any) -> None:
        await self.conn.send(json.dumps(frame))

    async def until(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                frame: dict[str, Any] = json.loads(await self.conn.recv())
                self.seen.frames.setdefault(frame["type"], []).append(frame)
                if frame["type"] == kind:
                    return frame

    async def close_code(self) -> int | None:
        async with asyncio.timeout(WAIT):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    frame = json.loads(await self.conn.recv())
                    self.seen.frames.setdefault(frame["type"], []).append(frame)
        return self.conn.close_code


@asynccontextmanager
async def _client(port: int, seen: Observed) -> AsyncIterator[_Client]:
    case = _fixture("endpoints.json")["cases"][0]
    ws_path = case["endpoints"]["ws"].removeprefix(case["base"].replace("https", "wss"))
    async with connect(f"ws://127.0.0.1:{port}{ws_path}", compression=None) as conn:
        client = _Client(conn, seen)
        await client.send(type="hello", token=_token(), v=1)
        await client.until("welcome")
        yield client


async def _observe(data_dir: Path) -> Observed:
    seen = Observed()
    async with _live(_settings(data_dir)) as port:
        async with _client(port, seen) as a:
            await a.send(type="start", kind="interview", config={"job": "nurse"})
            sid = (await a.until("session.started"))["session"]["id"]
            await a.until("session.config")
            await a.until("session.warning")
            await a.send(type="activity")
            await a.until("session.active")
            await a.send(type="message", role="user", content="hello")
            await a.until("transcript.message")
            await a.send(type="ping")
            await a.until("pong")
            await a.send(type="no.such.frame")
            await a.until("error")
            async with _client(port, seen) as b:
                await b.send(type="resume", session_id=sid, after=0)
                await b.until("session.resumed")
                await a.send(type="end")
                await a.until("session.ended")
                seen.closes["client_ended"] = await a.close_code()
        async with _client(port, seen) as c:
            await c.send(type="resume", session_id=sid)
            seen.closes["resume_ended"] = await c.close_code()
        async with _client(port, seen) as d:
            await d.send(type="start")
            await d.until("session.started")
            seen.closes["idle_timeout"] = await d.close_code()
    return seen


FROM_THE_APP = {"reply.delta", "app"}
"""Frames only a server-side application sends (the reply API, ``send_app``): a bare
server's scenario above cannot produce them; their shape is the contract's
(docs/protocol.md), and tests/browser/test_browser_replies.py sees them from a real server."""


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    return asyncio.run(_observe(tmp_path_factory.mktemp("client-fixtures")))


def test_fixture_frames_have_the_shape_of_real_server_frames(observed: Observed) -> None:
    """Every field the client requires is in every real frame; fixture frames use real fields."""
    frames = _fixture("frames.json")
    assert set(observed.frames) == set(frames["required"]) - FROM_THE_APP
    for kind, real_frames in observed.frames.items():
        for real in real_frames:
            assert set(frames["required"][kind]) <= set(real), kind
    for case in frames["valid"]:
        kind = case["frame"]["type"]
        if kind in FROM_THE_APP:
            continue
        real_keys = set().union(*(set(f) for f in observed.frames[kind]))
        optional = set(frames["optional"].get(kind, []))
        allowed = real_keys | optional | set(case.get("extra_fields", []))
        assert set(case["frame"]) <= allowed, case["name"]


def test_fixture_sessions_and_messages_have_every_real_field(observed: Observed) -> None:
    """Fixture sessions and messages carry exactly the fields a real server sends."""
    frames = _fixture("frames.json")
    real_session = observed.frames["session.started"][0]["session"]
    real_message = observed.frames["transcript.message"][0]["message"]
    assert set(frames["session_required"]) <= set(real_session)
    assert set(frames["message_required"]) <= set(real_message)
    for case in frames["valid"]:
        frame = case["frame"]
        if "session" in frame:
            assert set(frame["session"]) == set(real_session), case["name"]
        for message in _transcript_messages(frame):
            assert set(message) - {"metadata"} == set(real_message), case["name"]


def test_real_close_codes_get_the_fixtures_advice(observed: Observed) -> None:
    """The codes a real server closes with after an end are ones the client never retries."""
    fixture = _close_fixture()
    assert observed.closes == {"client_ended": 1000, "resume_ended": 4404, "idle_timeout": 4001}
    assert fixture[1000]["reason"] == "client_ended"
    assert fixture[4001]["reason"] == "idle_timeout"
    assert all(fixture[code]["reconnect"] == "no" for code in observed.closes.values() if code)
    ended_error = [f for f in observed.frames["error"] if f["code"] == "session_ended"]
    assert ended_error[0]["reason"] == "client_ended"


# -- URLs, beacons and the event stream from a browser --------------------------------


def test_endpoint_fixture_paths_and_methods_are_server_routes() -> None:
    """Every HTTP URL tether.js derives names a documented route, with the method it uses."""
    data = _fixture("endpoints.json")
    paths = _openapi()["paths"]
    case = data["cases"][0]
    for name, method in data["methods"].items():
        path = case["endpoints"][name].removeprefix(case["base"])
        template = path.replace(data["session_id"], "{session_id}")
        assert method.lower() in paths.get(template, {}), (name, template)
    assert case["beacon"]["url"] == case["endpoints"]["end"]


@asynccontextmanager
async def _asgi(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
            yield client


async def test_the_fixtures_beacon_request_ends_a_session(tmp_path: Path) -> None:
    """What tether.js passes to sendBeacon (the token as text/plain) ends the session."""
    beacon = _fixture("endpoints.json")["cases"][0]["beacon"]
    assert beacon["contentType"] == "text/plain"
    async with _asgi(tmp_path) as client:
        headers = {"Authorization": f"Bearer {_token()}"}
        sid = (await client.post("/api/v1/sessions", headers=headers, json={})).json()["id"]
        response = await client.post(
            f"/api/v1/sessions/{sid}/end",
            content=_token().encode(),
            headers={"Content-Type": beacon["contentType"]},
        )
        assert response.status_code == 200
        assert response.json() == {"ended": True, "reason": "client_ended"}
        info = (await client.get(f"/api/v1/sessions/{sid}", headers=headers)).json()
        assert info["end_reason"] == "client_ended"


async def test_event_stream_accepts_the_token_query_an_eventsource_can_send(
    tmp_path: Path,
) -> None:
    """EventSource cannot send headers: the events URL's ?token= authenticates it."""
    async with _asgi(tmp_path) as client:
        headers = {"Authorization": f"Bearer {_token()}"}
        sid = (await client.post("/api/v1/sessions", headers=headers, json={})).json()["id"]
        await client.post(f"/api/v1/sessions/{sid}/end", headers=headers)
        url = f"/api/v1/sessions/{sid}/events"
        ok = await client.get(url, params={"token": _token(), "last_event_id": "3"})
        bad = await client.get(url, params={"token": "not-a-token"})
        missing = await client.get(url)
    assert ok.status_code == 410  # authenticated: the session has ended
    assert ok.json()["error"]["reason"] == "client_ended"
    assert bad.status_code == 401
    assert missing.status_code == 401


# -- the JavaScript tests ---------------------------------------------------------------


def test_node_unit_tests_of_the_browser_client_pass() -> None:
    """``node --test clients/js/test`` passes, so ``make test`` covers tether.js too."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: the browser client's tests (clients/js/test) need "
            "Node.js >= 20 (apt-get install nodejs)"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major < 20:
        pytest.fail(f"node {version} is too old for clients/js/test: it needs Node.js >= 20")
    result = subprocess.run(
        [node, "--test", "clients/js/test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = "\n".join(line for line in result.stdout.splitlines() if line.startswith("# "))
    assert result.returncode == 0, f"{summary}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert re.search(r"^# fail 0$", result.stdout, re.M), summary
    assert int(re.search(r"^# pass (\d+)$", result.stdout, re.M).group(1)) >= 150  # type: ignore[union-attr]
