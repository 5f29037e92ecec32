"""``WS /twilio/media``: a real server, a client speaking Twilio's documented messages.

The call's clocks run on the fake clock where timing matters (speech, silence,
idle warnings and ends); everything else runs on real time with the default
(long) timeouts, so nothing ends by surprise.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from service_kit import (
    ADMIN,
    Served,
    SSEReader,
    auth,
    close_code,
    eventually,
    hello,
    live_server,
    make_settings,
    recv,
    recv_type,
    send,
    start,
    token,
    ws_client,
)
from twilio_kit import STREAM_SID, TwilioCall, connected, twilio_call
from twilio_kit import start as start_message
from websockets.asyncio.client import ClientConnection

from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.service import create_app
from tether.service.twilio import CallStream
from tether.service.twilio.audio import tone
from tether.testing import FakeKit, fake_manager
from tether.types import SessionState

SPEECH = tone(300, 0.2, -20)  # ten 20 ms frames of a voice-level tone
SILENCE = b"\xff" * 1600  # ten frames of mu-law digital silence
POLICY = Policy(idle_timeout=60, warn_before=20, max_duration=3600, presence_timeout=30)


def client_errors(served: Served, code: str) -> float:
    """How many times the Twilio bridge counted ``code``."""
    value = served.service.metrics.client_errors.labels("twilio", code)._value.get()
    return float(value)


async def next_session_observer(conn: ClientConnection, user: str = "alice") -> None:
    """Authenticate and wait for the user's next session (the seed's browser)."""
    await hello(conn, user)
    await send(conn, type="observe", user="me", wait_s=5)


async def frames_until(conn: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Frames up to and including the first of type ``kind``."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != kind:
        seen.append(await recv(conn))
    return seen


async def call_began(browser: ClientConnection) -> str:
    """Read ``session.started``, ``session.config`` and ``in-progress``; the session id."""
    sid: str = (await recv_type(browser, "session.started"))["session"]["id"]
    kinds = {(await recv(browser))["type"], (await recv(browser))["type"]}  # in either order
    assert kinds == {"session.config", "call.status_changed"}
    return sid


async def barrier(served: Served, call: TwilioCall, session_id: str) -> None:
    """Return once the server has handled everything ``call`` sent so far.

    A mark travels the same socket after the frames, so its echo reaching the
    stream proves the frames before it were handled.
    """
    stream = served.service.calls.get(session_id)
    assert stream is not None
    waiting = asyncio.ensure_future(stream.wait_mark("barrier"))
    await asyncio.sleep(0)
    await call.mark("barrier")
    await asyncio.wait_for(waiting, 5)


@asynccontextmanager
async def fake_served(tmp_path: Path) -> AsyncIterator[tuple[Served, FakeKit]]:
    """A real server over a manager on the fake clock."""
    async with fake_manager(policy=POLICY) as kit:
        settings = make_settings(tmp_path)
        async with live_server(create_app(settings, manager=kit.manager), settings) as served:
            yield served, kit


async def only_session(kit: FakeKit) -> SessionInfo:
    (info,) = await kit.manager.list()
    return info


async def test_a_call_starts_a_call_session_and_stop_ends_it_client_ended(tmp_path: Path) -> None:
    """start makes a `call` session (params less token as config); stop ends it client_ended."""
    settings = make_settings(tmp_path)
    async with live_server(create_app(settings), settings) as served:
        async with ws_client(served) as browser, twilio_call(served) as call:
            await next_session_observer(browser)
            await call.begin({"token": token("alice"), "job": "backend"})
            started = await recv_type(browser, "session.started")
            session = started["session"]
            assert (session["kind"], session["user"]) == ("call", "alice")
            sid = session["id"]
            frames = [await recv(browser), await recv(browser)]  # in either order
            assert {"type": "session.config", "config": {"job": "backend"}} in frames
            assert {
                "type": "call.status_changed",
                "status": "in-progress",
                "session_id": sid,
                "stream_sid": STREAM_SID,
            } in frames
            stream = served.service.calls.get(sid)
            assert stream is not None
            assert stream.call_sid.startswith("CA")
            assert served.service.manager.connections(sid) == 2  # the call holds presence

            await call.stop()
            tail = await frames_until(browser, "session.ended")
            assert [f["type"] for f in tail] == ["call.status_changed", "session.ended"]
            assert tail[0]["status"] == "ended"
            assert tail[1]["reason"] == "client_ended"
            assert await call.closed() == 1000
            assert await close_code(browser) == 1000
        await eventually(lambda: served.service.calls.get(sid) is None)


async def test_a_call_joins_the_session_named_in_its_parameters(tmp_path: Path) -> None:
    """session_id joins the caller's own session; its connections hear in-progress and ended."""
    settings = make_settings(tmp_path)
    async with (
        live_server(create_app(settings), settings) as served,
        ws_client(served) as browser,
        twilio_call(served) as call,
    ):
        await hello(browser)
        session = await start(browser, kind="interview", config={"job": "pm"})
        sid = session["id"]
        await call.begin({"token": token("alice"), "session_id": sid})
        status = await recv_type(browser, "call.status_changed")
        assert (status["status"], status["session_id"]) == ("in-progress", sid)
        info = await served.service.manager.get(sid)
        assert (info.kind, info.config) == ("interview", {"job": "pm"})  # joined, unchanged

        await call.conn.close()  # Twilio hangs up: the socket closes without a stop
        tail = await frames_until(browser, "session.ended")
        assert [f["type"] for f in tail] == ["call.status_changed", "session.ended"]
        assert tail[0]["status"] == "ended"
        assert tail[1]["reason"] == "client_ended"


