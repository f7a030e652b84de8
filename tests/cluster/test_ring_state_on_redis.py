"""The ring and event state tests (tests/integration/test_ring_state.py), on a RedisStore.

The same scenarios, with the coordinator's state, event log, watches and ring deadlines in a real
redis-server: events reach clients through the shared stream reader, restarts keep ids and epoch.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.redis_events import RedisEventHub
from switchboard.server.coordinator.redis_store import RedisStore
from tests.integration.test_ring_state import *  # noqa: F403  (the scenarios, re-run on Redis)


# replaces the in-memory server of the scenarios
@pytest.fixture  # type: ignore[no-redef]
async def server(redis_url: str) -> AsyncIterator[EmbeddedServer]:
    store = RedisStore.from_url(redis_url, prefix=f"rs{uuid.uuid4().hex[:8]}:")
    async with EmbeddedServer(reconnect_grace=0.5, store=store) as srv:
        assert isinstance(srv.coordinator.hub, RedisEventHub)
        yield srv
    assert await store.last_event_id() > 0, "the scenario's events went through Redis"
    await store.close()
