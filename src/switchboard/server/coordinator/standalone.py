"""One coordinator of several sharing their state through Redis (``switchboard coordinator --redis``).

Every coordinator on the same Redis (and key prefix) serves any client: calls, members, rings, the
event log and watches live in Redis (:class:`RedisStore`, :class:`RedisEventHub`), so a load
balancer may send each request and events socket to any of them, and a client whose coordinator
died reconnects to another and replays what it missed (``docs/deploy.md``).

Media (``docs/deploy.md``): SFU nodes (``switchboard sfu --redis URL``) register in Redis and each
call is placed on the least-loaded live node, where it stays while the node heartbeats
(``sfu_nodes.py``). Without ``sfu_url`` the coordinator also starts its own SFU child process, which
registers as one of those nodes; ``own_sfu=False`` leaves media to the registered nodes only. With
``sfu_url`` (an SFU started with ``switchboard sfu`` whose coordinator URL is the coordinators'
load-balanced address) calls go there while no node is registered.
"""

from __future__ import annotations

import json
import logging

import aiohttp
from aiohttp import web
from redis.exceptions import RedisError

from switchboard.errors import CallStateError, SwitchboardError, error_for
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import create_admin_token
from switchboard.server.coordinator.app import COORDINATOR_KEY, create_app, http_server_options
from switchboard.server.coordinator.internal import add_internal_routes
from switchboard.server.coordinator.recording import RecordingControl
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.service import CoordinatorConfig
from switchboard.server.coordinator.sfu_nodes import SfuNodes
from switchboard.server.embedded import EmbeddedServer
from switchboard.server.sfu.registration import internal_url_of

log = logging.getLogger("switchboard.coordinator.standalone")


class RedisUnavailableError(SwitchboardError):
    """Redis could not be reached (or refused) when the coordinator started."""

    status = 503
    code = "redis_unavailable"


