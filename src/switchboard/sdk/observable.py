"""``Observable[T]``: a value you can read, iterate (current value first, then every change) or listen to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("switchboard.observable")


class Observable(Generic[T]):
    def __init__(self, value: T) -> None:
        self._value = value
        self._listeners: list[Callable[[T], None]] = []
        self._queues: list[asyncio.Queue[T]] = []

    @property
    def value(self) -> T:
        return self._value

    def listen(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call ``callback`` with every new value; returns a function that unsubscribes."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    async def __aiter__(self) -> AsyncIterator[T]:
        queue: asyncio.Queue[T] = asyncio.Queue()
        self._queues.append(queue)
        try:
            yield self._value
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    async def wait_for(self, predicate: Callable[[T], bool], timeout: float | None = None) -> T:  # noqa: ASYNC109
        """The first value (current one included) for which ``predicate`` is true."""

        async def _wait() -> T:
            async for value in self:
                if predicate(value):
                    return value
            raise AssertionError("unreachable")

        return await asyncio.wait_for(_wait(), timeout)

    def _set(self, value: T) -> None:
        """Publish a new value (SDK-internal: applications read, the SDK writes)."""
        if value is self._value or value == self._value:
            return
        self._value = value
        for queue in self._queues:
            queue.put_nowait(value)
        for listener in list(self._listeners):
            try:
                listener(value)
            except Exception:
                log.exception("observable listener failed")

    def __repr__(self) -> str:
        return f"Observable({self._value!r})"
