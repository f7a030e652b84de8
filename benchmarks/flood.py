"""Media under a coordinator flood: the SFU in the coordinator's event loop vs in its own process.

``python -m benchmarks.flood [--seconds 2] [--sockets 20]``. For each layout a server process starts
(``benchmarks.server``; ``sfu_process`` false, then true as ``switchboard serve`` runs), two
participants in this process hear each other's tones, and a flooder process opens ``--sockets``
events sockets as one user and sends ``health.check`` frames as fast as it can for ``--seconds``
(the attack of issue 8: about 980k frames in 2 s stalled all audio for 22 s). From the start of the
flood until 4 s after it, each listener's playout is cut into 100 ms windows; reported per layout:
the share of windows in which the other participant's tone is audible (> -30 dBFS), the longest
inaudible run, and the frames the flooder got out. Prints one JSON object.

The coordinator's own socket limits (a separate concern) cut a flood short on their own; this
measures what the process layout guarantees whatever the coordinator is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import Child, ServerInfo
from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_levels_dbfs
from switchboard.protocol import coordinator as m

TONES = {"alice": 440.0, "bob": 660.0}
AUDIBLE_DBFS = -30.0
WINDOW = 4800  # samples at 48 kHz: 100 ms
AFTER_FLOOD = 4.0


async def flooder(url: str, api_key: str, token: str, seconds: float, sockets: int) -> None:
    """Child mode: flood the events socket from ``sockets`` connections; print the frames sent."""
    ws_url = url.replace("http://", "ws://", 1) + "/api/v1/events"
    sent = 0
    frame = m.HealthCheck().model_dump_json()
    deadline = time.monotonic() + seconds

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal sent
        try:
            async with http.ws_connect(ws_url) as ws:
                await ws.send_str(m.AuthRequest(api_key=api_key, token=token).model_dump_json())
                while time.monotonic() < deadline and not ws.closed:
                    for _ in range(200):
                        await ws.send_str(frame)
                    sent += 200
                    await asyncio.sleep(0)
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return  # cut off by the server

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(http) for _ in range(sockets)))
    print(json.dumps({"sent": sent}), flush=True)


def _audible_windows(speaker: CaptureSpeaker, start: int, end: int, tone: float) -> list[bool]:
    return [
        tone_levels_dbfs(speaker.samples_range(begin, begin + WINDOW), [tone])[0] > AUDIBLE_DBFS
        for begin in range(start, end - WINDOW + 1, WINDOW)
    ]


def _longest_gap_ms(windows: list[bool]) -> int:
    longest = run = 0
    for audible in windows:
        run = 0 if audible else run + 1
        longest = max(longest, run)
    return longest * 100


async def measure(sfu_process: bool, seconds: float, sockets: int, log_dir: Path) -> dict[str, Any]:
    server_child = await Child.start(
        "flood-server", "benchmarks.server", {"sfu_process": sfu_process}, log_dir
    )
    clients: list[VideoClient] = []
    try:
        server = ServerInfo.from_json(await server_child.read(timeout=30))
        for user, tone in TONES.items():
            client = VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.token(user),
                options=ClientOptions(
                    base_url=server.url, microphone=ToneMicrophone(tone), speaker=CaptureSpeaker()
                ),
            )
            await client.connect()
            clients.append(client)
        alice, bob = clients
        options = CallConnectOptions(camera=TrackOption.disabled())
        await alice.make_call("default", "flood").join(options)
        await bob.make_call("default", "flood").join(options)
        await asyncio.sleep(2.0)  # both tones flowing

        speakers = {name: client.capture_speaker for name, client in zip(TONES, clients, strict=True)}
        starts = {name: speaker.total_samples for name, speaker in speakers.items()}
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.flood", "--flooder", server.url, server.api_key,
            server.token("mallory"), str(seconds), str(sockets),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await flood.communicate()
        await asyncio.sleep(AFTER_FLOOD)
        result: dict[str, Any] = {"sent": json.loads(out.decode().strip().splitlines()[-1])["sent"]}
        for listener, other in (("alice", "bob"), ("bob", "alice")):
            speaker = speakers[listener]
            windows = _audible_windows(speaker, starts[listener], speaker.total_samples, TONES[other])
            result[f"{listener}_hears_{other}"] = {
                "audible_share": round(sum(windows) / max(1, len(windows)), 3),
                "longest_gap_ms": _longest_gap_ms(windows),
                "windows": len(windows),
            }
        return result
    finally:
        for client in clients:
            await client.disconnect()
        await server_child.stop()


async def run(seconds: float, sockets: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flood-bench-") as tmp:
        return {
            "flood": {"seconds": seconds, "sockets": sockets},
            "sfu_in_coordinator_loop": await measure(False, seconds, sockets, Path(tmp)),
            "sfu_in_own_process": await measure(True, seconds, sockets, Path(tmp)),
        }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--flooder":
        url, key, token, seconds, sockets = sys.argv[2:7]
        asyncio.run(flooder(url, key, token, float(seconds), int(sockets)))
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flood", description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--sockets", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.seconds, args.sockets)), indent=2))


if __name__ == "__main__":
    main()