async def test_a_dropped_socket_ends_the_call_client_ended(tmp_path: Path) -> None:
    """A TCP connection that vanishes (no stop, no close frame) ends the session client_ended."""
    settings = make_settings(tmp_path)
    async with live_server(create_app(settings), settings) as served:
        async with ws_client(served) as browser, twilio_call(served) as call:
            await next_session_observer(browser)
            await call.begin({"token": token("alice")})
            sid = await call_began(browser)
            call.conn.transport.abort()
            status = await recv_type(browser, "call.status_changed")
            ended = await recv_type(browser, "session.ended")
            assert (status["status"], ended["reason"]) == ("ended", "client_ended")
        info = await served.service.manager.get(sid)
        assert info.end_reason is not None
        assert info.end_reason.value == "client_ended"


async def test_a_bad_token_is_refused_and_starts_nothing(tmp_path: Path) -> None:
    """A missing, forged or expired token closes the stream 1008; no session starts."""
    settings = make_settings(tmp_path)
    async with live_server(create_app(settings), settings) as served:
        for params in ({}, {"token": "forged"}, {"token": token("alice", ttl=-60)}):
            async with twilio_call(served) as call:
                await call.begin(params)
                assert await call.closed() == 1008
                assert call.conn.close_reason == "unauthorized"
        assert await served.service.manager.list() == []
        assert client_errors(served, "unauthorized") == 3


async def test_someone_elses_session_id_is_refused(tmp_path: Path) -> None:
    """Bob's token naming Alice's session closes 4404; her session is untouched."""
    settings = make_settings(tmp_path)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as browser:
        await hello(browser)
        sid = (await start(browser))["id"]
        for params in (
            {"token": token("bob"), "session_id": sid},
            {"token": token("alice"), "session_id": "no-such-session"},
        ):
            async with twilio_call(served) as call:
                await call.begin(params)
                assert await call.closed() == 4404
                assert call.conn.close_reason == "unknown_session"
        info = await served.service.manager.get(sid)
        assert info.state is SessionState.ACTIVE
        assert served.service.manager.connections(sid) == 1
        assert served.service.calls.get(sid) is None


async def test_a_start_tether_cannot_use_is_refused(tmp_path: Path) -> None:
    """A start with another audio format, or that never comes, closes 1008 and starts nothing."""
    settings = make_settings(tmp_path, hello_timeout=0.3)
    async with live_server(create_app(settings), settings) as served:
        async with twilio_call(served) as call:
            await call.send(connected())
            await call.send(start_message({"token": token("alice")}, sampleRate=16000))
            assert await call.closed() == 1008
            assert call.conn.close_reason == "unsupported_media_format"
        async with twilio_call(served) as call:
            await call.send(connected())
            assert await call.closed() == 1008
            assert call.conn.close_reason == "start_timeout"
        assert await served.service.manager.list() == []


