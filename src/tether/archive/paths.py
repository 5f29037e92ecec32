"""Every path under the data directory, built by the server and checked.

Clients never name a path. They name a user, a session or an archive, each
validated against an allowlist pattern first (see :mod:`tether.core.ids`);
this module then joins the validated parts onto the data directory and checks
that the result, with symlinks resolved, is still inside it. A component that
fails either step raises :class:`~tether.errors.InvalidInput` before anything
is opened or created.

Layout::

    {data_dir}/users/{user}/dialogs/current/{session-id}        live journal
    {data_dir}/users/{user}/dialogs/archived/{archive-id}.yaml  archive
    {data_dir}/users/{user}/dialogs/damaged/{session-id}.journal  kept for a human
    {data_dir}/spare/spare-{token}-{n}                           spare files (see spares.py)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tether.core.ids import validate_archive_id, validate_session_id, validate_user_id
from tether.errors import InvalidInput
from tether.types import SessionId, UserId

ARCHIVE_SUFFIX = ".yaml"
TEMP_MARK = ".tmp-"
"""Temporary archive files are ``.{archive-id}.yaml.tmp-{random}``: hidden, never listed."""
SPARE_DIR = "spare"
"""Folder (directly under the data dir) of spare files: never scanned for journals or archives."""


class DataDir:
    """The root of journals and archives, and the only place paths are made.

    Checking containment resolves symlinks, which walks the filesystem: call
    these from worker threads, not on the event loop.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.users = self.root / "users"

    def _inside(self, path: Path) -> Path:
        """``path`` if it resolves inside the data dir; ``InvalidInput`` otherwise."""
        if not path.resolve().is_relative_to(self.root):
            raise InvalidInput("refused: that name leads outside the data directory")
        return path

    # Ids are validated against allowlists (no separators, never "." or "..")
    # before they are joined, so only a symlink could lead outside; one
    # resolve of the final path catches that, whatever component it is on.

    def _dialogs(self, user: str) -> Path:
        return self.users / validate_user_id(user) / "dialogs"

    def current_dir(self, user: str) -> Path:
        """Where the user's live journals are."""
        return self._inside(self._dialogs(user) / "current")

    def archived_dir(self, user: str) -> Path:
        """Where the user's archives are."""
        return self._inside(self._dialogs(user) / "archived")

    def damaged_dir(self, user: str) -> Path:
        """Where journals recovery could only partly read are kept."""
        return self._inside(self._dialogs(user) / "damaged")

    def journal(self, user: str, session_id: str) -> Path:
        """The live journal of one session."""
        name = validate_session_id(session_id)
        return self._inside(self._dialogs(user) / "current" / name)

    def archive(self, user: str, archive_id: str) -> Path:
        """The archive file of one archive id."""
        name = validate_archive_id(archive_id) + ARCHIVE_SUFFIX
        return self._inside(self._dialogs(user) / "archived" / name)

    @property
    def commit_logs(self) -> Path:
        """The folder of the journals' commit logs (see :mod:`tether.archive.commit_log`)."""
        return self.root / "commit-log"

    def journals(self) -> Iterator[tuple[UserId, SessionId, Path]]:
        """Every live journal on disk, skipping (and never touching) foreign names."""
        for user, dialogs in self._user_dialogs():
            current = dialogs / "current"
            if current.is_symlink():
                continue
            for entry in _entries(current):
                try:
                    session_id = validate_session_id(entry.name)
                except InvalidInput:
                    continue
                if entry.is_file(follow_symlinks=False):
                    yield user, session_id, current / entry.name

    def temp_files(self) -> Iterator[Path]:
        """Leftover temporary archive files (a crash mid-write leaves them)."""
        for _, dialogs in self._user_dialogs():
            archived = dialogs / "archived"
            if archived.is_symlink():
                continue
            for entry in _entries(archived):
                if (
                    entry.name.startswith(".")
                    and TEMP_MARK in entry.name
                    and entry.is_file(follow_symlinks=False)
                ):
                    yield archived / entry.name

    def _user_dialogs(self) -> Iterator[tuple[UserId, Path]]:
        if self.users.is_symlink():
            return
        for entry in _entries(self.users):
            try:
                user = validate_user_id(entry.name)
            except InvalidInput:
                continue
            dialogs = self.users / entry.name / "dialogs"
            # Never follow a symlink out of the data dir while scanning:
            # recovery deletes what it finds.
            if entry.is_dir(follow_symlinks=False) and not dialogs.is_symlink():
                yield user, dialogs


def _entries(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
