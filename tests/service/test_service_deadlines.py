"""The ``deadlines`` REST and WebSocket views show are the core's, never re-derived."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_kit import asgi_client, auth, make_settings

from tether.core.policy import Policy
from tether.service import create_app
from tether.testing import fake_manager

ALICE = auth("alice")


@pytest.mark.parametrize("presence", [0.0, 3000.0])
async def test_presence_at_is_null_until_the_client_signals_presence(
    tmp_path: Path, presence: float
) -> None:
    """A REST-started session's presence_at is null, as the core's presence_end() is None."""
    policy = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=presence)
    async with fake_manager(policy=policy) as kit:
        app = create_app(make_settings(tmp_path), manager=kit.manager)
        async with asgi_client(app) as client:
            started = (await client.post("/api/v1/sessions", headers=ALICE)).json()
            sid = started["id"]
            read = (await client.get(f"/api/v1/sessions/{sid}", headers=ALICE)).json()
            beat = (await client.post(f"/api/v1/sessions/{sid}/heartbeat", headers=ALICE)).json()
            info = await kit.manager.get(sid)
    assert info is not None
    assert started["deadlines"]["presence_at"] is None
    assert read["deadlines"]["presence_at"] is None
    now = kit.clock.now()
    # A heartbeat starts a positive presence clock; a zero one waits for a connection.
    assert beat["deadlines"]["presence_at"] == (None if presence == 0 else now + presence)
    assert beat["deadlines"] == {
        "idle_at": info.deadlines().idle_at,
        "max_at": info.deadlines().max_at,
        "presence_at": info.deadlines().presence_at,
    }
