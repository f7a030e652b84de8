"""A small TCP load balancer: each new connection goes to one of several backends.

``switchboard cluster`` puts one in front of its coordinators, so clients know one address
(``docs/deploy.md``: a deployment uses its own load balancer instead); tests use it to decide which
coordinator a client reaches. HTTP and WebSocket pass through untouched (bytes both ways). A
backend that refuses the connection (it died) is skipped, so a client's reconnect reaches a live
one.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpBalancer:
    """Forwards each accepted connection to a backend ``(host, port)``.

    ``rotate=False`` tries the backends in the given order (the first that accepts wins: a test
    decides where clients land while all live); ``rotate=True`` starts at the next backend for each
    connection (round robin). ``start()`` listens on ``host``:``port`` (0: any free port) and
    returns ``http://host:port``; OSError when it cannot bind.
    """

    def __init__(
        self, backends: list[tuple[str, int]], *, rotate: bool = False, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.backends = list(backends)
        self.rotate = rotate
        self.host = host
        self.port = port
        self._next = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        #: which backend each accepted connection went to, in order (for a test's own checks)
        self.routed: list[tuple[str, int]] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self.url

    def _order(self) -> list[tuple[str, int]]:
        if not self.rotate or not self.backends:
            return list(self.backends)
        start = self._next % len(self.backends)
        self._next += 1
        return self.backends[start:] + self.backends[:start]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for backend in self._order():
            try:
                up_reader, up_writer = await asyncio.open_connection(*backend)
            except OSError:
                continue
            if len(self.routed) < 10_000:
                self.routed.append(backend)
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            except asyncio.CancelledError:  # the balancer stops: drop both sides
                up_writer.close()
                writer.close()
            finally:
                self._tasks.discard(task)
            return
        writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
