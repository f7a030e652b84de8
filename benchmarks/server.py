"""Helper process: an :class:`EmbeddedServer` (coordinator + SFU) on free local ports.

Prints one JSON line (``url``, ``api_key``, ``api_secret``, ``sfu_url``, ``pid``) once it listens, and
shuts down cleanly when its stdin closes. The per-user REST rate limit is raised so that load
generators joining hundreds of sessions as one process are not throttled. ``{"sfu_process": true}``
runs the SFU in its own process, as ``switchboard serve`` does; ``{"engine": "janus", "host": ...}``
uses Janus as the media engine (``media_pids`` then names the Janus process); ``{"direct_audio": false}``
sends the embedded SFU's audio through aiortc's sender task (the before-and-after baseline).
"""

from __future__ import annotations

import os

from benchmarks.common import Json, commands, emit, run_child
from switchboard.server import EmbeddedServer
from switchboard.server.sfu import forwarding


async def main(config: Json) -> None:
    forwarding.DIRECT_AUDIO = bool(config.get("direct_audio", True))
    server = EmbeddedServer(
        host=str(config.get("host", "127.0.0.1")),
        rate_limit_per_second=100_000.0,
        rate_limit_burst=100_000,
        sfu_process=bool(config.get("sfu_process", False)),
        engine=str(config.get("engine", "embedded")),
    )
    await server.start()
    try:
        emit(
            {
                "url": server.url,
                "api_key": server.api_key,
                "api_secret": server.api_secret,
                "sfu_url": server.sfu_url,
                "pid": os.getpid(),
                "media_pids": [server.janus_pid] if server.janus_pid is not None else [],
            }
        )
        async for _ in commands():
            pass
    finally:
        await server.stop()


if __name__ == "__main__":
    run_child(main)
