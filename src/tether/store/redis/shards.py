"""Shards: how a Redis Cluster deployment splits its keys so that every script touches one slot.

Redis Cluster runs a script only if all its keys hash to one slot, and a key's
slot is the CRC16 of its hash tag (the text between the first ``{`` and the
next ``}``). So a sharded store keeps ``count`` complete copies of the key
layout (:class:`~tether.store.redis.keys.Keys`), one per shard, each under the
prefix ``<prefix>{<tag>}:``: a session's hash, its transcript, the deadline
index, the live and user indexes, the claim batches and node sets of its
shard all share one tag, so every existing script runs unchanged inside one
slot. A session belongs to the shard its id hashes to (:func:`shard_of`,
CRC32: uniform over random ids, and computed by every node alike).

Why 64 shards: a deployment keeps its shard count for good (changing it would
move every session), so it must exceed the masters a cluster will ever
reasonably have, and stay cheap to fan out over: each claim pass and each
``next_due`` is one script per shard, pipelined (one round trip per master).
64 leaves 21 or 22 shards per master on 3 masters (max/mean 1.03) and still
at least one per master up to 64 masters. Each shard's tag is chosen so its
slot lies in the shard's own 1/64 band of the 16384 slots (:func:`tags`):
any even split of the slots over masters, such as ``redis-cli --cluster
create``'s, then gives each master the same number of shards, where tags
hashed at random could leave one master a third more.

One Redis keeps ``count = 1``: the layout of a plain ``prefix`` exactly as
before (no tag), so an existing deployment upgrades in place.
"""

from __future__ import annotations

import functools
import zlib

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

CLUSTER_SHARDS = 64
"""Shards of a store on Redis Cluster (see the module docstring for why 64)."""


@functools.cache
def tags(count: int) -> tuple[str, ...]:
    """The hash tag of each of ``count`` shards: shard ``i``'s slot lies in band ``i``."""
    band = REDIS_CLUSTER_HASH_SLOTS / count
    out = []
    for shard in range(count):
        low, high = shard * band, (shard + 1) * band
        n = 0
        while not low <= key_slot(f"{shard}.{n}".encode()) < high:
            n += 1
        out.append(f"{shard}.{n}")
    return tuple(out)


def shard_of(session_id: str, count: int) -> int:
    """The shard session ``session_id`` belongs to, of ``count``."""
    if count == 1:
        return 0
    return zlib.crc32(session_id.encode()) % count


def prefixes(prefix: str, count: int) -> list[str]:
    """The key prefix of each shard: ``prefix`` itself for one shard, else ``prefix{tag}:``."""
    if count < 1:
        raise ValueError(f"a store needs at least one shard, not {count}")
    if count == 1:
        return [prefix]
    if "{" in prefix or "}" in prefix:
        raise ValueError(
            f"prefix {prefix!r} holds a hash tag; a sharded store adds one per shard itself"
        )
    return [f"{prefix}{{{tag}}}:" for tag in tags(count)]
