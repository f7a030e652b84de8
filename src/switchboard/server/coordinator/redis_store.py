"""Coordinator state in Redis, shared by several coordinator processes (the :class:`Store` interface).

Keys, all under one prefix (``sb:`` by default, so one Redis can hold several deployments):

- ``user:<id>``, ``call:<cid>``: JSON records; ``members:<cid>``: hash user id → JSON member;
  ``open-calls:<user_id>``: set of the cids that user created and has not ended;
- ``ring:<ring_id>``: JSON ring; ``rings`` / ``rings:<cid>``: sets of ring ids in progress;
  ``ring_deadlines``: sorted set of ``<cid> <ring_id>`` by deadline (Unix seconds), from which a live
  coordinator claims overdue rings with a lease (:meth:`RedisStore.claim_due_rings`), so a ring's
  deadline fires even when the coordinator that started it died;
- ``events``: a Redis stream holding the event log, entry ``<n>-0`` for event id ``n``;
  ``events:last``: the last id given; ``epoch``: this store's event epoch (kept as long as Redis
  keeps its data, so ids survive coordinator restarts). An event is given its id and appended in one
  Lua script, so ids from several coordinators are increasing in stream order;
- ``lock:<name>``: short locks (:meth:`RedisStore.lock`) serialising one call's ring changes across
  coordinators.

Redis persistence (RDB/AOF) decides what survives a Redis restart; when the ``epoch`` key is gone a
new epoch starts and clients reload their state instead of replaying.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

from redis.asyncio import Redis

from switchboard.protocol.coordinator import CallSettings, utcnow
from switchboard.server.coordinator.store import (
    CallRecord,
    MemberRecord,
    RingRecord,
    StoredEvent,
    UserRecord,
)

#: KEYS: events stream, last-id counter, epoch. ARGV: payload JSON, users JSON, connections JSON, max
#: length, a new epoch (used only when the epoch key is gone: Redis lost its data, ids start over).
_APPEND = """
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[3], ARGV[5])
  redis.call('DEL', KEYS[1], KEYS[2])
end
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], id .. '-0', 'p', ARGV[1], 'u', ARGV[2], 'c', ARGV[3])
return id
"""

#: KEYS: deadlines zset. ARGV: due-before (s), lease until (s), max count. Re-scores each due entry to
#: the lease end (so one claimer at a time; if it dies the entry is due again) and returns them.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
"""

_EPOCH_SETNX = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _user_json(user: UserRecord) -> str:
    data = asdict(user)
    data["created_at"] = user.created_at.isoformat()
    data["updated_at"] = user.updated_at.isoformat()
    return json.dumps(data)


def _user_from(raw: str | bytes) -> UserRecord:
    data = json.loads(raw)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["updated_at"] = datetime.fromisoformat(data["updated_at"])
    return UserRecord(**data)


