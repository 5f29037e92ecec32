"""YamlArchive: round trips, layout, idempotence, paging, and hostile files on disk."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.archive.base import ArchivedDialog
from tether.archive.yaml_archive import YamlArchive, dialog_from_doc, dialog_to_yaml
from tether.core.transcript import Message, Role
from tether.errors import ArchiveError, ArchiveNotFound, InvalidInput
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0
ARCHIVE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f]{12}\.yaml")


def sid(n: int) -> SessionId:
    """A valid session id, distinct per ``n``."""
    return SessionId(f"{n:032x}")


def dialog(
    n: int = 1,
    *,
    user: str = "alice",
    start: float = T0 + 0.123456,
    reason: EndReason = EndReason.CLIENT_ENDED,
    **extra: Any,
) -> ArchivedDialog:
    """A dialog of three messages; ``n`` picks the session."""
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
        "end_reason": reason,
        "messages": messages,
    }
    fields.update(extra)
    return ArchivedDialog(**fields)


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[YamlArchive]:
    """A YamlArchive on a fresh data dir, closed afterwards."""
    store = YamlArchive(tmp_path / "data")
    yield store
    await store.aclose()


def folder(tmp_path: Path, user: str = "alice") -> Path:
    """The archived/ folder of ``user``."""
    return tmp_path / "data" / "users" / user / "dialogs" / "archived"


def assert_same(got: ArchivedDialog, want: ArchivedDialog) -> None:
    """Equal field by field, timestamps to the microsecond."""
    assert got.session_id == want.session_id
    assert got.user == want.user
    assert got.kind == want.kind
    assert got.config == want.config
    assert got.started_at == pytest.approx(want.started_at, abs=1e-6)
    assert got.ended_at == pytest.approx(want.ended_at, abs=1e-6)
    assert got.end_reason is want.end_reason
    assert got.recovered == want.recovered
    assert got.notes == want.notes
    assert len(got.messages) == len(want.messages)
    for a, b in zip(got.messages, want.messages, strict=True):
        assert (a.seq, a.role, a.content, a.metadata) == (b.seq, b.role, b.content, b.metadata)
        assert a.ts == pytest.approx(b.ts, abs=1e-6)


async def test_yaml_archive_list_read_round_trip(archive: YamlArchive) -> None:
    """archive -> list -> read gives back every field, times to the microsecond."""
    original = dialog(recovered=True, notes=("a torn record was dropped", "bytes 8..20 skipped"))
    archive_id = await archive.archive(original)
    assert archive_id == original.archive_id
    listed = await archive.list("alice")
    assert [s.archive_id for s in listed] == [archive_id]
    summary = listed[0]
    assert summary.session_id == original.session_id
    assert summary.message_count == 3
    assert summary.recovered is True
    assert summary.end_reason is EndReason.CLIENT_ENDED
    assert summary.started_at == pytest.approx(original.started_at, abs=1e-6)
    assert_same(await archive.read("alice", archive_id), original)


async def test_yaml_archive_round_trip_of_an_empty_unrecovered_dialog(archive: YamlArchive) -> None:
    """A dialog without messages, config or notes reads back with recovered False and no notes."""
    original = dialog(messages=(), config={})
    archive_id = await archive.archive(original)
    got = await archive.read("alice", archive_id)
    assert_same(got, original)
    assert got.recovered is False


async def test_yaml_archive_file_layout_and_name(archive: YamlArchive, tmp_path: Path) -> None:
    """The file is users/{user}/dialogs/archived/{YYYY-MM-DD-HH-MM-SS}-{12 hex}.yaml, UTC start."""
    original = dialog(user="bob@example.com")
    archive_id = await archive.archive(original)
    files = list(folder(tmp_path, "bob@example.com").iterdir())
    assert [f.name for f in files] == [f"{archive_id}.yaml"]
    assert ARCHIVE_NAME.fullmatch(files[0].name)
    stamp = datetime.fromtimestamp(original.started_at, UTC).strftime("%Y-%m-%d-%H-%M-%S")
    assert archive_id.startswith(stamp + "-")
    assert sid(1) not in archive_id  # the short id never reveals the session id
    doc = yaml.safe_load(files[0].read_text())
    assert doc["session_id"] == sid(1)
    assert doc["user"] == "bob@example.com"
    assert doc["message_count"] == 3
    assert doc["duration_s"] == 60.25
    assert doc["end_reason"] == "client_ended"


async def test_yaml_archive_twice_leaves_exactly_one_file(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """Archiving the same dialog twice returns the same id and leaves one file, no temp files."""
    first = await archive.archive(dialog())
    second = await archive.archive(dialog())
    assert first == second
    assert [p.name for p in folder(tmp_path).iterdir()] == [f"{first}.yaml"]


async def test_yaml_archive_concurrent_archives_of_one_session_leave_one_file(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """Eight concurrent archives of one session: one id, one whole file, no temp files."""
    ids = await asyncio.gather(*(archive.archive(dialog()) for _ in range(8)))
    assert set(ids) == {ids[0]}
    assert [p.name for p in folder(tmp_path).iterdir()] == [f"{ids[0]}.yaml"]
    assert_same(await archive.read("alice", ids[0]), dialog())


async def test_yaml_archive_a_later_archive_of_the_same_session_keeps_the_first(
    archive: YamlArchive,
) -> None:
    """A retry that knows less (recovered, server_shutdown) never overwrites the real end."""
    archive_id = await archive.archive(dialog(reason=EndReason.IDLE_TIMEOUT))
    retry = dialog(reason=EndReason.SERVER_SHUTDOWN, recovered=True, messages=())
    assert await archive.archive(retry) == archive_id
    got = await archive.read("alice", archive_id)
    assert got.end_reason is EndReason.IDLE_TIMEOUT
    assert got.recovered is False
    assert len(got.messages) == 3


async def test_yaml_archive_list_is_newest_first_and_pages(archive: YamlArchive) -> None:
    """Seven archives list newest start first; limit/offset page through them without overlap."""
    dialogs = [dialog(n, start=T0 + 3600 * n) for n in range(7)]
    for d in reversed(dialogs[:4]):
        await archive.archive(d)
    for d in dialogs[4:]:
        await archive.archive(d)
    newest_first = [d.archive_id for d in reversed(dialogs)]
    assert [s.archive_id for s in await archive.list("alice")] == newest_first
    pages = [await archive.list("alice", limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [[s.archive_id for s in p] for p in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
        [],
    ]
    assert await archive.list("alice", limit=0) == []
    assert [s.session_id for s in await archive.list("alice", limit=2)] == [sid(6), sid(5)]


async def test_yaml_archive_list_of_a_user_without_folder_is_empty(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """A user with no archived/ folder (or an empty one) lists [] and nothing is created."""
    assert await archive.list("nobody") == []
    assert not (tmp_path / "data" / "users" / "nobody").exists()
    folder(tmp_path, "empty").mkdir(parents=True)
    assert await archive.list("empty") == []


@pytest.mark.parametrize(("limit", "offset"), [(-1, 0), (0, -1), (-5, -5)])
async def test_yaml_archive_list_refuses_negative_paging(
    archive: YamlArchive, limit: int, offset: int
) -> None:
    """A negative limit or offset is refused with InvalidInput."""
    with pytest.raises(InvalidInput, match="must not be negative"):
        await archive.list("alice", limit=limit, offset=offset)


async def test_yaml_archive_another_users_archive_id_is_not_found(archive: YamlArchive) -> None:
    """bob asking for alice's archive id, or anyone for an unknown id, gets ArchiveNotFound."""
    archive_id = await archive.archive(dialog())
    with pytest.raises(ArchiveNotFound):
        await archive.read("bob", archive_id)
    with pytest.raises(ArchiveNotFound):
        await archive.read("alice", dialog(2).archive_id)


