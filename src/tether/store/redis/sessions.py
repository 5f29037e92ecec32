"""``Sessions``: the writes to one session (create, attach, detach, end, config, policy, append).

Each is one Lua script; the rules stay in the pure core. Scripts never
compute a deadline: where a step depends on the clocks, Python decides with
:class:`~tether.core.session.SessionRecord`'s methods and commits with a
compare-and-set on the session's version (:func:`~.cas.retry`). The hot steps
take a fast path that needs no decision: a step whose ``now`` is before the
session's armed deadline cannot meet a run-out clock, so its script just
does it; otherwise the script hands the session back and Python decides.
"""

from __future__ import annotations

from typing import Any

from tether.core.caps import message_size
from tether.core.policy import Policy
from tether.core.session import Ended, SessionInfo, SessionRecord
from tether.core.transcript import Message, Role
from tether.errors import DuplicateSession, SessionEnded, SessionNotFound
from tether.store.base import Claim, Created
from tether.store.redis import arming, cas, codec
from tether.store.redis.cas import AGAIN, Again
from tether.store.redis.codec import Loaded, num, text
from tether.store.redis.keys import SessionKeys
from tether.store.redis.link import Link
from tether.store.redis.nodes import Nodes
from tether.types import EndReason, SessionId

_REPLACED = Ended(EndReason.REPLACED)


