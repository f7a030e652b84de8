"""Run the whole server (coordinator + SFU) inside the current event loop, on free local ports."""

from __future__ import annotations

import os
from types import TracebackType

from aiohttp import web

from switchboard.protocol.tokens import create_admin_token, create_user_token, generate_key_pair
from switchboard.server.coordinator.app import COORDINATOR_KEY, create_app, http_server_options
from switchboard.server.coordinator.limits import CoordinatorLimits
from switchboard.server.coordinator.service import Coordinator, CoordinatorConfig
from switchboard.server.sfu import SfuConfig, SfuServer


class EmbeddedServer:
    """``async with EmbeddedServer() as server:`` — a complete server on free local ports.

    ``server.url`` is the coordinator's base URL for ``ClientOptions(base_url=...)``,
    ``server.api_key`` its API key, and ``server.create_token(user_id)`` signs user tokens.
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
        limits: CoordinatorLimits | None = None,
    ) -> None:
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
            limits=limits or CoordinatorLimits(),
        )
        self.sfu = SfuServer(
            SfuConfig(api_secret=api_secret, reconnect_grace=reconnect_grace),
            call_is_active=self._call_is_active,
            on_participant=self._participant_changed,
        )
        self._sfu_port = sfu_port
        self._runner: web.AppRunner | None = None
        self._sfu_runner: web.AppRunner | None = None
        self.url = ""
        self.sfu_url = ""

    @classmethod
    def from_env(cls, **kwargs: object) -> EmbeddedServer:
        key, secret = os.environ.get("SWITCHBOARD_API_KEY"), os.environ.get("SWITCHBOARD_API_SECRET")
        return cls(api_key=key, api_secret=secret, **kwargs)  # type: ignore[arg-type]

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

    async def _call_is_active(self, cid: str) -> bool:
        call = await self.coordinator.store.get_call(cid)
        return call is not None and call.ended_at is None

    async def _participant_changed(self, cid: str, user_id: str, session_id: str, joined: bool) -> None:
        if self._runner is not None:
            await self.coordinator.participant_changed(cid, user_id, session_id, joined)

    async def start(self) -> None:
        if self._runner is not None:
            return
        sfu_runner = web.AppRunner(self.sfu.app(), handle_signals=False, shutdown_timeout=1.0)
        await sfu_runner.setup()
        await web.TCPSite(sfu_runner, self.host, self._sfu_port).start()
        self._sfu_runner = sfu_runner
        sfu_host, sfu_port = sfu_runner.addresses[0][:2]
        self.sfu_url = self.config.sfu_url = f"ws://{sfu_host}:{sfu_port}/sfu"

        app = create_app(self.config)
        app[COORDINATOR_KEY].call_ended_hooks.append(self.sfu.end_call)
        runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=1.0, **http_server_options(self.config)
        )
        await runner.setup()
        await web.TCPSite(runner, self.host, self._port).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Close every socket and peer connection (within about 2 s)."""
        runner, self._runner = self._runner, None
        sfu_runner, self._sfu_runner = self._sfu_runner, None
        if sfu_runner is not None:
            await self.sfu.close()
            await sfu_runner.cleanup()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
