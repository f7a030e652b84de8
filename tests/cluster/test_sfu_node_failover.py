"""An SFU node dies mid-call (SIGKILL): its calls move to a live node and are heard again.

A local cluster (redis-server, two coordinators, SFU node processes) starts with one node, so both
of my calls are on it: a main call with bob, and a side call with carol that I keep suspended. A
second node joins, the first is killed; the clients' resumes fail, the SDK joins each call again
through the coordinators, which place them on the live node. The test reports how long the audio
was gone and checks that the side call is still suspended (carol does not hear me, I do not hear
her) once the main call is heard again.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from switchboard import (
    CallConnectOptions,
    ClientOptions,
    MemberRequest,
    MultiCallAudioPolicy,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.server.cluster import LocalCluster
from switchboard.server.coordinator.redis_sfu_nodes import RedisSfuNodes
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_nodes import NODE_TTL
from tests.conftest import stays_heard, wait_heard
from tests.redis_server import redis_server_binary

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
TONES = {"me": 1000.0, "bob": 440.0, "carol": 660.0}
#: the audio must be back within this many seconds of the SIGKILL: the registry forgets the node
#: after NODE_TTL, and the SDK's resume attempts and join again take a few seconds more
RECOVERY_BOUND_S = NODE_TTL + 12.0


async def client(cluster: LocalCluster, user_id: str, **options: Any) -> VideoClient:
    sdk = VideoClient(
        cluster.api_key,
        user=User.regular(user_id),
        user_token=cluster.create_token(user_id),
        options=ClientOptions(
            base_url=cluster.url,
            microphone=ToneMicrophone(TONES[user_id]),
            speaker=CaptureSpeaker(),
            **options,
        ),
    )
    await sdk.connect()
    return sdk


async def test_an_sfu_node_killed_mid_call_moves_its_calls() -> None:
    redis_server_binary()
    async with LocalCluster(coordinators=2, nodes=1) as cluster:
        me = await client(
            cluster,
            "me",
            allow_multiple_active_calls=True,
            multi_call_audio_policy=MultiCallAudioPolicy.MANUAL,
        )
        bob, carol = await client(cluster, "bob"), await client(cluster, "carol")
        try:
            main = me.make_call("default", "main")
            await main.get_or_create(members=[MemberRequest("me"), MemberRequest("bob")])
            await main.join(MIC_ON)
            await bob.make_call("default", "main").join(MIC_ON)
            carol_side = carol.make_call("default", "side")
            await carol_side.get_or_create(members=[MemberRequest("me"), MemberRequest("carol")])
            await carol_side.join(MIC_ON)
            side = me.make_call("default", "side")
            await side.join(MIC_ON)
            await side.suspend_audio()
            assert side.state.value.is_audio_suspended
            await wait_heard(me, TONES, audible={"bob"})
            await wait_heard(bob, TONES, audible={"me"})
            await wait_heard(carol, TONES, audible=set())

            [doomed] = cluster.of_role("sfu")
            survivor = await cluster.add_node()
            os.kill(doomed.pid, signal.SIGKILL)
            killed = time.monotonic()
            await wait_heard(me, TONES, audible=set(), timeout=5.0)  # the audio is gone with the node

            await wait_heard(me, TONES, audible={"bob"}, timeout=RECOVERY_BOUND_S)
            await wait_heard(bob, TONES, audible={"me"}, timeout=RECOVERY_BOUND_S)
            print(f"audio back through the live SFU node {time.monotonic() - killed:.2f} s after SIGKILL")

            store = RedisStore.from_url(cluster.redis_url, prefix=cluster.prefix)
            try:
                for call in (main, side):
                    node = await RedisSfuNodes(store).node_of(call.cid)
                    assert node is not None and node.url == survivor.url, f"{call.cid} moved"
            finally:
                await store.close()
            # the side call came back suspended: I do not hear carol, she does not hear me
            assert side.state.value.is_audio_suspended
            await stays_heard(me, TONES, audible={"bob"}, duration=1.0)
            await stays_heard(carol, TONES, audible=set(), duration=0.6)
        finally:
            for sdk in (me, bob, carol):
                await sdk.disconnect()
