"""A short ``python -m bench responder`` in the suite: both contenders, tiny sizes.

One run (module fixture) of :func:`bench.responder.measure` with the real
processes (fake LLM, tether server, client) at 1 and 20 concurrent sessions,
one repeat. The figures are the bench's business; here the harness must
produce a sample for every turn and the table's rows must add up.
"""

from __future__ import annotations

from typing import Any

import pytest
from bench.responder import measure as measure_responder
from bench.responder import percentile, rows_from

SHAPES = {1: (2, 3, 0.0), 20: (1, 2, 0.02)}


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    return measure_responder(SHAPES, 1)


def test_every_turn_of_both_contenders_gives_one_sample(samples: dict[str, Any]) -> None:
    """Each contender times every turn (workers x conversations x turns) at each concurrency:
    tether's turns only end at a reply.delta from the responder, direct's at a content chunk."""
    for concurrency, (sessions, turns, _) in SHAPES.items():
        by = samples[str(concurrency)]
        assert set(by) == {"tether", "direct"}
        for name in ("tether", "direct"):
            (ms,) = by[name]
            assert len(ms) == concurrency * sessions * turns, name
            assert all(0 < m < 30_000 for m in ms), name


def test_rows_report_both_distributions_and_their_difference(samples: dict[str, Any]) -> None:
    """Per concurrency and percentile: direct's, tether's, and tether minus direct."""
    rows = rows_from(samples)
    assert len(rows) == len(SHAPES) * 2 * 3
    for row in rows:
        by = samples[row.case.split()[0].replace(",", "")]
        q = 0.5 if row.unit.endswith("p50") else 0.99
        tether, direct = percentile(by["tether"][0], q), percentile(by["direct"][0], q)
        expected = {"direct": direct, "tether": tether, "tether added": tether - direct}
        assert row.value == pytest.approx(expected[row.contender])
        assert row.target is None  # the target is on 200 concurrent sessions only


def test_percentile_is_the_nearest_rank_sample() -> None:
    """p50 and p99 are real samples by nearest rank (p99 of 100 values is the 99th)."""
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
