"""The encoder's expected loss following RTCP receiver reports, on a path that really loses packets.

    unshare -n python -m tests.loss_feedback_call LOSS_PERCENT

Run inside a private network namespace (root): brings up loopback, runs a server and two clients
(alice sends a tone, bob listens), and samples alice's expected loss (what her Opus encoder sizes
its FEC for) once a second: first on the clean path, then with nftables dropping LOSS_PERCENT of every
UDP datagram. Prints one JSON line: ``{"clean": [...], "lossy": [...], "reports": N, "start": P}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.server import EmbeddedServer
from tests.lossy_call import NFT_RULES, run

CLEAN_S = 8
LOSSY_S = 8


async def main(loss: int) -> dict[str, Any]:
    await run("ip", "link", "set", "lo", "up")
    result: dict[str, Any] = {}
    async with EmbeddedServer() as server:
        clients = []
        for user, hz in (("alice", 440.0), ("bob", 660.0)):
            client = VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(
                    base_url=server.url, microphone=ToneMicrophone(hz), speaker=CaptureSpeaker()
                ),
            )
            await client.connect()
            clients.append(client)
        alice, bob = (c.make_call("default", "feedback") for c in clients)
        await alice.get_or_create()
        await alice.join(CallConnectOptions(camera=TrackOption.disabled()))
        await bob.join(CallConnectOptions(camera=TrackOption.disabled()))
        adm = alice.audio_device_module
        assert adm is not None
        result["start"] = adm.policy.opus_expected_loss_percent
        clean, lossy = [], []
        for _ in range(CLEAN_S):
            await asyncio.sleep(1.0)
            clean.append(adm.expected_loss_percent)
        await run("nft", "-f", "-", stdin=NFT_RULES.replace("{loss}", str(loss)))
        for _ in range(LOSSY_S):
            await asyncio.sleep(1.0)
            lossy.append(adm.expected_loss_percent)
        await run("nft", "delete", "table", "inet", "lossy")
        result |= {
            "clean": clean,
            "lossy": lossy,
            "reports": adm.loss_feedback.reports if adm.loss_feedback else 0,
        }
        for client in clients:
            await client.disconnect()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1])))), flush=True)
