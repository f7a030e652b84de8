"""The SFU-session registry in Redis: what one coordinator records, another enforces."""

from __future__ import annotations

import time
import uuid

import pytest

from switchboard.errors import AuthenticationError
from switchboard.protocol.tokens import SfuClaims, SfuGrants
from switchboard.server.coordinator.redis_sfu_sessions import RedisSfuSessions
from switchboard.server.coordinator.redis_store import RedisStore

SPEAKER = SfuGrants(send_audio=True, send_video=False)
LISTENER = SfuGrants(send_audio=False, send_video=False)


def claims(session_id: str, grants: SfuGrants, *, user: str = "alice", cid: str = "default:c") -> SfuClaims:
    now = int(time.time())
    return SfuClaims(user_id=user, call_cid=cid, session_id=session_id, grants=grants, iat=now, exp=now + 60)


async def test_sessions_minted_on_one_coordinator_are_enforced_on_another(redis_url: str) -> None:
    prefix = f"sfu{uuid.uuid4().hex[:8]}:"
    one, two = RedisStore.from_url(redis_url, prefix=prefix), RedisStore.from_url(redis_url, prefix=prefix)
    a, b = RedisSfuSessions(one), RedisSfuSessions(two)
    try:
        await a.minted("default:c", "alice", "s1", SPEAKER, time.time() + 60)
        record = await b.check(claims("s1", SPEAKER))
        assert (record.cid, record.user_id, record.grants, record.joined) == (
            "default:c",
            "alice",
            SPEAKER,
            False,
        )
        with pytest.raises(AuthenticationError) as other_user:
            await b.check(claims("s1", SPEAKER, user="mallory"))
        assert other_user.value.code == "unauthenticated"
        with pytest.raises(AuthenticationError) as unknown:
            await b.check(claims("nope", SPEAKER))
        assert unknown.value.code == "unauthenticated"

        # a fresh token with other grants (the role changed): the old token is stale
        await b.minted("default:c", "alice", "s1", LISTENER, time.time() + 120)
        with pytest.raises(AuthenticationError) as stale:
            await a.check(claims("s1", SPEAKER))
        assert stale.value.code == "grants_changed"
        await a.check(claims("s1", LISTENER))

        await a.joined("s1")
        seen = await b.get("s1")
        assert seen is not None and seen.joined
        await b.left("s1")
        with pytest.raises(AuthenticationError) as ended:
            await a.check(claims("s1", LISTENER))
        assert ended.value.code == "session_ended"
        assert await one.redis.ttl(one.key("sfu", "s1")) > 0, "a left session is forgotten in time"

        # media sessions per user and call, counted across coordinators
        assert await a.media_changed("default:c", "alice", "s1", True) == 1
        assert await b.media_changed("default:c", "alice", "s2", True) == 2
        assert await a.media_changed("default:c", "alice", "s1", False) == 1
        assert await b.media_changed("default:c", "alice", "s2", False) == 0
    finally:
        await one.close()
        await two.close()
