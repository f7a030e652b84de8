"""The SFU trust tests (tests/integration/test_sfu_trust.py) with the SFU-session registry in Redis.

Session-bound SFU tokens, grants changes and fresh tokens behave the same when the registry is the
shared one several coordinators use.
"""

from __future__ import annotations

import pytest

from switchboard.server import EmbeddedServer
from tests.integration.test_sfu_trust import *  # noqa: F403  (the scenarios, re-run on Redis)


# replaces the in-memory server of the scenarios
@pytest.fixture
async def server(redis_backed_server: EmbeddedServer) -> EmbeddedServer:
    return redis_backed_server


# Not re-run here: it starts its own in-memory server (it measures the SFU's memory, not the store's),
# so on this page it would run exactly as in tests/integration/test_sfu_trust.py, a minute for nothing.
del test_update_subscription_naming_made_up_sessions_does_not_grow_memory  # noqa: F821
