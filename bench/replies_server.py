"""The two servers of ``bench/replies.py``, one per process: replies streamed on request.

``python -m bench.replies_server {tether|socketio} FD`` serves on the
listening socket inherited as file descriptor ``FD`` and prints ``ready``,
under the same uvicorn options as ``bench/ws_idle_server.py`` (tether's own).

A client asks for a reply with one text, ``stream START COUNT RATE``
(:func:`request`): the server then sends COUNT pieces, piece ``k`` due at
``START + k / RATE`` (``time.time()`` seconds, the machine clock both sides
share). Each piece is ``"<k>@<due in µs>|"`` (:func:`piece`), so a client
learns every piece's scheduled time from the piece itself and can split a
frame that carries several. A server that falls behind sends every overdue
piece at once and sleeps only when the next one is not yet due
(:func:`paced`): the offered load is the same whatever the server's pace.

* ``tether``: the real service (``create_app`` from ``TETHER_*``) with an
  ``on_message`` hook that answers a user ``message`` holding the request with
  ``async with manager.reply(session.id) as reply`` and one
  ``await reply.delta(piece)`` per piece. tether merges the pieces of one loop
  turn into one ``reply.delta`` frame and stores the reply as one message.
* ``socketio``: a python-socketio ``AsyncServer(async_mode="asgi")`` whose
  ``stream`` event handler starts a background task that sends one
  ``emit("delta", piece, to=sid)`` per piece, then keeps the joined reply in a
  dict (the app's transcript). Engine.IO's own ping is stretched out of the
  way, as in ``ws_idle``. Nothing of tether is imported by this server.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.ws_idle_server import (
    OPTIONS,
    SOCKETIO_PING_INTERVAL,
    raise_nofile,
    serve_socketio,
    serve_tether,
)

Send = Callable[[str], Awaitable[Any]]


def request(start: float, count: int, rate: float) -> str:
    """The text that asks for a reply of ``count`` pieces at ``rate``/s from ``start``."""
    return f"stream {start:.6f} {count} {rate:g}"


def parse(text: object) -> tuple[float, int, float] | None:
    """``(start, count, rate)`` from a :func:`request` text; ``None`` for anything else."""
    if not isinstance(text, str) or not text.startswith("stream "):
        return None
    try:
        start, count, rate = text.split()[1:]
        return float(start), int(count), float(rate)
    except ValueError:
        return None


def piece(k: int, due: float) -> str:
    """Piece ``k``, due at ``due`` (seconds): ``"<k>@<due in µs>|"``."""
    return f"{k}@{int(due * 1e6)}|"


async def paced(start: float, count: int, rate: float, send: Send) -> str:
    """Send ``count`` pieces, each when due (overdue ones at once); the text sent."""
    clock = time.time
    sent = []
    for k in range(count):
        due = start + k / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        text = piece(k, due)
        await send(text)
        sent.append(text)
    return "".join(sent)


def answer_with_replies(app: Any) -> None:
    """Register the ``on_message`` hook that streams a reply for each request."""
    from tether import Message, SessionInfo, SessionManager

    def bound(manager: SessionManager) -> None:
        async def answer(session: SessionInfo, message: Message) -> None:
            plan = parse(message.content)
            if plan is not None:
                async with manager.reply(session.id) as reply:
                    await paced(*plan, reply.delta)

        manager.on_message(answer)

    app.state.tether.when_bound(bound)


def socketio_app() -> Any:
    """python-socketio answering ``stream`` events with one ``emit`` per piece."""
    import socketio

    sio = socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins="*",
        max_http_buffer_size=OPTIONS["ws_max_size"],
        ping_interval=SOCKETIO_PING_INTERVAL,
    )
    transcripts: dict[str, list[str]] = {}  # sid -> the replies it was sent
    streaming: set[asyncio.Task[None]] = set()  # held until done: the loop keeps weak refs

    async def reply(sid: str, start: float, count: int, rate: float) -> None:
        async def send(text: str) -> None:
            await sio.emit("delta", text, to=sid)

        transcripts.setdefault(sid, []).append(await paced(start, count, rate, send))

    async def stream(sid: str, data: Any = None) -> None:
        plan = parse(data)
        if plan is not None:
            task = sio.start_background_task(reply, sid, *plan)
            streaming.add(task)
            task.add_done_callback(streaming.discard)

    async def disconnect(sid: str, *args: Any) -> None:
        transcripts.pop(sid, None)

    sio.on("stream", stream)
    sio.on("disconnect", disconnect)
    return socketio.ASGIApp(sio)


def main() -> None:
    contender, fd = sys.argv[1], int(sys.argv[2])
    raise_nofile()
    sock = socket.socket(fileno=fd)
    if contender == "tether":
        serve_tether(sock, answer_with_replies)
    else:
        serve_socketio(sock, socketio_app())


if __name__ == "__main__":
    main()
