"""on_message and on_config hooks, and observer channels that hold no presence."""

from __future__ import annotations

import asyncio
from typing import Any

from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.testing import RecordingChannel, fake_manager, settle
from tether.types import EndReason

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


async def test_on_message_hears_user_messages_only_once_stored() -> None:
    """on_message gets (session, message) for user messages, stored with a seq; not others."""
    async with fake_manager(policy=POLICY) as kit:
        heard: list[tuple[str, int, str]] = []

        @kit.manager.on_message
        async def answer(session: SessionInfo, message: Message) -> None:
            heard.append((session.user, message.seq, message.content))

        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "assistant", "hello")
        await kit.manager.append(session.id, "user", "hi")
        await settle()
        assert heard == [("alice", 2, "hi")]


async def test_an_on_message_hook_is_a_session_task_cancelled_by_the_end() -> None:
    """A hook still running when the session ends is cancelled by the end pipeline."""
    async with fake_manager(policy=POLICY) as kit:
        outcome: list[str] = []

        @kit.manager.on_message
        async def slow(session: SessionInfo, message: Message) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                outcome.append("cancelled")
                raise

        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "hi")
        await settle()
        await kit.manager.end(session.id)
        assert outcome == ["cancelled"]


async def test_a_failing_on_message_hook_is_counted_and_changes_nothing() -> None:
    """A hook that raises is logged and counted; the message stands and later hooks still run."""
    async with fake_manager(policy=POLICY) as kit:
        later: list[int] = []

        @kit.manager.on_message
        async def broken(session: SessionInfo, message: Message) -> None:
            raise RuntimeError("bug in the app")

        @kit.manager.on_message
        async def fine(session: SessionInfo, message: Message) -> None:
            later.append(message.seq)

        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "hi")
        await settle()
        assert later == [1]
        assert (await kit.manager.metrics()).hook_failures == 1
        assert len(await kit.manager.transcript(session.id)) == 1


async def test_on_config_hears_each_stored_config() -> None:
    """on_config gets the session and the config just stored."""
    async with fake_manager(policy=POLICY) as kit:
        seen: list[dict[str, Any]] = []

        @kit.manager.on_config
        async def reconfigure(session: SessionInfo, config: dict[str, Any]) -> None:
            seen.append(config)

        session = await kit.manager.start("alice", config={"job": "nurse"})
        await kit.manager.update_config(session.id, {"job": "pilot"})
        await settle()
        assert seen == [{"job": "pilot"}]


async def test_an_observer_holds_no_presence_so_an_unattended_session_ends_client_gone() -> None:
    """Only an observer attached: presence still runs out (client_gone) and the observer is told."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice", present=True)
        watcher = RecordingChannel()
        await kit.manager.attach(session.id, watcher, observer=True)
        assert kit.manager.connections(session.id) == 1
        await kit.advance(60)
        await kit.manager.wait_idle()
        assert (await kit.manager.get(session.id)).end_reason is EndReason.CLIENT_GONE
        assert watcher.types()[-1] == "session.ended"


async def test_an_observer_leaving_does_not_start_the_presence_clock() -> None:
    """A participant stays present while an observer comes and goes; only its leaving counts."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        participant, watcher = RecordingChannel(), RecordingChannel()
        await kit.manager.attach(session.id, participant)
        await kit.manager.attach(session.id, watcher, observer=True)
        await kit.manager.detach(session.id, watcher)
        await kit.advance(120)
        await kit.manager.wait_idle()
        assert (await kit.manager.get(session.id)).end_reason is None
        await kit.manager.detach(session.id, participant)
        await kit.advance(60)
        await kit.manager.wait_idle()
        assert (await kit.manager.get(session.id)).end_reason is EndReason.CLIENT_GONE
