"""Shard balance: touch and claim load per shard of a Redis Cluster deployment (a simulation).

Pure Python, no Redis: it runs the store's own placement (``shard_of``,
``tags``) and claim sharing rule over a modelled load, and reports the
busiest shard (and master) against the mean. Model, at ``N`` live sessions
(1 M) on 10 tether nodes and a 3-master cluster:

* ids are tether's (128 random bits, hex); each session is on a node picked
  at random (the load balancer);
* touches: every session heartbeats every 20 s; a quarter of them are
  typing, each at its own rate (exponential, mean one activity per 5 s),
  so per-session load is uneven, as it is in real deployments;
* claims: deadlines fall uniformly over the next ``SPAN`` seconds; every
  0.2 s each node, in random order, runs one claim pass of ``LIMIT`` shared
  out over the shards with something due (the store's rule); what each
  shard hands out per pass is its claim load.

Reported: max/mean over the 64 shards of touches/s, of due entries per
window and of claims handed out; the same per master (the tags put 21 or 22
shards on each of 3 masters); and claims per node, for information: the
node that wakes first in a pass takes what is due, so per node the split
is a race that evens out only over longer windows (it is not the shards').
Target: max/mean <= 1.2 per shard and per master.
"""

from __future__ import annotations

import random
import secrets
import statistics
import sys
from collections import Counter

from redis.crc import key_slot

from bench.common import Row, Target
from tether.store.redis.shards import CLUSTER_SHARDS, shard_of, tags

NODES = 10
MASTERS = 3
HEARTBEAT_S = 20.0
TYPING_SHARE = 0.25
ACTIVITY_MEAN_S = 5.0
SPAN = 600.0
TICK = 0.2
LIMIT = 500
TARGET = Target("<=", 1.2)


def _ratio(values: list[float]) -> float:
    return max(values) / statistics.fmean(values)


def _master_of_shard() -> list[int]:
    """Each shard's master with the slots split evenly (as ``redis-cli --cluster create``)."""
    per = 16384 / MASTERS
    return [min(MASTERS - 1, int(key_slot(t.encode()) // per)) for t in tags(CLUSTER_SHARDS)]


def simulate(n: int, seed: int = 0) -> dict[str, float]:
    """The max/mean figures for ``n`` sessions."""
    rng = random.Random(seed)
    shards = [shard_of(secrets.token_hex(16), CLUSTER_SHARDS) for _ in range(n)]
    touches = [0.0] * CLUSTER_SHARDS
    deadlines: list[list[float]] = [[] for _ in range(CLUSTER_SHARDS)]
    for shard in shards:
        rate = 1.0 / HEARTBEAT_S
        if rng.random() < TYPING_SHARE:
            rate += rng.expovariate(ACTIVITY_MEAN_S)  # activities/s of this typist
        touches[shard] += rate
        deadlines[shard].append(rng.uniform(0.0, SPAN))
    for d in deadlines:
        d.sort()
    # claim passes over one window of 60 s (claims due in it: n / 10)
    window = 60.0
    cursor = [0] * CLUSTER_SHARDS
    handed = [0] * CLUSTER_SHARDS
    per_node = [0] * NODES
    t, turn = 0.0, 0
    while t < window:
        t += TICK
        order = list(range(NODES))
        rng.shuffle(order)
        for node in order:
            hot = [
                s
                for s in range(CLUSTER_SHARDS)
                if cursor[s] < len(deadlines[s]) and deadlines[s][cursor[s]] <= t
            ]
            if not hot:
                continue
            base, extra = divmod(LIMIT, len(hot))
            turn = (turn + 1) % len(hot)
            for i, s in enumerate(hot):
                share = base + (1 if (i - turn) % len(hot) < extra else 0)
                due = cursor[s]
                while (
                    due < len(deadlines[s]) and deadlines[s][due] <= t and due - cursor[s] < share
                ):
                    due += 1
                taken = due - cursor[s]
                cursor[s] = due
                handed[s] += taken
                per_node[node] += taken
    due_in_window = [sum(1 for x in d if x <= window) for d in deadlines]
    master = _master_of_shard()
    per_master_touch = [0.0] * MASTERS
    per_master_claim = [0.0] * MASTERS
    for s in range(CLUSTER_SHARDS):
        per_master_touch[master[s]] += touches[s]
        per_master_claim[master[s]] += handed[s]
    sessions = Counter(shards)
    return {
        "sessions per shard": _ratio([float(sessions[s]) for s in range(CLUSTER_SHARDS)]),
        "touches/s per shard": _ratio(touches),
        "due per shard (60 s)": _ratio([float(x) for x in due_in_window]),
        "claims per shard (60 s)": _ratio([float(x) for x in handed]),
        "touches/s per master": _ratio(per_master_touch),
        "claims per master": _ratio(per_master_claim),
        "claims per node": _ratio([float(x) for x in per_node]),
        "total touches/s": sum(touches),
        "total claims": float(sum(handed)),
    }


def run(quick: bool) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    figures = simulate(n)
    print(
        f"  n={n:,}: {figures['total touches/s']:,.0f} touches/s, "
        f"{figures['total claims']:,.0f} claims in 60 s, over {CLUSTER_SHARDS} shards",
        file=sys.stderr,
    )
    rows = []
    for name, value in figures.items():
        if name.startswith("total"):
            continue
        rows.append(
            Row(
                "shard_balance",
                f"n={n:,}, {NODES} nodes",
                name,
                value,
                "max/mean",
                target=None if name == "claims per node" else TARGET,
            )
        )
    return rows
