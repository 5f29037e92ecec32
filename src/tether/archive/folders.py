"""``FolderCache``: folders already checked or created, a bounded number of them.

Checking a user's archive folder resolves symlinks and creating it walks the
tree, so the archive writer remembers the folders it has seen. It must not
remember every one: a server lives through far more users than it has at
once, and an entry per user ever archived (two ``Path`` objects and their
interned parts, about 1 KB) grew without end (issue 15's soak). Past
``capacity`` the least recently used folder is forgotten; the next archive
of that user checks its folder again, which costs one ``resolve``.

Not thread-safe: each cache is used by one thread (the archive writer's).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

DEFAULT_CAPACITY = 4096
"""Folders remembered at most: every user archiving in a large burst, a few MB at most."""


class FolderCache:
    """A bounded, least-recently-used map from a key (a user id, a folder) to a checked folder."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(1, capacity)
        self._folders: OrderedDict[Hashable, Path] = OrderedDict()

    def __len__(self) -> int:
        return len(self._folders)

    def get(self, key: Hashable) -> Path | None:
        """The folder remembered for ``key`` (now the most recently used), or ``None``."""
        folder = self._folders.get(key)
        if folder is not None:
            self._folders.move_to_end(key)
        return folder

    def put(self, key: Hashable, folder: Path) -> None:
        """Remember ``folder`` for ``key``, forgetting the least recently used past capacity."""
        self._folders[key] = folder
        self._folders.move_to_end(key)
        if len(self._folders) > self.capacity:
            self._folders.popitem(last=False)
