"""What a server that starts and stops shares: ``async with`` starts it and always stops it."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartStop:
    """A base for servers with ``async start()`` / ``async stop()``: ``async with server:`` calls
    :meth:`start` on entry and :meth:`stop` on exit (also when the block raises)."""

    async def start(self) -> object:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
