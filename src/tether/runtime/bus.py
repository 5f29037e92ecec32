"""The ``EventBus`` port: how nodes sharing a store tell each other about sessions.

A session's connections live on whichever node accepted them, but anything
about the session (an end, a config change, a warning, a message) may be
decided on any node. The deciding node delivers to its own connections
directly and publishes a :data:`BusMessage`; every other node delivers it to
the connections it holds. A bus never hands a node its own messages back, so
nothing is delivered twice.

Messages:

* :class:`Publish`: an event for the session's connections;
* :class:`Close`: the session ended: send ``session.ended``, close the
  connections with the reason's code, run local cleanups, and (nodes named
  in ``expect``) answer with an :class:`Ack`, so the ender knows the sockets
  are closed;
* :class:`Poke`: deadlines moved earlier (a node left): look at the index now.

A bus whose connection broke loses what was published meanwhile; it calls
``on_reconnect`` once it listens again, and the node catches up from the
store (see ``tether.runtime.cluster``).

:class:`LocalBus` is the single-process bus (memory mode): there is nobody
to tell. :class:`~tether.runtime.store_bus.StoreBus` runs on a shared store's broadcast
(Redis pub/sub).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tether.core.events import (
    AppEvent,
    Event,
    ReplyDelta,
    SessionActive,
    SessionConfig,
    SessionWarning,
    TranscriptAppended,
)
from tether.core.transcript import Message, Role
from tether.errors import MalformedMessage as MalformedMessage  # re-exported: the bus's error
from tether.types import EndReason, SessionId


@dataclass(frozen=True, slots=True)
class Publish:
    """Deliver ``event`` to the session's connections on every node."""

    session_id: SessionId
    event: Event


@dataclass(frozen=True, slots=True)
class Close:
    """The session ended: tell and close its connections everywhere, run cleanups."""

    session_id: SessionId
    reason: EndReason
    archive_id: str | None = None
    expect: tuple[str, ...] = ()
    """Nodes that must acknowledge (the ones holding the session's connections)."""
    ack: str = ""
    """The id acknowledgements answer with."""


@dataclass(frozen=True, slots=True)
class Ack:
    """``node`` has closed its connections for the :class:`Close` with id ``ack``."""

    ack: str
    node: str


@dataclass(frozen=True, slots=True)
class Poke:
    """A deadline at ``at`` may now be due sooner than schedulers think."""

    at: float


BusMessage = Publish | Close | Ack | Poke

OnMessage = Callable[[BusMessage], None]
"""Called for each message from another node, in publication order."""

OnReconnect = Callable[[], None]
"""Called after the bus listens again following a lost connection."""


class EventBus(Protocol):
    """Carries :data:`BusMessage` between the nodes of a deployment."""

    @property
    def shared(self) -> bool:
        """Whether other nodes can hear this bus (``False``: single process)."""
        ...

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        """Start listening; returns once messages published from now on will arrive."""
        ...

    def publish(self, message: BusMessage) -> None:
        """Send ``message`` to every other node; never waits. Order is kept."""
        ...

    async def flush(self) -> None:
        """Wait until everything published so far has been handed to the transport."""
        ...

    async def aclose(self) -> None:
        """Stop listening and release the connection."""
        ...


class LocalBus:
    """The bus of a single process: every connection is local, so nothing travels."""

    @property
    def shared(self) -> bool:
        return False

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        return None

    def publish(self, message: BusMessage) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


# -- wire form -------------------------------------------------------------------------


def encode(message: BusMessage, origin: str) -> str:
    """``message`` as compact JSON, stamped with the publishing node's ``origin``."""
    out: dict[str, Any] = {"o": origin}
    if isinstance(message, Publish):
        out.update(k="e", s=message.session_id, e=_encode_event(message.event))
    elif isinstance(message, Close):
        out.update(
            k="x",
            s=message.session_id,
            r=message.reason.value,
            a=message.archive_id,
            x=list(message.expect),
            i=message.ack,
        )
    elif isinstance(message, Ack):
        out.update(k="a", i=message.ack, n=message.node)
    else:
        out.update(k="p", t=message.at)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def decode(payload: str | bytes, now: float) -> tuple[str, BusMessage]:
    """``(origin, message)`` from :func:`encode`'s JSON; ``now`` dates a warning's time left.

    Raises :class:`MalformedMessage` for anything else.
    """
    try:
        data = json.loads(payload)
        origin, kind = str(data["o"]), data["k"]
        message: BusMessage
        if kind == "e":
            message = Publish(SessionId(data["s"]), _decode_event(data["e"], now))
        elif kind == "x":
            message = Close(
                SessionId(data["s"]),
                EndReason(data["r"]),
                data["a"],
                tuple(str(n) for n in data["x"]),
                str(data["i"]),
            )
        elif kind == "a":
            message = Ack(str(data["i"]), str(data["n"]))
        elif kind == "p":
            message = Poke(float(data["t"]))
        else:
            raise MalformedMessage(f"unknown kind {kind!r}")
    except MalformedMessage:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedMessage(f"{type(exc).__name__}: {exc}") from None
    return origin, message


def _encode_event(event: Event) -> dict[str, Any]:
    if isinstance(event, SessionConfig):
        return {"t": "config", "config": event.config}
    if isinstance(event, SessionWarning):
        return {"t": "warning", "reason": event.reason.value, "ends_at": event.ends_at}
    if isinstance(event, SessionActive):
        return {"t": "active"}
    if isinstance(event, TranscriptAppended):
        m = event.message
        return {
            "t": "message",
            "m": [m.seq, m.role.value, m.content, m.ts, m.metadata],
        }
    if isinstance(event, ReplyDelta):
        return {"t": "delta", "r": [event.reply_id, event.role, event.text]}
    if isinstance(event, AppEvent):
        return {"t": "app", "name": event.name, "data": event.data}
    raise TypeError(f"{type(event).__name__} does not travel on the bus")


def _decode_event(data: dict[str, Any], now: float) -> Event:
    kind = data["t"]
    if kind == "config":
        config = data["config"]
        if not isinstance(config, dict):
            raise MalformedMessage("config is not an object")
        return SessionConfig(config)
    if kind == "warning":
        ends_at = float(data["ends_at"])
        return SessionWarning(EndReason(data["reason"]), max(0.0, ends_at - now), ends_at)
    if kind == "active":
        return SessionActive()
    if kind == "message":
        seq, role, content, ts, metadata = data["m"]
        return TranscriptAppended(Message(int(seq), Role(role), str(content), float(ts), metadata))
    if kind == "delta":
        reply_id, role, text = data["r"]
        return ReplyDelta(str(reply_id), str(role), str(text))
    if kind == "app":
        return AppEvent(str(data["name"]), data["data"])
    raise MalformedMessage(f"unknown event {kind!r}")
