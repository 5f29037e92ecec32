"""Requests generated from the OpenAPI schema never get a 5xx.

A hypothesis-driven stand-in for schemathesis (not a dependency yet): every
operation of ``/openapi.json`` is called with generated path parameters,
query values, JSON or raw bodies and credentials, against one app.
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_kit import ADMIN_TOKEN, asgi_client, make_settings, token

from tether.service import create_app

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
SKIPPED = {"/api/v1/sessions/{session_id}/events"}  # a stream that would never end
STATE: dict[str, Any] = {}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), op)
        for path, item in schema["paths"].items()
        if path not in SKIPPED
        for method, op in item.items()
    ]


def _body_fields(op: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = content.get("schema", {})
    for option in ref.get("anyOf", [ref]):
        if "$ref" in option:
            name = option["$ref"].rsplit("/", 1)[-1]
            return list(schema["components"]["schemas"][name].get("properties", {}))
    return []


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    schema = STATE["schema"]
    path, method, op = draw(st.sampled_from(_operations(schema)))
    url = path
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = draw(
                st.sampled_from([STATE["sid"], "0" * 32, "..", "%2e%2e", "alice", "bob"])
                | st.text(min_size=1, max_size=40)
            )
            url = url.replace("{" + param["name"] + "}", quote(value, safe=""))
    query = {
        p["name"]: draw(st.text(max_size=20) | st.integers(-5, 10**12).map(str))
        for p in op.get("parameters", [])
        if p["in"] == "query" and draw(st.booleans())
    }
    fields = _body_fields(op, schema)
    body = draw(
        st.none()
        | st.fixed_dictionaries({}, optional=dict.fromkeys(fields, JSON))
        | JSON
        | st.binary(max_size=200)
    )
    who = draw(st.sampled_from(["alice", "bob", "admin", "none", "garbage"]))
    headers = {
        "alice": {"Authorization": f"Bearer {token('alice')}"},
        "bob": {"Authorization": f"Bearer {token('bob')}"},
        "admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        "none": {},
        "garbage": {"Authorization": "Bearer \xe9\xe9".encode("latin-1")},
    }[who]
    return {"method": method, "url": url, "params": query, "body": body, "headers": headers}


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_generated_requests_never_get_a_5xx(request: dict[str, Any]) -> None:
    """Whatever the operation, parameters, body or credentials: the status is below 500."""
    client: httpx.AsyncClient = STATE["client"]
    loop: asyncio.AbstractEventLoop = STATE["loop"]
    body = request["body"]
    kwargs: dict[str, Any] = {"params": request["params"], "headers": request["headers"]}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    response = loop.run_until_complete(client.request(request["method"], request["url"], **kwargs))
    assert response.status_code < 500, (request, response.text)
    if response.status_code >= 400:
        assert "error" in response.json()


def setup_module() -> None:
    """One app, one loop, one live session for the whole module."""
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    directory = tempfile.TemporaryDirectory()
    app = create_app(make_settings(Path(directory.name), presence_timeout=600.0))
    client = loop.run_until_complete(stack.enter_async_context(asgi_client(app)))
    made = loop.run_until_complete(
        client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {token('alice')}"})
    )
    STATE.update(
        loop=loop,
        stack=stack,
        directory=directory,
        client=client,
        schema=app.openapi(),
        sid=made.json()["id"],
    )


def teardown_module() -> None:
    """Close the app (ending its sessions) and the loop."""
    loop: asyncio.AbstractEventLoop = STATE["loop"]
    loop.run_until_complete(STATE["stack"].aclose())
    loop.close()
    STATE["directory"].cleanup()
