"""``RedisBroadcast``: a deployment's pub/sub channel, the transport of its event bus.

It carries opaque payloads (the runtime's :class:`~tether.runtime.store_bus.StoreBus`
encodes the messages); it implements :class:`~tether.store.base.Broadcast`.

Publishing goes through one writer task that sends everything queued as one
pipeline, so a node's payloads arrive everywhere in the order it published
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

On Redis Cluster the channel is a sharded one (``sharded=True``:
``SPUBLISH``/``SSUBSCRIBE``, Redis 7+): it lives on the master that owns its
slot, rather than every message being copied to every node of the cluster.

Redis failures end here (the seam): a lost listener reconnects, a failed
publish is logged and dropped (the other nodes' listeners broke too, and
catch up from the store), so nothing from redis-py reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tether.store.base import OnPayload, OnReconnect
from tether.store.redis.scripts import Client
from tether.store.redis.seam import FAILURES

log = logging.getLogger("tether.store")

RECONNECT_DELAY = 0.05
MAX_RECONNECT_DELAY = 2.0
MAX_BATCH = 512


def _cancel_requested() -> bool:
    """Whether the running task was asked to stop (redis-py may swallow a cancellation)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` until it is done: redis-py can swallow a cancellation mid-command."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)


class RedisBroadcast:
    """A :class:`~tether.store.base.Broadcast` on one Redis pub/sub channel.

    ``client`` is used for publishing and lends the broadcast one connection
    to listen on; it is not closed unless ``owns_client``.
    """

    def __init__(
        self, client: Client, channel: str, *, owns_client: bool = False, sharded: bool = False
    ) -> None:
        self._client = client
        self._channel = channel
        self._sharded = sharded
        self._owns_client = owns_client
        self.reconnects = 0
        """How many times the listener subscribed again after losing its connection."""
        self._on_payload: OnPayload | None = None
        self._on_reconnect: OnReconnect | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._queue: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def channel(self) -> str:
        """The pub/sub channel."""
        return self._channel

    @property
    def listening(self) -> bool:
        """Whether the listener is subscribed right now."""
        return self._subscribed.is_set()

    # -- listening -------------------------------------------------------------------

    async def start(self, on_payload: OnPayload, on_reconnect: OnReconnect) -> None:
        """Start listening; returns once payloads published from now on will arrive."""
        if self._reader is not None:
            return
        self._on_payload, self._on_reconnect = on_payload, on_reconnect
        self._reader = asyncio.get_running_loop().create_task(
            self._listen(), name="tether-bus-reader"
        )
        await self._subscribed.wait()

    async def _listen(self) -> None:
        delay = RECONNECT_DELAY
        first = True
        while True:
            pubsub: Any = self._client.pubsub()
            try:
                if self._sharded:
                    await pubsub.ssubscribe(self._channel)
                else:
                    await pubsub.subscribe(self._channel)
                while True:
                    if self._sharded:
                        message = await pubsub.get_sharded_message(timeout=1.0)
                    else:
                        message = await pubsub.get_message(timeout=None)
                    if _cancel_requested():
                        raise asyncio.CancelledError
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind in ("message", "smessage"):
                        self._deliver(message["data"])
                    elif kind in ("subscribe", "ssubscribe"):
                        delay = RECONNECT_DELAY
                        self._subscribed.set()
                        if not first:
                            self._reconnected()
                        first = False
            except FAILURES as exc:
                self._subscribed.clear()
                log.warning("event bus lost its connection, reconnecting: %s", exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())
            self._subscribed.clear()
            if _cancel_requested():
                raise asyncio.CancelledError
            await asyncio.sleep(delay)  # real time: this waits for the network, not a session
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    def _reconnected(self) -> None:
        self.reconnects += 1
        log.warning("event bus subscribed again; catching up from the store")
        if self._on_reconnect is not None:
            self._on_reconnect()

    def _deliver(self, payload: str | bytes) -> None:
        if self._on_payload is None:
            return
        try:
            self._on_payload(payload)
        except Exception:
            log.exception("event bus handler failed")

    # -- publishing ------------------------------------------------------------------

    def publish(self, payload: str) -> None:
        """Queue ``payload`` for every listener; never waits. Order is kept."""
        if self._closed:
            return
        self._queue.append(payload)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), name="tether-bus-writer"
            )

    async def flush(self) -> None:
        """Wait until everything published so far has been sent (or dropped)."""
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
                            if self._sharded:
                                pipe.spublish(self._channel, payload)
                            else:
                                pipe.publish(self._channel, payload)
                        await pipe.execute()
                except FAILURES as exc:
                    # The other nodes' listeners broke too (same Redis); they
                    # catch up from the store when they reconnect.
                    log.warning("event bus dropped %d message(s): %s", len(batch), exc)
        finally:
            self._writer = None

    async def aclose(self) -> None:
        """Send what is queued, stop listening, and close the client if owned."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            await self.flush()
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            await _cancel_and_wait(reader)
        self._subscribed.clear()
        if self._owns_client:
            with contextlib.suppress(*FAILURES):
                await self._client.aclose()

    async def halt(self) -> None:
        """Stop at once, publishing nothing more: what a killed process does (tests)."""
        self._closed = True
        self._queue.clear()
        tasks = [t for t in (self._reader, self._writer) if t is not None]
        self._reader = self._writer = None
        for task in tasks:
            await _cancel_and_wait(task)
        self._subscribed.clear()
