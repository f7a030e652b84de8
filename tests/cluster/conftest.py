"""Fixtures for coordinators sharing state through a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

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
