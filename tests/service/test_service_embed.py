"""router(manager) inside someone else's FastAPI app keeps the whole contract."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fastapi import FastAPI
from service_kit import SECRET, asgi_client, auth, hello, live_server, make_settings, start
from websockets.asyncio.client import connect

from tether.runtime import SessionManager
from tether.service import router

EXAMPLE = Path(__file__).parents[2] / "examples" / "embed_fastapi.py"


async def test_the_router_serves_a_manager_the_app_owns(tmp_path: Path) -> None:
    """Sessions, errors (404, 413, 422) and ops routes work with no tether app around them."""
    manager = SessionManager()
    app = FastAPI()
    app.include_router(
        router(manager, make_settings(tmp_path, max_message_bytes=512), include_ops=True),
        prefix="/chat",
    )

    @app.get("/mine")
    async def mine() -> dict[str, str]:
        return {"app": "theirs"}

    async with manager, asgi_client(app) as client:
        made = await client.post("/chat/api/v1/sessions", headers=auth("alice"))
        assert made.status_code == 201
        sid = made.json()["id"]
        assert (await client.get("/mine")).json() == {"app": "theirs"}
        missing = await client.get(f"/chat/api/v1/sessions/{'f' * 32}", headers=auth("alice"))
        assert missing.json()["error"]["code"] == "not_found"
        big = await client.post(
            f"/chat/api/v1/sessions/{sid}/messages",
            headers=auth("alice"),
            json={"role": "user", "content": "x" * 1000},
        )
        assert (big.status_code, big.json()["error"]["code"]) == (413, "too_large")
        bad = await client.post("/chat/api/v1/sessions", headers=auth("alice"), json={"kind": 1})
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")
        assert (await client.get("/chat/health")).json()["sessions"]["active"] == 1


async def test_the_websocket_works_under_a_prefix(tmp_path: Path) -> None:
    """Mounted with a prefix, the WebSocket lives at {prefix}/ws and runs sessions."""
    settings = make_settings(tmp_path)
    manager = SessionManager()
    app = FastAPI()
    app.include_router(router(manager, settings), prefix="/chat")
    async with manager, live_server(app, settings) as served:
        url = f"ws://127.0.0.1:{served.port}/chat/ws"
        async with connect(url, compression=None) as conn:
            await hello(conn)
            assert (await start(conn))["user"] == "alice"


async def test_the_example_mounts_tether_with_the_environments_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """examples/embed_fastapi.py builds an app whose sessions follow TETHER_* settings."""
    monkeypatch.setenv("TETHER_SECRET", SECRET)
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TETHER_IDLE_TIMEOUT", "45s")
    monkeypatch.setenv("TETHER_WARN_BEFORE", "10s")
    spec = importlib.util.spec_from_file_location("embed_fastapi_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    async with asgi_client(module.app) as client:
        made = await client.post("/api/v1/sessions", headers=auth("alice"))
        assert made.status_code == 201
        assert made.json()["policy"]["idle_timeout"] == 45
