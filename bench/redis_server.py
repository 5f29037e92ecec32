"""What the Redis benches share: a throwaway ``redis-server``, and sessions loaded in bulk.

:func:`redis_server` starts one in a temp dir on a free loopback port and
stops it by pid. Persistence is off (no RDB snapshots, no AOF), so neither a
fork nor a disk write lands inside a measurement. The server is Debian's
``redis-server`` on ``PATH``; nothing is looked up or killed by name.

:func:`load_sessions` writes up to millions of sessions fast: the store's
own ``create.lua``, run server-side in a loop, thousands per call.
"""

from __future__ import annotations

import queue
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.store.redis.scripts import source
from tether.types import SessionId, UserId

if TYPE_CHECKING:
    from tether.store.redis import RedisStore

READY = "Ready to accept connections"
START_TIMEOUT_S = 15.0


@dataclass
class BenchRedis:
    """One running server: its process and where to reach it."""

    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """SIGTERM by pid and wait (SIGKILL if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()


MAX_CLUSTER_PORT = 55535
"""A cluster node also listens on its port + 10000, so its port must not be above this."""


def _free_port() -> int:
    while True:  # the kernel's ephemeral range runs past MAX_CLUSTER_PORT
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port <= MAX_CLUSTER_PORT:
            return port


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            lines.put(line)
    lines.put(None)


def launch(
    directory: str, extra: Sequence[str] = (), *, timeout: float = START_TIMEOUT_S
) -> tuple[subprocess.Popen[str], int]:
    """Start ``redis-server`` (no persistence) in ``directory`` on a free loopback port.

    Returns the process and its port once it accepts connections; raises
    ``RuntimeError`` with the server's last output otherwise. The tests'
    ``redis_kit`` starts its servers with this too.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not on PATH (Debian: apt-get install redis-server)")
    output: list[str] = []
    for _ in range(3):  # another process may take the free port first
        port = _free_port()
        argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        argv += ["no", "--dir", directory, *extra]
        process = subprocess.Popen(
            argv,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
        output = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                break
            output.append(line)
            if READY in line:
                return process, port
        if process.poll() is None:
            process.kill()
        process.wait()
    raise RuntimeError("redis-server did not start:\n" + "".join(output[-20:]))


@dataclass
class BenchCluster:
    """A running local Redis Cluster: one ``redis-server`` per master, no replicas."""

    masters: list[BenchRedis]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming its first node (any node would do)."""
        return f"redis+cluster://127.0.0.1:{self.masters[0].port}"

    def stop(self) -> None:
        for master in self.masters:
            master.stop()


def launch_cluster(
    directory: str, masters: int = 3, *, timeout: float = START_TIMEOUT_S
) -> BenchCluster:
    """Start ``masters`` cluster-enabled servers in ``directory``, join them, wait for ``ok``.

    The slots are split evenly by ``redis-cli --cluster create``; raises
    ``RuntimeError`` if the cluster does not come up within ``timeout``.
    """
    import os
    import time

    nodes: list[BenchRedis] = []
    try:
        for i in range(masters):
            home = os.path.join(directory, f"node-{i}")
            os.makedirs(home, exist_ok=True)
            extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            extra += ["--maxmemory-policy", "noeviction"]
            nodes.append(BenchRedis(*launch(home, extra, timeout=timeout)))
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH (Debian: apt-get install redis-tools)")
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        for node in nodes:
            while True:
                info = subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                ).stdout
                if "cluster_state:ok" in info:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not reach cluster_state:ok:\n{info}")
                time.sleep(0.05)  # the cluster bus gossips the new slots
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return BenchCluster(nodes)


@contextmanager
def redis_cluster(masters: int = 3) -> Iterator[BenchCluster]:
    """A fresh local cluster in its own temp dir for the block, stopped by pid afterwards."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-cluster-") as directory:
        cluster = launch_cluster(directory, masters)
        try:
            yield cluster
        finally:
            cluster.stop()


def _start(directory: str) -> BenchRedis:
    return BenchRedis(*launch(directory, ["--maxmemory-policy", "noeviction"]))


