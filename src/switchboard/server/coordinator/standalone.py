"""One coordinator of several sharing their state through Redis (``switchboard coordinator --redis``).

Every coordinator on the same Redis (and key prefix) serves any client: calls, members, rings, the
event log and watches live in Redis (:class:`RedisStore`, :class:`RedisEventHub`), so a load
balancer may send each request and events socket to any of them, and a client whose coordinator
died reconnects to another and replays what it missed (``docs/deploy.md``).

Media: without ``sfu_url`` the coordinator starts its own SFU child process (like ``switchboard
serve``), which suits one coordinator; several coordinators share one SFU by giving each the
``sfu_url`` of an SFU started with ``python -m switchboard.server.sfu`` whose coordinator URL is the
coordinators' load-balanced address (its admission questions may reach any coordinator).
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from redis.exceptions import RedisError

from switchboard.errors import SwitchboardError
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import create_admin_token
from switchboard.server.coordinator.app import COORDINATOR_KEY, create_app, http_server_options
from switchboard.server.coordinator.internal import add_internal_routes
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.service import CoordinatorConfig
from switchboard.server.embedded import EmbeddedServer

log = logging.getLogger("switchboard.coordinator.standalone")


class RedisUnavailableError(SwitchboardError):
    """Redis could not be reached (or refused) when the coordinator started."""

    status = 503
    code = "redis_unavailable"


class RemoteSfu:
    """An SFU in another process reached by URL: the coordinator tells it when a call ends."""

    def __init__(self, sfu_url: str, api_secret: str) -> None:
        self.url = sfu_url
        self._secret = api_secret
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))

    async def end_call(self, cid: str) -> None:
        """``POST /sfu/internal/end_call``; RuntimeError when the SFU refuses."""
        base = self.url.replace("wss://", "https://", 1).replace("ws://", "http://", 1).removesuffix("/sfu")
        headers = {"Authorization": f"Bearer {create_admin_token(self._secret, ttl=60.0)}"}
        async with self._http.post(
            base + p.INTERNAL_END_CALL_PATH, json={"cid": cid}, headers=headers
        ) as resp:
            if resp.status >= 400:
                raise RuntimeError(f"the SFU refused end_call for {cid}: HTTP {resp.status}")

    async def close(self) -> None:
        await self._http.close()


class CoordinatorServer:
    """A coordinator on Redis: ``await start()``, then ``url`` (clients' base URL) and ``sfu_url``.

    ``redis_url``: ``redis://host:port/db``, ``rediss://…`` or ``unix:///path``; ``prefix``: the key
    prefix shared by the coordinators of one deployment. Raises :class:`RedisUnavailableError` from
    ``start()`` when Redis does not answer, ``OSError`` when the port cannot be bound.
    """

    def __init__(
        self,
        *,
        redis_url: str,
        api_key: str,
        api_secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        sfu_url: str | None = None,
        sfu_port: int = 0,
        prefix: str = "sb:",
    ) -> None:
        self.redis_url = redis_url
        self.host = host
        self.port = port
        self._api_key = api_key
        self._api_secret = api_secret
        self._sfu_port = sfu_port
        self._prefix = prefix
        self.store: RedisStore | None = None
        self._embedded: EmbeddedServer | None = None
        self._runner: web.AppRunner | None = None
        self._remote_sfu: RemoteSfu | None = None
        self.url = ""
        self.sfu_url = sfu_url or ""

    async def start(self) -> None:
        store = self.store = RedisStore.from_url(self.redis_url, prefix=self._prefix)
        try:
            await store.redis.ping()
            await store.event_epoch()
        except (RedisError, OSError) as exc:
            await self.stop()
            raise RedisUnavailableError(f"cannot reach Redis at {self.redis_url}: {exc}") from None
        if not self.sfu_url:
            self._embedded = EmbeddedServer(
                host=self.host,
                port=self.port,
                sfu_port=self._sfu_port,
                api_key=self._api_key,
                api_secret=self._api_secret,
                store=store,
                sfu_process=True,
            )
            await self._embedded.start()
            self.url, self.sfu_url = self._embedded.url, self._embedded.sfu_url
            return
        config = CoordinatorConfig(api_key=self._api_key, api_secret=self._api_secret, sfu_url=self.sfu_url)
        app = create_app(config, store)
        coordinator = app[COORDINATOR_KEY]
        add_internal_routes(app, coordinator)
        self._remote_sfu = RemoteSfu(self.sfu_url, self._api_secret)
        coordinator.call_ended_hooks.append(self._remote_sfu.end_call)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, **http_server_options(config))
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, self.host, self.port).start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        embedded, self._embedded = self._embedded, None
        runner, self._runner = self._runner, None
        remote, self._remote_sfu = self._remote_sfu, None
        if embedded is not None:
            await embedded.stop()
        if runner is not None:
            await runner.cleanup()
        if remote is not None:
            await remote.close()
        store, self.store = self.store, None
        if store is not None:
            await store.close()
