"""Streamed replies: coalesced deltas, one stored message, resume, partial on end and barge-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from tether import ArchiveError, ConfigError, InvalidInput, ReplyClosed, SessionNotFound
from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.events import ReplyDelta
from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.runtime.manager import SessionManager
from tether.testing import RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionId

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


def archived_text(root: Path) -> str:
    """The one YAML archive written under ``root``."""
    (path,) = root.glob("users/*/dialogs/archived/*.yaml")
    return path.read_text()


def deltas(channel: RecordingChannel) -> list[ReplyDelta]:
    """The reply.delta events a channel received."""
    return [e for e in channel.events if isinstance(e, ReplyDelta)]


async def _stream_until_cut(
    manager: SessionManager, sid: SessionId, first: str, streaming: asyncio.Event
) -> None:
    async with manager.reply(sid) as reply:
        await reply.delta(first)
        streaming.set()
        await asyncio.Event().wait()  # the model stalls: only a cut ends this reply


async def test_pieces_of_one_loop_turn_go_out_as_one_delta_and_one_message_is_stored() -> None:
    """The first piece goes out at once, the next two of its turn as one reply.delta frame;
    the exit stores one message with the reply_id."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        async with kit.manager.reply(session.id) as reply:
            await reply.delta("Hel")
            await reply.delta("lo")
            await reply.delta(", ")
            await settle()
            await reply.delta("world")
            assert reply.text == "Hello, world"
        await settle()
        sent = deltas(channel)
        assert [d.text for d in sent] == ["Hel", "lo, ", "world"]
        assert {d.reply_id for d in sent} == {reply.reply_id}
        assert channel.types()[-1] == "transcript.message"
        (stored,) = await kit.manager.transcript(session.id)
        assert (stored.role.value, stored.content) == ("assistant", "Hello, world")
        assert stored.metadata == {"reply_id": reply.reply_id}


async def test_the_first_piece_reaches_the_connections_before_the_producer_goes_on() -> None:
    """The first delta() returns only once the connections' writers ran: the first frame is
    out before the producer parses whatever else its stream had buffered."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        async with kit.manager.reply(session.id) as reply:
            await reply.delta("first")
            assert [d.text for d in deltas(channel)] == ["first"]
            await reply.delta("second")


async def test_a_connection_attaching_mid_reply_first_gets_the_text_so_far() -> None:
    """Resume mid-reply: the newcomer gets one reply.delta with everything sent, then the rest."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.attach(session.id, RecordingChannel())
        async with kit.manager.reply(session.id) as reply:
            await reply.delta("one ")
            await settle()
            await reply.delta("two ")
            await settle()
            late = RecordingChannel()
            await kit.manager.attach(session.id, late)
            await reply.delta("three")
        await settle()
        assert [(d.reply_id, d.text) for d in deltas(late)] == [
            (reply.reply_id, "one two "),
            (reply.reply_id, "three"),
        ]


async def test_an_end_mid_reply_archives_the_text_so_far_as_partial(tmp_path: Path) -> None:
    """The session ends while a session-owned reply streams: the archive holds it, partial: true."""
    async with fake_manager(policy=POLICY, archiver=YamlArchive(tmp_path)) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        streaming = asyncio.Event()
        kit.manager.spawn(
            session.id, _stream_until_cut(kit.manager, session.id, "29 tokens", streaming)
        )
        await streaming.wait()
        await kit.manager.end(session.id)
        (message,) = yaml.safe_load(archived_text(tmp_path))["messages"]
        assert message["content"] == "29 tokens"
        assert message["metadata"]["partial"] is True
        # The clients saw the partial message before the end.
        assert channel.types()[-2:] == ["transcript.message", "session.ended"]


