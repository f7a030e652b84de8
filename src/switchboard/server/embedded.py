"""Run the whole server (coordinator + SFU) on free local ports: both in the current event loop, or
the SFU in a process of its own (``sfu_process=True``, what ``switchboard serve`` runs)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from switchboard.media.local_ice import loopback_ice_address
from switchboard.protocol.tokens import SfuClaims, create_admin_token, create_user_token, generate_key_pair
from switchboard.server.coordinator.app import COORDINATOR_KEY, create_app, http_server_options
from switchboard.server.coordinator.ice_servers import IceServerSettings
from switchboard.server.coordinator.internal import add_internal_routes
from switchboard.server.coordinator.limits import CoordinatorLimits
from switchboard.server.coordinator.service import Coordinator, CoordinatorConfig
from switchboard.server.coordinator.store import MemoryStore, Store
from switchboard.server.lifecycle import StartStop
from switchboard.server.sfu import SfuConfig, SfuServer
from switchboard.server.sfu.process import SfuProcess
from switchboard.server.sfu_janus import JanusConfig, JanusProcess, JanusSfuServer
from switchboard.server.sfu_janus.node import janus_config_for
from switchboard.web import WebOptions

log = logging.getLogger("switchboard.server")

#: a dead SFU child process is restarted at once; a restarted one that dies again within
#: ``SFU_STABLE_AFTER`` seconds is restarted after a delay doubling from ``SFU_RESTART_FIRST_DELAY``
#: up to ``SFU_RESTART_MAX_DELAY`` (s)
SFU_STABLE_AFTER = 30.0
SFU_RESTART_FIRST_DELAY = 0.5
SFU_RESTART_MAX_DELAY = 30.0


class EmbeddedServer(StartStop):
    """``async with EmbeddedServer() as server:`` — a complete server on free local ports.

    ``server.url`` is the coordinator's base URL for ``ClientOptions(base_url=...)``,
    ``server.api_key`` its API key, and ``server.create_token(user_id)`` signs user tokens.

    ``store`` holds the coordinator's state (calls, members, rings, events); by default a
    :class:`MemoryStore` that lives as long as this object, so ``stop()`` then ``start()`` (on fixed
    ``port``/``sfu_port``, like a redeploy) keeps calls and rings and re-arms ring deadlines. A new
    ``EmbeddedServer`` on the same ports and keys is a restart that lost its state.

    ``sfu_process=False`` (default) runs the SFU in this event loop, where ``server.sfu`` exposes its
    rooms to tests and tools; ``True`` runs it in a child process with its own event loop, so no
    client traffic on the coordinator can delay media forwarding (``docs/architecture.md``). A child
    that dies (crash, SIGKILL, out of memory) is restarted on the same port (at once, then with a
    growing delay if it keeps dying; ``server.sfu_restarts`` counts them) and the coordinator
    forgets the sessions it held, so their clients join again there.
    ``sfu_token_ttl`` (seconds) is the lifetime of the SFU tokens ``join`` mints; ``sfu_config``
    sets the SFU's limits (:class:`SfuConfig`; its ``api_secret`` is replaced by the server's).

    ``engine`` picks the media engine behind the SFU signalling: ``"embedded"`` (aiortc, this
    package) or ``"janus"`` (a Janus gateway this server starts with ``janus_config`` and stops;
    Debian's ``janus`` package must be installed, see ``docs/janus.md``). Clients see no difference.
    Janus never offers loopback addresses, so with ``"janus"`` ``host`` must be an address of a
    non-loopback interface (``RuntimeError`` at start otherwise).

    Behind a TLS proxy or NAT: ``public_url`` is the coordinator's address as clients see it
    (``https://calls.example.com``; ``server.public_url``), ``public_sfu_url`` the SFU's
    (``wss://calls.example.com/sfu``), handed out in every join answer instead of the address the
    SFU listens on (``server.sfu_url``); media then uses every interface, not loopback only.
    ``ice_servers`` adds STUN/TURN servers to the join answers (:class:`IceServerSettings`: TURN
    with per-user, time-limited credentials). See docs/browser.md, "Behind TLS".
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        api_secret: str | None = None,
        rate_limit_per_second: float = 200.0,
        rate_limit_burst: int = 400,
        max_body_bytes: int = 64 * 1024,
        health_check_interval: float = 10.0,
        sfu_port: int = 0,
        reconnect_grace: float = 5.0,
        store: Store | None = None,
        cors_origins: list[str] | tuple[str, ...] | None = None,
        development_tokens: bool = False,
        sfu_token_ttl: float = 300.0,
        sfu_config: SfuConfig | None = None,
        sfu_process: bool = False,
        limits: CoordinatorLimits | None = None,
        public_url: str | None = None,
        public_sfu_url: str | None = None,
        ice_servers: IceServerSettings | None = None,
        engine: str = "embedded",
        janus_config: JanusConfig | None = None,
    ) -> None:
        if engine not in ("embedded", "janus"):
            raise ValueError(f"engine must be 'embedded' or 'janus', not {engine!r}")
        if (api_key is None) != (api_secret is None):
            raise ValueError("give both api_key and api_secret, or neither")
        if api_key is None or api_secret is None:
            api_key, api_secret = generate_key_pair()
        self.host = host
        self._port = port
        self.config = CoordinatorConfig(
            api_key=api_key,
            api_secret=api_secret,
            rate_limit_per_second=rate_limit_per_second,
            rate_limit_burst=rate_limit_burst,
            max_body_bytes=max_body_bytes,
            health_check_interval=health_check_interval,
            sfu_token_ttl=sfu_token_ttl,
            limits=limits or CoordinatorLimits(),
            ice=ice_servers or IceServerSettings(),
        )
        self._public_url = _check_url(public_url, ("http", "https"), "public_url")
        self._public_sfu_url = _check_url(public_sfu_url, ("ws", "wss"), "public_sfu_url")
        if sfu_config is None:
            sfu_config = SfuConfig(api_secret=api_secret, reconnect_grace=reconnect_grace)
        # media stays on loopback when the SFU listens there (the SDK applies the same rule to its URL)
        self.sfu_config = dataclasses.replace(
            sfu_config,
            api_secret=api_secret,
            ice_loopback_address=loopback_ice_address(
                self._public_sfu_url or (f"ws://[{host}]/sfu" if ":" in host else f"ws://{host}/sfu")
            ),
        )
        self.engine = engine
        self.janus_config = janus_config
        self._janus: JanusProcess | None = None
        self._janus_sfu: JanusSfuServer | None = None
        self._in_process_sfu = not sfu_process
        self._sfu: SfuServer | None = (
            self._new_sfu() if self._in_process_sfu and engine == "embedded" else None
        )
        self._sfu_process: SfuProcess | None = None
        self._sfu_supervisor: asyncio.Task[None] | None = None
        #: media sessions the SFU child holds, as it reported them: session id -> (cid, user id)
        self._sfu_child_sessions: dict[str, tuple[str, str]] = {}
        #: how many times the SFU child process was restarted after it died
        self.sfu_restarts = 0
        #: with ``sfu_process``: the child registers as an SFU node in Redis (``SfuProcess(registration=)``)
        self.sfu_registration: dict[str, Any] | None = None
        self._sfu_port = sfu_port
        self.store: Store = store if store is not None else MemoryStore()
        #: browsers: CORS origins (None: any) and the page's development tokens (docs/browser.md)
        self.web_options = WebOptions(
            cors_origins=None if cors_origins is None else tuple(cors_origins),
            development_tokens=development_tokens,
        )
        self._runner: web.AppRunner | None = None
        self._stopped = False
        self._sfu_runner: web.AppRunner | None = None
        self.url = ""
        self.sfu_url = ""

    def _new_sfu(self) -> SfuServer:
        return SfuServer(
            self.sfu_config, admission=self._admit_sfu_session, on_participant=self._participant_changed
        )

    @classmethod
    def from_env(cls, **kwargs: object) -> EmbeddedServer:
        key, secret = os.environ.get("SWITCHBOARD_API_KEY"), os.environ.get("SWITCHBOARD_API_SECRET")
        return cls(api_key=key, api_secret=secret, **kwargs)  # type: ignore[arg-type]

    @property
    def sfu(self) -> SfuServer:
        """The in-process SFU (its rooms, config, stats); RuntimeError with ``sfu_process=True``."""
        if self._sfu is None:
            raise RuntimeError("the SFU runs in its own process: read GET /sfu/stats instead")
        return self._sfu

    @property
    def sfu_pid(self) -> int | None:
        """The SFU child process's id with ``sfu_process=True`` (None in-process or stopped)."""
        return self._sfu_process.pid if self._sfu_process is not None else None

    @property
    def public_url(self) -> str:
        """The coordinator's address as clients see it: ``public_url`` if given, else ``url``."""
        return self._public_url or self.url

    @property
    def public_sfu_url(self) -> str:
        """The SFU address join answers hand out: ``public_sfu_url`` if given, else ``sfu_url``."""
        return self._public_sfu_url or self.sfu_url

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def api_secret(self) -> str:
        return self.config.api_secret

    @property
    def coordinator(self) -> Coordinator:
        if self._runner is None:
            raise RuntimeError("server is not running")
        return self._runner.app[COORDINATOR_KEY]

    def create_token(self, user_id: str, ttl: float | None = None) -> str:
        return create_user_token(self.config.api_secret, user_id, ttl)

    def create_admin_token(self, ttl: float = 3600.0) -> str:
        """A token for operator endpoints such as the SFU's ``/sfu/stats``."""
        return create_admin_token(self.config.api_secret, ttl)

    async def _admit_sfu_session(self, claims: SfuClaims) -> None:
        await self.coordinator.admit_sfu_session(claims)

    async def _participant_changed(self, cid: str, user_id: str, session_id: str, joined: bool) -> None:
        if self._runner is not None:
            await self.coordinator.participant_changed(cid, user_id, session_id, joined)

    async def start(self) -> None:
        if self._runner is not None:
            return
        if self.engine == "janus" and self._in_process_sfu:
            await self._start_janus()
        elif self._in_process_sfu:
            if self._stopped:  # a restart: a fresh SFU (media sessions do not survive), the same store
                self._sfu = self._new_sfu()
            assert self._sfu is not None
            sfu_runner = web.AppRunner(self._sfu.app(), handle_signals=False, shutdown_timeout=1.0)
            await sfu_runner.setup()
            await web.TCPSite(sfu_runner, self.host, self._sfu_port).start()
            self._sfu_runner = sfu_runner
            sfu_host, sfu_port = sfu_runner.addresses[0][:2]
            self._sfu_port = sfu_port  # a restart listens where clients already connect
            self.sfu_url = f"ws://{sfu_host}:{sfu_port}/sfu"
            self.config.sfu_url = self._public_sfu_url or self.sfu_url

        app = create_app(self.config, self.store, web_options=self.web_options)
        coordinator = app[COORDINATOR_KEY]
        if self._sfu is not None:
            coordinator.call_ended_hooks.append(self._sfu.end_call)
            coordinator.moderation.sfu_hooks.append(self._sfu.moderate)
            coordinator.live_grants.sfu_hooks.append(self._sfu.update_grants)
            coordinator.recordings.sfu = self._sfu.recording
        elif self._janus_sfu is not None:
            coordinator.call_ended_hooks.append(self._janus_sfu.end_call)
            coordinator.moderation.sfu_hooks.append(self._janus_sfu.moderate)
            coordinator.live_grants.sfu_hooks.append(self._janus_sfu.update_grants)
            coordinator.recordings.sfu = self._janus_sfu.recording
        else:
            add_internal_routes(app, coordinator)
        runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=1.0, **http_server_options(self.config)
        )
        await runner.setup()
        await web.TCPSite(runner, self.host, self._port).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._port = port
        self.url = f"http://{host}:{port}"

        if self._sfu is None and self._janus_sfu is None:
            self._sfu_process = SfuProcess(
                self.sfu_config,
                host=self.host,
                port=self._sfu_port,
                coordinator_url=self.url,
                engine=self.engine,
                janus=janus_config_for(self.host, self.janus_config).to_json()
                if self.engine == "janus"
                else None,
                registration=self.sfu_registration,
            )
            try:
                self.sfu_url = await self._sfu_process.start()
                self.config.sfu_url = self._public_sfu_url or self.sfu_url
                self._sfu_port = int(self.sfu_url.rsplit(":", 1)[1].split("/", 1)[0])  # kept across restarts
            except BaseException:
                await self.stop()
                raise
            coordinator.call_ended_hooks.append(self._sfu_process.end_call)
            coordinator.moderation.sfu_hooks.append(self._sfu_process.moderate)
            coordinator.live_grants.sfu_hooks.append(self._sfu_process.update_grants)
            coordinator.recordings.sfu = self._sfu_process.recording
            coordinator.participant_hooks.append(self._sfu_child_session)
            self._sfu_supervisor = asyncio.get_running_loop().create_task(
                self._supervise_sfu(self._sfu_process)
            )

    async def _sfu_child_session(self, cid: str, user_id: str, session_id: str, joined: bool) -> None:
        if joined:
            self._sfu_child_sessions[session_id] = (cid, user_id)
        else:
            self._sfu_child_sessions.pop(session_id, None)

    async def _supervise_sfu(self, sfu: SfuProcess) -> None:
        """Restart the SFU child process on its port whenever it dies; its sessions are forgotten."""
        loop = asyncio.get_running_loop()
        delay = SFU_RESTART_FIRST_DELAY
        restarted = False
        while True:
            started = loop.time()
            code = await sfu.wait_exit()
            if code is None:
                return  # stopped on purpose
            await self._forget_sfu_sessions()
            if not restarted or loop.time() - started >= SFU_STABLE_AFTER:
                pause, delay = 0.0, SFU_RESTART_FIRST_DELAY
            else:  # a restarted child died again soon: wait, longer each time
                pause, delay = delay, min(delay * 2, SFU_RESTART_MAX_DELAY)
            log.error(
                "the SFU process exited (code %s); restarting it on port %d in %.1f s",
                code,
                self._sfu_port,
                pause,
            )
            while True:
                await asyncio.sleep(pause)
                try:
                    url = await sfu.start()
                except (RuntimeError, OSError) as exc:
                    log.error("the SFU process did not restart (%s); trying again in %.1f s", exc, delay)
                    pause, delay = delay, min(delay * 2, SFU_RESTART_MAX_DELAY)
                    continue
                break
            self.sfu_restarts += 1
            restarted = True
            self.sfu_url = url
            self.config.sfu_url = self._public_sfu_url or url
            log.warning("the SFU process is back (pid %s) at %s", sfu.pid, url)

    async def _forget_sfu_sessions(self) -> None:
        """The SFU child died without reporting its sessions leaving: they left (their clients rejoin,
        so a ring their user started keeps ringing)."""
        lost, self._sfu_child_sessions = self._sfu_child_sessions, {}
        if lost:
            log.warning("forgetting the %d media sessions of the dead SFU process", len(lost))
        for session_id, (cid, user_id) in lost.items():
            try:
                await self.coordinator.participant_changed(cid, user_id, session_id, False, sfu_lost=True)
            except Exception:
                log.exception("could not forget SFU session %s in %s", session_id, cid)

    async def _start_janus(self) -> None:
        """Start Janus and the Janus engine's signalling endpoint (in this event loop)."""
        try:
            config = janus_config_for(self.host, self.janus_config)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        self._janus = JanusProcess(config)
        try:
            janus_url = await self._janus.start()
            sfu = self._janus_sfu = JanusSfuServer(
                self.sfu_config,
                janus_url,
                admission=self._admit_sfu_session,
                on_participant=self._participant_changed,
            )
            await sfu.start()
            sfu_runner = web.AppRunner(sfu.app(), handle_signals=False, shutdown_timeout=1.0)
            await sfu_runner.setup()
            await web.TCPSite(sfu_runner, self.host, self._sfu_port).start()
        except BaseException:
            if self._janus_sfu is not None:
                await self._janus_sfu.close()
                self._janus_sfu = None
            await self._janus.stop()
            self._janus = None
            raise
        self._sfu_runner = sfu_runner
        sfu_host, sfu_port = sfu_runner.addresses[0][:2]
        self._sfu_port = sfu_port
        self.sfu_url = f"ws://{sfu_host}:{sfu_port}/sfu"
        self.config.sfu_url = self._public_sfu_url or self.sfu_url

    @property
    def janus_pid(self) -> int | None:
        """The Janus process's id with ``engine="janus"`` in this process (None otherwise)."""
        return self._janus.pid if self._janus is not None else None

    @property
    def janus_sfu(self) -> JanusSfuServer:
        """The Janus engine's signalling endpoint (``engine="janus"``; RuntimeError otherwise)."""
        if self._janus_sfu is None:
            raise RuntimeError("no janus engine is running")
        return self._janus_sfu

    async def stop(self) -> None:
        """Close every socket and peer connection (within about 2 s; the SFU process within 5 s)."""
        self._stopped = True
        supervisor, self._sfu_supervisor = self._sfu_supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.wait({supervisor})
        runner, self._runner = self._runner, None
        sfu_runner, self._sfu_runner = self._sfu_runner, None
        if sfu_runner is not None and self._sfu is not None:
            await self._sfu.close()
            await sfu_runner.cleanup()
        if sfu_runner is not None and self._janus_sfu is not None:
            await self._janus_sfu.close()
            await sfu_runner.cleanup()
            self._janus_sfu = None
        if self._janus is not None:
            await self._janus.stop()
            self._janus = None
        if self._sfu_process is not None:
            await self._sfu_process.stop()  # first: it reports its sessions leaving to the coordinator
        if runner is not None:
            await runner.cleanup()


def _check_url(url: str | None, schemes: tuple[str, ...], name: str) -> str | None:
    """``url`` without a trailing slash, or ValueError naming ``name`` when it is not a URL."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{name} must be a {' or '.join(s + '://' for s in schemes)} URL, not {url!r}")
    return url.rstrip("/")
