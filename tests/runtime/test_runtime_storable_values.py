"""What the manager accepts it can archive: the worst accepted config and metadata round-trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.jsonvalue import MAX_VALUE_BYTES, MAX_VALUE_DEPTH, depth
from tether.core.transcript import Message, Role
from tether.errors import InvalidInput
from tether.testing import fake_manager
from tether.types import SessionId, UserId

# Keys and values a YAML emitter or reader could mistake for something else.
AWKWARD = [
    "", "null", "~", "- x", ": x", "#c", "\n", "\r\n", "\t", "\x00", "\x07", "\x1b[31m",
    "\x85", "\u2028", "\u2029", "\ufeff", "\ufffe", "\uffff", "\ue000", "😀", "e\u0301",
    "'", '"', "\\", "&a", "*a", "!tag", "%", "@", "`", "{", "}", "[", "]", ",", "?",
    "|", ">", "<<", "=", "y", "no", "on", "True", "0x10", "0o7", "1e3", "+1", "-.5",
    ".inf", ".nan", "2024-01-01", "12:30:00", " lead", "trail ", "a: b", "a #b",
]  # fmt: skip


def worst(levels: int = MAX_VALUE_DEPTH, size: int = MAX_VALUE_BYTES) -> dict[str, Any]:
    """An object exactly ``levels`` deep and ``size`` bytes of compact JSON, full of AWKWARD."""

    def build(pad: str) -> dict[str, Any]:
        leaf: dict[str, Any] = {k: k for k in AWKWARD}
        leaf["numbers"] = [0, -1, 2**63, -(2**70), 1.5, -0.0, 1e300, 5e-324, True, False, None]
        leaf["pad"] = pad
        value = leaf  # 2 levels: the leaf object and its "numbers" list
        for i in range(levels - 2):
            value = {AWKWARD[i % len(AWKWARD)]: value, "i": i}
        return value

    base = len(json.dumps(build(""), ensure_ascii=False, separators=(",", ":")).encode())
    return build("x" * (size - base))


def test_worst_is_what_it_says() -> None:
    """The fixture is exactly at both limits (so the round trip below tests the worst case)."""
    value = worst()
    assert len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()) == (
        MAX_VALUE_BYTES
    )
    assert depth(value) == MAX_VALUE_DEPTH


async def test_the_worst_accepted_values_archive_and_read_back_exactly(tmp_path: Path) -> None:
    """Config and metadata at both limits: accepted, journaled, archived, read back equal."""
    archive = YamlArchive(tmp_path)
    config, metadata = worst(), worst()
    async with fake_manager(journal=FileJournal(tmp_path), archiver=archive) as kit:
        session = await kit.manager.start("alice", config={"first": True})
        await kit.manager.update_config(session.id, config)
        await kit.manager.append(session.id, "user", "\u2028😀\x00", metadata)
        await kit.manager.end(session.id)
        ended = await kit.manager.get(session.id)
        assert (await kit.manager.metrics()).archive_failures == 0
    summaries = await YamlArchive(tmp_path).list("alice")
    assert len(summaries) == 1
    dialog = await YamlArchive(tmp_path).read("alice", summaries[0].archive_id)
    assert dialog.config == config
    assert dialog.messages[0].metadata == metadata
    assert dialog.messages[0].content == "\u2028😀\x00"
    assert dialog.notes == ()
    assert ended.end_reason is not None


async def test_the_worst_accepted_values_survive_a_crash_and_recovery(tmp_path: Path) -> None:
    """A journal holding the worst values, left by a crash, is recovered into an equal archive."""
    config, metadata = worst(), worst()
    journal = FileJournal(tmp_path)
    session = SessionId("abcd0123" * 4)
    await journal.begin(session, UserId("alice"), "chat", 1_700_000_000.0, config)
    await journal.append(session, Message(1, Role.USER, "hi", 1_700_000_001.0, metadata))
    await journal.aclose()
    async with fake_manager(journal=FileJournal(tmp_path), archiver=YamlArchive(tmp_path)) as kit:
        assert kit.manager.recovery is not None
        assert kit.manager.recovery.recovered == 1
    [summary] = await YamlArchive(tmp_path).list("alice")
    dialog = await YamlArchive(tmp_path).read("alice", summary.archive_id)
    assert dialog.config == config
    assert dialog.messages[0].metadata == metadata


@pytest.mark.parametrize(
    "bad",
    [worst(MAX_VALUE_DEPTH + 1, 2000), worst(MAX_VALUE_DEPTH, MAX_VALUE_BYTES + 1)],
    ids=["one-level-deeper", "one-byte-larger"],
)
async def test_the_first_refused_value_changes_nothing(tmp_path: Path, bad: dict[str, Any]) -> None:
    """One level deeper or one byte larger: InvalidInput from start, config, append; no change."""
    async with fake_manager(journal=FileJournal(tmp_path), archiver=YamlArchive(tmp_path)) as kit:
        session = await kit.manager.start("alice", config={"v": 1})
        await kit.manager.append(session.id, "user", "before")
        journal = tmp_path / "users" / "alice" / "dialogs" / "current" / session.id
        before = journal.read_bytes()
        with pytest.raises(InvalidInput, match=r"deeper than|byte limit"):
            await kit.manager.start("alice", config=bad)
        with pytest.raises(InvalidInput, match=r"deeper than|byte limit"):
            await kit.manager.update_config(session.id, bad)
        with pytest.raises(InvalidInput, match=r"deeper than|byte limit"):
            await kit.manager.append(session.id, "user", "x", bad)
        assert journal.read_bytes() == before
        info = await kit.manager.get(session.id)
        assert info.config == {"v": 1}
        assert info.message_count == 1
        assert [s.id for s in await kit.manager.list()] == [session.id]