async def test_a_reply_outside_session_tasks_is_stored_partial_and_refuses_more() -> None:
    """A reply run by the app's own task: the end stores it partial; its next delta raises."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        async with kit.manager.reply(session.id) as reply:
            await reply.delta("half a")
            await kit.manager.end(session.id)
            with pytest.raises(ReplyClosed):
                await reply.delta(" thought")
        assert reply.message is not None
        assert reply.message.metadata == {"reply_id": reply.reply_id, "partial": True}
        assert reply.message.content == "half a"


async def test_a_user_message_while_a_reply_streams_cuts_it_under_cancel() -> None:
    """Barge-in (cancel): the reply's task is cancelled; partial stored before the user's."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        streaming = asyncio.Event()
        task = kit.manager.spawn(
            session.id, _stream_until_cut(kit.manager, session.id, "Let me expl", streaming)
        )
        await streaming.wait()
        await kit.manager.append(session.id, "user", "stop, I get it")
        await settle()
        assert task.cancelled()
        first, second = await kit.manager.transcript(session.id)
        assert (first.content, first.metadata) == (
            "Let me expl",
            {"reply_id": first.metadata["reply_id"] if first.metadata else None, "partial": True},
        )
        assert (second.role.value, second.content) == ("user", "stop, I get it")


async def test_under_keep_a_user_message_lets_the_reply_finish() -> None:
    """barge_in="keep": the reply goes on and is stored whole after the user's message."""
    async with fake_manager(policy=POLICY, barge_in="keep") as kit:
        session = await kit.manager.start("alice")
        async with kit.manager.reply(session.id) as reply:
            await reply.delta("I will ")
            await kit.manager.append(session.id, "user", "ok")
            await reply.delta("finish")
        user, answer = await kit.manager.transcript(session.id)
        assert user.content == "ok"
        assert (answer.content, answer.metadata) == ("I will finish", {"reply_id": reply.reply_id})


async def test_a_reply_whose_body_raises_is_stored_partial_and_the_error_goes_on() -> None:
    """An exception inside the reply: the text so far is stored partial, the exception re-raised."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        reply = kit.manager.reply(session.id)

        async def failing_model() -> None:
            async with reply:
                await reply.delta("so far")
                raise RuntimeError("model failed")

        with pytest.raises(RuntimeError, match="model failed"):
            await failing_model()
        (stored,) = await kit.manager.transcript(session.id)
        assert (stored.content, stored.metadata) == (
            "so far",
            {"reply_id": reply.reply_id, "partial": True},
        )


async def test_a_delta_that_is_not_text_is_refused_and_nothing_is_sent() -> None:
    """delta(42) and delta(a lone surrogate) raise InvalidInput; no frame, the reply goes on."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        async with kit.manager.reply(session.id) as reply:
            with pytest.raises(InvalidInput):
                await reply.delta(42)  # type: ignore[arg-type]
            with pytest.raises(InvalidInput):
                await reply.delta("\ud800")
            await settle()
            assert deltas(channel) == []
            await reply.delta("fine")
        assert [m.content for m in await kit.manager.transcript(session.id)] == ["fine"]


async def test_a_reply_for_an_unknown_session_refuses_to_open() -> None:
    """Entering a reply for an unknown session raises SessionNotFound; a bad role InvalidInput."""
    async with fake_manager(policy=POLICY) as kit:
        with pytest.raises(SessionNotFound):
            async with kit.manager.reply(SessionId("0" * 32)):
                pass
        session = await kit.manager.start("alice")
        with pytest.raises(InvalidInput):
            kit.manager.reply(session.id, role="narrator")
        with pytest.raises(ReplyClosed):
            await kit.manager.reply(session.id).delta("not entered")


async def test_an_unknown_barge_in_policy_is_refused() -> None:
    """SessionManager(barge_in="sometimes") raises ConfigError before anything is built."""
    with pytest.raises(ConfigError):
        SessionManager(barge_in="sometimes")


