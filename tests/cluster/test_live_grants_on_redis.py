"""Grants that shrink for connected sessions (tests/integration/test_live_grants.py) with the
SFU-session registry in Redis: the coordinator finds the users in a call's media there."""

from __future__ import annotations

import time

import pytest

from switchboard.protocol.tokens import SfuGrants
from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.redis_sfu_sessions import RedisSfuSessions
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_sessions import SfuSessions
from tests.integration.test_live_grants import test_a_demoted_host_stops_being_heard_and_is_told  # noqa: F401


# replaces the in-memory server of the scenario
@pytest.fixture
async def server(redis_backed_server: EmbeddedServer) -> EmbeddedServer:
    return redis_backed_server


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
async def test_media_users_are_the_sessions_the_sfu_reported_in_that_call(
    shared: bool, redis_store: RedisStore
) -> None:
    sessions = RedisSfuSessions(redis_store) if shared else SfuSessions()
    grants = SfuGrants(send_audio=True)
    for cid, user, session in [
        ("default:a", "alice", "s1"),
        ("default:a", "alice", "s2"),
        ("default:a", "bob", "s3"),
        ("default:ab", "carol", "s4"),  # a call whose id starts like the other's
    ]:
        await sessions.minted(cid, user, session, grants, time.time() + 60)
        await sessions.media_changed(cid, user, session, True)
    assert await sessions.media_users("default:a") == {"alice": ["s1", "s2"], "bob": ["s3"]}
    await sessions.media_changed("default:a", "bob", "s3", False)
    assert await sessions.media_users("default:a") == {"alice": ["s1", "s2"]}
    assert await sessions.media_users("default:ab") == {"carol": ["s4"]}
    assert await sessions.media_users("default:none") == {}
