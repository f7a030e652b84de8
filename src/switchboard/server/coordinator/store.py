"""Coordinator state behind one small interface.

Handlers talk only to :class:`Store`; :class:`MemoryStore` keeps everything in this process. A Redis
store implements the same methods later (every method is async and takes/returns plain records), so
the handlers do not change when state moves out of process.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections import deque
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from switchboard.protocol.coordinator import CallSettings, utcnow


@dataclass
class UserRecord:
    id: str
    name: str | None = None
    image: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class MemberRecord:
    user_id: str
    role: str
    custom: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class CallRecord:
    type: str
    id: str
    created_by: str
    settings: CallSettings
    backstage: bool
    custom: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    ended_at: datetime | None = None

    @property
    def cid(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass
class RingRecord:
    """One ring of a call: who rings, and each callee's state (pending/accepted/rejected/missed/cancelled).

    ``deadline`` and ``created_at`` are Unix times in seconds (``deadline`` is ``inf`` when the call
    type has no ring timeout); being wall-clock times, they survive a server restart.
    """

    cid: str
    caller: str
    callees: dict[str, str]
    deadline: float
    video: bool = False
    caller_active: bool = True
    ring_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)

    def pending(self) -> list[str]:
        return [user for user, state in self.callees.items() if state == "pending"]


@dataclass(frozen=True)
class StoredEvent:
    id: int
    payload: dict[str, Any]
    users: frozenset[str]
    connections: frozenset[str]


class Store(Protocol):
    async def upsert_user(self, user: UserRecord) -> UserRecord: ...
    async def get_user(self, user_id: str) -> UserRecord | None: ...
    async def get_call(self, cid: str) -> CallRecord | None: ...
    async def create_call(self, call: CallRecord, members: list[MemberRecord]) -> tuple[CallRecord, bool]:
        """Insert ``call`` with ``members`` unless it exists; return the stored call and if it is new."""
        ...

    async def save_call(self, call: CallRecord) -> None: ...
    async def open_calls_created_by(self, user_id: str) -> int:
        """How many calls ``user_id`` created that have not ended."""
        ...

    async def list_members(self, cid: str) -> list[MemberRecord]: ...
    async def upsert_members(self, cid: str, members: list[MemberRecord]) -> None: ...
    async def remove_members(self, cid: str, user_ids: list[str]) -> list[str]: ...
    async def call_rings(self, cid: str) -> list[RingRecord]:
        """The rings of one call still in progress, oldest first (a call may ring several times)."""
        ...

    async def save_ring(self, ring: RingRecord) -> None: ...
    async def delete_ring(self, ring_id: str) -> None: ...
    async def list_rings(self) -> list[RingRecord]:
        """Every ring still in progress (to re-arm deadlines on start and list a user's rings)."""
        ...

    async def claim_due_rings(self, before: float, lease: float, limit: int = 100) -> list[tuple[str, str]]:
        """Claim up to ``limit`` rings whose deadline (Unix s) is at or before ``before``.

        Returns ``(cid, ring_id)`` pairs; each is leased to the caller for ``lease`` s (not returned
        to another caller in that time), after which a ring still in the store is due again. This
        is how a ring's deadline fires when the coordinator that started it is gone.
        """
        ...

    def lock(self, name: str, *, timeout: float = 10.0) -> AbstractAsyncContextManager[Any]:
        """A lock on ``name`` held by one holder at a time among everyone using this store."""
        ...

    async def event_epoch(self) -> str:
        """The epoch of this store's event ids: ids increase within it and are never reused.

        A store that loses its events (a new in-memory store after a restart) starts a new epoch,
        so a client holding an id from the old one knows it cannot be replayed from it.
        """
        ...

    async def append_event(
        self, payload: dict[str, Any], users: set[str], connections: set[str]
    ) -> StoredEvent:
        """Give the event the next id and keep it (bounded) for replay."""
        ...

    async def events_after(self, last_id: int) -> list[StoredEvent] | None:
        """Events with id > ``last_id`` in order, or None when some were already dropped from the buffer."""
        ...

    async def last_event_id(self) -> int: ...


class MemoryStore:
    """In-process store. Returns copies, so callers cannot mutate stored state by accident."""

    def __init__(self, *, event_buffer: int = 10_000) -> None:
        self._users: dict[str, UserRecord] = {}
        self._calls: dict[str, CallRecord] = {}
        self._members: dict[str, dict[str, MemberRecord]] = {}
        self._rings: dict[str, RingRecord] = {}
        self._events: deque[StoredEvent] = deque(maxlen=event_buffer)
        self._next_event_id = 1
        self._epoch = uuid.uuid4().hex
        self._lock = asyncio.Lock()
        self._leases: dict[str, float] = {}
        self._named_locks: dict[str, asyncio.Lock] = {}
        #: calls not ended, by the user who created them
        self._open_by_creator: dict[str, set[str]] = {}

    async def upsert_user(self, user: UserRecord) -> UserRecord:
        existing = self._users.get(user.id)
        if existing is not None:
            user.created_at = existing.created_at
        user.updated_at = utcnow()
        self._users[user.id] = copy.deepcopy(user)
        return copy.deepcopy(user)

    async def get_user(self, user_id: str) -> UserRecord | None:
        user = self._users.get(user_id)
        return copy.deepcopy(user) if user else None

    async def get_call(self, cid: str) -> CallRecord | None:
        call = self._calls.get(cid)
        return copy.deepcopy(call) if call else None

    async def create_call(self, call: CallRecord, members: list[MemberRecord]) -> tuple[CallRecord, bool]:
        async with self._lock:
            existing = self._calls.get(call.cid)
            if existing is not None:
                return copy.deepcopy(existing), False
            self._calls[call.cid] = copy.deepcopy(call)
            self._members[call.cid] = {m.user_id: copy.deepcopy(m) for m in members}
            if call.ended_at is None:
                self._open_by_creator.setdefault(call.created_by, set()).add(call.cid)
            return copy.deepcopy(call), True

    async def save_call(self, call: CallRecord) -> None:
        call.updated_at = utcnow()
        self._calls[call.cid] = copy.deepcopy(call)
        if call.ended_at is not None:
            open_calls = self._open_by_creator.get(call.created_by, set())
            open_calls.discard(call.cid)
            if not open_calls:
                self._open_by_creator.pop(call.created_by, None)

    async def open_calls_created_by(self, user_id: str) -> int:
        return len(self._open_by_creator.get(user_id, ()))

    async def list_members(self, cid: str) -> list[MemberRecord]:
        return [copy.deepcopy(m) for m in self._members.get(cid, {}).values()]

    async def upsert_members(self, cid: str, members: list[MemberRecord]) -> None:
        table = self._members.setdefault(cid, {})
        for member in members:
            old = table.get(member.user_id)
            if old is not None:
                member.created_at = old.created_at
            table[member.user_id] = copy.deepcopy(member)

    async def remove_members(self, cid: str, user_ids: list[str]) -> list[str]:
        table = self._members.get(cid, {})
        return [uid for uid in user_ids if table.pop(uid, None) is not None]

    async def call_rings(self, cid: str) -> list[RingRecord]:
        return [copy.deepcopy(ring) for ring in self._rings.values() if ring.cid == cid]

    async def save_ring(self, ring: RingRecord) -> None:
        self._rings[ring.ring_id] = copy.deepcopy(ring)

    async def delete_ring(self, ring_id: str) -> None:
        self._rings.pop(ring_id, None)
        self._leases.pop(ring_id, None)

    async def list_rings(self) -> list[RingRecord]:
        return [copy.deepcopy(ring) for ring in self._rings.values()]

    async def claim_due_rings(self, before: float, lease: float, limit: int = 100) -> list[tuple[str, str]]:
        now = time.time()
        claimed: list[tuple[str, str]] = []
        for ring in self._rings.values():
            if len(claimed) >= limit:
                break
            if ring.deadline <= before and self._leases.get(ring.ring_id, 0.0) <= now:
                self._leases[ring.ring_id] = now + lease
                claimed.append((ring.cid, ring.ring_id))
        return claimed

    def lock(self, name: str, *, timeout: float = 10.0) -> AbstractAsyncContextManager[Any]:
        return self._named_locks.setdefault(name, asyncio.Lock())

    async def event_epoch(self) -> str:
        return self._epoch

    async def append_event(
        self, payload: dict[str, Any], users: set[str], connections: set[str]
    ) -> StoredEvent:
        event_id = self._next_event_id
        self._next_event_id += 1
        stored = StoredEvent(event_id, {**payload, "id": event_id}, frozenset(users), frozenset(connections))
        self._events.append(stored)
        return stored

    async def events_after(self, last_id: int) -> list[StoredEvent] | None:
        if last_id >= self._next_event_id - 1:
            return []
        if not self._events or self._events[0].id > last_id + 1:
            return None
        return [event for event in self._events if event.id > last_id]

    async def last_event_id(self) -> int:
        return self._next_event_id - 1
