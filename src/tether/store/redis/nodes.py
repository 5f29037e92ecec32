"""``Nodes``: this store's node identity, membership, and resuming after an outage.

Each store instance is one *node*: it registers under a random identity
token (:class:`~tether.store.base.NodeMembership`) and counts the
connections it attaches under it. ``claim_due`` on any node first gives up
nodes whose lease ran out (``reap.lua``) and releases their connections, so
a killed node cannot hold its sessions' presence forever. A node found
reaped registers again under a new token.

After an outage, :meth:`Nodes.resume_presence` restarts every live session's
presence clock; the store's epoch (``P epoch``, in the first shard) lets each
node notice that Redis came back without its data (see ``tether.core.epoch``).

A sharded store (:mod:`~tether.store.redis.shards`) keeps its node registry
in every shard (a shard's scripts release its own sessions' connections), so
the node registers, keeps alive and leaves in each, under one token, all
shards in one pipeline.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

from tether.store.redis.cas import MAX_ATTEMPTS
from tether.store.redis.codec import num, text
from tether.store.redis.link import READ_CHUNK, Link
from tether.store.redis.scripts import Call

log = logging.getLogger("tether.store")

RESUME_CHUNK = 1000
"""Sessions per ``resume.lua`` call: about a millisecond of Redis time each."""


def new_node_token() -> str:
    """A fresh node identity."""
    return secrets.token_hex(8)


class Nodes:
    """This node's membership of the deployment."""

    def __init__(self, links: Sequence[Link], *, node_lease: float) -> None:
        self._links = list(links)
        self.lease = node_lease
        self.token = new_node_token()
        """This node's identity token: connections it attaches count under it."""
        self._joined = False
        self._lost = False

    def node_set(self, link: Link) -> str:
        """The set of sessions of ``link``'s shard this node counts connections to."""
        return link.keys.node_set(self.token)

    async def _keepalive(self, now: float, first: str) -> bool:
        """``keepalive.lua`` in every shard; whether the node was registered in all of them."""
        args: list[str | int] = [self.token, num(now), num(now + self.lease), first]
        calls: list[Call] = [
            (link.scripts.keepalive, [link.keys.nodes, link.keys.alive], args)
            for link in self._links
        ]
        replies = await self._links[0].run(calls)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return all(bool(reply) for reply in replies)

    async def register(self, now: float) -> None:
        """Register this node; if it was registered before, it was reaped: take a new identity."""
        if self._joined:
            log.warning("node %s was given up for dead; registering again", self.token[:8])
            self.token = new_node_token()
            self._lost = True
        self._joined = True
        await self._keepalive(now, "1")

    async def keepalive(self, now: float) -> bool:
        """Renew this node's lease (see ``NodeMembership.keepalive``)."""
        if not self._joined:
            await self.register(now)
            return True
        if not await self._keepalive(now, "0"):
            await self.register(now)
        lost, self._lost = self._lost, False
        return not lost

    async def leave(self, now: float) -> None:
        """Leave the deployment, releasing the connections this node counted."""
        if not self._joined:
            return
        self._joined = False
        for link in self._links:
            await self._leave(link, now)

    async def _leave(self, link: Link, now: float) -> None:
        keys, scripts = link.keys, link.scripts
        more = await scripts.leave(
            keys=[keys.nodes, keys.alive, keys.reaping], args=[keys.prefix, self.token, num(now)]
        )
        # Bounded rounds, not a compare-and-set: each reap call releases a chunk.
        for _ in range(MAX_ATTEMPTS):
            if not more:
                return
            more = await scripts.reap(
                keys=[keys.nodes, keys.alive, keys.reaping, keys.due],
                args=[keys.prefix, num(now), READ_CHUNK, self.token],
            )

    async def resume_presence(self, at: float) -> int:
        """Restart presence at ``at`` in chunks of ``RESUME_CHUNK`` (``resume.lua``).

        Each chunk is one atomic script call, so Redis is never blocked for
        long, however many sessions there are; a caller that stops between
        chunks (Redis failed again) simply calls again: the walk is idempotent.
        """
        moved = 0
        for link in self._links:
            moved += await self._resume(link, at)
        return moved

    async def _resume(self, link: Link, at: float) -> int:
        keys = link.keys
        cursor, moved = "-inf", 0
        args = [keys.prefix, num(at), "", str(RESUME_CHUNK), num(at + self.lease)]
        while True:
            args[2] = cursor
            reply = await link.scripts.resume(keys=[keys.live, keys.nodes, keys.alive], args=args)
            moved += int(reply[1])
            cursor = text(reply[0])
            if not cursor:
                return moved

    async def swap_epoch(self, candidate: str) -> str | None:
        """The epoch (``epoch.lua``); ``None`` if there was none (it now holds ``candidate``)."""
        first = self._links[0]
        held = await first.scripts.epoch(keys=[first.keys.epoch], args=[candidate])
        return None if held is None else text(held)
