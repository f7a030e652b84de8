"""The events hub: live connections, who watches which call, fan-out and replay.

Every event gets an increasing id from the store, within the store's epoch (a store that starts
over starts a new epoch, so an id is never reused under the same epoch). A connection receives an
event when its user is one of the event's users (members of the call, or the one user a
``call.ring_ended`` is for) or the connection watches the call. A client that reconnects with the
last id it saw, its epoch and its previous connection id, gets every event it missed (bounded by
the store's buffer), then the live stream, never one twice. When that is impossible (another
epoch, a cursor out of the buffer, a previous connection this server does not know) it is told so
(``replay_complete`` false) and reloads its state instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from switchboard.protocol.coordinator import Event
from switchboard.server.address_slots import AddressSlots
from switchboard.server.coordinator.store import Store, StoredEvent

log = logging.getLogger("switchboard.coordinator.events")

#: How long a dropped connection's watches are kept for a client that comes back.
WATCH_GRACE_SECONDS = 120.0


@dataclass(eq=False)
class Connection:
    id: str
    user_id: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(maxsize=2000))
    last_sent_id: int = 0
    last_seen: float = field(default_factory=time.monotonic)

    def offer(self, payload: dict[str, Any] | None) -> bool:
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            return False
        return True

    async def writer(self) -> None:
        """Send queued events in order; an id already sent (replay overlap) is skipped."""
        while True:
            payload = await self.queue.get()
            if payload is None or self.ws.closed:
                return
            event_id = int(payload.get("id") or 0)
            if event_id and event_id <= self.last_sent_id:
                continue
            await self.ws.send_json(payload)
            if event_id:
                self.last_sent_id = event_id


class EventHub:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._connections: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}
        self._watchers: dict[str, set[str]] = {}
        self._watching: dict[str, set[str]] = {}
        self._dropped: dict[str, tuple[str, float]] = {}
        #: events sockets of this coordinator that have not sent their auth frame yet, per address
        self.unauthenticated = AddressSlots()

    # ---------------------------------------------------------------- connections

    async def start(self) -> None:
        """Start delivering events (a hub shared through Redis starts reading its stream here)."""
        return

    async def attach(self, conn: Connection, previous_connection_id: str | None) -> bool:
        """:meth:`register`, for hubs that confirm the previous connection elsewhere (Redis)."""
        return self.register(conn, previous_connection_id)

    async def watch_call(self, conn_id: str, cid: str) -> None:
        """:meth:`watch`, for hubs that share watches with other coordinators (Redis)."""
        self.watch(conn_id, cid)

    def register(self, conn: Connection, previous_connection_id: str | None) -> bool:
        """Add a live connection; it inherits the watches of ``previous_connection_id`` when that was the
        same user's. Returns whether it did (only then may the old connection's events be replayed)."""
        self._connections[conn.id] = conn
        self._by_user.setdefault(conn.user_id, set()).add(conn.id)
        self._expire_dropped()
        if not previous_connection_id:
            return False
        old = self._connections.get(previous_connection_id)
        if self._owner(previous_connection_id) != conn.user_id:
            return False
        # Take over the previous connection's watches (it dropped, or has not noticed it is dead yet).
        for cid in self._watching.get(previous_connection_id, set()):
            self.watch(conn.id, cid)
        if old is None:
            self._forget(previous_connection_id)
        return True

    def _owner(self, conn_id: str) -> str | None:
        """The user a live or recently dropped connection belongs to."""
        live = self._connections.get(conn_id)
        if live is not None:
            return live.user_id
        dropped = self._dropped.get(conn_id)
        return dropped[0] if dropped is not None else None

    def unregister(self, conn: Connection) -> None:
        """Forget a closed connection.

        Its watches stay, collecting events for its replay, for ``WATCH_GRACE_SECONDS``.
        """
        if self._connections.pop(conn.id, None) is None:
            return
        users = self._by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn.id)
            if not users:
                del self._by_user[conn.user_id]
        self._dropped[conn.id] = (conn.user_id, time.monotonic())
        conn.offer(None)

    def _forget(self, conn_id: str) -> None:
        self._dropped.pop(conn_id, None)
        for cid in self._watching.pop(conn_id, set()):
            watchers = self._watchers.get(cid)
            if watchers is not None:
                watchers.discard(conn_id)
                if not watchers:
                    del self._watchers[cid]

    def _expire_dropped(self) -> None:
        now = time.monotonic()
        for conn_id in [c for c, (_, t) in self._dropped.items() if now - t > WATCH_GRACE_SECONDS]:
            self._forget(conn_id)

    def connection(self, conn_id: str | None, user_id: str) -> Connection | None:
        conn = self._connections.get(conn_id or "")
        return conn if conn is not None and conn.user_id == user_id else None

    def connection_count(self, user_id: str) -> int:
        """How many live events sockets ``user_id`` has open."""
        return len(self._by_user.get(user_id, ()))

    def connections(self) -> list[Connection]:
        return list(self._connections.values())

    def watch(self, conn_id: str, cid: str) -> None:
        if conn_id not in self._connections:
            return
        self._expire_dropped()
        self._watchers.setdefault(cid, set()).add(conn_id)
        self._watching.setdefault(conn_id, set()).add(cid)

    def watchers(self, cid: str) -> set[str]:
        return set(self._watchers.get(cid, set()))

    # ---------------------------------------------------------------- publishing

    async def publish(self, event: Event, *, users: set[str], watchers_of: str | None = None) -> StoredEvent:
        """Store ``event`` (giving it its id) and deliver it to every connection it is for."""
        connections = self.watchers(watchers_of) if watchers_of else set()
        payload = event.model_dump(mode="json", exclude={"id"})
        stored = await self._store.append_event(payload, users, connections)
        targets: set[str] = set(connections)
        for user_id in users:
            targets |= self._by_user.get(user_id, set())
        for conn_id in targets:
            conn = self._connections.get(conn_id)
            if conn is not None and not conn.offer(stored.payload):
                log.warning("connection %s is too slow; closing it (it will replay on reconnect)", conn_id)
                asyncio.get_running_loop().create_task(self._close_slow(conn))
        return stored

    async def _close_slow(self, conn: Connection) -> None:
        self.unregister(conn)
        with contextlib.suppress(Exception):
            await conn.ws.close(code=4008, message=b"too slow")

    async def replay(
        self,
        conn: Connection,
        last_event_id: int,
        previous_connection_id: str | None,
        *,
        epoch: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Events after ``last_event_id`` meant for this user or the previous connection, and whether
        that is all of them.

        Nothing can be replayed (``([], False)``) from a cursor of another ``epoch``, from one ahead
        of this store's last id (ids that started over), or from one that left the buffer. Pass
        ``previous_connection_id`` only when :meth:`register` confirmed it was this user's.
        """
        if epoch is not None and epoch != await self._store.event_epoch():
            return [], False
        if last_event_id > await self._store.last_event_id():
            return [], False
        events = await self._store.events_after(last_event_id)
        if events is None:
            return [], False
        own = {conn.id, previous_connection_id or ""}
        return [e.payload for e in events if conn.user_id in e.users or (e.connections & own)], True

    async def close_all(self) -> None:
        for conn in list(self._connections.values()):
            self.unregister(conn)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"server shutdown")
