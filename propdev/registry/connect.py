"""The one place a node's Redis clients are made: from ``PROPDEV_REDIS_URL``, or from the
master that ``PROPDEV_REDIS_SENTINELS`` name for ``PROPDEV_REDIS_SERVICE``.

With Sentinel the client's pool (redis-py's ``SentinelConnectionPool``) asks a sentinel for the
master's address for every new connection and drops its connections when the address
changes; a connection to a demoted master fails (``ConnectionError``: "the previous master is
now a slave"). Everything above sees only ``ConnectionError``s during a failover, as for a
restart of one Redis, and retries in its own loop: the bus re-subscribes, membership and
placement renew at their next tick, the inbox readers recreate their group if the promoted
replica lacks it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

if TYPE_CHECKING:
    from propdev.config import Settings

SENTINEL_TIMEOUT = 0.5
"""Seconds for a sentinel to answer: a dead sentinel must not hold up the next one's."""


def redis_client(settings: Settings, **options: Any) -> Redis:
    """A client of the cluster's Redis master; ``options`` for its connections
    (``socket_timeout``, ``max_connections``…)."""
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            list(settings.redis_sentinels),
            sentinel_kwargs={
                "socket_connect_timeout": SENTINEL_TIMEOUT,
                "socket_timeout": SENTINEL_TIMEOUT,
            },
        )
        client: Redis = sentinel.master_for(settings.redis_service, **options)
        return client
    if settings.redis_url is None:
        raise ValueError("neither PROPDEV_REDIS_URL nor PROPDEV_REDIS_SENTINELS is set")
    return Redis.from_url(settings.redis_url, **options)


def redis_target(settings: Settings) -> str:
    """Where the client goes, for logs and ``doctor`` (no password)."""
    if settings.redis_sentinels:
        where = ",".join(f"{h}:{p}" for h, p in settings.redis_sentinels)
        return f"sentinel://{where}/{settings.redis_service}"
    url = settings.redis_url or ""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


async def close_redis(client: Redis) -> None:
    """Close ``client``'s connections, and with Sentinel the sentinels' too."""
    with contextlib.suppress(Exception):
        await client.aclose()
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            with contextlib.suppress(Exception):
                await sentinel.aclose()
