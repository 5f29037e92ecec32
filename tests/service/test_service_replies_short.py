"""A short ``python -m bench replies`` in the suite: both servers, 20 sessions, a 1 s window.

One run (module fixture) of :func:`bench.replies.measure` per contender, the
two at once, each with a real server process and a real client worker. Speed is a bench figure
(``make bench``), not asserted here; what is asserted is that the harness
measures something real: every piece of every reply arrives, timed, and the
tether transcripts hold each reply exactly once.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
from bench.replies import RATE, Sample, Timing, measure
from bench.replies_server import parse, piece, request

SESSIONS = 20
TIMING = Timing(lead=0.5, warm=0.25, window=1.0, tail=0.25, grace=0.5)


@pytest.fixture(scope="module")
def both() -> dict[str, Sample]:
    # Side by side, not one after the other: most of a run is its processes
    # starting, and speed is not asserted here.
    with ThreadPoolExecutor(2) as pool:
        runs = {c: pool.submit(measure, c, SESSIONS, TIMING, 1) for c in ("tether", "socketio")}
        return {contender: run.result() for contender, run in runs.items()}


@pytest.fixture(scope="module")
def tether(both: dict[str, Sample]) -> Sample:
    return both["tether"]


@pytest.fixture(scope="module")
def socketio(both: dict[str, Sample]) -> Sample:
    return both["socketio"]


def test_a_piece_carries_its_index_and_due_time_and_a_request_round_trips() -> None:
    """A piece is ``<k>@<due µs>|`` and a request text parses back to the plan it states."""
    assert piece(3, 12.5) == "3@12500000|"
    assert parse(request(1700000000.123456, 650, 50.0)) == (1700000000.123456, 650, 50.0)
    assert parse("hello") is None
    assert parse("stream x y z") is None


def test_tether_delivers_every_piece_and_stores_each_reply_once(tether: Sample) -> None:
    """Through manager.reply()/reply.delta(), all 20 replies arrive whole, in order, timed,
    with no error, and each transcript holds one complete, non-partial reply message."""
    assert tether.missing == 0
    assert tether.disorder == 0
    assert tether.errors == 0
    assert tether.bad_transcripts == 0
    assert tether.delivered > 0
    assert tether.offered == SESSIONS * RATE
    assert math.isfinite(tether.p50)
    assert math.isfinite(tether.p99)


def test_the_socketio_side_delivers_every_piece_it_emits(socketio: Sample) -> None:
    """The python-socketio server's one emit per piece reaches the Engine.IO client whole,
    in order and timed (the baseline is measured, not assumed)."""
    assert socketio.missing == 0
    assert socketio.disorder == 0
    assert socketio.errors == 0
    assert socketio.bad_transcripts is None
    assert socketio.delivered > 0
    assert math.isfinite(socketio.p99)
