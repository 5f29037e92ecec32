"""Sentinel failover under load through two real ``tether serve`` processes.

The scenario is ``bench.sentinel_failover`` (whose ``python -m`` run writes
the figures to ``bench/results/sentinel_failover.json``): a primary, a
replica and three Sentinels; nodes A and B on ``redis+sentinel://`` and one
data dir; every session's WebSocket pinging, user messages posted over REST
through both nodes, some sessions ended by their users, and the primary
SIGKILLed mid-load.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.sentinel_failover import ENDS, failover


async def test_a_primary_killed_under_load_ends_nothing_wrongly_and_writes_resume(
    tmp_path: Path,
) -> None:
    """Primary SIGKILLed mid-load: 503s then writes resume, 0 wrong ends, one archive each."""
    result = await failover(tmp_path, sessions=30)
    print("\nsentinel failover:", json.dumps(result))
    assert result["sessions_wrongly_ended"] == 0
    assert result["duplicate_archives"] == 0
    assert result["sessions_ended_by_run"] == ENDS
    assert result["archive_reasons"] == {"client_ended": ENDS, "admin": 30 - ENDS}
    assert result["writes_503"] + result["ends_503"] > 0  # the switch was refused, not hung
    assert result["writes_after_switch"] > 0  # the same processes, no restart
    assert result["other_answers"] == {}  # no 500, no 4xx: only 201, 200 and 503
    assert result["transport_errors"] == 0
    assert result["messages_stored_twice"] == 0
    # What async replication lost is reported, not asserted: it is Redis's bound, not ours.
