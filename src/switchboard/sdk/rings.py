"""The client's rings: a projection of the rings the server has pending for this user (SPEC §2.6.1).

The server is the source of truth. :class:`RingBook` holds this client's copy, keyed by ring id, and
changes only on what the server said: a ``call.ring`` or ``call.ring_ended`` event, the answer to
this client's own ring/accept/reject, or a snapshot from ``GET /api/v1/rings`` (on connect and
every reconnect). A snapshot is taken as of an event cursor; events at or before that cursor are
already in it and do not change the rings again (they may arrive late, replayed or still in flight).
A ring id that has ended is never shown again, whatever arrives out of order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from switchboard.sdk.observable import Observable

if TYPE_CHECKING:
    from switchboard.sdk.call import Call

#: how many ended ring ids are remembered (to ignore late news of them)
ENDED_MEMORY = 4096


@dataclass(frozen=True)
class PendingRing:
    ring_id: str
    call: Call
    outgoing: bool


class RingBook:
    """Pending rings, incoming (oldest first) and outgoing, published to three observables.

    ``ringing_calls`` lists the calls ringing this user, oldest first; ``incoming_call`` is the
    newest of them (None when there is none); ``outgoing_call`` the newest call this user rings.
    """

    def __init__(
        self,
        ringing_calls: Observable[list[Call]],
        incoming_call: Observable[Call | None],
        outgoing_call: Observable[Call | None],
    ) -> None:
        self._ringing_calls = ringing_calls
        self._incoming_call = incoming_call
        self._outgoing_call = outgoing_call
        self._rings: dict[str, PendingRing] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        #: events with an id at or below this (in the current epoch) are already reflected
        self.cursor = 0

    # ---------------------------------------------------------------- queries

    def find(self, cid: str, *, outgoing: bool) -> PendingRing | None:
        return next((r for r in self._rings.values() if r.call.cid == cid and r.outgoing == outgoing), None)

    def rings(self) -> list[PendingRing]:
        return list(self._rings.values())

    def is_stale(self, event_id: int) -> bool:
        """Whether an event is already reflected by the last snapshot (ring-wise)."""
        return 0 < event_id <= self.cursor

    def shows(self, ring_id: str) -> bool:
        return ring_id in self._rings

    def has_ended(self, ring_id: str) -> bool:
        return ring_id in self._ended

    # ---------------------------------------------------------------- changes

    def add(self, ring: PendingRing) -> bool:
        """Show ``ring`` unless it is shown already or has ended. Returns whether it was added."""
        if ring.ring_id in self._rings or ring.ring_id in self._ended:
            return False
        self._rings[ring.ring_id] = ring
        self._publish()
        return True

    def end(self, ring_id: str | None, cid: str, *, outgoing: bool) -> PendingRing | None:
        """The ring ended: remove it (only it). Without a ring id, the call's ring in that direction."""
        if ring_id is None:
            found = self.find(cid, outgoing=outgoing)
            ring_id = found.ring_id if found is not None else None
        if ring_id is None:
            return None
        self._remember_ended(ring_id)
        removed = self._rings.pop(ring_id, None)
        if removed is not None:
            self._publish()
        return removed

    def end_call(self, cid: str) -> list[PendingRing]:
        """The call ended: every ring of it ends."""
        gone = [r for r in self._rings.values() if r.call.cid == cid]
        for ring in gone:
            self._remember_ended(ring.ring_id)
            del self._rings[ring.ring_id]
        if gone:
            self._publish()
        return gone

    def replace(self, rings: list[PendingRing], cursor: int) -> tuple[list[PendingRing], list[PendingRing]]:
        """Become exactly ``rings`` (the server's list, oldest first) as of event ``cursor``.

        Returns the rings added and the rings removed.
        """
        wanted = {r.ring_id: r for r in rings if r.ring_id not in self._ended}  # ended is final
        removed = [r for rid, r in self._rings.items() if rid not in wanted]
        added = [r for rid, r in wanted.items() if rid not in self._rings]
        for ring in removed:
            self._remember_ended(ring.ring_id)
        self._rings = {rid: self._rings.get(rid, r) for rid, r in wanted.items()}
        self.cursor = cursor
        self._publish()
        return added, removed

    def clear(self) -> list[PendingRing]:
        """Forget every ring (the client disconnected); returns them."""
        gone = list(self._rings.values())
        self._rings = {}
        self.cursor = 0
        self._publish()
        return gone

    def _remember_ended(self, ring_id: str) -> None:
        self._ended[ring_id] = None
        self._ended.move_to_end(ring_id)
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    def _publish(self) -> None:
        incoming = [r.call for r in self._rings.values() if not r.outgoing]
        outgoing = [r.call for r in self._rings.values() if r.outgoing]
        if incoming != self._ringing_calls.value:
            self._ringing_calls._set(incoming)
        newest_in = incoming[-1] if incoming else None
        if newest_in is not self._incoming_call.value:
            self._incoming_call._set(newest_in)
        newest_out = outgoing[-1] if outgoing else None
        if newest_out is not self._outgoing_call.value:
            self._outgoing_call._set(newest_out)