async def test_yaml_archive_file_copied_into_another_users_folder_is_not_found(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """alice's file copied into bob's folder: read gives ArchiveNotFound, bob's list is empty."""
    archive_id = await archive.archive(dialog())
    name = f"{archive_id}.yaml"
    folder(tmp_path, "bob").mkdir(parents=True)
    (folder(tmp_path, "bob") / name).write_bytes((folder(tmp_path) / name).read_bytes())
    with pytest.raises(ArchiveNotFound):
        await archive.read("bob", archive_id)
    assert await archive.list("bob") == []


def _python_tag_documents(pwned: Path) -> list[str]:
    valid = dialog_to_yaml(dialog()).decode()
    apply = f'!!python/object/apply:os.system ["touch {pwned}"]'
    return [
        apply + "\n",
        f'!!python/object/apply:subprocess.call [["touch", "{pwned}"]]\n',
        "!!python/object/new:os.system\nargs: [touch " + str(pwned) + "]\n",
        "!!python/name:os.system\n",
        "!!python/module:os\n",
        "!!python/object:tether.archive.base.ArchivedDialog {session_id: x}\n",
        valid.replace("config:", f"config: {apply}\nunused:", 1),
        re.sub(r"^kind: .*$", f"kind: {apply}", valid, count=1, flags=re.M),
        re.sub(r"^  content: .*$", f"  content: {apply}", valid, count=1, flags=re.M),
        "!custom {a: 1}\n",
    ]


@pytest.mark.parametrize("index", range(10))
async def test_yaml_archive_python_tags_are_refused_and_never_construct_anything(
    archive: YamlArchive, tmp_path: Path, index: int
) -> None:
    """A file carrying a python (or unknown) tag is an ArchiveError; nothing is executed."""
    pwned = tmp_path / "pwned"
    archive_id = dialog().archive_id
    folder(tmp_path).mkdir(parents=True)
    text = _python_tag_documents(pwned)[index]
    assert "!" in text
    (folder(tmp_path) / f"{archive_id}.yaml").write_text(text)
    with pytest.raises(ArchiveError) as caught:
        await archive.read("alice", archive_id)
    assert not isinstance(caught.value, ArchiveNotFound)
    assert await archive.list("alice") == []
    assert not pwned.exists()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not a mapping"),
        ("- a\n- b\n", "not a mapping"),
        ("just text\n", "not a mapping"),
        ("42\n", "not a mapping"),
        ("{session_id: [unclosed\n", "not plain YAML"),
        ("a: b: c\n", "not plain YAML"),
        ("\t- tab indent\n", "not plain YAML"),
    ],
)
async def test_yaml_archive_non_mapping_or_broken_yaml_is_an_archive_error(
    archive: YamlArchive, tmp_path: Path, text: str, why: str
) -> None:
    """A file whose YAML is broken or not a mapping raises ArchiveError saying so."""
    archive_id = dialog().archive_id
    folder(tmp_path).mkdir(parents=True)
    (folder(tmp_path) / f"{archive_id}.yaml").write_text(text)
    with pytest.raises(ArchiveError, match=why):
        await archive.read("alice", archive_id)


