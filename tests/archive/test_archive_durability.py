"""Durability strategies: always, everysec and no, with everysec driven by the fake clock.

The strategies themselves are pure (a clock in, decisions out); the journal
tests run a real FileJournal, its real flusher thread and real files, with
only time faked. The flusher is a real thread, so what it did is awaited with
``eventually`` (bounded real-time polling), and what it must not have done is
checked once it is idle with nothing queued (``Flusher.quiet``), so the check
cannot pass early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tether.archive import records
from tether.archive.durability import (
    Always,
    EverySecond,
    FsyncPolicy,
    Never,
    durability_for,
)
from tether.archive.journal import FileJournal
from tether.core.transcript import Message, Role
from tether.testing import FakeClock, eventually
from tether.types import SessionId, UserId

T0 = 1_700_000_000.0
ALICE = UserId("alice")
JUST_UNDER = 1 - 2**-10
"""Just under a second, exact in binary so fake times add up exactly."""


def sid(n: int) -> SessionId:
    """A valid session id, distinct per ``n``."""
    return SessionId(f"{n:032x}")


def msg(seq: int) -> Message:
    """Message ``seq``."""
    return Message(seq, Role.USER, f"m{seq}", T0 + seq)


def synced_and_quiet(journal: FileJournal, batches: int) -> Callable[[], bool]:
    """Whether ``journal`` has flushed exactly ``batches`` times and its flusher has no work."""
    return lambda: journal.batches == batches and journal._flusher.quiet()


@pytest.fixture
async def make_journal(tmp_path: Path) -> AsyncIterator[Callable[..., FileJournal]]:
    """Build FileJournals on ``tmp_path/data``; every one is closed after the test."""
    made: list[FileJournal] = []

    def make(**options: Any) -> FileJournal:
        journal = FileJournal(tmp_path / "data", **options)
        made.append(journal)
        return journal

    yield make
    for journal in made:
        await journal.aclose()


@pytest.fixture
async def everysec(
    make_journal: Callable[..., FileJournal],
) -> tuple[FakeClock, FileJournal]:
    """An everysec journal on a fake clock, session 1 begun and its begin flushed."""
    clock = FakeClock()
    journal = make_journal(fsync="everysec", clock=clock)
    await journal.begin(sid(1), ALICE, "chat", T0, {})  # its file and folders: flushed at once
    await eventually(synced_and_quiet(journal, 1))
    return clock, journal


# -- the strategies, pure --------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "kind"),
    [(FsyncPolicy.ALWAYS, Always), (FsyncPolicy.EVERYSEC, EverySecond), (FsyncPolicy.NO, Never)],
)
def test_durability_for_each_policy_is_its_strategy(policy: FsyncPolicy, kind: type) -> None:
    """Each fsync policy is turned into its own strategy object, which names the policy."""
    durability = durability_for(policy, FakeClock())
    assert isinstance(durability, kind)
    assert durability.policy is policy


def test_always_syncs_acknowledges_and_hands_over_within_the_loop_iteration() -> None:
    """always: every record is synced, its writer waits, and the batch goes at once."""
    durability = Always()
    assert durability.syncs
    assert durability.acknowledges
    assert durability.handover_delay() == 0.0


async def test_everysec_hands_over_at_most_a_fake_second_after_the_last_handover() -> None:
    """everysec: no acknowledgement; a record waits the rest of the second since the last batch."""
    clock = FakeClock()
    durability = EverySecond(clock)
    assert durability.syncs
    assert not durability.acknowledges
    assert durability.handover_delay() == 1.0
    await clock.advance(0.25)
    assert durability.handover_delay() == 0.75
    await clock.advance(5)
    assert durability.handover_delay() == 0.0
    durability.handed_over()
    assert durability.handover_delay() == 1.0


def test_no_never_syncs_nor_acknowledges() -> None:
    """no: records are left to the kernel, and nobody waits for a flush."""
    durability = Never()
    assert not durability.syncs
    assert not durability.acknowledges


# -- a real journal on the fake clock ----------------------------------------------


async def test_everysec_syncs_appends_after_one_fake_second_and_not_before(
    everysec: tuple[FakeClock, FileJournal], tmp_path: Path
) -> None:
    """Under everysec, appends return once written and are flushed at one fake second, no sooner."""
    clock, journal = everysec
    await journal.append(sid(1), msg(1))
    await journal.append(sid(1), msg(2))
    path = tmp_path / "data" / "users" / "alice" / "dialogs" / "current" / sid(1)
    assert records.decode(path.read_bytes()).messages == [msg(1), msg(2)]
    await clock.advance(JUST_UNDER)
    assert synced_and_quiet(journal, 1)()
    await clock.advance(1 - JUST_UNDER)
    await eventually(synced_and_quiet(journal, 2))
    assert clock.pending() == []


async def test_everysec_syncs_at_once_when_the_last_flush_is_over_a_fake_second_old(
    everysec: tuple[FakeClock, FileJournal],
) -> None:
    """Under everysec, a write after a quiet second is flushed without waiting for the clock."""
    clock, journal = everysec
    await clock.advance(5)
    await journal.append(sid(1), msg(1))
    await eventually(synced_and_quiet(journal, 2))  # the clock did not move


async def test_everysec_writes_within_one_fake_second_share_one_flush(
    make_journal: Callable[..., FileJournal],
) -> None:
    """Under everysec, appends and config changes of several sessions in a second share a flush."""
    clock = FakeClock()
    journal = make_journal(fsync="everysec", clock=clock)
    for n in (1, 2, 3):
        await journal.begin(sid(n), ALICE, "chat", T0, {})
    await eventually(lambda: journal._flusher.quiet())
    before = journal.batches
    await journal.append(sid(1), msg(1))
    await clock.advance(2**-12)
    await journal.append(sid(2), msg(1))
    journal.config(sid(3), {"v": 2}, T0)
    assert synced_and_quiet(journal, before)()
    await clock.advance(1 - 2**-12)
    await eventually(synced_and_quiet(journal, before + 1))
    await clock.advance(5)
    assert synced_and_quiet(journal, before + 1)()


async def test_everysec_aclose_flushes_writes_still_waiting_for_their_second(
    everysec: tuple[FakeClock, FileJournal],
) -> None:
    """Closing an everysec journal flushes what waits for its second without moving the clock."""
    _, journal = everysec
    await journal.append(sid(1), msg(1))
    await journal.aclose()
    assert journal.batches == 2


async def test_always_acknowledges_without_the_clock_moving(
    make_journal: Callable[..., FileJournal],
) -> None:
    """Under always, begin and append return after their flush, with no timer on the clock."""
    clock = FakeClock()
    journal = make_journal(fsync="always", clock=clock)
    await journal.begin(sid(1), ALICE, "chat", T0, {})
    before = journal.batches
    await journal.append(sid(1), msg(1))
    assert journal.batches > before
    assert clock.pending() == []


async def test_no_policy_never_flushes(make_journal: Callable[..., FileJournal]) -> None:
    """Under no, neither begin, append, config nor close makes tether flush anything."""
    clock = FakeClock()
    journal = make_journal(fsync="no", clock=clock)
    await journal.begin(sid(1), ALICE, "chat", T0, {})
    await journal.append(sid(1), msg(1))
    journal.config(sid(1), {"v": 2}, T0)
    await clock.advance(5)
    await journal.aclose()
    assert journal.batches == 0
    assert clock.pending() == []
