"""Custom events vs participant messages, sender to receiver: ``python -m benchmarks.messages``.

Two joined clients on an in-process EmbeddedServer (loopback). Alice sends ``count`` small custom
events (coordinator REST, event log, events socket) and then ``count`` participant messages (SFU
signalling socket), paced below both rate limits; each carries its send time, and bob's client
records when its event fires. Prints p50/p95/max latency in ms as JSON.

Not part of ``make bench`` (no budget); run it by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time

from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.protocol import coordinator as m
from switchboard.sdk.messages import ParticipantMessageEvent
from switchboard.server import EmbeddedServer

NO_MEDIA = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def run(count: int = 100) -> dict[str, dict[str, float]]:
    async with EmbeddedServer() as server:
        clients = []
        for user in ("alice", "bob"):
            client = VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(base_url=server.url),
            )
            await client.connect()
            clients.append(client)
        alice, bob = (c.make_call("default", "bench-messages") for c in clients)
        await alice.get_or_create(members=["bob"])
        await alice.join(NO_MEDIA)
        await bob.join(NO_MEDIA)
        event_ms: list[float] = []
        message_ms: list[float] = []

        def on_custom(event: m.Event) -> None:
            if isinstance(event, m.CustomEvent):
                event_ms.append((time.perf_counter() - float(event.custom["t"])) * 1000)

        def on_message(event: m.Event) -> None:
            if isinstance(event, ParticipantMessageEvent):
                message_ms.append((time.perf_counter() - float(event.data["t"])) * 1000)

        bob.on("custom", on_custom)
        bob.on("participant_message", on_message)
        for _ in range(count):
            await alice.send_custom_event({"t": time.perf_counter()})
            await asyncio.sleep(0.12)  # under 10 per second
        for _ in range(count):
            await alice.send_message({"t": time.perf_counter()})
            await asyncio.sleep(0.06)  # under 20 per second
        await asyncio.sleep(0.5)
        for client in clients:
            await client.disconnect()
    return {"custom_event": _summary(event_ms), "participant_message": _summary(message_ms)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(run()), indent=2))
