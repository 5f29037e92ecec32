"""The well-behaved session that ``make fuzz`` keeps alive while it attacks the server.

A real ``websockets`` client, on a thread of its own with its own event loop:
``hello``, ``start``, then on schedule a ``ping`` (its heartbeat), an
``activity`` and a ``message`` each second, until told to stop; then ``end``.
It must be undisturbed: every ping answered, every message acknowledged (its
``transcript.message`` comes back), no ``session.warning``, no ``error``, no
close before its own ``end``, and ``session.ended {reason: "client_ended"}``
with close 1000 at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


@dataclass
class GoodReport:
    """What the well-behaved session saw."""

    started: bool = False
    pings: int = 0
    pongs: int = 0
    messages_sent: int = 0
    messages_acked: int = 0
    unexpected: list[str] = field(default_factory=list)
    end_reason: str | None = None
    close_code: int | None = None
    max_ack_ms: float = 0.0
    failure: str | None = None

    @property
    def undisturbed(self) -> bool:
        return (
            self.started
            and self.failure is None
            and not self.unexpected
            and self.pongs == self.pings
            and self.messages_acked == self.messages_sent
            and self.end_reason == "client_ended"
            and self.close_code == 1000
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "undisturbed": self.undisturbed}


async def _session(url: str, token: str, stop: threading.Event, report: GoodReport) -> None:
    async with connect(url, compression=None, open_timeout=30, close_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "v": 1}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"no welcome: {welcome}")
        await ws.send(json.dumps({"type": "start", "kind": "well-behaved"}))
        pending: dict[str, float] = {}
        ended = asyncio.Event()

        async def reader() -> None:
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "session.started":
                    report.started = True
                elif kind == "pong":
                    report.pongs += 1
                elif kind == "transcript.message":
                    sent = pending.pop(frame["message"].get("content", ""), None)
                    if sent is not None:
                        report.messages_acked += 1
                        report.max_ack_ms = max(report.max_ack_ms, (time.monotonic() - sent) * 1e3)
                elif kind == "session.ended":
                    report.end_reason = frame.get("reason")
                    ended.set()
                elif kind == "session.config":
                    pass
                else:
                    report.unexpected.append(json.dumps(frame)[:300])

        reading = asyncio.create_task(reader())
        n = 0
        while not stop.is_set() and not reading.done():
            n += 1
            await ws.send('{"type":"ping"}')
            report.pings += 1
            await ws.send('{"type":"activity"}')
            content = f"well-behaved message {n}"
            pending[content] = time.monotonic()
            await ws.send(json.dumps({"type": "message", "role": "user", "content": content}))
            report.messages_sent += 1
            await asyncio.sleep(1.0)
        if reading.done():
            reading.result()
            raise RuntimeError(f"closed early: {ws.close_code} {ws.close_reason!r}")
        await asyncio.sleep(1.0)  # the last acks
        await ws.send('{"type":"end"}')
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), 30)
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await asyncio.wait_for(reading, 30)
        report.close_code = ws.close_code


class GoodSession:
    """Runs the well-behaved session on a thread until :meth:`finish`."""

    def __init__(self, url: str, token: str) -> None:
        self.report = GoodReport()
        self._stop = threading.Event()

        def main() -> None:
            try:
                asyncio.run(_session(url, token, self._stop, self.report))
            except Exception as exc:  # the report says what went wrong
                self.report.failure = f"{type(exc).__name__}: {exc}"[:300]

        self._thread = threading.Thread(target=main, name="well-behaved", daemon=True)
        self._thread.start()

    def finish(self) -> GoodReport:
        """Stop the schedule, end the session, and return what it saw."""
        self._stop.set()
        self._thread.join(90)
        return self.report