class Sessions:
    """Writes to sessions, each committed atomically by its script."""

    def __init__(self, link: Link, nodes: Nodes) -> None:
        self._link = link
        self._nodes = nodes

    def create_call(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> tuple[SessionKeys, list[str]]:
        """The keys and arguments of ``create.lua`` for a new ``record``."""
        link = self._link
        deadline = record.next_deadline()
        assert deadline is not None  # a new record is live
        ref, interned, config = codec.config_args(record.config)
        link.configs.intern(ref, interned)
        return link.keys.of(record.id), [
            link.keys.prefix,
            record.id,
            record.user,
            num(record.created_at),
            "" if max_per_user is None else str(max_per_user),
            num(deadline.at),
            link.retention_ms,
            num(record.created_at + link.end_lease),
            record.kind if reuse else "",
            ref,
            str(len(interned)),
            *interned,
            *codec.new_fields(record, deadline.at, config),
        ]

    async def create(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> Created:
        """See ``SessionStore.create``."""
        link = self._link
        keys, args = self.create_call(record, max_per_user=max_per_user, reuse=reuse)
        deadline = record.next_deadline()
        assert deadline is not None  # a new record is live
        now = record.created_at
        ended: list[Claim] = []

        async def attempt() -> Created | Again:
            reply = await link.scripts.create(keys=keys, args=args)
            code = text(reply[0])
            if code == "D":
                raise DuplicateSession()
            if code == "X":  # reuse: the user's live session of the kind, for Python to judge
                loaded = (await link.decoded(reply[1:3]))[0]
                due = loaded.record.expired(now)
                if due is None:
                    return Created(loaded.record.snapshot(), loaded.armed_at, ended, reused=True)
                claim = await self.end(loaded.record.id, due, now)  # its end was due: apply it
                if claim is not None:
                    ended.append(claim)
                return AGAIN
            for loaded in await link.decoded(reply[1]):
                ended.append(link.end_claim(loaded, _REPLACED))
            return Created(record.snapshot(), deadline.at, ended)

        return await cas.retry(attempt)

    async def attach(self, session_id: SessionId, now: float) -> SessionInfo:
        """See ``SessionStore.attach``."""
        link, nodes = self._link, self._nodes
        at, expected = num(now), ""

        async def attempt() -> SessionInfo | Again:
            nonlocal expected
            reply = await link.scripts.attach(
                keys=[link.keys.session(session_id), link.keys.nodes, nodes.node_set(link)],
                args=[at, expected, nodes.token, session_id],
            )
            if cas.ok(reply):
                return (await link.configs.decode(session_id, reply[1])).record.snapshot()
            if text(reply[0]) == "R":  # not registered (yet, or any more)
                await nodes.register(now)
                return AGAIN
            loaded = await link.refused(session_id, reply)
            if (reason := loaded.record.expired(now)) is not None:
                raise SessionEnded(reason)  # not revived: claim_due applies the end
            expected = loaded.version
            return AGAIN

        return await cas.retry(attempt)

    async def detach(self, session_id: SessionId, now: float) -> float | None:
        """See ``SessionStore.detach``."""
        link, nodes = self._link, self._nodes
        try:
            loaded = await link.read(session_id)
        except (SessionNotFound, SessionEnded):
            return None  # connections close after their session ends

        async def attempt() -> float | Again | None:
            nonlocal loaded
            if loaded.counts.get(nodes.token, 0) <= 0:
                return None  # a duplicate close, or released when this node was reaped
            loaded.record.detach(now)
            earlier = arming.earlier(loaded)
            reply = await link.scripts.detach(
                keys=[link.keys.session(session_id), link.keys.due, nodes.node_set(link)],
                args=[
                    nodes.token,
                    num(now),
                    loaded.version,
                    "" if earlier is None else num(earlier),
                    session_id,
                ],
            )
            code = text(reply[0])
            if code == "OK":
                return earlier
            if code == "Z":
                return None
            loaded = await link.refused(session_id, reply)
            return AGAIN

        try:
            return await cas.retry(attempt)
        except (SessionNotFound, SessionEnded):
            return None  # ended meanwhile

    async def end(self, session_id: SessionId, reason: EndReason, now: float) -> Claim | None:
        """See ``SessionStore.end``."""
        link = self._link
        keys, at, lease = link.keys.of(session_id), num(now), num(now + link.end_lease)
        expected, why = "", reason

        async def attempt() -> Claim | Again | None:
            nonlocal expected, why
            reply = await link.scripts.end(
                keys=keys,
                args=[
                    link.keys.prefix,
                    session_id,
                    at,
                    why.value,
                    expected,
                    link.retention_ms,
                    lease,
                ],
            )
            if cas.ok(reply):
                return link.end_claim(await link.configs.decode(session_id, reply[1]), Ended(why))
            try:
                loaded = await link.refused(session_id, reply)
            except SessionEnded:
                return None  # someone else ended it first
            why = loaded.record.end_reason_at(now, reason)  # a run-out clock came first
            expected = loaded.version
            return AGAIN

        return await cas.retry(attempt)

    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        """See ``SessionStore.update_config``."""
        link = self._link
        ref, interned, fields = codec.config_args(config)
        link.configs.intern(ref, interned)
        reply = await link.scripts.config(
            keys=[link.keys.session(session_id)],
            args=[link.keys.prefix, ref, str(len(interned)), *interned, *fields],
        )
        if not cas.ok(reply):
            await link.refused(session_id, reply)
        return (await link.configs.decode(session_id, reply[1])).record.snapshot()

    async def update_policy(
        self, session_id: SessionId, policy: Policy, now: float
    ) -> float | None:
        """See ``SessionStore.update_policy``."""
        link = self._link
        loaded: Loaded = await link.read(session_id)

        async def attempt() -> float | Again | None:
            nonlocal loaded
            if (reason := loaded.record.expired(now)) is not None:
                raise SessionEnded(reason)
            loaded.record.policy = policy
            earlier = arming.earlier(loaded)
            reply = await link.apply(loaded, "" if earlier is None else num(earlier), now)
            if cas.ok(reply):
                return earlier
            loaded = await link.refused(session_id, reply)
            return AGAIN

        return await cas.retry(attempt)

    async def append(
        self,
        session_id: SessionId,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> Message:
        """See ``SessionStore.append``."""
        link = self._link
        size = message_size(content, metadata)
        link.cap.check_message(size)
        keys = link.keys
        at, entry = num(now), codec.encode_message(role, content, now, metadata)
        expected = ""

        async def attempt() -> Message | Again:
            nonlocal expected
            reply = await link.scripts.append(
                keys=[keys.session(session_id), keys.transcript(session_id)],
                args=[at, expected, entry, *link.cap_args, str(size)],
            )
            if isinstance(reply, int):
                return Message(reply, role, content, now, metadata or None)
            if text(reply[0]) == "F":
                # The script applied the cap; the core words the refusal.
                link.cap.check(count=int(reply[1]), stored_bytes=int(reply[2]), size=size)
                raise AssertionError("append.lua refused an append TranscriptCap allows")
            loaded = await link.refused(session_id, reply)
            if (reason := loaded.record.expired(now)) is not None:
                raise SessionEnded(reason)
            expected = loaded.version
            return AGAIN

        return await cas.retry(attempt)

    async def retract(self, session_id: SessionId, seq: int) -> None:
        """See ``SessionStore.retract``."""
        link = self._link
        await link.scripts.retract(keys=[link.keys.transcript(session_id)], args=[seq])
