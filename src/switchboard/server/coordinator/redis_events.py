"""The events hub of a coordinator that shares its state with others through Redis.

Every coordinator appends events to the one Redis stream of :class:`RedisStore` and delivers them
from a reader of that stream to its own connections, so a client connected to coordinator 1 receives
the events caused on coordinator 2, in id order, with the replay semantics of
:class:`~switchboard.server.coordinator.events.EventHub` (a client may reconnect to any coordinator
with its last event id, epoch and previous connection id).

What the coordinators share besides the log, under the store's prefix:

- ``conn:<id>``: the user a connection belongs to (kept ``LIVE_TTL`` s while it is open, then the
  ``WATCH_GRACE_SECONDS`` replay grace), so another coordinator can confirm a previous connection id;
- ``watching:<id>``: the calls a connection watches; ``watchers:<cid>``: the connections watching a
  call (an event for a call's watchers records all of them, wherever they are connected).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard.protocol.coordinator import Event
from switchboard.server.coordinator.events import WATCH_GRACE_SECONDS, Connection, EventHub
from switchboard.server.coordinator.redis_store import RedisStore, event_from_entry
from switchboard.server.coordinator.store import StoredEvent

log = logging.getLogger("switchboard.coordinator.events")

#: How long a live connection's owner record is kept without a refresh (s): a coordinator killed
#: without closing its sockets leaves them for this long, enough for its clients to come back.
LIVE_TTL = 24 * 3600
#: Longest wait of one blocking stream read (ms); the reader loops. Well under redis-py's default
#: socket timeout (5 s), which would otherwise end a quiet read with a TimeoutError; also about how
#: long closing waits for the reader to finish its read (a blocking read is not cancelled).
READ_BLOCK_MS = 500


class RedisEventHub(EventHub):
    """:class:`EventHub` whose events and connection watches live in Redis (one reader task)."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self._redis_store = store
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        #: the reader's own connection (blocking reads hold it) and its Redis client id, by which
        #: closing unblocks the read at once (``CLIENT UNBLOCK``)
        self._reader_client: Redis | None = None
        self._reader_id: int | None = None

    def _key(self, *parts: str) -> str:
        return self._redis_store.key(*parts)

    async def start(self) -> None:
        """Start reading the shared event stream from its current end."""
        if self._reader is None:
            self._closing = False
            last = await self._redis_store.last_event_id()
            self._reader = asyncio.get_running_loop().create_task(self._read(last))

    async def _read(self, last_id: int) -> None:
        redis = self._reader_client = self._redis_store.redis.client()
        stream = self._redis_store.events_key
        cursor = f"{last_id}-0"
        unreachable = False  # Redis went away: said once in one line, not a traceback a second
        while not self._closing:
            try:
                if self._reader_id is None:
                    self._reader_id = int(await redis.client_id())
                    if self._closing:
                        break
                answer = cast(list[Any], await redis.xread({stream: cursor}, block=READ_BLOCK_MS, count=500))
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._reader_id = None  # a new connection, a new client id
                if not unreachable:
                    log.error("cannot read the event stream from Redis (%s); retrying every 1 s", exc)
                unreachable = True
                await asyncio.sleep(1.0)
                continue
            except Exception:
                log.exception("reading the event stream failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            if unreachable:
                log.warning("reading the event stream from Redis again")
                unreachable = False
            for _stream, entries in answer:
                for entry_id, fields in entries:
                    stored = event_from_entry(entry_id, fields)
                    cursor = f"{stored.id}-0"
                    self._deliver(stored)

    def _deliver(self, stored: StoredEvent) -> None:
        targets = {conn_id for conn_id in stored.connections if conn_id in self._connections}
        for user_id in stored.users:
            targets |= self._by_user.get(user_id, set())
        for conn_id in targets:
            conn = self._connections.get(conn_id)
            if conn is not None and not conn.offer(stored.payload):
                log.warning("connection %s is too slow; closing it (it will replay on reconnect)", conn_id)
                asyncio.get_running_loop().create_task(self._close_slow(conn))

    async def publish(self, event: Event, *, users: set[str], watchers_of: str | None = None) -> StoredEvent:
        """Append ``event`` to the shared log; every coordinator's reader delivers it to its sockets."""
        connections: set[str] = set()
        if watchers_of:
            members = await self._redis_store.redis.smembers(self._key("watchers", watchers_of))
            connections = {m.decode() if isinstance(m, bytes) else m for m in members}
        payload = event.model_dump(mode="json", exclude={"id"})
        return await self._store.append_event(payload, users, connections)

    async def attach(self, conn: Connection, previous_connection_id: str | None) -> bool:
        redis = self._redis_store.redis
        self.register(conn, None)
        await redis.set(self._key("conn", conn.id), conn.user_id, ex=LIVE_TTL)
        if not previous_connection_id:
            return False
        owner = await redis.get(self._key("conn", previous_connection_id))
        if owner is None or (owner.decode() if isinstance(owner, bytes) else owner) != conn.user_id:
            return False
        watched = await redis.smembers(self._key("watching", previous_connection_id))
        for raw in watched:
            await self.watch_call(conn.id, raw.decode() if isinstance(raw, bytes) else raw)
        return True

    async def watch_call(self, conn_id: str, cid: str) -> None:
        if conn_id not in self._connections:
            return
        self.watch(conn_id, cid)
        async with self._redis_store.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self._key("watchers", cid), conn_id)
            pipe.expire(self._key("watchers", cid), LIVE_TTL)
            pipe.sadd(self._key("watching", conn_id), cid)
            pipe.expire(self._key("watching", conn_id), LIVE_TTL)
            await pipe.execute()

    def unregister(self, conn: Connection) -> None:
        known = conn.id in self._connections
        super().unregister(conn)
        if known:
            asyncio.get_running_loop().create_task(self._start_grace(conn.id))

    async def _start_grace(self, conn_id: str) -> None:
        """The closed connection's records expire after the replay grace (its watches keep collecting)."""
        with contextlib.suppress(Exception):
            async with self._redis_store.redis.pipeline(transaction=False) as pipe:
                pipe.expire(self._key("conn", conn_id), int(WATCH_GRACE_SECONDS))
                pipe.expire(self._key("watching", conn_id), int(WATCH_GRACE_SECONDS))
                await pipe.execute()

    async def close_all(self) -> None:
        await super().close_all()
        reader, self._reader = self._reader, None
        if reader is None:
            return
        # Not reader.cancel(): a cancellation that lands inside redis-py's blocking XREAD can be
        # swallowed and leave the task waiting forever (redis/redis-py#2028; seen here about once in
        # ten server stops under load). CLIENT UNBLOCK ends the read at once (as if it timed out), and
        # the loop sees it is closing; at worst the read ends by itself within READ_BLOCK_MS.
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_BLOCK_MS / 1000 + 2.0
        while not reader.done() and loop.time() < deadline:  # again until it lands on a blocked read
            if self._reader_id is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._redis_store.redis.client_unblock(self._reader_id)
            await asyncio.wait({reader}, timeout=0.05)
        if not reader.done():
            log.warning("the event stream reader did not stop after its read; cancelling it")
            reader.cancel()
            await asyncio.wait({reader}, timeout=1.0)
        client, self._reader_client, self._reader_id = self._reader_client, None, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
