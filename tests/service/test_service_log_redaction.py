"""No token and no session id in a real server's log, however the client spells them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from cluster.process_kit import spawn_tether, wait_ready
from tether.service.auth import TokenAuthority
from tether.service.logs import redact, redact_target

SECRET = "redaction-test-secret-0123456789abcdef"
ADMIN_TOKEN = "ADMINSECRETadminsecret0123456789"


def test_redact_target_uses_the_parsed_query_and_the_id_slot() -> None:
    """Encoded, cased and repeated credential names are redacted; any id in the slot is hashed."""
    sid = "0123456789ABCDEF0123456789abcdef0"  # 33 characters, mixed case: still the id slot
    target = redact_target(
        f"/api/v1/sessions/{sid}/events?%74oken=S1&x=1&TOKEN=S2&token=S3&token=S4"
        "&to%6Ben=S5&access_token=S6&api%5Fkey=S7&session_id=S8&+token=S9"
    )
    assert not re.search(r"S\d|0123456789ABCDEF", target), target
    assert "x=1" in target
    assert target.count("[redacted]") == 8
    assert redact_target("/api/v1/sessions/cleanup?x=1") == "/api/v1/sessions/cleanup?x=1"
    assert redact_target("/static/tether.js") == "/static/tether.js"


def test_redact_keeps_format_strings_intact_and_hashes_ids_in_text() -> None:
    """Paths inside free text are redacted too; 32-hex ids in any case become log refs."""
    sid = "FEDCBA9876543210FEDCBA9876543210"
    line = redact(f'GET /api/v1/sessions/x/events?tok%65n=abc "Bearer eyJ.x" id {sid}')
    assert "abc" not in line
    assert "eyJ" not in line
    assert sid not in line


async def test_a_real_server_logs_no_secret_whatever_the_spelling(tmp_path: Path) -> None:
    """Access and error logs of `tether serve` hold no token, admin token or session id."""
    user_token = TokenAuthority(SECRET, admin_token=ADMIN_TOKEN).mint("alice", ttl=600)
    node = spawn_tether(
        "redact",
        {
            "TETHER_SECRET": SECRET,
            "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
            "TETHER_LOG_LEVEL": "info",
            "TETHER_DATA_DIR": str(tmp_path / "data"),
        },
        tmp_path,
    )
    try:
        await wait_ready(node)
        headers = {"Authorization": f"Bearer {user_token}"}
        async with httpx.AsyncClient(base_url=node.http, timeout=5.0) as http:
            sid = (await http.post("/api/v1/sessions", headers=headers)).json()["id"]
            encoded_sid = "".join(f"%{ord(c):02x}" for c in sid)
            targets = [
                f"/api/v1/sessions/{sid}/events?%74oken={user_token}",
                f"/api/v1/sessions/{sid}/events?to%6Ben={user_token}",
                f"/api/v1/sessions/{sid}/events?token={user_token}&token={user_token}",
                f"/api/v1/sessions/{sid}/events?TOKEN={user_token}",
                f"/api/v1/sessions/{sid}/events?access_token={user_token}",
                f"/api/v1/sessions/{encoded_sid}/events?%74%6f%6b%65%6e={user_token}",
                f"/api/v1/admin/events?%74oken={ADMIN_TOKEN}",
                f"/api/v1/admin/events?token={ADMIN_TOKEN}",
                f"/api/v1/sessions/{sid.upper()}",
                f"/api/v1/sessions/{sid}0",
                f"/api/v1/sessions/{sid}/heartbeat",
            ]
            statuses = []
            for target in targets:
                async with http.stream("GET", target) as response:
                    statuses.append(response.status_code)
            assert statuses[0] == 200  # the encoded name does authenticate: it must not leak
            assert statuses[6] == 200
        async with connect(f"{node.ws}?token={user_token}", open_timeout=5) as ws:
            await ws.send('{"type": "ping"}')
            await asyncio.wait_for(ws.recv(), 5)
    finally:
        node.terminate()
    log = node.output()
    assert "/events?%74oken=[redacted]" in log  # the access log did see those requests
    for secret in (user_token, ADMIN_TOKEN, sid, sid[1:], sid.upper()[:31]):
        assert secret.lower() not in log.lower(), secret