def _without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


def _bad_docs() -> list[tuple[str, Any]]:
    doc = yaml.safe_load(dialog_to_yaml(dialog()))
    msg = doc["messages"][0]
    return [
        *[(f"missing-{k}", _without(doc, k)) for k in ("session_id", "user", "kind")],
        *[(f"missing-{k}", _without(doc, k)) for k in ("started_at", "ended_at", "end_reason")],
        ("session-id-int", {**doc, "session_id": 5}),
        ("bad-user", {**doc, "user": "../bob"}),
        ("bad-reason", {**doc, "end_reason": "bored"}),
        ("started-int", {**doc, "started_at": 5}),
        ("started-text", {**doc, "started_at": "yesterday"}),
        ("config-list", {**doc, "config": [1]}),
        ("notes-text", {**doc, "notes": "x"}),
        ("messages-text", {**doc, "messages": "hello"}),
        ("messages-map", {**doc, "messages": {"a": 1}}),
        ("message-not-map", {**doc, "messages": ["hi"]}),
        ("message-no-seq", {**doc, "messages": [_without(msg, "seq")]}),
        ("message-seq-text", {**doc, "messages": [{**msg, "seq": "1"}]}),
        ("message-bad-role", {**doc, "messages": [{**msg, "role": "wizard"}]}),
        ("message-content-int", {**doc, "messages": [{**msg, "content": 5}]}),
        ("message-metadata-list", {**doc, "messages": [{**msg, "metadata": [1]}]}),
        ("message-no-at", {**doc, "messages": [_without(msg, "at")]}),
    ]


