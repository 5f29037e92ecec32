"""Ended sessions the store has forgotten are read from their archive, by their owner only."""

from __future__ import annotations

from pathlib import Path

from service_kit import FAST, auth, live_server, make_settings

from tether.service import create_app


async def test_reads_of_an_evicted_session_are_served_from_its_archive(tmp_path: Path) -> None:
    """With TETHER_MAX_ENDED=1, the first of two ended sessions is gone from the store,
    yet GET session and GET messages answer it from its archive; a stranger still gets 404."""
    lasting = {"idle_timeout": 60.0, "warn_before": 10.0, "presence_timeout": 60.0}
    settings = make_settings(tmp_path, **{**FAST, **lasting, "max_ended": 1})
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        first = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        for n in range(3):
            sent = await client.post(
                f"/api/v1/sessions/{first}/messages",
                headers=auth("alice"),
                json={"role": "user", "content": f"m{n}"},
            )
            assert sent.status_code == 201
        await client.post(f"/api/v1/sessions/{first}/end", headers=auth("alice"))
        second = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        await client.post(f"/api/v1/sessions/{second}/end", headers=auth("alice"))
        assert await served.service.manager.store.get(first) is None  # evicted

        got = await client.get(f"/api/v1/sessions/{first}", headers=auth("alice"))
        assert got.status_code == 200
        session = got.json()
        assert (session["id"], session["state"], session["end_reason"]) == (
            first,
            "ended",
            "client_ended",
        )
        assert session["message_count"] == 3
        assert session["archive_id"]
        listed = await client.get(
            f"/api/v1/sessions/{first}/messages", headers=auth("alice"), params={"after": 1}
        )
        assert [m["content"] for m in listed.json()["messages"]] == ["m1", "m2"]

        stranger = await client.get(f"/api/v1/sessions/{first}", headers=auth("bob"))
        assert stranger.status_code == 404
        unknown = await client.get(f"/api/v1/sessions/{first[:-4]}abcd", headers=auth("alice"))
        assert unknown.status_code == 404
