"""Which Redis a ``TETHER_REDIS_URL`` names, and a client for it.

Three topologies, told apart by the URL's scheme (explicit, so no probe
decides at startup, and a cluster that is down or half up is never mistaken
for one Redis):

* ``redis://``, ``rediss://``, ``unix://``: one Redis (redis-py's own URLs);
* ``redis+cluster://[user:password@]host:port`` (or ``rediss+cluster://``):
  any node of a Redis Cluster; the client discovers the others and follows
  slot moves and failovers;
* ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``
  (or ``rediss+sentinel://``): the primary the Sentinels name ``service``;
  the client asks them again when the primary fails over. The password is
  the data nodes'; Sentinels that need one of their own take
  ``?sentinel_password=``.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from tether.errors import ConfigError
from tether.store.redis.scripts import Client

CLUSTER = ("redis+cluster", "rediss+cluster")
CLUSTER_CONNECTIONS = 1024
"""Connections per cluster node a store may open (Redis allows 10000 clients by default)."""
SENTINEL = ("redis+sentinel", "rediss+sentinel")


class Target(NamedTuple):
    """What a URL names."""

    kind: str
    """``"single"``, ``"cluster"`` or ``"sentinel"``."""
    url: str
    """A redis-py URL for one node (single, cluster); ``""`` for Sentinel."""
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_password: str | None = None

    @property
    def cluster(self) -> bool:
        """Whether it is a Redis Cluster."""
        return self.kind == "cluster"


def parse(url: str) -> Target:
    """The topology ``url`` names; ``ConfigError`` for a malformed one."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError("a Redis URL starts with redis://, redis+cluster:// or redis+sentinel://")
    if scheme in CLUSTER:
        return Target(
            "cluster", ("rediss" if scheme.startswith("rediss") else "redis") + "://" + rest
        )
    if scheme in SENTINEL:
        return _sentinel(url, tls=scheme.startswith("rediss"))
    return Target("single", url)


def _sentinel(url: str, *, tls: bool) -> Target:
    parts = urlsplit(url)
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        user, _, secret = credentials.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    sentinels = []
    for address in netloc.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                "a redis+sentinel:// URL lists its Sentinels as host:port[,host:port...]"
            )
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError("a redis+sentinel:// URL ends with /service_name[/db]")
    query = parse_qs(parts.query)
    return Target(
        "sentinel",
        "",
        tuple(sentinels),
        unquote(path[0]),
        int(path[1]) if len(path) == 2 else 0,
        username,
        password,
        tls,
        query.get("sentinel_password", [None])[0],
    )


def connect(target: Target, **options: Any) -> tuple[Client, list[redis.asyncio.Redis]]:
    """A client for ``target``, and the clients to close with it (the Sentinels').

    ``options`` go to redis-py (its pool, for one Redis).
    """
    if target.kind == "cluster":
        # Per node. redis-py's cluster pool does not wait for a free connection
        # (a burst past it fails, and answers 503), so it is far larger than
        # one Redis's blocking pool: a burst of first heartbeats, each decided
        # in Python, runs one command per session at once.
        options.setdefault("max_connections", CLUSTER_CONNECTIONS)
        return RedisCluster.from_url(target.url, **options), []
    if target.kind == "sentinel":
        sentinel_kwargs: dict[str, Any] = {}
        if target.sentinel_password:
            sentinel_kwargs["password"] = target.sentinel_password
        sentinel = Sentinel(
            list(target.sentinels),
            sentinel_kwargs=sentinel_kwargs,
            socket_timeout=options.get("socket_timeout"),
        )
        master: redis.asyncio.Redis = sentinel.master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.tls,
            **options,
        )
        return master, list(sentinel.sentinels)
    options.setdefault("max_connections", 64)
    pool = redis.asyncio.BlockingConnectionPool.from_url(target.url, **options)
    return redis.asyncio.Redis.from_pool(pool), []
