"""Noticing that the shared store came back without its data.

Redis with persistence off forgets everything when it restarts: every live
session, deadline and transcript. Nothing on a node fails loudly: the
connection comes back, calls for the sessions answer "unknown session", and
sessions started afterwards work. :class:`EpochWatch` makes the loss visible.
It reads the store's epoch (see :mod:`tether.core.epoch`; one small script
call, seeding the epoch at the store's first use) every ``interval`` seconds
and whenever the caller asks (the event bus reconnected: the store may have
restarted), and on a verdict of :attr:`~tether.core.epoch.EpochVerdict.LOST`:

* logs it and counts it (:attr:`losses`, :attr:`lost_at`);
* calls ``on_loss`` once, which ends what this node still holds of the lost
  sessions (the manager: ``session.ended {reason: "error"}``, close 1011,
  archive of the transcript the node mirrored); if that fails because the
  store fails again, it is called again at the next check until it returns;
* remembers the new epoch, so the node goes on serving new sessions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from tether.clock import Clock
from tether.core.epoch import EpochVerdict, judge_epoch
from tether.errors import StoreError
from tether.runtime.leases import Periodic
from tether.store.base import EpochStore

log = logging.getLogger("tether.runtime")


def _new_epoch() -> str:
    return secrets.token_hex(16)


class EpochWatch:
    """This node's memory of the store's epoch, checked on a timer and on demand."""

    def __init__(
        self,
        store: EpochStore,
        clock: Clock,
        *,
        interval: float,
        on_loss: Callable[[], Awaitable[None]],
    ) -> None:
        if interval <= 0:
            raise ValueError("the epoch check interval must be positive")
        self._store = store
        self._clock = clock
        self._on_loss = on_loss
        self._lock = asyncio.Lock()
        self._unsettled = False
        self._timer = Periodic(clock, interval, self._tick, name="tether-epoch")
        self.interval = interval
        self.epoch: str | None = None
        """The epoch this node remembers (``None`` until its first check)."""
        self.losses = 0
        """How many times this node found the store had lost its data."""
        self.lost_at: float | None = None
        """When (``clock.now()``) it last found so."""
        self.sessions_lost = 0
        """Sessions this node ended (``error``) because the store lost them (the manager counts)."""

    def start(self) -> None:
        """Check every ``interval`` seconds from now on (the caller checks once first)."""
        self._timer.start()

    async def stop(self) -> None:
        """Stop the timer (a check in flight is cancelled)."""
        await self._timer.stop()

    async def wait_idle(self) -> None:
        """Return when no timed check is running."""
        await self._timer.wait_idle()

    async def _tick(self) -> None:
        try:
            await self.check()
        except StoreError as exc:
            # The outage itself is reported by the keepalive and the outage guard.
            log.debug("epoch check: the store does not answer: %s", exc)

    async def check(self) -> EpochVerdict:
        """Read the store's epoch now; on a loss, end what was lost. One check at a time.

        Raises :class:`~tether.errors.StoreError` while the store does not
        answer (nothing is decided then: the next check decides).
        """
        async with self._lock:
            candidate = _new_epoch()
            read = await self._store.swap_epoch(candidate)
            verdict = judge_epoch(self.epoch, read)
            self.epoch = read if read is not None else candidate
            if verdict is EpochVerdict.LOST:
                self.losses += 1
                self.lost_at = self._clock.now()
                self._unsettled = True
                log.error(
                    "the store came back without its data (its epoch is %s); "
                    "ending this node's sessions with reason error",
                    "gone" if read is None else "a different one",
                )
            if self._unsettled:
                await self._on_loss()
                self._unsettled = False
            return verdict

    def report(self) -> dict[str, Any]:
        """What ``/health`` says about the store's data (epoch shortened: it is no secret)."""
        return {
            "epoch": None if self.epoch is None else self.epoch[:8],
            "losses": self.losses,
            "lost_at": None if self.lost_at is None else round(self.lost_at, 3),
            "sessions_lost": self.sessions_lost,
        }
