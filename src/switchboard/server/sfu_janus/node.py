"""A Janus SFU node on its own: Janus, the signalling endpoint, and the channel to a coordinator.

What ``switchboard sfu --engine janus`` and the SFU child process (``EmbeddedServer(engine="janus",
sfu_process=True)``) run: Janus is started with a generated configuration
(:class:`JanusProcess`), clients connect to ``ws://host:port/sfu``, tokens are admitted and sessions
reported through the coordinator channel (``server/sfu/process.py: CoordinatorChannel``), and the
coordinator ends calls with ``POST /sfu/internal/end_call`` and sends moderation commands, grants
updates and recording commands on the routes of ``protocol/sfu.py`` (admin token).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from aiohttp import web

from switchboard.media.local_ice import loopback_ice_address
from switchboard.server.sfu.internal_routes import add_sfu_internal_routes
from switchboard.server.sfu.server import Admission, SfuConfig
from switchboard.server.sfu.sessions import ParticipantHook
from switchboard.server.sfu_janus.janus_process import JanusConfig, JanusProcess
from switchboard.server.sfu_janus.server import JanusSfuServer


def janus_config_for(host: str, config: JanusConfig | None = None) -> JanusConfig:
    """``config`` (or the defaults) with Janus's ICE on the interface carrying ``host``.

    ``ValueError`` for a loopback ``host``: Janus never offers loopback addresses, so clients could
    not reach its media.
    """
    if loopback_ice_address(host) is not None:
        raise ValueError(
            f"the janus engine needs a non-loopback address to listen on, not {host!r}: "
            "Janus never offers loopback ICE candidates"
        )
    config = config or JanusConfig()
    if config.ice_interface is None and host not in ("0.0.0.0", "::"):
        config = dataclasses.replace(config, ice_interface=host)
    return config


async def serve_janus_node(
    config: SfuConfig,
    janus_config: JanusConfig,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    admission: Admission | None,
    on_participant: ParticipantHook | None,
    on_listening: Callable[[str], None],
) -> None:
    """Run until ``stop`` is set; ``on_listening(sfu_url)`` once clients can connect."""
    janus = JanusProcess(janus_config)
    await janus.start()
    sfu = JanusSfuServer(config, janus.url, admission=admission, on_participant=on_participant)
    runner: web.AppRunner | None = None
    try:
        await sfu.start()
        app = sfu.app()

        add_sfu_internal_routes(app, sfu, config.api_secret)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        on_listening(f"ws://{bound_host}:{bound_port}/sfu")
        await stop.wait()
    finally:
        await sfu.close()
        if runner is not None:
            await runner.cleanup()
        await janus.stop()
