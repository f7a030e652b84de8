"""A two-party call whose UDP loses packets: run inside a private network namespace (root).

    unshare -n python -m tests.lossy_call LOSS_PERCENT

Brings up loopback, runs a server and two clients (alice sends a tone, bob listens), reads
statistics and connection quality with no loss, then makes nftables drop LOSS_PERCENT of every UDP
datagram in the namespace (both media directions) and reads them again. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.sdk.call import Call
from switchboard.server import EmbeddedServer

NFT_RULES = (
    "add table inet lossy\n"
    "add chain inet lossy out { type filter hook output priority 0; }\n"
    "add rule inet lossy out meta l4proto udp numgen random mod 100 < {loss} drop\n"
)


async def run(*command: str, stdin: str | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE if stdin else None)
    await proc.communicate(stdin.encode() if stdin else None)
    if proc.returncode != 0:
        raise RuntimeError(f"{command} failed with {proc.returncode}")


async def quality_of(call: Call, user: str, want: str | None, timeout: float = 15.0) -> str | None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = {q.user_id: q.connection_quality for q in call.state.value.participants}
        if seen.get(user) == want or loop.time() > deadline:
            return seen.get(user)
        await asyncio.sleep(0.1)


def snapshot(stats: Any) -> list[dict[str, Any]]:
    return [dataclasses.asdict(t) for t in stats.tracks]


async def main(loss: int) -> dict[str, Any]:
    await run("ip", "link", "set", "lo", "up")
    result: dict[str, Any] = {}
    async with EmbeddedServer() as server:
        clients = []
        for user, mic in (("alice", ToneMicrophone(440.0)), ("bob", ToneMicrophone(660.0))):
            client = VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(base_url=server.url, microphone=mic, speaker=CaptureSpeaker()),
            )
            await client.connect()
            clients.append(client)
        alice, bob = (c.make_call("default", "lossy") for c in clients)
        await alice.get_or_create()
        await alice.join(CallConnectOptions(camera=TrackOption.disabled()))
        await bob.join(CallConnectOptions(camera=TrackOption.disabled()))
        await asyncio.sleep(3.0)
        await bob.get_stats()
        await alice.get_stats()
        await asyncio.sleep(2.0)
        result["before"] = {
            "bob": snapshot(await bob.get_stats()),
            "alice": snapshot(await alice.get_stats()),
        }
        result["quality_before"] = await quality_of(bob, "alice", "excellent")
        await run("nft", "-f", "-", stdin=NFT_RULES.replace("{loss}", str(loss)))
        await asyncio.sleep(3.0)
        await bob.get_stats()
        await alice.get_stats()
        await asyncio.sleep(4.0)
        result["after"] = {"bob": snapshot(await bob.get_stats()), "alice": snapshot(await alice.get_stats())}
        result["quality_after"] = await quality_of(bob, "alice", "poor")
        await run("nft", "delete", "table", "inet", "lossy")
        for client in clients:
            await client.disconnect()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1])))), flush=True)
