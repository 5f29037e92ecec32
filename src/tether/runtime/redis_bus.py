"""``RedisBus``: the event bus over Redis pub/sub, one channel per deployment.

Publishing goes through one writer task that sends everything queued as one
pipeline, so a node's messages arrive everywhere in the order it published
them (a transcript message before the end that follows it), and a burst costs
one round trip.

Listening holds one dedicated connection. Pub/sub keeps nothing for a
subscriber that is away: when that connection breaks (a Redis restart, a
network cut, ``CLIENT KILL TYPE pubsub``) whatever was published meanwhile is
lost. So the reader reconnects, with a capped backoff, and each time it is
subscribed again it calls ``on_reconnect``: the node then re-reads from the
store the sessions it holds connections for (``tether.runtime.cluster``).
A resubscription redis-py performs by itself is noticed the same way: every
subscribe confirmation after the first one means the connection was renewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

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
from tether.runtime.tasks import cancel_and_wait, cancel_requested
from tether.store.base import SessionStore
from tether.store.redis import RedisStore

log = logging.getLogger("tether.runtime")

RECONNECT_DELAY = 0.05
MAX_RECONNECT_DELAY = 2.0
MAX_BATCH = 512


class RedisBus:
    """An :class:`~tether.runtime.bus.EventBus` on one Redis pub/sub channel.

    ``client`` is used for publishing and lends the bus one connection to
    listen on; the bus does not close it unless ``owns_client``.
    """

    def __init__(self, client: Redis, channel: str, *, owns_client: bool = False) -> None:
        self._client = client
        self._channel = channel
        self._owns_client = owns_client
        self.node = secrets.token_hex(8)
        """This bus's origin stamp: messages carrying it are its own and are skipped."""
        self.reconnects = 0
        """How many times the listener subscribed again after losing its connection."""
        self.dropped = 0
        """Malformed payloads seen on the channel and ignored."""
        self._on_message: OnMessage | None = None
        self._on_reconnect: OnReconnect | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._queue: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def for_store(cls, store: RedisStore) -> RedisBus:
        """The bus of ``store``'s deployment: its client, channel ``<prefix>bus``."""
        return cls(store.client, store.prefix + "bus")

    @property
    def shared(self) -> bool:
        return True

    @property
    def channel(self) -> str:
        """The pub/sub channel."""
        return self._channel

    @property
    def listening(self) -> bool:
        """Whether the listener is subscribed right now."""
        return self._subscribed.is_set()

    # -- listening -------------------------------------------------------------------

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        if self._reader is not None:
            return
        self._on_message, self._on_reconnect = on_message, on_reconnect
        self._reader = asyncio.get_running_loop().create_task(
            self._listen(), name="tether-bus-reader"
        )
        await self._subscribed.wait()

    async def _listen(self) -> None:
        delay = RECONNECT_DELAY
        first = True
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if cancel_requested():  # redis-py may swallow a cancellation
                        raise asyncio.CancelledError
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "message":
                        self._deliver(message["data"])
                    elif kind == "subscribe":
                        delay = RECONNECT_DELAY
                        self._subscribed.set()
                        if not first:
                            self._reconnected()
                        first = False
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("event bus lost its connection, reconnecting: %s", exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())
            self._subscribed.clear()
            if cancel_requested():  # redis-py may swallow a cancellation
                raise asyncio.CancelledError
            await asyncio.sleep(delay)  # real time: this waits for the network, not a session
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    def _reconnected(self) -> None:
        self.reconnects += 1
        log.warning("event bus subscribed again; catching up from the store")
        if self._on_reconnect is not None:
            self._on_reconnect()

    def _deliver(self, payload: Any) -> None:
        try:
            origin, message = decode(payload, time.time())
        except MalformedMessage as exc:
            self.dropped += 1
            log.warning("ignoring a malformed event bus message: %s", exc)
            return
        if origin == self.node or self._on_message is None:
            return
        try:
            self._on_message(message)
        except Exception:
            log.exception("event bus handler failed")

    # -- publishing ------------------------------------------------------------------

    def publish(self, message: BusMessage) -> None:
        if self._closed:
            return
        self._queue.append(encode(message, self.node))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), name="tether-bus-writer"
            )

    async def flush(self) -> None:
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for payload in batch:
                            pipe.publish(self._channel, payload)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    # The other nodes' listeners broke too (same Redis); they
                    # catch up from the store when they reconnect.
                    log.warning("event bus dropped %d message(s): %s", len(batch), exc)
        finally:
            self._writer = None

    async def aclose(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(Exception):
            await self.flush()
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            await cancel_and_wait(reader)
        self._subscribed.clear()
        if self._owns_client:
            await self._client.aclose()

    async def halt(self) -> None:
        """Stop at once, publishing nothing more: what a killed process does (tests)."""
        self._closed = True
        self._queue.clear()
        tasks = [t for t in (self._reader, self._writer) if t is not None]
        self._reader = self._writer = None
        for task in tasks:
            await cancel_and_wait(task)
        self._subscribed.clear()


def bus_for(store: SessionStore) -> EventBus:
    """The bus a store's nodes share: pub/sub on a Redis store, else a :class:`LocalBus`."""
    if isinstance(store, RedisStore):
        return RedisBus.for_store(store)
    if store.shared:
        log.warning(
            "a shared store without an event bus: events decided on other nodes "
            "will not reach this node's connections"
        )
    return LocalBus()
