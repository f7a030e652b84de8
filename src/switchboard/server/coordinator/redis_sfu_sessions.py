"""The SFU-session registry in Redis, shared by every coordinator of a deployment.

Same rules as :class:`~switchboard.server.coordinator.sfu_sessions.SfuSessions` (a token is bound
to its session; refused once the session left or its grants changed), so a token minted by one
coordinator is admitted when the SFU asks another. Keys under the store's prefix:

- ``sfu:<session_id>``: hash ``cid``, ``user_id``, ``grants`` (JSON), ``expires`` (Unix s of the
  newest token), ``joined``, ``left``; it expires one minute after its newest token while the
  session has not joined or has left, and ``JOINED_TTL`` s after its last report while it is in the
  media (a session whose SFU died without reporting is forgotten then);
- ``media:<cid>:<user_id>``: the set of that user's media sessions in the call, as the SFU reports.
"""

from __future__ import annotations

import json
import time
from typing import Any

from switchboard.errors import AuthenticationError
from switchboard.protocol.tokens import SfuClaims, SfuGrants
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_sessions import SfuSession, SfuSessions

#: How long a session in the media is remembered without a new report or token (s).
JOINED_TTL = 24 * 3600
#: How long after its newest token's expiry a session that is not in the media is remembered (s).
AFTER_EXPIRY = 60


#: KEYS: the session. ARGV: now (s), AFTER_EXPIRY. One round trip, so a session is marked left before
#: a token replayed right after the leave can be checked.
_LEFT = """
local expires = redis.call('HGET', KEYS[1], 'expires')
if not expires then return 0 end
redis.call('HSET', KEYS[1], 'left', '1')
local until_ = math.max(tonumber(expires), tonumber(ARGV[1]))
redis.call('EXPIREAT', KEYS[1], math.floor(until_) + tonumber(ARGV[2]))
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSfuSessions(SfuSessions):
    """:class:`SfuSessions` kept in Redis (the async methods; nothing is held in this process)."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__()
        self._store = store
        self._redis = store.redis
        self._left = store.redis.register_script(_LEFT)

    def _key(self, session_id: str) -> str:
        return self._store.key("sfu", session_id)

    async def minted(
        self, cid: str, user_id: str, session_id: str, grants: SfuGrants, expires: float
    ) -> None:
        key = self._key(session_id)
        old = await self.get(session_id)
        newest = max(expires, old.expires) if old is not None else expires
        mapping: dict[Any, Any] = {
            "grants": grants.model_dump_json(),
            "expires": repr(newest),
        }
        if old is None:
            mapping.update(cid=cid, user_id=user_id, joined="0", left="0")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            if old is not None and old.joined and not old.left:
                pipe.expire(key, JOINED_TTL)
            else:
                pipe.expireat(key, int(newest) + AFTER_EXPIRY)
            await pipe.execute()

    async def get(self, session_id: str) -> SfuSession | None:
        raw = await self._redis.hgetall(self._key(session_id))
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        return SfuSession(
            cid=data["cid"],
            user_id=data["user_id"],
            session_id=session_id,
            grants=SfuGrants.model_validate(json.loads(data["grants"])),
            expires=float(data["expires"]),
            joined=data["joined"] == "1",
            left=data["left"] == "1",
        )

    async def check(self, claims: SfuClaims) -> SfuSession:
        record = await self.get(claims.session_id)
        if record is None or record.cid != claims.call_cid or record.user_id != claims.user_id:
            raise AuthenticationError("SFU token names an unknown session: join the call again")
        if record.left:
            raise AuthenticationError("this session has left the call: join again", code="session_ended")
        if record.grants != claims.grants:
            raise AuthenticationError(
                "the session's permissions changed since this SFU token was minted", code="grants_changed"
            )
        return record

    async def joined(self, session_id: str) -> None:
        key = self._key(session_id)
        if await self._redis.exists(key):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "joined", "1")
                pipe.expire(key, JOINED_TTL)
                await pipe.execute()

    async def left(self, session_id: str) -> None:
        await self._left(keys=[self._key(session_id)], args=[time.time(), AFTER_EXPIRY])

    async def media_users(self, cid: str) -> dict[str, list[str]]:
        """Every user with media sessions in call ``cid``: their session ids (a ``SCAN`` of the call's
        ``media:<cid>:*`` keys; ids never hold glob characters)."""
        prefix = self._store.key("media", cid, "")
        users: dict[str, list[str]] = {}
        async for raw in self._redis.scan_iter(match=prefix + "*", count=1000):
            key = _text(raw)
            sessions = sorted(_text(s) for s in await self._redis.smembers(key))
            if sessions:
                users[key[len(prefix) :]] = sessions
        return users

    async def media_sessions(self, cid: str, user_id: str) -> int:
        """How many media sessions ``user_id`` has in call ``cid`` (as the SFU reported them)."""
        return int(await self._redis.scard(self._store.key("media", cid, user_id)))

    async def media_session_ids(self, cid: str, user_id: str) -> set[str]:
        return {_text(s) for s in await self._redis.smembers(self._store.key("media", cid, user_id))}

    async def media_changed(self, cid: str, user_id: str, session_id: str, joined: bool) -> int:
        key = self._store.key("media", cid, user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if joined:
                pipe.sadd(key, session_id)
                pipe.expire(key, JOINED_TTL)
            else:
                pipe.srem(key, session_id)
            pipe.scard(key)
            results = await pipe.execute()
        return int(results[-1])