class RemoteSfu:
    """The SFU nodes of a deployment, reached by URL: the coordinator's commands for a call (it
    ended, a moderator acted, a recording) go to the node the call is on.

    ``nodes``: the registry that knows each call's node; ``fallback_url``: the SFU signalling URL
    (``ws://host:port/sfu``) of calls placed on no node, or None. ``own_url``: the signalling URL of
    this coordinator's own SFU process, whose commands the embedded server sends already (skipped
    here). Errors: RuntimeError when a node refuses; the node's SwitchboardError for a recording.
    """

    def __init__(
        self, nodes: SfuNodes, api_secret: str, *, fallback_url: str | None = None, own_url: str | None = None
    ) -> None:
        self._nodes = nodes
        self._fallback = internal_url_of(fallback_url) if fallback_url else None
        self._own = internal_url_of(own_url) if own_url else None
        self._secret = api_secret
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))
        #: the own SFU's recording control, for calls on it (set by CoordinatorServer)
        self.own_recording: RecordingControl | None = None

    async def _base_for(self, cid: str) -> str | None:
        """The internal base URL of the node call ``cid`` is on (None: the own SFU handles it)."""
        node = await self._nodes.node_of(cid)
        base = node.internal_url if node is not None else self._fallback
        return None if base is None or base == self._own else base

    async def _post(self, base: str, path: str, body: str) -> tuple[int, str]:
        headers = {
            "Authorization": f"Bearer {create_admin_token(self._secret, ttl=60.0)}",
            "Content-Type": "application/json",
        }
        async with self._http.post(base + path, data=body, headers=headers) as resp:
            return resp.status, await resp.text()

    async def end_call(self, cid: str) -> None:
        """``POST /sfu/internal/end_call`` on the call's node, then forget the call's node."""
        base = await self._base_for(cid)
        await self._nodes.call_ended(cid)
        if base is None:
            return
        status, _ = await self._post(base, p.INTERNAL_END_CALL_PATH, json.dumps({"cid": cid}))
        if status >= 400:
            raise RuntimeError(f"the SFU refused end_call for {cid}: HTTP {status}")

    async def moderate(self, command: p.ModerationCommand) -> None:
        """A moderator's command, to the node of ``command.cid``."""
        base = await self._base_for(command.cid)
        if base is None:
            return
        status, _ = await self._post(base, p.INTERNAL_MODERATE_PATH, command.model_dump_json())
        if status >= 400:
            raise RuntimeError(f"the SFU refused a moderation command for {command.cid}: HTTP {status}")

    async def update_grants(self, update: p.GrantsUpdate) -> int:
        """Users' grants changed in ``update.cid``: to the call's node (``server/sfu/live_grants.py``);
        the number of sessions the node acted on (0 when the own SFU handles the call)."""
        base = await self._base_for(update.cid)
        if base is None:
            return 0
        status, body = await self._post(base, p.INTERNAL_GRANTS_PATH, update.model_dump_json())
        if status >= 400:
            raise RuntimeError(f"the SFU refused a grants update for {update.cid}: HTTP {status}")
        return p.GrantsReport.model_validate_json(body).sessions

    async def recording(self, command: p.RecordingCommand) -> p.RecordingsReport:
        """Start, stop or list recordings on the node of ``command.cid``."""
        base = await self._base_for(command.cid)
        if base is None:
            if self.own_recording is None:
                raise CallStateError("no SFU holds this call", code="sfu_unavailable")
            return await self.own_recording(command)
        status, body = await self._post(base, p.INTERNAL_RECORDING_PATH, command.model_dump_json())
        if status >= 400:
            try:
                error = json.loads(body)
                code, message = error.get("code"), str(error.get("message"))
            except (ValueError, AttributeError):
                code, message = None, f"the SFU refused a recording command: HTTP {status}"
            raise error_for(status, code, message)
        return p.RecordingsReport.model_validate_json(body)

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
        own_sfu: bool = True,
    ) -> None:
        self.redis_url = redis_url
        self.host = host
        self.port = port
        self._api_key = api_key
        self._api_secret = api_secret
        self._sfu_port = sfu_port
        self._prefix = prefix
        self._own_sfu = own_sfu
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
        if not self.sfu_url and self._own_sfu:
            embedded = self._embedded = EmbeddedServer(
                host=self.host,
                port=self.port,
                sfu_port=self._sfu_port,
                api_key=self._api_key,
                api_secret=self._api_secret,
                store=store,
                sfu_process=True,
            )
            # the own SFU process is one of the deployment's nodes: calls of other coordinators may
            # land on it, and this coordinator's calls on theirs
            embedded.sfu_registration = {"redis": self.redis_url, "prefix": self._prefix}
            await embedded.start()
            self.url, self.sfu_url = embedded.url, embedded.sfu_url
            coordinator = embedded.coordinator
            remote = self._remote_sfu = RemoteSfu(
                coordinator.sfu_nodes, self._api_secret, own_url=self.sfu_url
            )
            remote.own_recording = coordinator.recordings.sfu
            coordinator.call_ended_hooks.append(remote.end_call)
            coordinator.moderation.sfu_hooks.append(remote.moderate)
            coordinator.live_grants.sfu_hooks.append(remote.update_grants)
            coordinator.recordings.sfu = remote.recording
            return
        config = CoordinatorConfig(api_key=self._api_key, api_secret=self._api_secret, sfu_url=self.sfu_url)
        app = create_app(config, store)
        coordinator = app[COORDINATOR_KEY]
        add_internal_routes(app, coordinator)
        remote = self._remote_sfu = RemoteSfu(
            coordinator.sfu_nodes, self._api_secret, fallback_url=self.sfu_url or None
        )
        coordinator.call_ended_hooks.append(remote.end_call)
        coordinator.moderation.sfu_hooks.append(remote.moderate)
        coordinator.live_grants.sfu_hooks.append(remote.update_grants)
        coordinator.recordings.sfu = remote.recording
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
