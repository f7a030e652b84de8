"""One VideoRoom subscriber handle and the streams it carries (Janus multistream subscriptions).

Used by each session's subscriber connection (``room.py``) and by the node's own level listener
(``levels.py``): the first streams are subscribed with ``join {ptype: subscriber}``, later changes
with one ``update {subscribe, unsubscribe}``; each answer carries Janus's new offer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set

from switchboard.server.sfu_janus.janus_api import EventHandler, JanusConnection, JanusHandle, JsonObject

#: one subscribed stream: (publisher feed id, publisher mid)
Stream = tuple[int, str]


def _streams(streams: list[Stream]) -> list[JsonObject]:
    return [{"feed": feed, "mid": mid} for feed, mid in streams]


class Subscription:
    """A subscriber handle (attached at the first stream) and the ``(feed, mid)`` streams it carries."""

    def __init__(self, on_event: EventHandler) -> None:
        self.handle: JanusHandle | None = None
        self.streams: set[Stream] = set()
        #: held while the subscription changes and while an offer of it is negotiated
        self.lock = asyncio.Lock()
        self._on_event = on_event

    async def update(
        self, janus: JanusConnection, janus_room: int, wanted: Set[Stream], live_feeds: Set[int]
    ) -> JsonObject | None:
        """Carry exactly ``wanted``; Janus's reply (with its offer), or None when no request was needed.

        Streams of feeds no longer in ``live_feeds`` are not unsubscribed explicitly: Janus drops
        them itself when their publisher leaves (and renegotiates through an event). Raises what
        :meth:`JanusHandle.message` raises. Call with :attr:`lock` held.
        """
        add = sorted(wanted - self.streams)
        remove = sorted(self.streams - wanted)
        if not add and not remove:
            return None
        if self.handle is None:
            if not add:
                return None
            self.handle = await janus.attach()
            self.handle.on_event = self._on_event
            body: JsonObject = {"request": "join", "ptype": "subscriber", "room": janus_room}
            body["streams"] = _streams(add)
        else:
            body = {"request": "update"}
            if add:
                body["subscribe"] = _streams(add)
            gone = [(feed, mid) for feed, mid in remove if feed in live_feeds]
            if gone:
                body["unsubscribe"] = _streams(gone)
            if len(body) == 1:
                self.streams -= set(remove)
                return None
        reply = await self.handle.message(body)
        self.streams = (self.streams | set(add)) - set(remove)
        return reply

    async def detach(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None and not handle.connection.closed.is_set():
            await handle.detach()
