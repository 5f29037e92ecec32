"""A Sentinel set on loopback: a primary, its replica and three Sentinels, stopped by pid.

The Sentinels are ``redis-server --sentinel`` (what Debian's ``redis-sentinel``
runs), with a one-second ``down-after-milliseconds`` so a failover takes a
few seconds. Used by the store's failover test, the process-level failover
test and ``python -m bench.sentinel_failover``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio

from bench.redis_server import BenchRedis, _free_port, launch

SERVICE = "tether-test"
START_TIMEOUT_S = 20.0


@dataclass
class SentinelSet:
    """The running set: the data nodes and the Sentinels' ports."""

    primary: BenchRedis
    replica: BenchRedis
    ports: list[int]
    service: str = SERVICE

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL naming the set's service through its Sentinels."""
        return (
            "redis+sentinel://"
            + ",".join(f"127.0.0.1:{p}" for p in self.ports)
            + (f"/{self.service}")
        )

    async def synced(self) -> bool:
        """Whether the replica follows the primary and the Sentinels know it (poll this)."""
        sentinel = redis.asyncio.Redis(port=self.ports[0])
        replica = redis.asyncio.Redis(port=self.replica.port)
        try:
            info = await replica.info("replication")
            known = await sentinel.execute_command("SENTINEL", "REPLICAS", self.service)
            return info.get("master_link_status") == "up" and bool(known)
        finally:
            await sentinel.aclose()
            await replica.aclose()

    async def promoted(self) -> bool:
        """Whether the Sentinels name the replica as the primary now (poll this)."""
        sentinel = redis.asyncio.Redis(port=self.ports[0])
        try:
            addr = await sentinel.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
            )
            return int(addr[1]) == self.replica.port
        finally:
            await sentinel.aclose()


def _ping(port: int) -> bool:
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not on PATH (Debian: apt-get install redis-tools)")
    out = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True)
    return out.stdout.strip() == "PONG"


@contextlib.contextmanager
def sentinel_set(directory: Path) -> Iterator[SentinelSet]:
    """A primary, its replica and three Sentinels monitoring it; all stopped by pid after.

    Raises ``RuntimeError`` if ``redis-server`` is missing or the set does not start.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not on PATH (Debian: apt-get install redis-server)")
    processes: list[subprocess.Popen[str]] = []
    servers: list[BenchRedis] = []
    try:
        (directory / "p").mkdir(parents=True)
        (directory / "r").mkdir()
        primary = BenchRedis(*launch(str(directory / "p")))
        servers.append(primary)
        replica = BenchRedis(
            *launch(str(directory / "r"), ["--replicaof", "127.0.0.1", str(primary.port)])
        )
        servers.append(replica)
        ports = []
        for i in range(3):
            port = _free_port()
            conf = directory / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            processes.append(
                subprocess.Popen(
                    [exe, str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
            ports.append(port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(_ping(p) for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Sentinels did not start")
            time.sleep(0.005)
        yield SentinelSet(primary, replica, ports)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        for server in servers:
            server.stop()
