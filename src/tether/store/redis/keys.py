"""The key layout: every Redis key a store uses, derived from its prefix in one place.

``prefix`` starts every key, so deployments can share a Redis (a hash tag
such as ``"{tether}:"`` keeps every key in one Redis Cluster slot: the
scripts derive some keys from the prefix too, with ``prelude.lua``'s helpers,
which follow the same layout).
"""

from __future__ import annotations

from typing import NamedTuple


class SessionKeys(NamedTuple):
    """The keys one session's scripts use, in their ``KEYS`` order."""

    hash: str
    transcript: str
    due: str
    live: str
    ended: str
    seq: str


class Keys:
    """The keys of one deployment (one prefix)."""

    __slots__ = (
        "alive",
        "claims",
        "count",
        "due",
        "ended",
        "ending",
        "epoch",
        "live",
        "nodes",
        "prefix",
        "reaping",
        "seq",
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.due = prefix + "due"
        """Sorted set: each live session's armed deadline."""
        self.live = prefix + "live"
        """Sorted set of the live index's chunks (``prelude.lua``)."""
        self.ended = prefix + "ended"
        self.seq = prefix + "seq"
        self.ending = prefix + "ending"
        """Sorted set: ends handed out, by when their lease runs out."""
        self.nodes = prefix + "nodes"
        self.alive = prefix + "alive"
        self.reaping = prefix + "reaping"
        self.claims = prefix + "claims"
        self.count = prefix + "count"
        self.epoch = prefix + "epoch"

    def session(self, session_id: str) -> str:
        """The session's hash."""
        return self.prefix + "s:" + session_id

    def transcript(self, session_id: str) -> str:
        """The session's transcript list."""
        return self.prefix + "m:" + session_id

    def user(self, user: str) -> str:
        """The user's live sessions, by creation order."""
        return self.prefix + "u:" + user

    def live_chunk(self, chunk: str) -> str:
        """One chunk of the live index."""
        return self.live + ":" + chunk

    def node_set(self, node: str) -> str:
        """The sessions node ``node`` counts connections to."""
        return self.prefix + "node:" + node

    def batch(self, node: str, number: int) -> str:
        """A claim batch of node ``node``."""
        return f"{self.prefix}claim:{node}:{number}"

    def bus(self) -> str:
        """The deployment's pub/sub channel."""
        return self.prefix + "bus"

    def of(self, session_id: str) -> SessionKeys:
        """The keys a session's scripts take."""
        return SessionKeys(
            self.session(session_id),
            self.transcript(session_id),
            self.due,
            self.live,
            self.ended,
            self.seq,
        )
