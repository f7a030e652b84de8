"""The ring and event state tests (tests/integration/test_ring_state.py), on a RedisStore.

The same scenarios, with the coordinator's state, event log, watches and ring deadlines in a real
redis-server: events reach clients through the shared stream reader, restarts keep ids and epoch.
"""

from __future__ import annotations

import pytest

from switchboard.server import EmbeddedServer
from tests.integration.test_ring_state import *  # noqa: F403  (the scenarios, re-run on Redis)


# replaces the in-memory server of the scenarios
@pytest.fixture  # type: ignore[no-redef]
async def server(redis_backed_server: EmbeddedServer) -> EmbeddedServer:
    return redis_backed_server
