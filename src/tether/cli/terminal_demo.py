"""A small real-clock demonstration: sessions warn, recover, and end on time."""

from __future__ import annotations

import asyncio
import contextlib
import time

import click

from tether.core.events import Event
from tether.core.session import SessionInfo
from tether.errors import SessionEnded
from tether.runtime.manager import SessionManager


class _PrintingChannel:
    """Prints every event a session sends, stamped with seconds since the demo began."""

    def __init__(self, label: str, began: float) -> None:
        self.label = label
        self.began = began

    def _say(self, text: str) -> None:
        click.echo(f"[{time.monotonic() - self.began:5.2f}s] {self.label:<9} {text}")

    async def send(self, event: Event) -> None:
        wire = event.to_wire()
        detail = {k: v for k, v in wire.items() if k not in {"type", "ends_at"}}
        if "seconds_left" in detail:
            detail["seconds_left"] = round(detail["seconds_left"], 2)
        self._say(f"{wire['type']} {detail if detail else ''}".rstrip())

    async def close(self, code: int, reason: str) -> None:
        self._say(f"closed {code} {reason}")


async def run_demo(manager: SessionManager) -> None:
    """Start four sessions that each end a different way, and print what happens."""
    began = time.monotonic()
    p = manager.policy
    click.echo(
        f"policy: idle {p.idle_timeout}s, warn {p.warn_before}s before, "
        f"max {p.max_duration}s, presence {p.presence_timeout}s\n"
    )
    async with manager:
        channels: dict[str, _PrintingChannel] = {}

        async def open_session(label: str) -> SessionInfo:
            info = await manager.start(label, kind="demo")
            channels[label] = _PrintingChannel(label, began)
            channels[label]._say(f"started {info.id[:8]}...")
            await manager.attach(info.id, channels[label])
            return info

        idle = await open_session("idler")  # ignores its warning: idle_timeout
        busy = await open_session("busy")  # always active: runs into max_duration
        rescued = await open_session("rescued")  # answers its warning, then leaves
        walker = await open_session("walker")  # closes its tab: client_gone

        async def keep_busy() -> None:
            with contextlib.suppress(SessionEnded):
                while True:
                    await manager.activity(busy.id)
                    await asyncio.sleep(0.5)

        async def rescue() -> None:
            await asyncio.sleep(p.idle_timeout - p.warn_before / 2)
            channels["rescued"]._say("-> activity (user clicks Continue)")
            await manager.activity(rescued.id)
            await asyncio.sleep(1.0)
            channels["rescued"]._say("-> end (user clicks End now)")
            await manager.end(rescued.id)

        async def walk_away() -> None:
            await asyncio.sleep(1.0)
            channels["walker"]._say("-> tab closed (connection detached)")
            await manager.detach(walker.id, channels["walker"])

        remaining = {idle.id, busy.id, rescued.id, walker.id}
        all_ended = asyncio.Event()

        @manager.on_ended
        def _track(info: SessionInfo) -> None:
            reason = info.end_reason.value if info.end_reason else "?"
            channels[info.user]._say(f"on_ended hook: {reason}")
            remaining.discard(info.id)
            if not remaining:
                all_ended.set()

        await asyncio.gather(keep_busy(), rescue(), walk_away(), all_ended.wait())
        m = await manager.metrics()
        click.echo(
            f"\nmetrics: active={m.active} created={m.total_created} ended={m.total_ended} "
            + " ".join(f"{r.value}={n}" for r, n in m.ended_by_reason.items() if n)
        )
