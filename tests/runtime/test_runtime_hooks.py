"""Lifecycle hooks: called with the session snapshot, sync or async, failures contained."""

from __future__ import annotations

import asyncio

from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.testing import RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionState

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


async def test_sync_hooks_receive_session_info_for_each_transition() -> None:
    """Plain-function hooks get the SessionInfo on start, warning, reactivation and end."""
    async with fake_manager(policy=POLICY) as kit:
        calls: list[tuple[str, SessionInfo]] = []
        kit.manager.on_started(lambda s: calls.append(("started", s)))
        kit.manager.on_warning(lambda s: calls.append(("warning", s)))
        kit.manager.on_active(lambda s: calls.append(("active", s)))
        kit.manager.on_ended(lambda s: calls.append(("ended", s)))
        session = await kit.manager.start("alice", kind="interview")
        await kit.manager.attach(session.id, RecordingChannel())
        await kit.advance(480)
        await kit.manager.activity(session.id)
        await kit.manager.end(session.id)
        await kit.manager.wait_idle()
        assert [name for name, _ in calls] == ["started", "warning", "active", "ended"]
        assert all(info.id == session.id for _, info in calls)
        started, warning, active, ended = (info for _, info in calls)
        assert started.kind == "interview"
        assert started.state is SessionState.ACTIVE
        assert warning.state is SessionState.WARNING
        assert warning.warning is not None
        assert warning.warning.reason is EndReason.IDLE_TIMEOUT
        assert active.state is SessionState.ACTIVE
        assert ended.state is SessionState.ENDED
        assert ended.end_reason is EndReason.CLIENT_ENDED


async def test_async_hooks_are_awaited() -> None:
    """Coroutine-function hooks are awaited to completion for every transition."""
    async with fake_manager(policy=POLICY) as kit:
        calls: list[tuple[str, EndReason | None]] = []

        def recorder(name: str):  # type: ignore[no-untyped-def]
            async def hook(info: SessionInfo) -> None:
                await asyncio.sleep(0)  # a real suspension inside the hook
                calls.append((name, info.end_reason))

            return hook

        for name in ("started", "warning", "active", "ended"):
            getattr(kit.manager, f"on_{name}")(recorder(name))
        session = await kit.manager.start("alice")
        await kit.manager.attach(session.id, RecordingChannel())
        await kit.advance(480)
        await kit.manager.activity(session.id)
        await kit.advance(600)
        await kit.manager.wait_idle()
        assert calls == [
            ("started", None),
            ("warning", None),
            ("active", None),
            ("warning", None),
            ("ended", EndReason.IDLE_TIMEOUT),
        ]


async def test_hook_registration_works_as_decorator() -> None:
    """on_ended used as a decorator registers the function and returns it unchanged."""
    async with fake_manager(policy=POLICY) as kit:
        seen = []

        @kit.manager.on_ended
        def record(info: SessionInfo) -> None:
            seen.append(info.end_reason)

        assert callable(record)
        session = await kit.manager.start("alice")
        await kit.manager.end(session.id, EndReason.ADMIN)
        assert seen == [EndReason.ADMIN]


async def test_raising_hook_is_counted_and_does_not_disturb_session_or_other_hooks() -> None:
    """A raising hook adds to hook_failures; later hooks still run and the session lives on."""
    async with fake_manager(policy=POLICY) as kit:
        after = []

        def broken(info: SessionInfo) -> None:
            raise RuntimeError("hook bug")

        async def broken_async(info: SessionInfo) -> None:
            raise RuntimeError("async hook bug")

        kit.manager.on_started(broken)
        kit.manager.on_started(broken_async)
        kit.manager.on_started(lambda s: after.append(s.id))
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await settle()
        assert after == [session.id]
        metrics = await kit.manager.metrics()
        assert metrics.hook_failures == 2
        assert metrics.total_created == 1
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.manager.activity(session.id)
        assert channel.closed is None


async def test_raising_ended_hook_does_not_stop_end_pipeline() -> None:
    """An on_ended hook that raises is counted; the end is still notified, closed and counted."""
    async with fake_manager(policy=POLICY) as kit:

        def broken(info: SessionInfo) -> None:
            raise RuntimeError("hook bug")

        kit.manager.on_ended(broken)
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        assert await kit.manager.end(session.id) is True
        assert channel.closed == (1000, "client_ended")
        metrics = await kit.manager.metrics()
        assert metrics.hook_failures == 1
        assert metrics.total_ended == 1


async def test_changed_hooks_hear_messages_activity_config_and_connections() -> None:
    """on_changed is told, inline, of each change no transition hook reports; heartbeats are not."""
    async with fake_manager(policy=POLICY) as kit:
        seen: list[str] = []
        manager = kit.manager
        session = await manager.start("alice")
        sid = session.id
        manager.on_changed(lambda changed: seen.append(changed))

        await manager.heartbeat(sid)
        assert seen == []  # presence alone changes nothing anyone is shown
        channel = RecordingChannel()
        await manager.attach(sid, channel)
        assert seen == [sid]
        await manager.activity(sid)
        assert seen == [sid] * 2
        await manager.append(sid, "assistant", "hello")
        assert seen == [sid] * 3
        await manager.update_config(sid, {"role": "backend"})
        assert seen == [sid] * 4
        await manager.detach(sid, channel)
        assert seen == [sid] * 5


async def test_a_raising_changed_hook_is_counted_and_the_call_goes_through() -> None:
    """A raising changed hook adds to hook_failures; the activity and later hooks still happen."""
    async with fake_manager(policy=POLICY) as kit:
        after: list[str] = []

        def broken(session_id: str) -> None:
            raise RuntimeError("hook bug")

        session = await kit.manager.start("alice")
        kit.manager.on_changed(broken)
        kit.manager.on_changed(after.append)
        await kit.manager.activity(session.id)
        assert after == [session.id]
        assert (await kit.manager.metrics()).hook_failures == 1
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
