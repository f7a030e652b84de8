"""SFU nodes as processes: ``switchboard cluster`` (redis-server, two coordinators with no SFU of
their own, two ``switchboard sfu --redis`` nodes, a balancer) and what clients see of placement.

Both nodes register; new calls spread over them; a call sticks to its node whichever coordinator a
join reaches; a node killed with SIGKILL leaves the registry once its heartbeat expires, after which
new joins, and a join again for a call that was on it, land on the live node.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.protocol.tokens import generate_key_pair
from switchboard.server.cluster import LocalCluster
from switchboard.server.coordinator.redis_sfu_nodes import RedisSfuNodes
from switchboard.server.coordinator.redis_sfu_sessions import RedisSfuSessions
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_nodes import NODE_TTL, SfuNode
from tests.conftest import wait_heard
from tests.redis_server import redis_server_binary

MIC_ONLY = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
TONES = {"alice": 440.0, "bob": 660.0}


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    redis_server_binary()  # fails under CI=true, skips elsewhere, when redis-server is missing
    async with LocalCluster(coordinators=2, nodes=2) as running:
        yield running


async def live_nodes(cluster: LocalCluster) -> list[SfuNode]:
    store = RedisStore.from_url(cluster.redis_url, prefix=cluster.prefix)
    try:
        return await RedisSfuNodes(store).live()
    finally:
        await store.close()


async def rest_join(base_url: str, cluster: LocalCluster, user_id: str, call_id: str) -> m.JoinCallResponse:
    """``POST .../join`` (creating the call) as ``user_id`` on the coordinator at ``base_url``."""
    headers = {"Authorization": f"Bearer {cluster.create_token(user_id)}", "X-Api-Key": cluster.api_key}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/api/v1/calls/default/{call_id}/join",
            json={"create": True, "data": {"members": [{"user_id": "alice"}, {"user_id": "bob"}]}},
            headers=headers,
        ) as resp,
    ):
        body = await resp.text()
        assert resp.status == 200, body
        return m.JoinCallResponse.model_validate_json(body)


async def client(cluster: LocalCluster, user_id: str) -> VideoClient:
    sdk = VideoClient(
        cluster.api_key,
        user=User.regular(user_id),
        user_token=cluster.create_token(user_id),
        options=ClientOptions(
            base_url=cluster.url, microphone=ToneMicrophone(TONES[user_id]), speaker=CaptureSpeaker()
        ),
    )
    await sdk.connect()
    return sdk


async def test_two_nodes_register_calls_spread_and_stick_to_their_node(cluster: LocalCluster) -> None:
    nodes = await live_nodes(cluster)
    assert sorted(n.url for n in nodes) == sorted(cluster.node_urls)
    assert {n.engine for n in nodes} == {"embedded"}
    first, second = cluster.coordinator_urls

    one = await rest_join(first, cluster, "alice", "one")
    two = await rest_join(second, cluster, "alice", "two")
    assert {one.credentials.server.url, two.credentials.server.url} == set(cluster.node_urls), (
        "two new calls on idle nodes land on different nodes"
    )
    # bob joins call one through the other coordinator, and alice again: the same node each time
    for base, user in ((second, "bob"), (first, "alice"), (second, "alice")):
        again = await rest_join(base, cluster, user, "one")
        assert again.credentials.server.url == one.credentials.server.url
    two_again = await rest_join(first, cluster, "bob", "two")
    assert two_again.credentials.server.url == two.credentials.server.url


async def test_a_killed_node_expires_and_joins_land_on_the_live_node(cluster: LocalCluster) -> None:
    alice, bob = await client(cluster, "alice"), await client(cluster, "bob")
    try:
        alice_call = alice.make_call("default", "doomed")
        await alice_call.get_or_create(members=["alice", "bob"])
        await alice_call.join(MIC_ONLY)
        await bob.make_call("default", "doomed").join(MIC_ONLY)
        await wait_heard(alice, TONES, audible={"bob"})

        store = RedisStore.from_url(cluster.redis_url, prefix=cluster.prefix)
        sessions = RedisSfuSessions(store)
        try:
            doomed = await RedisSfuNodes(store).node_of(alice_call.cid)
            old = {u: await sessions.media_session_ids(alice_call.cid, u) for u in ("alice", "bob")}
        finally:
            await store.close()
        assert doomed is not None
        assert all(len(ids) == 1 for ids in old.values()), old
        [victim] = [p for p in cluster.of_role("sfu") if p.url == doomed.url]
        [survivor] = [url for url in cluster.node_urls if url != doomed.url]
        killed = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)

        while doomed.id in {n.id for n in await live_nodes(cluster)}:
            assert time.monotonic() - killed < NODE_TTL + 3.0, "the dead node stayed in the registry"
            await asyncio.sleep(0.1)
        print(f"dead SFU node left the registry {time.monotonic() - killed:.2f} s after SIGKILL")
        assert [n.url for n in await live_nodes(cluster)] == [survivor]

        # alice joins her call again (what the SDK's rejoin does): a new session on the live node;
        # her old session on the dead node does not count against her
        again = await rest_join(cluster.url, cluster, "alice", "doomed")
        assert again.credentials.server.url == survivor
        bob_again = await rest_join(cluster.url, cluster, "bob", "doomed")
        assert bob_again.credentials.server.url == survivor
        assert bob_again.session_id != again.session_id
        # the sessions the dead node held are gone for the coordinators: left, no longer in the media
        store = RedisStore.from_url(cluster.redis_url, prefix=cluster.prefix)
        sessions = RedisSfuSessions(store)
        try:
            for user, (session_id,) in old.items():
                # (the SDK clients rejoin by themselves too: their new sessions may be there already)
                assert session_id not in await sessions.media_session_ids(alice_call.cid, user)
                record = await sessions.get(session_id)
                assert record is not None and record.left, f"{user}'s session on the dead node"
        finally:
            await store.close()
        fresh = await rest_join(cluster.url, cluster, "bob", "fresh")
        assert fresh.credentials.server.url == survivor
    finally:
        await alice.disconnect()
        await bob.disconnect()


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_switchboard_cluster_serves_a_call_and_stops_cleanly() -> None:
    redis_server_binary()
    api_key, api_secret = generate_key_pair()
    keys = {"SWITCHBOARD_API_KEY": api_key, "SWITCHBOARD_API_SECRET": api_secret}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.cli",
        "cluster",
        "--port",
        "0",
        env={**os.environ, **keys},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
        assert banner.startswith("switchboard cluster on http://127.0.0.1:"), banner
        url = banner.split()[3].rstrip(":")
        lines = [(await proc.stdout.readline()).decode().split() for _ in range(5)]
        assert sorted(line[0] for line in lines) == ["coordinator", "coordinator", "redis", "sfu", "sfu"]
        pids = {int(line[2]) for line in lines}
        assert pids == _children_of(proc.pid)

        local = LocalCluster(api_key=api_key, api_secret=api_secret)
        local.url = url  # only for tokens and the URL: this test talks to the command's cluster
        alice, bob = await client(local, "alice"), await client(local, "bob")
        try:
            call = alice.make_call("default", "through-the-cluster")
            await call.get_or_create(members=["alice", "bob"])
            await call.join(MIC_ONLY)
            await bob.make_call("default", "through-the-cluster").join(MIC_ONLY)
            await wait_heard(alice, TONES, audible={"bob"})
            await wait_heard(bob, TONES, audible={"alice"})
        finally:
            await alice.disconnect()
            await bob.disconnect()

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert not [pid for pid in pids if _alive(pid)], "a process of the cluster outlived it"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
