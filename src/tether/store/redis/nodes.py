"""``Nodes``: this store's node identity, membership, and resuming after an outage.

Each store instance is one *node*: it registers under a random identity
token (:class:`~tether.store.base.NodeMembership`) and counts the
connections it attaches under it. ``claim_due`` on any node first gives up
nodes whose lease ran out (``reap.lua``) and releases their connections, so
a killed node cannot hold its sessions' presence forever. A node found
reaped registers again under a new token.

After an outage, :meth:`Nodes.resume_presence` restarts every live session's
presence clock; the store's epoch (``P epoch``) lets each node notice that
Redis came back without its data (see ``tether.core.epoch``).
"""

from __future__ import annotations

import logging
import secrets

from tether.store.redis.cas import MAX_ATTEMPTS
from tether.store.redis.codec import num, text
from tether.store.redis.link import READ_CHUNK, Link

log = logging.getLogger("tether.store")

RESUME_CHUNK = 1000
"""Sessions per ``resume.lua`` call: about a millisecond of Redis time each."""


def new_node_token() -> str:
    """A fresh node identity."""
    return secrets.token_hex(8)


class Nodes:
    """This node's membership of the deployment."""

    def __init__(self, link: Link, *, node_lease: float) -> None:
        self._link = link
        self.lease = node_lease
        self.token = new_node_token()
        """This node's identity token: connections it attaches count under it."""
        self._joined = False
        self._lost = False

    def node_set(self) -> str:
        """The set of sessions this node counts connections to."""
        return self._link.keys.node_set(self.token)

    async def register(self, now: float) -> None:
        """Register this node; if it was registered before, it was reaped: take a new identity."""
        if self._joined:
            log.warning("node %s was given up for dead; registering again", self.token[:8])
            self.token = new_node_token()
            self._lost = True
        self._joined = True
        keys = self._link.keys
        await self._link.scripts.keepalive(
            keys=[keys.nodes, keys.alive],
            args=[self.token, num(now), num(now + self.lease), "1"],
        )

    async def keepalive(self, now: float) -> bool:
        """Renew this node's lease (see ``NodeMembership.keepalive``)."""
        if not self._joined:
            await self.register(now)
            return True
        keys = self._link.keys
        held = await self._link.scripts.keepalive(
            keys=[keys.nodes, keys.alive],
            args=[self.token, num(now), num(now + self.lease), "0"],
        )
        if not held:
            await self.register(now)
        lost, self._lost = self._lost, False
        return not lost

    async def leave(self, now: float) -> None:
        """Leave the deployment, releasing the connections this node counted."""
        if not self._joined:
            return
        self._joined = False
        keys, scripts = self._link.keys, self._link.scripts
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
        keys = self._link.keys
        cursor, moved = "-inf", 0
        args = [keys.prefix, num(at), "", str(RESUME_CHUNK), num(at + self.lease)]
        while True:
            args[2] = cursor
            reply = await self._link.scripts.resume(
                keys=[keys.live, keys.nodes, keys.alive], args=args
            )
            moved += int(reply[1])
            cursor = text(reply[0])
            if not cursor:
                return moved

    async def swap_epoch(self, candidate: str) -> str | None:
        """The epoch (``epoch.lua``); ``None`` if there was none (it now holds ``candidate``)."""
        held = await self._link.scripts.epoch(keys=[self._link.keys.epoch], args=[candidate])
        return None if held is None else text(held)
