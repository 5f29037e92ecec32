"""docs/conversations.md: its chat example, run as written, on a fake clock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from tether import Message, Policy
from tether.archive.yaml_archive import YamlArchive
from tether.core.events import ReplyDelta
from tether.testing import RecordingChannel, fake_manager, settle
from tether.types import EndReason

DOC = Path(__file__).resolve().parent.parent / "docs" / "conversations.md"
POLICY = Policy(idle_timeout=300, warn_before=60, max_duration=1800, presence_timeout=60)


def example() -> dict[str, Any]:
    """The doc's first python block, executed: its names (``model``, ``chat``)."""
    (code, *_) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert 20 <= len(code.strip().splitlines()) <= 40  # "a chat in about 30 lines"
    namespace: dict[str, Any] = {"__name__": "conversations_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


def archived(root: Path) -> list[dict[str, Any]]:
    """The messages of the one archive under ``root``."""
    (path,) = root.glob("users/*/dialogs/archived/*.yaml")
    messages: list[dict[str, Any]] = yaml.safe_load(path.read_text())["messages"]
    return messages


async def test_the_doc_chat_streams_a_reply_and_stores_it_once(tmp_path: Path) -> None:
    """The example answers a user message with reply.delta frames and ONE stored message."""
    app = example()
    async with fake_manager(policy=POLICY, archiver=YamlArchive(tmp_path)) as kit:
        app["chat"](kit.manager)
        session = await kit.manager.start("alice")
        browser = RecordingChannel()
        await kit.manager.attach(session.id, browser)
        await kit.manager.append(session.id, "user", "hello")
        await settle()
        user, answer = await kit.manager.transcript(session.id)
        assert user.content == "hello"
        assert answer.content == "You said 'hello'. Tell me more. "
        streamed = [e for e in browser.events if isinstance(e, ReplyDelta)]
        assert len(streamed) > 1
        assert "".join(d.text for d in streamed) == answer.content
        assert answer.metadata == {"reply_id": streamed[0].reply_id}
        assert browser.types()[-1] == "transcript.message"
        # Then nobody speaks: the idle clock (fake time) ends and archives the session.
        await kit.advance(300)
        await kit.manager.wait_idle()
        assert (await kit.manager.get(session.id)).end_reason is EndReason.IDLE_TIMEOUT
        assert [m["content"] for m in archived(tmp_path)] == ["hello", answer.content]


async def test_the_doc_chat_archives_a_reply_cut_by_the_end_as_partial(tmp_path: Path) -> None:
    """The session ends mid-reply: the archive holds what was streamed, partial: true."""
    app = example()
    stalled = asyncio.Event()

    async def slow_model(history: list[Message]) -> AsyncIterator[str]:
        yield "Let me think"
        stalled.set()
        await asyncio.Event().wait()  # the model hangs
        yield "never"

    app["model"] = slow_model
    async with fake_manager(policy=POLICY, archiver=YamlArchive(tmp_path)) as kit:
        app["chat"](kit.manager)
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "a hard question")
        await stalled.wait()
        await kit.manager.end(session.id)
        user, partial = archived(tmp_path)
        assert user["content"] == "a hard question"
        assert (partial["content"], partial["metadata"]["partial"]) == ("Let me think", True)


async def test_the_doc_chat_under_barge_in_keeps_what_was_said_and_answers_again() -> None:
    """A user message mid-reply: the reply is stored partial, then the new message is answered."""
    app = example()
    first_reply = asyncio.Event()
    real_model = app["model"]

    async def model(history: list[Message]) -> AsyncIterator[str]:
        if not first_reply.is_set():
            yield "Once upon"
            first_reply.set()
            await asyncio.Event().wait()  # a long story, cut by the user
        async for token in real_model(history):
            yield token

    app["model"] = model
    async with fake_manager(policy=POLICY) as kit:
        app["chat"](kit.manager)
        session = await kit.manager.start("alice")
        await kit.manager.append(session.id, "user", "tell me a story")
        await first_reply.wait()
        await kit.manager.append(session.id, "user", "stop")
        await settle()
        transcript = await kit.manager.transcript(session.id)
        assert [(m.role.value, m.content) for m in transcript] == [
            ("user", "tell me a story"),
            ("assistant", "Once upon"),
            ("user", "stop"),
            ("assistant", "You said 'stop'. Tell me more. "),
        ]
        assert transcript[1].metadata is not None
        assert transcript[1].metadata["partial"] is True


async def test_the_doc_chat_tells_the_page_when_a_config_is_applied() -> None:
    """on_config in the example sends an app event to the session's connections."""
    app = example()
    async with fake_manager(policy=POLICY) as kit:
        app["chat"](kit.manager)
        session = await kit.manager.start("alice")
        page = RecordingChannel()
        await kit.manager.attach(session.id, page)
        await kit.manager.update_config(session.id, {"job": "nurse", "level": 2})
        await settle()
        apps = [e.to_wire() for e in page.events if e.type == "app"]
        assert apps == [
            {"type": "app", "name": "config_applied", "data": {"keys": ["job", "level"]}}
        ]
