"""Event streams for calls and the client: ``async for event in x.events()`` and ``x.on(type, cb)``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from switchboard.errors import InvalidRequestError
from switchboard.protocol.coordinator import Event, utcnow

log = logging.getLogger("switchboard.sdk.events")


class LocalEvent(Event):
    """An event the SDK itself raises (not from the server); its ``id`` is 0."""

    data: dict[str, Any] = {}


def local_event(event_type: str, cid: str | None, **data: Any) -> LocalEvent:
    return LocalEvent(type=event_type, cid=cid, created_at=utcnow(), data=data)


class EventEmitter:
    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[Event], None]]] = {}
        self._queues: list[tuple[asyncio.Queue[Event], frozenset[str] | None]] = []

    def on(self, event_type: str, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for each event of ``event_type`` (``"*"``: every event). Returns unsubscribe."""
        if not isinstance(event_type, str) or not event_type:
            raise InvalidRequestError(f"event type must be a string such as 'call.ended', not {event_type!r}")
        if not callable(callback):
            raise InvalidRequestError(f"the callback for {event_type!r} must be callable, not {callback!r}")
        self._callbacks.setdefault(event_type, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._callbacks.get(event_type, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    async def events(self, *types: str) -> AsyncIterator[Event]:
        """Every event from now on (only ``types`` when given)."""
        for event_type in types:
            if not isinstance(event_type, str) or not event_type:
                raise InvalidRequestError(f"event types must be strings ('call.ended'), not {event_type!r}")
        queue: asyncio.Queue[Event] = asyncio.Queue()
        entry = (queue, frozenset(types) if types else None)
        self._queues.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(entry)

    def emit(self, event: Event) -> None:
        for queue, types in self._queues:
            if types is None or event.type in types:
                queue.put_nowait(event)
        for key in (event.type, "*"):
            for callback in list(self._callbacks.get(key, [])):
                try:
                    callback(event)
                except Exception:
                    log.exception("event callback failed for %s", event.type)


__all__ = ["EventEmitter", "LocalEvent", "local_event"]
