"""A short ``make soak`` in the suite: 20 s of session churn against a real server.

One run (module fixture) of :func:`bench.soak.soak` at 20 sessions/s with
every fate (ended, idle, dropped, REST ended, REST gone). Memory growth is a
bench figure (``make soak``), not asserted here; leaks of fds and tasks are
counts, and are.
"""

from __future__ import annotations

from typing import Any

import pytest
from bench.soak import soak
from bench.soak_client import EXPECTED


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    return soak(seconds=20.0, rate=20.0, warmup=4.0, window=6.0, workers=2, seed=15)


def test_every_session_ends_for_the_reason_its_client_implies(run: dict[str, Any]) -> None:
    """Each of about 400 churned sessions ends exactly as its fate says (client_ended,
    idle_timeout or client_gone), and every fate happened."""
    ends = run["churn"]["ends"]
    assert set(ends) == set(EXPECTED)
    for fate, reasons in ends.items():
        assert set(reasons) == {EXPECTED[fate]}, (fate, reasons)
    assert run["churn"]["started"] >= 300
    assert run["unaccounted_ends"] == 0


def test_churn_clients_see_no_error(run: dict[str, Any]) -> None:
    """No churn client got an error frame, a 5xx, an unexpected close or a timeout."""
    assert run["churn"]["errors"] == {}, run["churn"]["error_samples"][:5]
    assert run["churn"]["unfinished"] == 0


def test_nothing_leaks_once_the_churn_has_ended(run: dict[str, Any]) -> None:
    """At rest after the churn the server holds the open fds and asyncio tasks it held at rest
    before it (``tether_asyncio_tasks`` on /metrics)."""
    assert run["baseline"]["settled"]
    assert run["final"]["settled"]
    assert (run["baseline"]["tasks"] or 0) > 0
    assert run["leaked_fds"] == 0
    assert run["leaked_tasks"] == 0


def test_the_churn_leaves_no_error_in_the_server_log(run: dict[str, Any]) -> None:
    """Ordinary churn (abrupt disconnects included) logs no ERROR line and no traceback."""
    log = run["log_whole_run"]
    assert (log["error_lines"], log["tracebacks"]) == (0, 0), log["top_messages"]
    assert run["server_alive"]
