"""The archive contract, run against every archiver: YAML files and PostgreSQL rows.

Each test gets a factory of archivers of one kind sharing one place (a data
dir, or one database), so that two of them can race like two nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pg_kit import count_rows
from tether.archive.base import ArchivedDialog, Archiver
from tether.archive.pg_archive import PgArchive
from tether.archive.yaml_archive import YamlArchive, dialog_to_yaml
from tether.core.transcript import Message, Role
from tether.errors import ArchiveNotFound, InvalidInput
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0

Factory = Callable[[], Archiver]


def sid(n: int) -> SessionId:
    """A valid session id, distinct per ``n``."""
    return SessionId(f"{n:032x}")


def dialog(n: int = 1, *, user: str = "alice", **extra: Any) -> ArchivedDialog:
    """A dialog of three messages; ``n`` picks the session and its start."""
    start = T0 + n * 10.123456
    messages = (
        Message(1, Role.USER, "hello ✓", start + 1.000001),
        Message(2, Role.ASSISTANT, "multi\nline\n  indented", start + 2.5, {"model": "m"}),
        Message(3, Role.TOOL, "", start + 3.999999, {"n": [1, 2], "ok": True}),
    )
    fields: dict[str, Any] = {
        "session_id": sid(n),
        "user": UserId(user),
        "kind": "interview",
        "config": {"voice": "calm", "rate": 1.5, "tags": ["a", "b"]},
        "started_at": start,
        "ended_at": start + 60.25,
        "end_reason": EndReason.CLIENT_ENDED,
        "messages": messages,
    }
    fields.update(extra)
    return ArchivedDialog(**fields)


HOSTILE_CONFIG: dict[str, Any] = {
    "nul": "a\x00b",
    "k\x00ey": 1,
    "huge": 1e300,
    "tiny": 5e-324,
    "negzero": -0.0,
    "bigint": 10**300,
    "separators": "\u2028\u2029\x85\ufeff",
    "emoji": "😀",
    "deep": {"a": [[[[{"b": None}]]]]},
}
"""Values the edges accept (``check_json_object``) that jsonb or YAML find hard."""


@pytest.fixture(params=["files", "postgres"])
async def archivers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """A factory of archivers of one kind, all writing to one place; closed after the test."""
    made: list[Archiver] = []
    if request.param == "files":

        def make() -> Archiver:
            made.append(YamlArchive(tmp_path))
            return made[-1]

    else:
        pg_url: str = request.getfixturevalue("pg_url")

        def make() -> Archiver:
            made.append(PgArchive(pg_url))
            return made[-1]

    yield make
    for archiver in made:
        await archiver.aclose()


async def test_archive_then_read_gives_the_same_dialog(archivers: Factory) -> None:
    """What is archived reads back field for field, messages and metadata included."""
    archive = archivers()
    d = dialog()
    archive_id = await archive.archive(d)
    assert archive_id == d.archive_id
    assert (await archive.read("alice", archive_id)).to_dict() == d.to_dict()


async def test_two_writers_racing_leave_exactly_one_archive(
    archivers: Factory, request: pytest.FixtureRequest
) -> None:
    """Two nodes archiving one session at once leave one archive, the same id to both."""
    first, second = archivers(), archivers()
    ended = dialog(5)
    retried = dialog(5, end_reason=EndReason.SERVER_SHUTDOWN, recovered=True)
    ids = await asyncio.gather(*(w.archive(d) for w in (first, second) for d in (ended, retried)))
    assert set(ids) == {ended.archive_id}
    listed = await second.list("alice")
    assert [a.archive_id for a in listed] == [ended.archive_id]
    if request.node.callspec.params["archivers"] == "postgres":
        assert await count_rows(request.getfixturevalue("pg_url"), ended.session_id) == 1


async def test_a_second_archive_of_a_session_keeps_the_first(archivers: Factory) -> None:
    """Archiving again (a retry after a crash) changes nothing: the first write's reason stays."""
    archive = archivers()
    await archive.archive(dialog(2))
    await archive.archive(dialog(2, end_reason=EndReason.SERVER_SHUTDOWN, messages=()))
    kept = await archivers().read("alice", dialog(2).archive_id)
    assert kept.end_reason is EndReason.CLIENT_ENDED
    assert len(kept.messages) == 3


