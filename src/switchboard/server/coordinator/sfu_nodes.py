"""The SFU nodes a coordinator places calls on, and which node each call is on.

An SFU node registers itself (``switchboard sfu --redis URL``, ``server/sfu/registration.py``) with
its id, the signalling URL clients join, the URL the coordinators reach its internal routes at, its
engine and its load, and heartbeats every :data:`HEARTBEAT_INTERVAL` s; a node whose heartbeat is
older than :data:`NODE_TTL` s counts as dead (it crashed or lost its network) and is no longer
placed on.

Placement (SPEC §3.1, §5): the first ``join`` of a call places it on the least-loaded live node and
the assignment is kept, so every coordinator sends that call's joins to the same node (sticky);
when the call's node is dead, the next ``join`` places the call again on a live node. The load of a
node is ``sessions + down_tracks`` as it last reported (a session costs its peer connections, a
forwarded down-track the forwarding of every packet); each placement adds 1 until the node's next
heartbeat replaces the figure, so a burst of new calls spreads over the nodes before their clients
have joined. ``cpu`` (percent of one core used by the node's process over the last interval) is
reported for operators; placement does not use it.

This module holds the interface and the in-memory registry of one process (the single-process
server, where no node registers: :meth:`SfuNodes.place` answers None and the coordinator hands out
its own SFU URL); :class:`~switchboard.server.coordinator.redis_sfu_nodes.RedisSfuNodes` is the
registry shared by the coordinators of a deployment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from switchboard.errors import SwitchboardError

#: Seconds between two heartbeats of a node.
HEARTBEAT_INTERVAL = 1.0
#: Seconds after its last heartbeat a node counts as dead.
NODE_TTL = 3.0
#: Seconds a call's assignment to a node is kept after its last join (refreshed by every join).
ASSIGNMENT_TTL = 24 * 3600


class NoSfuNodeError(SwitchboardError):
    """No SFU node is live to place a call on (and the coordinator has no SFU of its own): HTTP 503,
    code ``sfu_unavailable``; a client tries its join again a little later."""

    status = 503
    code = "sfu_unavailable"


@dataclass(frozen=True)
class SfuNode:
    """One SFU node as it last reported itself.

    ``url``: the signalling URL clients join (``ws://host:port/sfu`` or ``wss://…``);
    ``internal_url``: the base URL (``http://host:port``) the coordinators post ``end_call``,
    moderation and recording commands to; ``engine``: ``embedded`` or ``janus``; ``sessions``: SFU
    sessions it holds; ``down_tracks``: tracks it forwards to subscribers; ``cpu``: percent of one
    core its process used over the last heartbeat interval.
    """

    id: str
    url: str
    internal_url: str
    engine: str = "embedded"
    sessions: int = 0
    down_tracks: int = 0
    cpu: float = 0.0

    @property
    def load(self) -> int:
        """What placement compares: ``sessions + down_tracks``."""
        return self.sessions + self.down_tracks


@dataclass(frozen=True)
class Placement:
    """Where a call's media goes: ``node``, and whether this join ``moved`` it off a dead node."""

    node: SfuNode
    moved: bool = False


class SfuNodes:
    """The node registry and call placement of one process (nothing registers in a single process).

    Every method is a coroutine so the Redis sibling shares the interface.
    """

    def __init__(self, *, ttl: float = NODE_TTL) -> None:
        self.ttl = ttl
        self._nodes: dict[str, tuple[SfuNode, float]] = {}
        #: node id per call cid
        self._calls: dict[str, str] = {}
        #: placements since each node's last heartbeat
        self._placed: dict[str, int] = {}

    async def heartbeat(self, node: SfuNode) -> None:
        """Register ``node`` or refresh it (its load as it reports it now)."""
        self._nodes[node.id] = (node, time.monotonic() + self.ttl)
        self._placed[node.id] = 0

    async def deregister(self, node_id: str) -> None:
        """The node stops cleanly: no call is placed on it any more."""
        self._nodes.pop(node_id, None)
        self._placed.pop(node_id, None)

    async def live(self) -> list[SfuNode]:
        """The nodes whose heartbeat is fresh, least-loaded first."""
        now = time.monotonic()
        for node_id in [i for i, (_, expires) in self._nodes.items() if expires <= now]:
            await self.deregister(node_id)
        return sorted((node for node, _ in self._nodes.values()), key=lambda n: (self._score(n), n.id))

    def _score(self, node: SfuNode) -> int:
        return node.load + self._placed.get(node.id, 0)

    async def node_of(self, cid: str) -> SfuNode | None:
        """The live node call ``cid`` is on, or None (never placed, or its node is dead)."""
        node_id = self._calls.get(cid)
        if node_id is None:
            return None
        return next((n for n in await self.live() if n.id == node_id), None)

    async def place(self, cid: str) -> Placement | None:
        """The node for a join of call ``cid``: its own if that node is live, else the least-loaded
        live node (then remembered); None when no node is live."""
        current = self._calls.get(cid)
        nodes = await self.live()
        for node in nodes:
            if node.id == current:
                return Placement(node)
        if not nodes:
            return None
        node = nodes[0]
        self._calls[cid] = node.id
        self._placed[node.id] = self._placed.get(node.id, 0) + 1
        return Placement(node, moved=current is not None)

    async def call_ended(self, cid: str) -> None:
        """Forget the call's assignment (it ended)."""
        self._calls.pop(cid, None)

    async def close(self) -> None:
        """Release what the registry holds (nothing in memory)."""
