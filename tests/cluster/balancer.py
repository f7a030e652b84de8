"""A TCP load balancer for tests: each new connection goes to the first backend that accepts it.

It stands for the load balancer a deployment puts in front of its coordinators (docs/deploy.md):
clients know one address; when the coordinator behind it dies, their reconnects reach another one.
Backends are tried in order (``prefer`` rotates the order per balancer), so a test decides which
coordinator a client lands on while both live.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpBalancer:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        #: which backend each accepted connection went to, in order (for the test's own checks)
        self.routed: list[tuple[str, int]] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for backend in self.backends:
            try:
                up_reader, up_writer = await asyncio.open_connection(*backend)
            except OSError:
                continue
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
