"""Helper process: SDK "bots", one per room, each joined with its microphone playing its own tone.

Config: ``{"server": ServerInfo, "bots": [{"user": "botA", "room": "roomA", "hz": 440}, ...]}``. Prints
``{"ready": n}`` once every bot has joined and publishes, and leaves everything when stdin closes.
``{"cmd": "tone", "user": "botA", "hz": 880}`` changes that bot's tone from its next 20 ms frame on
(answer: ``{"ok": true}``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Child, Json, ServerInfo, ToneSource, commands, emit, make_client, run_child
from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.media import CaptureSpeaker

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())


@dataclass(frozen=True)
class BotSpec:
    user: str
    room: str
    hz: float

    def to_json(self) -> Json:
        return {"user": self.user, "room": self.room, "hz": self.hz}


async def start_bots(server: ServerInfo, bots: list[BotSpec], log_dir: Path, name: str = "bots") -> Child:
    """Start the bots process (parent side); returns once every bot publishes its tone."""
    config = {"server": server.to_json(), "bots": [b.to_json() for b in bots]}
    child = await Child.start(name, "benchmarks.bots", config, log_dir)
    try:
        await child.read(timeout=30.0 + 2.0 * len(bots))
    except BaseException:
        await child.stop()
        raise
    return child


async def _start_bot(
    server: ServerInfo, spec: Json, gate: asyncio.Semaphore
) -> tuple[VideoClient, ToneSource]:
    async with gate:
        tone = ToneSource(float(spec["hz"]))
        # A short speaker ring: bots never look at what they hear (the default keeps 120 s, 23 MB).
        client = make_client(
            server,
            str(spec["user"]),
            microphone=tone,
            speaker=CaptureSpeaker(max_seconds=2.0),
        )
        await client.connect()
        call = client.make_call("default", str(spec["room"]))
        await call.get_or_create()
        await call.join(MIC_ON)
        return client, tone


async def main(config: Json) -> None:
    server = ServerInfo.from_json(config["server"])
    gate = asyncio.Semaphore(int(config.get("concurrency", 4)))
    started = await asyncio.gather(*(_start_bot(server, spec, gate) for spec in config["bots"]))
    clients = [client for client, _ in started]
    tones = {client.user.id: tone for client, tone in started}
    try:
        emit({"ready": len(clients)})
        async for command in commands():
            if command.get("cmd") == "tone":
                tones[str(command["user"])].hz = float(command["hz"])
                emit({"ok": True})
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)


if __name__ == "__main__":
    run_child(main)
