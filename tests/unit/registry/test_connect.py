"""Where a node's Redis client goes: the URL's server, or the master the sentinels name."""

from __future__ import annotations

from redis.asyncio.sentinel import SentinelConnectionPool

from propdev.config import Settings
from propdev.registry import close_redis, redis_client, redis_target


async def test_with_sentinels_the_client_asks_them_for_the_services_master() -> None:
    settings = Settings(redis_sentinels=(("127.0.0.1", 1), ("127.0.0.1", 2)), redis_service="hub")
    client = redis_client(settings, socket_timeout=3.0)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "hub" and pool.is_master
        addresses = [
            (
                s.connection_pool.connection_kwargs["host"],
                s.connection_pool.connection_kwargs["port"],
            )
            for s in pool.sentinel_manager.sentinels
        ]
        assert addresses == [("127.0.0.1", 1), ("127.0.0.1", 2)]
    finally:
        await close_redis(client)
    assert redis_target(settings) == "sentinel://127.0.0.1:1,127.0.0.1:2/hub"


async def test_with_a_url_the_client_goes_to_that_server_and_the_target_hides_the_password() -> (
    None
):
    settings = Settings(redis_url="redis://:secret@10.1.2.3:6390/2")
    client = redis_client(settings)
    try:
        assert not isinstance(client.connection_pool, SentinelConnectionPool)
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("10.1.2.3", 6390, 2)
    finally:
        await close_redis(client)
    assert redis_target(settings) == "redis://***@10.1.2.3:6390/2"
