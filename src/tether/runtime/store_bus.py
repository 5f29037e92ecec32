"""``StoreBus``: the :class:`~tether.runtime.bus.EventBus` over a shared store's broadcast.

A shared store offers its nodes a channel (:class:`~tether.store.base.Broadcast`;
on Redis, pub/sub: ``tether.store.redis.bus``). This bus encodes each
:data:`~tether.runtime.bus.BusMessage` onto it, stamped with this node's
origin, and decodes what it hears, skipping its own messages and counting
malformed ones. The runtime never sees the store's transport, nor its errors.
"""

from __future__ import annotations

import logging
import secrets
import time

from tether.runtime.bus import (
    BusMessage,
    EventBus,
    LocalBus,
    MalformedMessage,
    OnMessage,
    OnReconnect,
    decode,
    encode,
)
from tether.store.base import Broadcast, BroadcastStore, SessionStore

log = logging.getLogger("tether.runtime")


class StoreBus:
    """An :class:`~tether.runtime.bus.EventBus` on a store's :class:`Broadcast`."""

    def __init__(self, broadcast: Broadcast) -> None:
        self._broadcast = broadcast
        self.node = secrets.token_hex(8)
        """This bus's origin stamp: messages carrying it are its own and are skipped."""
        self.dropped = 0
        """Malformed payloads seen on the channel and ignored."""
        self._on_message: OnMessage | None = None

    @property
    def shared(self) -> bool:
        return True

    @property
    def channel(self) -> str:
        """The broadcast's channel."""
        return self._broadcast.channel

    @property
    def listening(self) -> bool:
        """Whether the listener is subscribed right now."""
        return self._broadcast.listening

    @property
    def reconnects(self) -> int:
        """How many times the listener subscribed again after losing its connection."""
        return self._broadcast.reconnects

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        self._on_message = on_message
        await self._broadcast.start(self._deliver, on_reconnect)

    def _deliver(self, payload: str | bytes) -> None:
        try:
            origin, message = decode(payload, time.time())
        except MalformedMessage as exc:
            self.dropped += 1
            log.warning("ignoring a malformed event bus message: %s", exc)
            return
        if origin == self.node or self._on_message is None:
            return
        self._on_message(message)

    def publish(self, message: BusMessage) -> None:
        self._broadcast.publish(encode(message, self.node))

    async def flush(self) -> None:
        await self._broadcast.flush()

    async def aclose(self) -> None:
        await self._broadcast.aclose()

    async def halt(self) -> None:
        """Stop at once, publishing nothing more: what a killed process does (tests)."""
        await self._broadcast.halt()


def bus_for(store: SessionStore) -> EventBus:
    """The bus a store's nodes share: on its broadcast if it has one, else a :class:`LocalBus`."""
    if isinstance(store, BroadcastStore):
        return StoreBus(store.broadcast())
    if store.shared:
        log.warning(
            "a shared store without an event bus: events decided on other nodes "
            "will not reach this node's connections"
        )
    return LocalBus()
