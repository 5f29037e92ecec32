"""Archive test doubles shared by the runtime and cluster tests."""

from __future__ import annotations

from pathlib import Path

from tether.archive.base import ArchivedDialog
from tether.archive.yaml_archive import YamlArchive
from tether.errors import ArchiveError


class FlakyArchive(YamlArchive):
    """A YamlArchive whose first ``failures`` writes raise (a full disk that then recovered)."""

    def __init__(self, data_dir: Path, failures: int) -> None:
        super().__init__(data_dir)
        self.failures = failures
        self.attempts = 0

    async def archive(self, dialog: ArchivedDialog) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ArchiveError("disk full")
        return await super().archive(dialog)