async def test_an_oversized_frame_closes_the_stream_1009(tmp_path: Path) -> None:
    """A frame over TETHER_MAX_MESSAGE_BYTES closes 1009; the call's session ends client_ended."""
    settings = make_settings(tmp_path, max_message_bytes=4096)
    async with live_server(create_app(settings), settings) as served, twilio_call(served) as call:
        await call.begin({"token": token("alice")})
        await eventually(lambda: len(served.service.calls) == 1)
        (stream,) = served.service.calls
        await call.audio(SPEECH)  # ordinary frames are far below the limit
        await call.send(connected() | {"padding": "x" * 5000})
        assert await call.closed() == 1009  # (uvicorn's own limit is set to the same size)
        await eventually(lambda: served.service.calls.get(stream.session_id) is None)
        info = await served.service.manager.get(stream.session_id)
        assert info.end_reason is not None
        assert info.end_reason.value == "client_ended"


async def test_bad_messages_are_skipped_and_the_call_goes_on(tmp_path: Path) -> None:
    """Garbage, binary, unknown events, a foreign streamSid, bad base64: counted, call intact."""
    async with fake_served(tmp_path) as (served, kit), twilio_call(served) as call:
        await call.begin({"token": token("alice")})
        await eventually(lambda: len(served.service.calls) == 1)
        info = await only_session(kit)
        bad = [
            "not json",
            '{"event": "hangup", "streamSid": "MZ"}',
            '{"event": "media", "streamSid": "' + STREAM_SID + '", "media": {"payload": "@"}}',
            '{"event": "media", "streamSid": "MZother", "media": {"payload": ""}}',
            '{"event": "dtmf", "streamSid": "' + STREAM_SID + '", "dtmf": {"digit": "?"}}',
        ]
        for text in bad:
            await call.send(text)
        await call.conn.send(b"\x00\x01")
        await call.send(start_message({"token": token("alice")}))  # a second start
        await barrier(served, call, info.id)
        for code in ("bad_json", "unknown_event", "bad_payload", "wrong_stream"):
            assert client_errors(served, code) == 1, code
        assert client_errors(served, "invalid_message") == 1
        assert client_errors(served, "bad_frame") == 1
        assert client_errors(served, "already_started") == 1
        after = await kit.manager.get(info.id)
        assert after.state is SessionState.ACTIVE
        assert after.last_activity == info.last_activity  # none of it was activity

        await kit.advance(5)
        await call.audio(SPEECH)  # and the call still works
        await barrier(served, call, info.id)
        assert (await kit.manager.get(info.id)).last_activity == kit.clock.now()


async def test_speech_is_activity_and_silence_is_not(tmp_path: Path) -> None:
    """Voiced frames and dtmf refresh the idle clock; silence, noise and outbound audio don't."""
    async with fake_served(tmp_path) as (served, kit), twilio_call(served) as call:
        await call.begin({"token": token("alice")})
        await eventually(lambda: len(served.service.calls) == 1)
        info = await only_session(kit)
        began = info.last_activity

        await kit.advance(10)
        await call.audio(SILENCE)
        await call.audio(tone(300, 0.2, -60))  # a quiet line's hum
        outbound = tone(300, 0.02, -20)
        await call.send(
            {
                "event": "media",
                "sequenceNumber": "99",
                "streamSid": STREAM_SID,
                "media": {
                    "track": "outbound",
                    "chunk": "99",
                    "timestamp": "1980",
                    "payload": base64.b64encode(outbound).decode(),
                },
            }
        )
        await barrier(served, call, info.id)
        assert (await kit.manager.get(info.id)).last_activity == began

        await call.audio(SPEECH)
        await barrier(served, call, info.id)
        assert (await kit.manager.get(info.id)).last_activity == kit.clock.now()

        await kit.advance(10)
        await call.dtmf("5")
        await barrier(served, call, info.id)
        assert (await kit.manager.get(info.id)).last_activity == kit.clock.now()


async def test_speech_touches_at_most_once_a_second(tmp_path: Path) -> None:
    """Fifty voiced frames within one second are one activity touch; the next second, another."""
    async with fake_served(tmp_path) as (served, kit):
        touched: list[str] = []
        async with twilio_call(served) as call:
            await call.begin({"token": token("alice")})
            await eventually(lambda: len(served.service.calls) == 1)
            info = await only_session(kit)
            kit.manager.on_changed(touched.append)
            await call.audio(tone(300, 1.0, -20))
            await call.dtmf("1")
            await barrier(served, call, info.id)
            assert len(touched) == 1
            await kit.advance(1)
            await call.audio(SPEECH)
            await barrier(served, call, info.id)
            assert len(touched) == 2


