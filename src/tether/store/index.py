"""``DeadlineIndex``: time-ordered ``(at, session_id)`` entries, cheap at a million.

A single binary heap of a million entries is slow to pop: every pop walks
about twenty levels of tuples scattered through memory. Most entries are far
in the future, though, and only the ones due soon need exact ordering. So the
index has two levels, like a kernel's cascading timer wheel:

* a small *near* heap with every entry earlier than ``horizon``;
* *far* buckets, one list per ``span`` seconds, holding everything later.
  Adding to one is an append.

As time reaches a far bucket, :meth:`release` moves its entries into the near
heap, so each entry costs one append plus one push into a heap that holds only
about ``span`` seconds of deadlines. :meth:`peek` stays a lower bound of every
entry: the near heap's top, or the start of the earliest far bucket.

The index does not know about staleness: callers drop entries that no longer
match their session when they pop them.
"""

from __future__ import annotations

import heapq
import math

from tether.types import SessionId

Entry = tuple[float, SessionId]


class DeadlineIndex:
    """A two-level priority queue of deadlines."""

    def __init__(self, span: float = 1.0) -> None:
        self._span = span
        self._near: list[Entry] = []
        self._far: dict[int, list[Entry]] = {}
        self._far_slots: list[int] = []
        # Entries earlier than the horizon go to the near heap. Every far
        # bucket starts at or after it, so far entries are never due before
        # release() has moved them.
        self._horizon = -math.inf
        self._size = 0
        self.floor = math.inf
        """A lower bound of every entry (``inf`` when empty), kept valid on every
        change and tightened by :meth:`peek`. A plain attribute so the hottest
        caller (a touch asking "could anything be due yet?") pays no call."""

    def __len__(self) -> int:
        return self._size

    def push(self, at: float, session_id: SessionId) -> None:
        """Add an entry due at ``at``."""
        self._size += 1
        if at < self._horizon:
            heapq.heappush(self._near, (at, session_id))
            if at < self.floor:
                self.floor = at
            return
        slot = int(at // self._span)
        if slot * self._span < self.floor:
            self.floor = slot * self._span
        bucket = self._far.get(slot)
        if bucket is None:
            self._far[slot] = [(at, session_id)]
            heapq.heappush(self._far_slots, slot)
        else:
            bucket.append((at, session_id))

    def peek(self) -> float | None:
        """A time no later than any entry, or ``None`` when empty; tightens :attr:`floor`."""
        best = self._near[0][0] if self._near else math.inf
        if self._far_slots:
            best = min(best, self._far_slots[0] * self._span)
        self.floor = best
        return None if best == math.inf else best

    def release(self, now: float) -> None:
        """Move every far bucket that starts at or before ``now`` into the near heap."""
        slots, span, near = self._far_slots, self._span, self._near
        while slots and slots[0] * span <= now:
            bucket = self._far.pop(heapq.heappop(slots))
            if len(bucket) > len(near):
                near.extend(bucket)
                heapq.heapify(near)
            else:
                for entry in bucket:
                    heapq.heappush(near, entry)
        # No far bucket starts at or before now any more, so every entry
        # earlier than the next span boundary can go straight to the near heap.
        self._horizon = max(self._horizon, (math.floor(now / span) + 1) * span)

    def pop_due(self, now: float) -> Entry | None:
        """Remove and return the earliest entry due at ``now`` (call :meth:`release` first)."""
        near = self._near
        if near and near[0][0] <= now:
            self._size -= 1
            return heapq.heappop(near)
        return None

    def rebuild(self, entries: list[Entry]) -> None:
        """Replace every entry (used to drop stale ones in one O(n) pass).

        The horizon is kept: what was already released stays poppable, even
        when a rebuild happens in the middle of a claim.
        """
        self._near, self._far, self._far_slots, self._size = [], {}, [], 0
        self.floor = math.inf
        for at, session_id in entries:
            self.push(at, session_id)

    def entries(self) -> list[Entry]:
        """Every entry, in no particular order (for tests and diagnostics)."""
        return [*self._near, *(e for bucket in self._far.values() for e in bucket)]
