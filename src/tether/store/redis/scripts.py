"""The store's Lua scripts (``tether/store/lua/``), registered once per client.

Each script is its own file with a ``KEYS``/``ARGV`` header, prefixed with the
shared helpers of ``prelude.lua``. A script runs by ``EVALSHA``; when the
server has forgotten it (a restart, a failover, ``SCRIPT FLUSH``) it answers
``NOSCRIPT`` and the script is loaded and run again: redis-py's ``AsyncScript``
does that for single calls, :func:`pipelined` for pipelines (redis-py's own
pipeline support would ask ``SCRIPT EXISTS`` first, a second round trip on
every pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Client = Redis | RedisCluster
"""A client of one Redis (or of the primary Sentinel names), or of a Redis Cluster."""

Call = tuple[AsyncScript, Sequence[str], Sequence[str | int]]
"""One script call: the script, its keys, its arguments."""


def source(name: str) -> str:
    """The text of ``tether/store/lua/<name>.lua``."""
    return files("tether.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """Every script of the store, registered on one client."""

    def __init__(self, client: Client) -> None:
        prelude = source("prelude")

        def register(name: str) -> AsyncScript:
            return client.register_script(prelude + source(name))

        self.create = register("create")
        self.touch = register("touch")
        self.attach = register("attach")
        self.append = register("append")
        self.retract = register("retract")
        self.end = register("end")
        self.config = register("config")
        self.apply = register("apply")
        self.claim = register("claim")
        self.read = register("read")
        self.drop = register("drop")
        self.stats = register("stats")
        self.detach = register("detach")
        self.complete = register("complete")
        self.renew = register("renew")
        self.keepalive = register("keepalive")
        self.leave = register("leave")
        self.reap = register("reap")
        self.next = register("next")
        self.resume = register("resume")
        self.epoch = register("epoch")


async def pipelined(client: Client, calls: Sequence[Call]) -> list[Any]:
    """Run ``calls`` in one pipeline; each reply, or the error it raised, in order.

    Calls that met ``NOSCRIPT`` changed nothing; their scripts are loaded and
    they are sent again, together, in their original order.
    """
    results = await _send(client, calls)
    missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if missing:
        scripts = {id(calls[i][0]): calls[i][0] for i in missing}
        for script in scripts.values():
            script.sha = await client.script_load(script.script)
        again = await _send(client, [calls[i] for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    return results


async def _send(client: Client, calls: Sequence[Call]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
    return results
