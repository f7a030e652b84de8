"""The SFU node registry and call placement in Redis, shared by every coordinator and node.

Same rules as :class:`~switchboard.server.coordinator.sfu_nodes.SfuNodes`. Keys under the store's
prefix:

- ``node:<id>``: hash ``url``, ``internal_url``, ``engine``, ``sessions``, ``down_tracks``, ``cpu``,
  written by each heartbeat with a key expiry of the node TTL: a node that stops heartbeating
  (SIGKILL, a lost network) vanishes from Redis by itself;
- ``nodes``: sorted set of node ids scored by load (``sessions + down_tracks`` from the last
  heartbeat, plus 1 per call placed since); an id whose hash has expired is dropped when seen;
- ``callnode:<cid>``: the id of the node call ``cid`` is on (expires ``ASSIGNMENT_TTL`` s after its
  last join).

Placement is one Lua script (atomic in Redis), so two coordinators placing the first joins of one
call at the same moment get the same node. The script reads node hashes it derives from the sorted
set, so this works on one Redis (or a primary with replicas), not on Redis Cluster.
"""

from __future__ import annotations

from typing import Any

from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_nodes import (
    ASSIGNMENT_TTL,
    NODE_TTL,
    Placement,
    SfuNode,
    SfuNodes,
)

#: KEYS: callnode:<cid>, nodes. ARGV: node-hash key prefix, assignment TTL (s).
#: Returns {node id, moved (0/1)} or false when no node is live.
_PLACE = """
local current = redis.call('GET', KEYS[1])
if current and redis.call('EXISTS', ARGV[1] .. current) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {current, 0}
end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    redis.call('SET', KEYS[1], id, 'EX', ARGV[2])
    redis.call('ZINCRBY', KEYS[2], 1, id)
    if current then return {id, 1} end
    return {id, 0}
  end
  redis.call('ZREM', KEYS[2], id)
end
return false
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _node(node_id: str, raw: dict[Any, Any]) -> SfuNode | None:
    if not raw:
        return None
    data = {_text(k): _text(v) for k, v in raw.items()}
    try:
        return SfuNode(
            id=node_id,
            url=data["url"],
            internal_url=data["internal_url"],
            engine=data.get("engine", "embedded"),
            sessions=int(data.get("sessions", "0")),
            down_tracks=int(data.get("down_tracks", "0")),
            cpu=float(data.get("cpu", "0")),
        )
    except (KeyError, ValueError):
        return None


class RedisSfuNodes(SfuNodes):
    """:class:`SfuNodes` kept in Redis (nothing is held in this process).

    ``store`` gives the connection and key prefix; ``ttl``: seconds after its last heartbeat a node
    counts as dead.
    """

    def __init__(self, store: RedisStore, *, ttl: float = NODE_TTL) -> None:
        super().__init__(ttl=ttl)
        self._store = store
        self._redis = store.redis
        self._place = store.redis.register_script(_PLACE)

    def _node_key(self, node_id: str) -> str:
        return self._store.key("node", node_id)

    async def heartbeat(self, node: SfuNode) -> None:
        key = self._node_key(node.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "url": node.url,
                    "internal_url": node.internal_url,
                    "engine": node.engine,
                    "sessions": str(node.sessions),
                    "down_tracks": str(node.down_tracks),
                    "cpu": f"{node.cpu:.1f}",
                },
            )
            pipe.pexpire(key, int(self.ttl * 1000))
            pipe.zadd(self._store.key("nodes"), {node.id: node.load})
            await pipe.execute()

    async def deregister(self, node_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._node_key(node_id))
            pipe.zrem(self._store.key("nodes"), node_id)
            await pipe.execute()

    async def _get(self, node_id: str) -> SfuNode | None:
        return _node(node_id, await self._redis.hgetall(self._node_key(node_id)))

    async def live(self) -> list[SfuNode]:
        ids = [_text(i) for i in await self._redis.zrange(self._store.key("nodes"), 0, -1)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self._node_key(node_id))
            raws = await pipe.execute()
        nodes: list[SfuNode] = []
        for node_id, raw in zip(ids, raws, strict=True):
            node = _node(node_id, raw)
            if node is None:
                await self._redis.zrem(self._store.key("nodes"), node_id)
            else:
                nodes.append(node)
        return nodes

    async def node_of(self, cid: str) -> SfuNode | None:
        node_id = await self._redis.get(self._store.key("callnode", cid))
        return None if node_id is None else await self._get(_text(node_id))

    async def place(self, cid: str) -> Placement | None:
        result = await self._place(
            keys=[self._store.key("callnode", cid), self._store.key("nodes")],
            args=[self._node_key(""), ASSIGNMENT_TTL],
        )
        if not result:
            return None
        node_id, moved = _text(result[0]), int(result[1])
        node = await self._get(node_id)
        if node is None:  # expired between the script and this read: place again
            return await self.place(cid)
        return Placement(node, moved=bool(moved))

    async def call_ended(self, cid: str) -> None:
        await self._redis.delete(self._store.key("callnode", cid))
