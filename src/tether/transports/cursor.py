"""A transcript cursor: each message reaches a connection once, in order.

A connection that resumes first attaches (so nothing new can slip past it),
then reads the transcript tail from the store. A message appended in between
arrives twice: once in the tail and once as a live event. The cursor remembers
the highest sequence number already delivered and drops the duplicate.
"""

from __future__ import annotations

from tether.core.events import Event, TranscriptAppended


class TranscriptCursor:
    """Remembers the last transcript ``seq`` a connection has been given."""

    __slots__ = ("seq",)

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq

    def advance(self, seq: int) -> None:
        """Record that messages up to ``seq`` were delivered (by a replay, say)."""
        if seq > self.seq:
            self.seq = seq

    def admit(self, event: Event) -> bool:
        """``True`` if ``event`` should be delivered; moves the cursor past messages."""
        if isinstance(event, TranscriptAppended):
            seq = event.message.seq
            if seq <= self.seq:
                return False
            self.seq = seq
        return True
