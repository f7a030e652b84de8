"""Rate limits shared through Redis: a user's budget is one, whichever coordinator they reach."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from switchboard.protocol.tokens import generate_key_pair
from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.redis_ratelimit import RedisRateLimiter
from switchboard.server.coordinator.redis_store import RedisStore


async def test_a_bucket_is_shared_by_every_limiter_on_the_same_redis(redis_url: str) -> None:
    prefix = f"rl{uuid.uuid4().hex[:8]}:"
    one, two = RedisStore.from_url(redis_url, prefix=prefix), RedisStore.from_url(redis_url, prefix=prefix)
    try:
        a = RedisRateLimiter(one, "api", rate=2.0, burst=3)
        b = RedisRateLimiter(two, "api", rate=2.0, burst=3)
        waits = [await limiter.acquire("alice") for limiter in (a, b, a)]
        assert waits == [0.0, 0.0, 0.0]
        refused = await b.acquire("alice")
        assert 0.3 < refused <= 0.5  # one token comes back every 0.5 s
        assert await a.acquire("bob") == 0.0  # per user
        await asyncio.sleep(refused + 0.05)
        assert await a.acquire("alice") == 0.0
    finally:
        await one.close()
        await two.close()


async def test_two_coordinators_answer_429_from_one_budget(redis_url: str) -> None:
    prefix = f"rl{uuid.uuid4().hex[:8]}:"
    key, secret = generate_key_pair()
    stores = [RedisStore.from_url(redis_url, prefix=prefix) for _ in range(2)]
    servers = [
        EmbeddedServer(api_key=key, api_secret=secret, store=s, rate_limit_per_second=0.5, rate_limit_burst=4)
        for s in stores
    ]
    try:
        for server in servers:
            await server.start()
        headers = {"X-Api-Key": key, "Authorization": f"Bearer {servers[0].create_token('alice')}"}
        statuses: list[int] = []
        async with aiohttp.ClientSession() as http:
            for n in range(6):  # alternately on each coordinator
                async with http.get(f"{servers[n % 2].url}/api/v1/rings", headers=headers) as resp:
                    statuses.append(resp.status)
                    if resp.status == 429:
                        body = await resp.json()
                        assert body["code"] == "rate_limited"
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        for server in servers:
            await server.stop()
        for store in stores:
            await store.close()