@contextmanager
def redis_server() -> Iterator[BenchRedis]:
    """A fresh server in its own temp dir for the block, stopped by pid afterwards."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-redis-") as directory:
        server = _start(directory)
        try:
            yield server
        finally:
            server.stop()


# -- bulk loading -----------------------------------------------------------------

_LOADER_BODY = """
local function create_one(KEYS, ARGV)
{create}
end
-- KEYS: due, live, ended, seq.  ARGV[1] id prefix  ARGV[2] first number  ARGV[3] count
-- ARGV[4] index of the user in the template; ARGV[5...] the template: create.lua's
-- ARGV for one session (ARGV[1] of it is the key prefix, ARGV[2] the id).
local template = {{}}
for i = 5, #ARGV do
  template[#template + 1] = ARGV[i]
end
local prefix = template[1]
local user_at = tonumber(ARGV[4])
local first, count = tonumber(ARGV[2]), tonumber(ARGV[3])
for n = first, first + count - 1 do
  local id = ARGV[1] .. string.format('%016d', n)
  local args = {{}}
  for i, v in ipairs(template) do
    args[i] = v
  end
  args[2] = id
  args[3] = 'u' .. n
  args[user_at] = 'u' .. n
  create_one({{prefix .. 's:' .. id, prefix .. 'm:' .. id, KEYS[1], KEYS[2], KEYS[3], KEYS[4]}},
    args)
end
return count
"""

_TEMPLATE_ID = "0" * 32
_TEMPLATE_USER = "u-template"


def _loader_source() -> str:
    create = source("create").replace("\n", "\n  ")
    return source("prelude") + _LOADER_BODY.format(create=create)


async def load_sessions(
    store: RedisStore,
    policy: Policy,
    now: float,
    count: int,
    *,
    config: dict[str, Any] | None = None,
    chunk: int = 5000,
) -> list[str]:
    """Create ``count`` sessions fast (user ``u<n>`` each), server-side through ``create.lua``.

    Each session is what ``store.create`` would write (the same script, the
    same fields), ``chunk`` per script call; nothing is timed here. Returns
    their ids.
    """
    record = SessionRecord(
        SessionId(_TEMPLATE_ID), UserId(_TEMPLATE_USER), "chat", policy, now, config
    )
    keys, args = store._create_call(record, max_per_user=None)  # bench only
    template = [str(a) for a in args]
    user_at = template.index(_TEMPLATE_USER, 3) + 1
    loader = store.client.register_script(_loader_source())
    stem = secrets.token_hex(8)
    for first in range(0, count, chunk):
        n = min(chunk, count - first)
        await loader(keys=list(keys[2:]), args=[stem, first, n, user_at, *template])
    return [f"{stem}{n:016d}" for n in range(count)]


_LOADER_IDS_BODY = """
local function create_one(KEYS, ARGV)
{create}
end
-- KEYS: due, live, ended, seq (of one shard).  ARGV[1] n   ARGV[2 .. n+1] the ids
-- ARGV[n+2] index of the user in the template; ARGV[n+3...] the template, as above.
local n = tonumber(ARGV[1])
local user_at = tonumber(ARGV[n + 2])
local template = {{}}
for i = n + 3, #ARGV do
  template[#template + 1] = ARGV[i]
end
local prefix = template[1]
for i = 2, n + 1 do
  local id = ARGV[i]
  local args = {{}}
  for j, v in ipairs(template) do
    args[j] = v
  end
  args[2] = id
  args[3] = 'u' .. id
  args[user_at] = 'u' .. id
  create_one({{prefix .. 's:' .. id, prefix .. 'm:' .. id, KEYS[1], KEYS[2], KEYS[3], KEYS[4]}},
    args)
end
return n
"""


async def load_sessions_sharded(
    store: RedisStore,
    policy: Policy,
    now: float,
    count: int,
    *,
    chunk: int = 2000,
) -> list[str]:
    """``load_sessions`` for a sharded store (Redis Cluster): ids made here, loaded per shard.

    Each shard's sessions go through ``create.lua`` in that shard's slot,
    ``chunk`` per call; the calls of all shards are pipelined. Returns the ids.
    """
    from tether.store.redis.shards import shard_of

    shards = store.shards
    ids = [secrets.token_hex(16) for _ in range(count)]
    groups: dict[int, list[str]] = {}
    for sid in ids:
        groups.setdefault(shard_of(sid, shards), []).append(sid)
    source_text = source("prelude") + _LOADER_IDS_BODY.format(
        create=source("create").replace("\n", "\n  ")
    )
    loader = store.client.register_script(source_text)
    templates: dict[int, tuple[list[str], list[str], int]] = {}
    while len(templates) < len(groups):
        template_id = secrets.token_hex(16)
        shard = shard_of(template_id, shards)
        if shard in groups and shard not in templates:
            record = SessionRecord(
                SessionId(template_id), UserId(_TEMPLATE_USER), "chat", policy, now, None
            )
            keys, args = store._create_call(record, max_per_user=None)  # bench only
            template = [str(a) for a in args]
            templates[shard] = (list(keys[2:]), template, template.index(_TEMPLATE_USER, 3) + 1)
    calls = []
    for shard, members in groups.items():
        keys, template, user_at = templates[shard]
        for first in range(0, len(members), chunk):
            part = members[first : first + chunk]
            calls.append((keys, [len(part), *part, user_at, *template]))
    await store.client.script_load(source_text)  # on every master of a cluster
    for first in range(0, len(calls), 64):
        async with store.client.pipeline(transaction=False) as pipe:
            for keys, args in calls[first : first + 64]:
                pipe.evalsha(loader.sha, len(keys), *keys, *args)
            await pipe.execute()
    return ids
