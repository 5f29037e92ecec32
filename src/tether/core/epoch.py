"""Store epochs: how a node tells a store that came back empty from one that blinked.

A shared store (Redis) holds one *epoch*: a random value written at its
first use under a well-known key, and never changed while the data lives.
Each node remembers the epoch it saw. When the store restarts without its
data (persistence off, a ``FLUSHALL``, a fresh replica promoted), the key is
gone with everything else, so the next node to look finds no epoch (and
writes a new one) or, if another node got there first, a different one.
Either way the node knows every session it knew of is gone. A restart that
kept its data, or a dropped connection, leaves the epoch as it was.

:func:`judge_epoch` is that rule, with no I/O: the runtime reads (and, when
missing, seeds) the store's epoch and asks it what the answer means.
"""

from __future__ import annotations

from enum import StrEnum


class EpochVerdict(StrEnum):
    """What a node learns from the epoch it read."""

    FIRST_USE = "first_use"
    """The node had none yet: it adopts the store's (or the one it just seeded)."""
    OK = "ok"
    """The store still holds the epoch the node remembers: its data is the same."""
    LOST = "lost"
    """The store's epoch is missing or different: it came back without its data."""


def judge_epoch(remembered: str | None, read: str | None) -> EpochVerdict:
    """The verdict on ``read`` (the store's epoch, ``None``: it had none) for a node.

    ``remembered`` is the epoch the node saw last (``None`` before its first
    look). Which epoch to remember next is the one the store holds after the
    look: ``read``, or the new one seeded when ``read`` is ``None``.
    """
    if remembered is None:
        return EpochVerdict.FIRST_USE
    if read == remembered:
        return EpochVerdict.OK
    return EpochVerdict.LOST
