"""``Masters``: script calls on Redis Cluster, one pipeline per master, straight on its connection.

A batch of touches on a sharded store is one ``touch.lua`` call per shard it
touches (up to 64). redis-py's cluster pipeline routes such a batch command
by command: it parses each command's keys, hashes every key to check they
share a slot, looks up the command's routing policy, then groups the
commands by node. Measured on the touch bench that is as much client CPU as
the rest of the touch path put together (a cluster touch cost twice the
client CPU of a touch on one Redis). Here every call is already known to run
in its shard's slot, so it is routed by that slot alone (the client's own
slot map, :meth:`NodesManager.get_node_from_slot`), each master's calls go
out as one plain pipeline on one of that master's connections
(:meth:`ClusterNode.execute_pipeline`), and the masters are asked
concurrently.

Whatever the direct path cannot answer goes through the existing path,
redis-py's cluster pipeline (:func:`~.scripts.pipelined`), in its original
order: a slot that moved (``MOVED``) or is moving (``ASK``, ``TRYAGAIN``),
a master that failed over or cannot be reached, a script the master has not
loaded (``NOSCRIPT``), a slot map not fetched yet. That path follows the
redirections and refreshes the client's slot map, so the next batch goes
straight to the slot's new master. A redirection, ``NOSCRIPT`` and
``TRYAGAIN`` ran nothing; after an error of the connection a call may have
run, and is sent again as redis-py's own retry would send it (a touch sent
twice records the same signs twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    NoScriptError,
    RedisClusterException,
    TimeoutError,
    TryAgainError,
)

from tether.store.redis.scripts import Call, pipelined

RESENT = (
    AskError,  # and MovedError, its subclass
    TryAgainError,
    ClusterDownError,
    NoScriptError,
    ConnectionError,
    TimeoutError,
    OSError,
)
"""Replies after which a call goes again, through redis-py's cluster pipeline."""


class Masters:
    """Runs script calls of known slots on a Redis Cluster: one pipeline per master."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self.resent = 0
        """Calls the direct path handed to the cluster pipeline (redirections, failures)."""

    async def run(self, calls: Sequence[Call], slots: Sequence[int]) -> list[Any]:
        """Run ``calls``, the i-th in slot ``slots[i]``; each reply, or its error, in order."""
        try:
            groups = self._route(slots)
        except RedisClusterException:  # no slot map yet, or a slot no master serves
            return await pipelined(self._client, calls)
        results: list[Any] = [None] * len(calls)
        await asyncio.gather(
            *(self._send(node, calls, members, results) for node, members in groups)
        )
        again = [i for i, result in enumerate(results) if isinstance(result, RESENT)]
        if again:
            self.resent += len(again)
            replies = await pipelined(self._client, [calls[i] for i in again])
            for i, reply in zip(again, replies, strict=True):
                results[i] = reply
        return results

    def _route(self, slots: Sequence[int]) -> list[tuple[ClusterNode, list[int]]]:
        """The calls (their indexes) of each master, by the client's slot map."""
        of_slot = self._client.nodes_manager.get_node_from_slot
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, slot in enumerate(slots):
            node = of_slot(slot)
            group = groups.get(node.name)
            if group is None:
                groups[node.name] = (node, [i])
            else:
                group[1].append(i)
        return list(groups.values())

    @staticmethod
    async def _send(
        node: ClusterNode, calls: Sequence[Call], members: list[int], results: list[Any]
    ) -> None:
        """One master's calls in one pipeline; each reply (or error) into ``results``."""
        commands = []
        for i in members:
            script, keys, args = calls[i]
            commands.append(PipelineCommand(i, "EVALSHA", script.sha, len(keys), *keys, *args))
        try:
            await node.execute_pipeline(commands)
        except (ConnectionError, TimeoutError, OSError) as exc:  # nothing was read back
            for i in members:
                results[i] = exc
            return
        for i, command in zip(members, commands, strict=True):
            results[i] = command.result
