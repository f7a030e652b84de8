"""Fixtures for coordinators sharing state through a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.redis_events import RedisEventHub
from switchboard.server.coordinator.redis_sfu_sessions import RedisSfuSessions
from switchboard.server.coordinator.redis_store import RedisStore
from tests.redis_server import redis_server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    """A store under a fresh key prefix (tests share one redis-server per module)."""
    store = RedisStore.from_url(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield store
    await store.close()


@pytest.fixture
async def redis_backed_server(redis_url: str) -> AsyncIterator[EmbeddedServer]:
    """An EmbeddedServer whose coordinator keeps its state, events and SFU sessions in Redis."""
    store = RedisStore.from_url(redis_url, prefix=f"rs{uuid.uuid4().hex[:8]}:")
    async with EmbeddedServer(reconnect_grace=0.5, store=store) as srv:
        assert isinstance(srv.coordinator.hub, RedisEventHub)
        assert isinstance(srv.coordinator.sfu_sessions, RedisSfuSessions)
        yield srv
    await store.close()