def _call_json(call: CallRecord) -> str:
    return json.dumps(
        {
            "type": call.type,
            "id": call.id,
            "created_by": call.created_by,
            "settings": call.settings.model_dump(mode="json"),
            "backstage": call.backstage,
            "custom": call.custom,
            "created_at": call.created_at.isoformat(),
            "updated_at": call.updated_at.isoformat(),
            "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        }
    )


def _call_from(raw: str | bytes) -> CallRecord:
    data = json.loads(raw)
    return CallRecord(
        type=data["type"],
        id=data["id"],
        created_by=data["created_by"],
        settings=CallSettings.model_validate(data["settings"]),
        backstage=data["backstage"],
        custom=data["custom"],
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        ended_at=_dt(data["ended_at"]),
    )


def _member_json(member: MemberRecord) -> str:
    data = asdict(member)
    data["created_at"] = member.created_at.isoformat()
    return json.dumps(data)


def _member_from(raw: str | bytes) -> MemberRecord:
    data = json.loads(raw)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    return MemberRecord(**data)


def _ring_json(ring: RingRecord) -> str:
    data = asdict(ring)
    data["deadline"] = None if ring.deadline == float("inf") else ring.deadline
    return json.dumps(data)


def _ring_from(raw: str | bytes) -> RingRecord:
    data = json.loads(raw)
    if data["deadline"] is None:
        data["deadline"] = float("inf")
    return RingRecord(**data)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def event_from_entry(entry_id: Any, fields: Any) -> StoredEvent:
    """A :class:`StoredEvent` from one ``events`` stream entry (id ``<n>-0``)."""
    get = {_text(k): v for k, v in cast(dict[Any, Any], fields).items()}
    event_id = int(_text(entry_id).split("-", 1)[0])
    payload = json.loads(get["p"])
    payload["id"] = event_id
    return StoredEvent(event_id, payload, frozenset(json.loads(get["u"])), frozenset(json.loads(get["c"])))


class RedisStore:
    """:class:`~switchboard.server.coordinator.store.Store` on Redis (redis-py asyncio).

    ``redis`` is a client the caller owns (``Redis.from_url("redis://host:6379/0")`` or a unix
    socket URL); ``prefix`` namespaces every key; ``event_buffer`` bounds the event log kept for
    replay (events beyond it cannot be replayed: clients reload). Redis errors
    (``redis.exceptions.ConnectionError``) propagate: the HTTP layer answers 500 and clients retry.
    """

    def __init__(self, redis: Redis, *, prefix: str = "sb:", event_buffer: int = 10_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self._event_buffer = event_buffer
        self._append = redis.register_script(_APPEND)
        self._claim = redis.register_script(_CLAIM)
        self._epoch_setnx = redis.register_script(_EPOCH_SETNX)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "sb:", event_buffer: int = 10_000) -> RedisStore:
        """A store on a new client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
        return cls(Redis.from_url(url), prefix=prefix, event_buffer=event_buffer)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def close(self) -> None:
        await self.redis.aclose()

    # ---------------------------------------------------------------- users

    async def upsert_user(self, user: UserRecord) -> UserRecord:
        raw = await self.redis.get(self.key("user", user.id))
        if raw is not None:
            user.created_at = _user_from(raw).created_at
        user.updated_at = utcnow()
        await self.redis.set(self.key("user", user.id), _user_json(user))
        return _user_from(_user_json(user))

    async def get_user(self, user_id: str) -> UserRecord | None:
        raw = await self.redis.get(self.key("user", user_id))
        return _user_from(raw) if raw is not None else None

    # ---------------------------------------------------------------- calls and members

    async def get_call(self, cid: str) -> CallRecord | None:
        raw = await self.redis.get(self.key("call", cid))
        return _call_from(raw) if raw is not None else None

    async def create_call(self, call: CallRecord, members: list[MemberRecord]) -> tuple[CallRecord, bool]:
        created = await self.redis.set(self.key("call", call.cid), _call_json(call), nx=True)
        if not created:
            existing = await self.get_call(call.cid)
            assert existing is not None  # calls are never deleted
            return existing, False
        if members:
            await self.redis.hset(
                self.key("members", call.cid), mapping={mb.user_id: _member_json(mb) for mb in members}
            )
        if call.ended_at is None:
            await self.redis.sadd(self.key("open-calls", call.created_by), call.cid)
        return _call_from(_call_json(call)), True

    async def save_call(self, call: CallRecord) -> None:
        call.updated_at = utcnow()
        await self.redis.set(self.key("call", call.cid), _call_json(call))
        if call.ended_at is not None:
            await self.redis.srem(self.key("open-calls", call.created_by), call.cid)

    async def open_calls_created_by(self, user_id: str) -> int:
        return int(await self.redis.scard(self.key("open-calls", user_id)))

    async def list_members(self, cid: str) -> list[MemberRecord]:
        table = await self.redis.hgetall(self.key("members", cid))
        members = [_member_from(raw) for raw in table.values()]
        members.sort(key=lambda mb: mb.created_at)
        return members

    async def upsert_members(self, cid: str, members: list[MemberRecord]) -> None:
        if not members:
            return
        key = self.key("members", cid)
        old = await self.redis.hmget(key, [mb.user_id for mb in members])
        for member, raw in zip(members, old, strict=True):
            if raw is not None:
                member.created_at = _member_from(raw).created_at
        await self.redis.hset(key, mapping={mb.user_id: _member_json(mb) for mb in members})

    async def remove_members(self, cid: str, user_ids: list[str]) -> list[str]:
        key = self.key("members", cid)
        removed: list[str] = []
        for uid in user_ids:
            if await self.redis.hdel(key, uid):
                removed.append(uid)
        return removed

    # ---------------------------------------------------------------- rings

    async def _rings(self, ring_ids: set[Any]) -> list[RingRecord]:
        if not ring_ids:
            return []
        raws = await self.redis.mget([self.key("ring", _text(rid)) for rid in ring_ids])
        rings = [_ring_from(raw) for raw in raws if raw is not None]
        rings.sort(key=lambda ring: ring.created_at)
        return rings

    async def call_rings(self, cid: str) -> list[RingRecord]:
        return await self._rings(await self.redis.smembers(self.key("rings", cid)))

    async def list_rings(self) -> list[RingRecord]:
        return await self._rings(await self.redis.smembers(self.key("rings")))

    async def save_ring(self, ring: RingRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key("ring", ring.ring_id), _ring_json(ring))
            pipe.sadd(self.key("rings"), ring.ring_id)
            pipe.sadd(self.key("rings", ring.cid), ring.ring_id)
            if ring.deadline != float("inf"):
                # NX: saving a ring again keeps a lease a coordinator holds on its deadline
                pipe.zadd(self.key("ring_deadlines"), {f"{ring.cid} {ring.ring_id}": ring.deadline}, nx=True)
            await pipe.execute()

    async def delete_ring(self, ring_id: str) -> None:
        raw = await self.redis.get(self.key("ring", ring_id))
        if raw is None:
            return
        ring = _ring_from(raw)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key("ring", ring_id))
            pipe.srem(self.key("rings"), ring_id)
            pipe.srem(self.key("rings", ring.cid), ring_id)
            pipe.zrem(self.key("ring_deadlines"), f"{ring.cid} {ring_id}")
            await pipe.execute()

    async def claim_due_rings(self, before: float, lease: float, limit: int = 100) -> list[tuple[str, str]]:
        """Claim rings whose deadline is at or before ``before`` (Unix s): ``(cid, ring_id)`` pairs.

        Each claimed ring is leased to the caller for ``lease`` s: no other coordinator gets it in that
        time; a ring the claimer has not finished (deleted) by then is due again, so a coordinator that
        dies holding a lease delays that deadline by at most ``lease`` s.
        """
        due = await self._claim(keys=[self.key("ring_deadlines")], args=[before, time.time() + lease, limit])
        pairs: list[tuple[str, str]] = []
        for member in cast(list[Any], due):
            cid, ring_id = _text(member).rsplit(" ", 1)
            pairs.append((cid, ring_id))
        return pairs

    def lock(self, name: str, *, timeout: float = 10.0) -> AbstractAsyncContextManager[Any]:
        """A lock shared by every coordinator on this Redis (expires after ``timeout`` s if its holder
        dies); waits up to 1.5 times ``timeout`` s for it, else ``redis.exceptions.LockError``."""
        return self.redis.lock(self.key("lock", name), timeout=timeout, blocking_timeout=timeout * 1.5)

    # ---------------------------------------------------------------- events

    async def event_epoch(self) -> str:
        """Read from Redis every time (not cached): if Redis lost its data, a new epoch has begun."""
        raw = await self._epoch_setnx(keys=[self.key("epoch")], args=[uuid.uuid4().hex])
        return _text(cast(str | bytes, raw))

    async def append_event(
        self, payload: dict[str, Any], users: set[str], connections: set[str]
    ) -> StoredEvent:
        event_id = int(
            await self._append(
                keys=[self.key("events"), self.key("events", "last"), self.key("epoch")],
                args=[
                    json.dumps(payload),
                    json.dumps(sorted(users)),
                    json.dumps(sorted(connections)),
                    self._event_buffer,
                    uuid.uuid4().hex,
                ],
            )
        )
        return StoredEvent(event_id, {**payload, "id": event_id}, frozenset(users), frozenset(connections))

    async def events_after(self, last_id: int) -> list[StoredEvent] | None:
        if last_id >= await self.last_event_id():
            return []
        first = cast(list[Any], await self.redis.xrange(self.key("events"), count=1))
        if not first or int(_text(first[0][0]).split("-", 1)[0]) > last_id + 1:
            return None
        entries = cast(list[Any], await self.redis.xrange(self.key("events"), min=f"{last_id + 1}-0"))
        return [event_from_entry(entry_id, fields) for entry_id, fields in entries]

    @property
    def events_key(self) -> str:
        """The stream key holding the event log (for readers that fan events out)."""
        return self.key("events")

    async def last_event_id(self) -> int:
        raw = await self.redis.get(self.key("events", "last"))
        return int(raw) if raw is not None else 0
