"""An SFU node announcing itself in Redis so the coordinators place calls on it.

``switchboard sfu --redis URL`` (and the SFU process of ``switchboard coordinator --redis`` without
``--sfu-url``) runs a :class:`NodeRegistration`: a heartbeat every
:data:`~switchboard.server.coordinator.sfu_nodes.HEARTBEAT_INTERVAL` s writes the node's URLs and
load with a key expiry of :data:`~switchboard.server.coordinator.sfu_nodes.NODE_TTL` s, and a
clean stop deletes it (``server/coordinator/redis_sfu_nodes.py`` has the keys). A heartbeat that
fails (Redis away) is logged and retried at the next interval: the node keeps serving the calls it
has, and reappears once Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from switchboard.server.coordinator.redis_sfu_nodes import RedisSfuNodes
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_nodes import HEARTBEAT_INTERVAL, NODE_TTL, SfuNode
from switchboard.server.sfu.room import ParticipantHook
from switchboard.server.sfu.signalling import SignallingServer

log = logging.getLogger("switchboard.sfu.registration")

#: (sessions, forwarded down-tracks) of a node now
LoadProbe = Callable[[], tuple[int, int]]


def new_node_id() -> str:
    """A node id unique in the deployment: the host name's first label and 8 random hex digits."""
    return f"{os.uname().nodename.split('.')[0]}-{uuid.uuid4().hex[:8]}"


def signalling_load(server: SignallingServer[Any, Any]) -> tuple[int, int]:
    """Sessions and forwarded down-tracks of an SFU of either engine (down-tracks where it keeps
    them: each embedded participant's ``downtracks``; Janus participants count their sessions only)."""
    sessions = down = 0
    for room in server.rooms.values():
        for participant in room.participants.values():
            sessions += 1
            down += sum(
                1 for d in getattr(participant, "downtracks", ()) if getattr(d, "source", None) is not None
            )
    return sessions, down


class SessionCounter:
    """Counts a node's sessions from its join/leave reports, for an engine whose participants do not
    keep down-tracks (Janus): down-tracks are estimated as ``n·(n-1)`` per call of ``n`` sessions
    (each session receives the audio of every other)."""

    def __init__(self, hook: ParticipantHook | None) -> None:
        self._hook = hook
        self._calls: dict[str, set[str]] = {}

    async def participant_changed(self, cid: str, user_id: str, session_id: str, joined: bool) -> None:
        sessions = self._calls.setdefault(cid, set())
        if joined:
            sessions.add(session_id)
        else:
            sessions.discard(session_id)
            if not sessions:
                del self._calls[cid]
        if self._hook is not None:
            await self._hook(cid, user_id, session_id, joined)

    def load(self) -> tuple[int, int]:
        sizes = [len(s) for s in self._calls.values()]
        return sum(sizes), sum(n * (n - 1) for n in sizes)


def internal_url_of(url: str) -> str:
    """``ws://host:port/sfu`` → ``http://host:port`` (``wss`` → ``https``)."""
    return url.replace("wss://", "https://", 1).replace("ws://", "http://", 1).removesuffix("/sfu")


class NodeRegistration:
    """Registers one SFU node in Redis and heartbeats its load until :meth:`stop`.

    ``url``: the signalling URL clients join; ``internal_url``: where coordinators reach the node
    (default: ``url`` over http); ``probe()`` returns (sessions, down-tracks) now. ``ttl`` and
    ``interval`` in seconds.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        url: str,
        probe: LoadProbe,
        engine: str = "embedded",
        prefix: str = "sb:",
        node_id: str | None = None,
        internal_url: str | None = None,
        interval: float = HEARTBEAT_INTERVAL,
        ttl: float = NODE_TTL,
    ) -> None:
        self.node_id = node_id or new_node_id()
        self.url = url
        self.internal_url = internal_url or internal_url_of(url)
        self.engine = engine
        self._probe = probe
        self._interval = interval
        self._store = RedisStore.from_url(redis_url, prefix=prefix)
        self._nodes = RedisSfuNodes(self._store, ttl=ttl)
        self._task: asyncio.Task[None] | None = None
        self._registered = False
        self._cpu_mark = (time.monotonic(), time.process_time())

    def _cpu(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        then_wall, then_cpu = self._cpu_mark
        self._cpu_mark = (wall, cpu)
        return 100.0 * (cpu - then_cpu) / max(wall - then_wall, 1e-6)

    def snapshot(self) -> SfuNode:
        """The node as the next heartbeat reports it."""
        sessions, down_tracks = self._probe()
        return SfuNode(
            id=self.node_id,
            url=self.url,
            internal_url=self.internal_url,
            engine=self.engine,
            sessions=sessions,
            down_tracks=down_tracks,
            cpu=self._cpu(),
        )

    async def start(self) -> None:
        """First heartbeat now (RuntimeError when Redis does not answer), then one every interval."""
        try:
            await self._nodes.heartbeat(self.snapshot())
        except (RedisError, OSError) as exc:
            await self._store.close()
            raise RuntimeError(f"cannot register the SFU node in Redis: {exc}") from None
        self._registered = True
        self._task = asyncio.create_task(self._beat(), name=f"sfu-node-heartbeat-{self.node_id}")
        log.info("SFU node %s registered (%s)", self.node_id, self.url)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._nodes.heartbeat(self.snapshot())
            except (RedisError, OSError) as exc:
                log.warning("SFU node %s: heartbeat failed: %s", self.node_id, exc)

    async def stop(self) -> None:
        """Stop heartbeating and remove the node from the registry (best effort; idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._registered:
            return
        self._registered = False
        try:
            await self._nodes.deregister(self.node_id)
        except (RedisError, OSError) as exc:
            log.warning("SFU node %s: could not deregister: %s", self.node_id, exc)
        await self._store.close()
