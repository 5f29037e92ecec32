"""The store-epoch rule: remembered epoch vs the one read -> first use, ok or lost."""

from __future__ import annotations

import pytest

from tether.core.epoch import EpochVerdict, judge_epoch


@pytest.mark.parametrize("read", [None, "e1"])
def test_a_node_without_an_epoch_adopts_whatever_it_reads(read: str | None) -> None:
    """Before its first look a node knows nothing to lose: first use, missing epoch or not."""
    assert judge_epoch(None, read) is EpochVerdict.FIRST_USE


def test_the_same_epoch_means_the_same_data() -> None:
    """Reading the epoch the node remembers is ok (a restart with its data, a blip)."""
    assert judge_epoch("e1", "e1") is EpochVerdict.OK


def test_a_missing_epoch_means_the_store_came_back_empty() -> None:
    """An epoch the node knew, now gone: the store lost its data."""
    assert judge_epoch("e1", None) is EpochVerdict.LOST


def test_a_different_epoch_means_another_node_seeded_an_empty_store() -> None:
    """A different epoch: another node found the store empty first and seeded a new one."""
    assert judge_epoch("e1", "e2") is EpochVerdict.LOST
