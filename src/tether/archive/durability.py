"""Journal durability: when written records must be synced, and who waits for it.

Fsync policies, as in Redis's ``appendfsync``:

``always``
    an append returns after the flush that covers it: nothing acknowledged is
    lost, even to a power cut;
``everysec``
    an append returns once written; a flush runs at most a second later, so a
    power cut can lose about a second (a crash of the process alone loses
    nothing: the data is in the kernel);
``no``
    written, never flushed by tether; the kernel decides.

:class:`~tether.archive.journal.FileJournal` turns its policy into a
:class:`Durability` once, at construction, and asks that object instead of
branching on the policy. Time comes from an injected
:class:`~tether.clock.Clock`, so ``everysec`` runs on
:class:`tether.testing.FakeClock` like every other timeout.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from tether.clock import Clock
from tether.core.choices import parse_choice

EVERYSEC_INTERVAL = 1.0
"""Under ``everysec``, the longest a written record waits for its flush (seconds)."""


class FsyncPolicy(StrEnum):
    """When journal appends are flushed to stable storage (``TETHER_FSYNC``)."""

    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


def parse_fsync_policy(value: object) -> FsyncPolicy:
    """``value`` as an :class:`FsyncPolicy`, or :class:`InvalidInput` naming the choices."""
    return parse_choice(FsyncPolicy, value, "fsync policy")


class Durability(Protocol):
    """One fsync policy's rules: whether records are synced, when, and who waits."""

    policy: FsyncPolicy
    syncs: bool
    """Whether tether syncs written records at all (``no`` leaves it to the kernel)."""
    acknowledges: bool
    """Whether ``begin`` and ``append`` return only after the flush that covers them."""

    def handover_delay(self) -> float:
        """Seconds until a batch holding a just-written record must go to the flusher.

        0 means within this loop iteration (so a burst still shares a flush).
        """
        ...

    def handed_over(self) -> None:
        """A batch holding records went to the flusher just now."""
        ...


class Always:
    """``always``: every record is synced before its writer is acknowledged."""

    policy = FsyncPolicy.ALWAYS
    syncs = True
    acknowledges = True

    def handover_delay(self) -> float:
        return 0.0

    def handed_over(self) -> None:
        pass


class EverySecond:
    """``everysec``: writers return at once; a batch is flushed at most a second later.

    Batches go to the flusher at most once a second: a record written within
    a second of the last handover waits for the rest of that second (and the
    records written meanwhile join it); one written later goes at once.
    """

    policy = FsyncPolicy.EVERYSEC
    syncs = True
    acknowledges = False

    def __init__(self, clock: Clock, interval: float = EVERYSEC_INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._last = clock.monotonic()

    def handover_delay(self) -> float:
        return max(0.0, self._last + self._interval - self._clock.monotonic())

    def handed_over(self) -> None:
        self._last = self._clock.monotonic()


class Never:
    """``no``: records are written and never synced by tether."""

    policy = FsyncPolicy.NO
    syncs = False
    acknowledges = False

    def handover_delay(self) -> float:
        return 0.0  # never asked: nothing is handed over for syncing

    def handed_over(self) -> None:
        pass


def durability_for(policy: FsyncPolicy, clock: Clock) -> Durability:
    """The :class:`Durability` implementing ``policy``, reading time from ``clock``."""
    if policy is FsyncPolicy.ALWAYS:
        return Always()
    if policy is FsyncPolicy.EVERYSEC:
        return EverySecond(clock)
    return Never()
