"""Ring-state reload costs (SPEC §2.6.1): ``python -m benchmarks.rings``.

Measured against an in-process EmbeddedServer, medians of a few runs, printed as JSON:

- ``connect_ms``: ``VideoClient.connect()`` for a callee with 0 and with ``many`` rings pending
  (connect loads them from ``GET /api/v1/rings`` before it returns);
- ``restart_converged_ms``: ``EmbeddedServer.stop()`` then ``start()`` (same ports, same store) until
  a callee with a pending ring has reconnected by itself and shows the server's rings again.

Not part of ``make bench`` (no budget); run it by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections.abc import Callable

from switchboard import ClientOptions, MemberRequest, User, VideoClient
from switchboard.server import EmbeddedServer


def _client(server: EmbeddedServer, user_id: str) -> VideoClient:
    return VideoClient(
        server.api_key,
        user=User.regular(user_id),
        user_token=server.create_token(user_id),
        options=ClientOptions(base_url=server.url),
    )


async def _connect_ms(server: EmbeddedServer, callee: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        client = _client(server, callee)
        start = time.perf_counter()
        await client.connect()
        samples.append((time.perf_counter() - start) * 1000)
        await client.disconnect()
    return statistics.median(samples)


def _on_reconnecting(event: asyncio.Event) -> Callable[[str], None]:
    def listener(state: str) -> None:
        if state == "reconnecting":
            event.set()

    return listener


async def _restart_ms(server: EmbeddedServer, callee: VideoClient, expected: int, runs: int) -> float:
    samples = []
    for _ in range(runs):
        dropped = asyncio.Event()
        unlisten = callee.state.connection.listen(_on_reconnecting(dropped))
        start = time.perf_counter()
        await server.stop()
        await server.start()
        await asyncio.wait_for(dropped.wait(), 10)
        unlisten()
        await callee.state.connection.wait_for(lambda s: s == "connected", timeout=10)
        assert len(callee.state.ringing_calls.value) == expected
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def run(*, many: int = 50, runs: int = 5) -> dict[str, float]:
    logging.getLogger("switchboard").setLevel(logging.WARNING)
    async with EmbeddedServer(rate_limit_per_second=1000, rate_limit_burst=2000) as server:
        results = {"connect_ms_0_rings": await _connect_ms(server, "callee", runs)}
        caller = _client(server, "caller")
        await caller.connect()
        try:
            for i in range(many):
                await caller.make_call("audio_room", f"r{i}").get_or_create(  # no ring deadline
                    members=[MemberRequest("callee")], ringing=True
                )
            results[f"connect_ms_{many}_rings"] = await _connect_ms(server, "callee", runs)
            callee = _client(server, "callee")
            await callee.connect()
            try:
                results[f"restart_converged_ms_{many}_rings"] = await _restart_ms(server, callee, many, runs)
            finally:
                await callee.disconnect()
        finally:
            await caller.disconnect()
    return {k: round(v, 1) for k, v in results.items()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