async def test_a_silent_call_still_ends_idle_and_tether_closes_it(tmp_path: Path) -> None:
    """Silence all along: warning, then idle_timeout; call ended before session.ended; 4001."""
    async with (
        fake_served(tmp_path) as (served, kit),
        ws_client(served) as browser,
        twilio_call(served) as call,
    ):
        await next_session_observer(browser)
        await call.begin({"token": token("alice")})
        sid = await call_began(browser)
        for _ in range(6):  # a minute of silence, ten seconds at a time
            await call.audio(SILENCE)
            await barrier(served, call, sid)
            await kit.advance(10)
        tail = await frames_until(browser, "session.ended")
        kinds = [f["type"] for f in tail]
        assert "session.warning" in kinds
        assert kinds[-2:] == ["call.status_changed", "session.ended"]
        assert tail[-2]["status"] == "ended"
        assert tail[-1]["reason"] == "idle_timeout"
        assert await call.closed() == 4001


async def test_an_admin_end_closes_the_twilio_socket(tmp_path: Path) -> None:
    """Ending the session from REST (admin) closes the stream 4004 after announcing the end."""
    settings = make_settings(tmp_path)
    async with (
        live_server(create_app(settings), settings) as served,
        ws_client(served) as browser,
        twilio_call(served) as call,
    ):
        await next_session_observer(browser)
        await call.begin({"token": token("alice")})
        sid = await call_began(browser)
        async with served.client() as http:
            ended = await http.post(f"/api/v1/sessions/{sid}/end", headers=ADMIN)
            assert ended.status_code == 200
        tail = await frames_until(browser, "session.ended")
        assert [f["type"] for f in tail] == ["call.status_changed", "session.ended"]
        assert tail[1]["reason"] == "admin"
        assert await call.closed() == 4004


async def test_a_connection_attaching_mid_call_hears_of_the_call(tmp_path: Path) -> None:
    """resume, and an SSE stream, opened during a call get call.status_changed in-progress."""
    settings = make_settings(tmp_path)
    async with (
        live_server(create_app(settings), settings) as served,
        twilio_call(served) as call,
        ws_client(served) as late,
    ):
        await call.begin({"token": token("alice")})
        await eventually(lambda: len(served.service.calls) == 1)
        (stream,) = served.service.calls
        await eventually(lambda: stream.started_announced)
        await hello(late)
        await send(late, type="resume", session_id=stream.session_id)
        status = await recv_type(late, "call.status_changed")
        assert (status["status"], status["stream_sid"]) == ("in-progress", STREAM_SID)
        url = f"/api/v1/sessions/{stream.session_id}/events"
        async with served.client() as http, http.stream("GET", url, headers=auth()) as events:
            message = await SSEReader(events).next_event("call.status_changed")
            assert message.data is not None
            assert message.data["status"] == "in-progress"


async def test_the_app_says_the_idle_warning_on_the_call(tmp_path: Path) -> None:
    """on warning the app plays audio and a mark; Twilio gets both; its echo wakes wait_mark."""
    async with fake_served(tmp_path) as (served, kit):
        calls = served.service.calls
        said = asyncio.Event()
        beep = tone(880, 0.1, -12)
        started: list[CallStream] = []

        @kit.manager.on_warning
        async def say_warning(session: SessionInfo) -> None:
            call = calls.get(session.id)
            assert call is not None
            await call.send_audio(beep)
            await call.mark("idle-warning")
            await call.wait_mark("idle-warning")
            said.set()

        @calls.on_start
        async def greet(call: CallStream) -> None:
            started.append(call)
            await call.clear()

        async with twilio_call(served) as call:
            await call.begin({"token": token("alice")})
            assert await call.recv() == {"event": "clear", "streamSid": STREAM_SID}
            assert [c.stream_sid for c in started] == [STREAM_SID]
            await kit.advance(POLICY.idle_timeout - POLICY.warn_before)
            played = await call.recv()
            assert played["event"] == "media"
            assert played["streamSid"] == STREAM_SID
            assert base64.b64decode(played["media"]["payload"]) == beep
            assert await call.recv() == {
                "event": "mark",
                "streamSid": STREAM_SID,
                "mark": {"name": "idle-warning"},
            }
            assert not said.is_set()
            await call.mark("idle-warning")  # Twilio: the audio before the mark has played
            await asyncio.wait_for(said.wait(), 5)