@pytest.mark.parametrize(("name", "doc"), _bad_docs(), ids=[n for n, _ in _bad_docs()])
async def test_yaml_archive_missing_or_mistyped_fields_are_an_archive_error(
    archive: YamlArchive, tmp_path: Path, name: str, doc: Any
) -> None:
    """A mapping missing a field or with a wrong type is an ArchiveError naming the archive."""
    archive_id = dialog().archive_id
    folder(tmp_path).mkdir(parents=True)
    (folder(tmp_path) / f"{archive_id}.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ArchiveError, match=f"archive {archive_id} is not a tether archive"):
        await archive.read("alice", archive_id)


async def test_yaml_archive_unquoted_timestamps_written_by_hand_are_read(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """Timestamps YAML parses itself (unquoted, naive or zoned) read as the same instants."""
    archive_id = dialog().archive_id
    text = dialog_to_yaml(dialog()).decode()
    unquoted = re.sub(r"'(\d{4}-\d{2}-\d{2}T[^']*)'", r"\1", text).replace("+00:00", "")
    assert unquoted != text
    text = unquoted
    folder(tmp_path).mkdir(parents=True)
    (folder(tmp_path) / f"{archive_id}.yaml").write_text(text)
    assert_same(await archive.read("alice", archive_id), dialog())


async def test_yaml_archive_symlink_to_a_file_outside_is_never_followed(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """An archive name that is a symlink to a valid archive outside: refused, nothing read."""
    outside = tmp_path / "outside.yaml"
    outside.write_bytes(dialog_to_yaml(dialog(messages=(Message(1, Role.USER, "SECRET", T0),))))
    archive_id = dialog().archive_id
    folder(tmp_path).mkdir(parents=True)
    (folder(tmp_path) / f"{archive_id}.yaml").symlink_to(outside)
    with pytest.raises((ArchiveError, InvalidInput)):
        await archive.read("alice", archive_id)


async def test_yaml_archive_symlink_inside_the_data_dir_is_not_followed(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """A symlink to another user's real archive is refused by O_NOFOLLOW, not read through."""
    bobs = await archive.archive(dialog(user="bob"))
    folder(tmp_path).mkdir(parents=True)
    (folder(tmp_path) / f"{bobs}.yaml").symlink_to(folder(tmp_path, "bob") / f"{bobs}.yaml")
    with pytest.raises(ArchiveError):
        await archive.read("alice", bobs)


async def test_yaml_archive_list_skips_unreadable_files_and_foreign_names(
    archive: YamlArchive, tmp_path: Path
) -> None:
    """list shows the good archives and skips garbage, tagged, foreign and temp files."""
    good = await archive.archive(dialog(1, start=T0))
    also_good = await archive.archive(dialog(2, start=T0 + 10))
    place = folder(tmp_path)
    (place / f"{dialog(3, start=T0 + 20).archive_id}.yaml").write_text("{broken: [")
    (place / f"{dialog(4, start=T0 + 30).archive_id}.yaml").write_text("!!python/name:os.system\n")
    (place / f"{dialog(5, start=T0 + 40).archive_id}.yaml").write_bytes(
        dialog_to_yaml(dialog(5, start=T0 + 40, user="bob"))
    )
    (place / f".{dialog(6, start=T0 + 50).archive_id}.yaml.tmp-1234").write_bytes(
        dialog_to_yaml(dialog(6, start=T0 + 50))
    )
    (place / "notes.yaml").write_bytes(dialog_to_yaml(dialog(7)))
    (place / "README").write_text("hi")
    assert [s.archive_id for s in await archive.list("alice")] == [also_good, good]


@pytest.mark.parametrize("kind", ["directory", "symlink", "dangling-symlink"])
async def test_yaml_archive_list_skips_entries_that_cannot_be_opened(
    archive: YamlArchive, tmp_path: Path, kind: str
) -> None:
    """A directory or symlink with an archive's name is skipped; the listing still works."""
    good = await archive.archive(dialog(1, start=T0))
    odd = folder(tmp_path) / f"{dialog(2, start=T0 + 10).archive_id}.yaml"
    if kind == "directory":
        odd.mkdir()
    elif kind == "symlink":
        odd.symlink_to(folder(tmp_path) / f"{good}.yaml")
    else:
        odd.symlink_to(tmp_path / "missing.yaml")
    assert [s.archive_id for s in await archive.list("alice")] == [good]


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


async def test_yaml_archive_writes_what_yaml_cannot_represent_as_json_text(
    archive: YamlArchive,
) -> None:
    """A config or metadata YAML cannot represent is archived as {"$json": text}, with a note."""
    deep = _nested(2000)  # past the recursion limit of the YAML emitter and of json
    sent = dialog(
        config={"handle": object()},
        messages=(Message(1, Role.USER, "hi", T0 + 1, {"deep": _nested(400)}),),
    )
    archive_id = await archive.archive(sent)
    back = await archive.read("alice", archive_id)
    assert back.config == {"$json": '{"handle": "' + repr(sent.config["handle"]) + '"}'}
    metadata = back.messages[0].metadata
    assert metadata is not None
    assert json.loads(metadata["$json"]) == {"deep": _nested(400)}
    assert any("config could not be written as YAML" in note for note in back.notes)
    assert any("message 1 metadata" in note for note in back.notes)
    too_deep = await archive.archive(dialog(2, config={"deep": deep}))
    assert (await archive.read("alice", too_deep)).config == {
        "$json": "<config could not be encoded>"
    }


TEXT = st.text(st.characters(codec="utf-8"))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    content=TEXT,
    kind=TEXT,
    note=TEXT,
    config=st.dictionaries(TEXT, JSON, max_size=4),
    metadata=st.dictionaries(TEXT, JSON, max_size=4),
)
def test_yaml_archive_any_unicode_text_and_json_round_trips(
    content: str, kind: str, note: str, config: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """Any text (content, kind, notes) and any JSON config/metadata survive dump and safe load."""
    original = dialog(
        kind=kind,
        config=config,
        notes=(note,),
        messages=(Message(1, Role.USER, content, T0, metadata or None),),
    )
    back = dialog_from_doc(yaml.safe_load(dialog_to_yaml(original)), original.archive_id)
    assert_same(back, original)
