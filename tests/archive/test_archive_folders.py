"""FolderCache, and the archive writer's folder caches staying bounded as users come and go."""

from __future__ import annotations

from pathlib import Path

from tether.archive.base import ArchivedDialog
from tether.archive.folders import FolderCache
from tether.archive.yaml_archive import YamlArchive
from tether.core.transcript import Message, Role
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0


def dialog(n: int, user: str) -> ArchivedDialog:
    """A one-message dialog of session ``n`` owned by ``user``."""
    return ArchivedDialog(
        session_id=SessionId(f"{n:032x}"),
        user=UserId(user),
        kind="chat",
        config={},
        started_at=T0 + n,
        ended_at=T0 + n + 1,
        end_reason=EndReason.CLIENT_ENDED,
        messages=(Message(1, Role.USER, "hi", T0 + n + 0.5),),
    )


def folder(tmp_path: Path, user: str) -> Path:
    """The archived/ folder of ``user``."""
    return tmp_path / "data" / "users" / user / "dialogs" / "archived"


def test_folder_cache_forgets_the_least_recently_used_past_capacity() -> None:
    """Past its capacity the cache holds exactly ``capacity`` folders, the oldest-used gone."""
    cache = FolderCache(3)
    for n in range(10):
        cache.put(f"u{n}", Path(f"/d/u{n}"))
        assert len(cache) == min(n + 1, 3)
    assert [cache.get(f"u{n}") for n in range(7)] == [None] * 7
    assert cache.get("u7") == Path("/d/u7")  # u7 is now the most recently used
    cache.put("u10", Path("/d/u10"))
    assert cache.get("u8") is None
    assert cache.get("u7") == Path("/d/u7")
    assert cache.get("u10") == Path("/d/u10")


async def test_archive_folder_caches_stay_bounded_as_users_come_and_go(tmp_path: Path) -> None:
    """Archiving for 40 users remembers at most ``capacity`` folders, and every archive is written.

    Before issue 15's fix both caches kept one entry per user ever archived.
    """
    archive = YamlArchive(tmp_path / "data")
    archive._folders.capacity = 5
    archive._writer._folders.capacity = 5
    try:
        for n in range(40):
            await archive.archive(dialog(n, f"user{n}"))
            assert len(archive._folders) <= 5
            assert len(archive._writer._folders) <= 5
        # a user whose folder was forgotten archives again, into the same folder
        await archive.archive(dialog(100, "user0"))
        for n in range(40):
            assert len(list(folder(tmp_path, f"user{n}").iterdir())) == (2 if n == 0 else 1)
        assert len(await archive.list("user0")) == 2
    finally:
        await archive.aclose()