async def test_listing_is_per_user_newest_first_with_paging(archivers: Factory) -> None:
    """A user lists only their own archives, newest start first, limit and offset applied."""
    archive = archivers()
    await asyncio.gather(*(archive.archive(dialog(n)) for n in range(1, 6)))
    await archive.archive(dialog(9, user="bob"))
    reader = archivers()
    ids = [a.archive_id for a in await reader.list("alice")]
    assert ids == [dialog(n).archive_id for n in range(5, 0, -1)]
    page = await reader.list("alice", limit=2, offset=1)
    assert [a.archive_id for a in page] == ids[1:3]
    assert page[0].message_count == 3
    assert page[0].end_reason is EndReason.CLIENT_ENDED
    assert [a.user for a in await reader.list("bob")] == ["bob"]
    assert await reader.list("carol") == []


async def test_another_users_archive_is_not_found(archivers: Factory) -> None:
    """Reading an archive id under the wrong user is ArchiveNotFound, as for an unknown id."""
    archive = archivers()
    await archive.archive(dialog(3, user="bob"))
    with pytest.raises(ArchiveNotFound):
        await archive.read("alice", dialog(3).archive_id)
    with pytest.raises(ArchiveNotFound):
        await archive.read("alice", "2020-01-01-00-00-00-000000000000")


@pytest.mark.parametrize(
    ("user", "archive_id"),
    [("../etc", "2020-01-01-00-00-00-000000000000"), ("alice", "../../passwd")],
)
async def test_malformed_ids_are_invalid_input(
    archivers: Factory, user: str, archive_id: str
) -> None:
    """A malformed user or archive id is InvalidInput on read and list, and nothing is read."""
    archive = archivers()
    with pytest.raises(InvalidInput):
        await archive.read(user, archive_id)
    if user != "alice":
        with pytest.raises(InvalidInput):
            await archive.list(user)


async def test_find_by_session_id(archivers: Factory) -> None:
    """An archive is found by its session id, only under its own user."""
    archive = archivers()
    await archive.archive(dialog(4))
    found = await archive.find("alice", sid(4))  # type: ignore[attr-defined]
    assert found is not None
    assert found.session_id == sid(4)
    assert await archive.find("bob", sid(4)) is None  # type: ignore[attr-defined]
    assert await archive.find("alice", sid(99)) is None  # type: ignore[attr-defined]


async def test_values_the_edges_accept_are_stored_and_read_back_exactly(
    archivers: Factory,
) -> None:
    """NUL, 1e300, -0.0, huge ints, line separators in config, metadata and text round-trip."""
    archive = archivers()
    messages = (
        Message(1, Role.USER, "nul \x00 inside, e+ and -0.0 as text", T0 + 1, HOSTILE_CONFIG),
        Message(2, Role.ASSISTANT, "plain", T0 + 2, {"x": -0.0}),
    )
    d = dialog(6, config=HOSTILE_CONFIG, messages=messages, notes=("a note \x00",))
    await archive.archive(d)
    back = await archivers().read("alice", d.archive_id)
    assert dialog_to_yaml(back) == dialog_to_yaml(d)
    assert back.config["negzero"] == 0.0
    assert str(back.config["negzero"]) == "-0.0"
    assert type(back.config["huge"]) is float
    assert back.messages[0].content == messages[0].content


async def test_export_yaml_is_the_file_archivers_bytes(archivers: Factory, tmp_path: Path) -> None:
    """The YAML export of a read archive equals the file the file archiver writes for it."""
    d = dialog(7, config=HOSTILE_CONFIG)
    archive = archivers()
    await archive.archive(d)
    exported = dialog_to_yaml(await archive.read("alice", d.archive_id))
    files = YamlArchive(tmp_path / "reference")
    try:
        await files.archive(d)
    finally:
        await files.aclose()
    assert exported == files.paths.archive("alice", d.archive_id).read_bytes()