async def test_send_app_reaches_every_connection_and_bad_input_changes_nothing() -> None:
    """send_app sends {type: app, name, data}; a bad name or non-JSON data raises, sends nothing."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.manager.send_app(session.id, "speaking", {"on": True})
        for name, data in (("", 1), ("x" * 65, 1), (7, 1), ("ok", {1, 2}), ("ok", float("nan"))):
            with pytest.raises(InvalidInput):
                await kit.manager.send_app(session.id, name, data)  # type: ignore[arg-type]
        await settle()
        apps = [e.to_wire() for e in channel.events if e.type == "app"]
        assert apps == [{"type": "app", "name": "speaking", "data": {"on": True}}]
        with pytest.raises(SessionNotFound):
            await kit.manager.send_app(SessionId("0" * 32), "speaking", None)


class SlowDiskJournal(FileJournal):
    """A real journal whose appends wait until the test lets the disk finish (or refuse)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.flushed = asyncio.Event()
        self.refuse = False

    async def append(self, session_id: SessionId, message: Message) -> None:
        await self.flushed.wait()
        if self.refuse:
            raise ArchiveError("the disk refused the write (test)")
        await super().append(session_id, message)


def _early_answer(manager: SessionManager, heard: list[str]) -> asyncio.Event:
    """Register an early hook answering "Hi there"; the event is set once its reply is over."""
    answered = asyncio.Event()

    async def answer(session: SessionInfo, message: Message) -> None:
        heard.append(message.content)
        try:
            async with manager.reply(session.id) as reply:
                await reply.delta("Hi")
                await reply.delta(" there")
        finally:
            answered.set()

    manager.on_message(answer, early=True)
    return answered


async def test_an_early_hook_runs_before_the_flush_and_its_reply_waits_for_it(
    tmp_path: Path,
) -> None:
    """An early on_message hook runs while the user message is still being made durable; its
    reply reaches no connection until then, and goes out after the message's own
    transcript.message; a plain hook runs only once the message is durable."""
    journal = SlowDiskJournal(tmp_path)
    async with fake_manager(policy=POLICY, journal=journal, archiver=YamlArchive(tmp_path)) as kit:
        early: list[str] = []
        plain: list[str] = []
        answered = _early_answer(kit.manager, early)

        async def after(session: SessionInfo, message: Message) -> None:
            plain.append(message.content)

        kit.manager.on_message(after)
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        appending = asyncio.ensure_future(kit.manager.append(session.id, "user", "hello"))
        await settle()
        assert early == ["hello"]
        assert plain == []
        assert not appending.done()
        assert "reply.delta" not in channel.types()
        journal.flushed.set()
        await appending
        await asyncio.wait_for(answered.wait(), 10)
        await settle()
        assert plain == ["hello"]
        wire = [(e.to_wire()["type"], e.to_wire().get("text")) for e in channel.events]
        assert wire[-3:] == [
            ("transcript.message", None),
            ("reply.delta", "Hi there"),
            ("transcript.message", None),
        ]
        contents = [(m.role.value, m.content) for m in await kit.manager.transcript(session.id)]
        assert contents == [("user", "hello"), ("assistant", "Hi there")]


async def test_a_reply_to_a_message_the_disk_refuses_sends_and_stores_nothing(
    tmp_path: Path,
) -> None:
    """The journal refuses the user message: the early hook's reply sends no delta, the
    session ends with error, and its archive holds no answer."""
    journal = SlowDiskJournal(tmp_path)
    async with fake_manager(policy=POLICY, journal=journal, archiver=YamlArchive(tmp_path)) as kit:
        early: list[str] = []
        _early_answer(kit.manager, early)
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        appending = asyncio.ensure_future(kit.manager.append(session.id, "user", "hello"))
        await settle()
        assert early == ["hello"]
        journal.refuse = True
        journal.flushed.set()
        with pytest.raises(ArchiveError):
            await appending
        await kit.manager.wait_idle()
        assert "reply.delta" not in channel.types()
        assert (await kit.manager.get(session.id)).end_reason is EndReason.ERROR
        assert yaml.safe_load(archived_text(tmp_path))["messages"] in (None, [])
