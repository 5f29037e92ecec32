"""Streamed replies: an answer sent piece by piece, stored once.

``async with manager.reply(session_id) as reply: await reply.delta(text)``
sends each piece to every attached connection as ``reply.delta {reply_id,
role, text}``. The reply's first piece goes out at once (the time to the
first word is what a user waits on); after it, pieces given within one turn
of the event loop go out as one event: the first piece of a turn schedules a
flush with ``call_soon``, later ones only join the buffer, so a model
streaming many small tokens costs one frame per loop turn, not one per token.

A clean exit stores ONE transcript message (``content`` = every piece
joined, ``metadata.reply_id``), which goes out as the usual
``transcript.message``. A reply cut short (its session ends, a barge-in, the
body raised or was cancelled) stores what it streamed with
``metadata.partial: true``; on an end this happens before the archive is
written. A connection that attaches while a reply streams first gets the
text already sent as one ``reply.delta`` (:meth:`Replies.resume_events`).

A reply opened while a user message of its session is stored but not yet
durable (by an ``early`` ``on_message`` hook) holds its pieces until the
journal has flushed that message (:meth:`Replies.hold`): no answer reaches a
client before the message it answers is saved. If the disk refuses the
message, the reply sends and stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from tether.core.events import Event, ReplyDelta
from tether.core.ids import log_ref
from tether.core.session import SessionInfo
from tether.core.transcript import Message, Role, check_content, parse_role
from tether.errors import ReplyClosed, SessionEnded, SessionNotFound, TetherError
from tether.runtime.busy import SetBusy
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

Append = Callable[[SessionId, str, str, dict[str, Any] | None], Awaitable[Message]]
Broadcast = Callable[[SessionId, Event], None]
Lookup = Callable[[SessionId], Awaitable[SessionInfo]]

BARGE_IN_POLICIES = ("cancel", "keep")
"""``cancel``: a user message while a reply streams cuts it; ``keep``: it goes on."""


class Reply:
    """One streamed reply; use it as an async context manager (see the module docstring)."""

    def __init__(self, replies: Replies, session_id: SessionId, role: Role) -> None:
        self._replies = replies
        self.session_id = session_id
        self.role = role
        self.reply_id = secrets.token_hex(8)
        """The id every ``reply.delta`` and the stored message carry."""
        self.message: Message | None = None
        """The stored message, once the reply is over (complete or partial)."""
        self._parts: list[str] = []
        self._sent = 0  # parts[:_sent] went out already
        self._flush_handle: asyncio.Handle | None = None
        self._gate: asyncio.Future[bool] | None = None  # the durability it waits for
        self._held = False  # pieces wait for the gate
        self._owner: asyncio.Task[Any] | None = None
        self._open = False
        self._closed = False

    @property
    def text(self) -> str:
        """Everything given to :meth:`delta` so far."""
        return "".join(self._parts)

    @property
    def sent_text(self) -> str:
        """What already went out to the connections."""
        return "".join(self._parts[: self._sent])

    @property
    def closed(self) -> bool:
        """Whether the reply is over (stored, or cut short)."""
        return self._closed

    async def delta(self, text: str) -> None:
        """Stream ``text``: the first piece at once, later pieces of one loop turn together.

        Raises :class:`~tether.errors.ReplyClosed` once the reply was cut
        short, and :class:`~tether.errors.InvalidInput` for text that is no
        valid string (nothing is sent then).
        """
        if self._closed or not self._open:
            raise ReplyClosed("the reply is not open" if not self._closed else "the reply was cut")
        check_content(text)
        if not text:
            return
        self._parts.append(text)
        if len(self._parts) == 1:
            # The first piece goes out at once: the wait for the first word is the
            # latency a user feels, and a model that sends its opening chunks
            # together would otherwise hold it back until the task yields. Then
            # yield once, so that the connections' writers put it on the wire
            # before the producer parses whatever else its stream has buffered.
            self._flush()
            await asyncio.sleep(0)
        elif self._flush_handle is None and not self._held:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send what the buffer holds as one ``reply.delta`` (once its gate is open)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._sent == len(self._parts):
            return
        gate = self._gate
        if gate is not None:
            if not gate.done():
                # The message it answers is not durable yet: the buffer waits
                # (later pieces only join it), and goes out once it is.
                if not self._held:
                    self._held = True
                    gate.add_done_callback(self._gate_opened)
                return
            if not gate.result():
                return  # the message it answers was refused: say nothing
            self._gate = None
        piece = "".join(self._parts[self._sent :])
        self._sent = len(self._parts)
        self._replies.broadcast(self.session_id, ReplyDelta(self.reply_id, self.role.value, piece))

    def _gate_opened(self, gate: asyncio.Future[bool]) -> None:
        self._held = False
        self._flush()

    async def _answers_a_saved_message(self) -> bool:
        """Wait for the gate; whether the message this reply answers was saved."""
        gate = self._gate
        if gate is None:
            return True
        if not gate.done():
            await asyncio.shield(gate)
        return gate.result()

    async def __aenter__(self) -> Reply:
        if self._open or self._closed:
            raise ReplyClosed("a reply is entered once")
        self._gate = self._replies.gate(self.session_id)
        info = await self._replies.lookup(self.session_id)
        if info.end_reason is not None:
            raise SessionEnded(info.end_reason)
        # Busy first: the idle clock must not run out while the reply streams.
        await self._replies.set_busy(self.session_id, True)
        self._owner = asyncio.current_task()
        self._open = True
        self._replies.track(self, opened=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._closed:
                return  # cut short meanwhile: the cut stores what it had
            if exc_type is None:
                saved = await self._answers_a_saved_message()
                self._finish()
                if not saved:
                    return  # it answers a message the disk refused: nothing to store
                metadata = {"reply_id": self.reply_id}
                self.message = await self._replies.append(
                    self.session_id, self.role.value, self.text, metadata
                )
                return
            await self.cut(cancel_owner=False)
        finally:
            await self._replies.unbusy(self.session_id)

    def _finish(self) -> None:
        self._closed = True
        self._flush()
        self._replies.track(self, opened=False)

    async def cut(self, *, cancel_owner: bool) -> None:
        """End the reply now: store the text so far as ``partial``, optionally stop its task.

        A no-op once the reply is over. Nothing is stored when nothing was
        streamed. Failures to store (the session already archived) are
        logged: the caller is ending things, not starting them.
        """
        if self._closed:
            return
        self._closed = True  # from here on, delta() refuses and a second cut returns
        if cancel_owner:
            owner = self._owner
            if owner is not None and owner is not asyncio.current_task() and not owner.done():
                owner.cancel()
        saved = await self._answers_a_saved_message()
        self._finish()
        if not saved or not self._parts:
            return
        metadata = {"reply_id": self.reply_id, "partial": True}
        try:
            self.message = await self._replies.append(
                self.session_id, self.role.value, self.text, metadata
            )
        except TetherError as exc:
            log.warning(
                "a reply cut short could not be stored session=%s: %s",
                log_ref(self.session_id),
                exc,
            )


class Replies:
    """The replies streaming on this node, by session."""

    def __init__(
        self,
        *,
        append: Append,
        broadcast: Broadcast,
        lookup: Lookup,
        set_busy: SetBusy,
        barge_in: str,
    ) -> None:
        if barge_in not in BARGE_IN_POLICIES:
            raise ValueError(f"barge_in must be one of {BARGE_IN_POLICIES}, not {barge_in!r}")
        self.append = append
        self.broadcast = broadcast
        self.lookup = lookup
        self.set_busy = set_busy
        self.barge_in = barge_in
        self._open: dict[SessionId, dict[str, Reply]] = {}
        self._gates: dict[SessionId, asyncio.Future[bool]] = {}

    def new(self, session_id: SessionId, role: str) -> Reply:
        """A reply for ``session_id`` (it opens when entered)."""
        return Reply(self, session_id, parse_role(role))

    def hold(self, session_id: SessionId) -> asyncio.Future[bool]:
        """A user message of the session is stored, not yet durable: replies opened
        until :meth:`release` hold their pieces. Returns the gate to release."""
        gate: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._gates[session_id] = gate
        return gate

    def release(self, session_id: SessionId, gate: asyncio.Future[bool], *, saved: bool) -> None:
        """The message behind ``gate`` is durable (``saved``) or was refused."""
        if self._gates.get(session_id) is gate:
            del self._gates[session_id]
        if not gate.done():
            gate.set_result(saved)

    def gate(self, session_id: SessionId) -> asyncio.Future[bool] | None:
        """What a reply opening now waits for: the pending durability of the
        session's latest user message, or ``None``."""
        return self._gates.get(session_id)

    def track(self, reply: Reply, *, opened: bool) -> None:
        """A reply opened or closed."""
        if opened:
            self._open.setdefault(reply.session_id, {})[reply.reply_id] = reply
        else:
            held = self._open.get(reply.session_id)
            if held is not None:
                held.pop(reply.reply_id, None)
                if not held:
                    del self._open[reply.session_id]

    async def unbusy(self, session_id: SessionId) -> None:
        """Close a reply's busy mark; the idle clock counts again from now.

        A session that ended meanwhile took its marks with it; a store that
        cannot be reached is logged (the mark then stays open until the
        session's end: ``max_duration`` still applies).
        """
        try:
            await self.set_busy(session_id, False)
        except (SessionEnded, SessionNotFound):
            pass
        except TetherError as exc:
            log.warning("a reply's busy mark stays open session=%s: %s", log_ref(session_id), exc)

    def streaming(self, session_id: SessionId) -> list[Reply]:
        """The session's open replies here."""
        return list(self._open.get(session_id, {}).values())

    def resume_events(self, session_id: SessionId) -> list[ReplyDelta]:
        """For a connection attaching now: each open reply's text so far, as one delta."""
        out = []
        for reply in self.streaming(session_id):
            text = reply.sent_text
            if text:
                out.append(ReplyDelta(reply.reply_id, reply.role.value, text))
        return out

    async def user_spoke(self, session_id: SessionId) -> None:
        """A user message is on its way in: under ``cancel``, cut the replies streaming."""
        if self.barge_in == "cancel":
            for reply in self.streaming(session_id):
                await reply.cut(cancel_owner=True)

    async def cut_all(self, session_id: SessionId) -> None:
        """The session ends: store every open reply's text so far as partial."""
        for reply in self.streaming(session_id):
            await reply.cut(cancel_owner=False)
