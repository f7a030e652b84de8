"""Two ``switchboard coordinator --redis`` processes on one redis-server, one shared SFU process.

Clients on different coordinators ring each other and hear each other; a coordinator killed with
SIGKILL mid-ring and mid-call loses no event and no call: its clients reach the other coordinator
through the load balancer in front of both (``tests/cluster/balancer.py`` stands for it) and replay
what they missed; a ring deadline armed by the dead coordinator still fires, once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from switchboard import (
    CallConnectOptions,
    ClientOptions,
    RejectReason,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.protocol.tokens import create_user_token, generate_key_pair
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.sfu import SfuConfig
from switchboard.server.sfu.process import SfuProcess
from tests.cluster.balancer import TcpBalancer
from tests.conftest import stays_heard, wait_heard

MIC_ONLY = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
TONES = {"alice": 440.0, "bob": 660.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    redis_url: str
    prefix: str
    api_key: str
    api_secret: str
    ports: list[int]
    sfu_url: str = ""
    processes: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    clients: list[VideoClient] = field(default_factory=list)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def backends(self, *indexes: int) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.ports[i]) for i in indexes]

    async def start(self, index: int) -> None:
        env = {**os.environ, "SWITCHBOARD_API_KEY": self.api_key, "SWITCHBOARD_API_SECRET": self.api_secret}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "switchboard.cli",
            "coordinator",
            "--redis",
            self.redis_url,
            "--prefix",
            self.prefix,
            "--port",
            str(self.ports[index]),
            "--sfu-url",
            self.sfu_url,
            "--log-level",
            "warning",
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"switchboard coordinator on "), line
        self.processes[index] = proc

    async def kill(self, index: int) -> None:
        proc = self.processes.pop(index)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def stop_all(self) -> None:
        for index in list(self.processes):
            proc = self.processes.pop(index)
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def client(self, user_id: str, base_url: str) -> VideoClient:
        client = VideoClient(
            self.api_key,
            user=User.regular(user_id),
            user_token=create_user_token(self.api_secret, user_id),
            options=ClientOptions(
                base_url=base_url,
                microphone=ToneMicrophone(TONES.get(user_id, 880.0)),
                speaker=CaptureSpeaker(),
            ),
        )
        await client.connect()
        self.clients.append(client)
        return client


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[Cluster]:
    api_key, api_secret = generate_key_pair()
    cl = Cluster(redis_url, f"cl{uuid.uuid4().hex[:8]}:", api_key, api_secret, [free_port(), free_port()])
    # the SFU reaches "the coordinators" through a balancer too: admission and session reports may
    # land on either, as they would behind a deployment's load balancer
    sfu_balancer = TcpBalancer(cl.backends(0, 1))
    await sfu_balancer.start()
    sfu = SfuProcess(
        SfuConfig(api_secret=api_secret, reconnect_grace=1.0, ice_loopback_address="127.0.0.1"),
        host="127.0.0.1",
        port=0,
        coordinator_url=sfu_balancer.url,
    )
    cl.sfu_url = await sfu.start()
    try:
        await asyncio.gather(cl.start(0), cl.start(1))
        yield cl
    finally:
        for client in cl.clients:
            await client.disconnect()
        await cl.stop_all()
        await sfu.stop()
        await sfu_balancer.stop()


def record_events(client: VideoClient) -> list[m.Event]:
    seen: list[m.Event] = []
    client.on("*", lambda event: seen.append(event) if event.id else None)
    return seen


async def events_for(cluster: Cluster, user_id: str) -> list[int]:
    """Ids of the events in the shared log addressed to ``user_id``."""
    store = RedisStore.from_url(cluster.redis_url, prefix=cluster.prefix)
    try:
        log = await store.events_after(0)
    finally:
        await store.close()
    assert log is not None
    return [event.id for event in log if user_id in event.users]


def ring_timeout(ms: int) -> m.CallSettingsRequest:
    return m.CallSettingsRequest(
        ring=m.RingSettingsRequest(incoming_call_timeout_ms=ms, auto_cancel_timeout_ms=ms)
    )


async def test_clients_on_different_coordinators_ring_and_hear_each_other(cluster: Cluster) -> None:
    alice = await cluster.client("alice", cluster.url(0))
    bob = await cluster.client("bob", cluster.url(1))
    call = alice.make_call("default", "across")
    await call.get_or_create(members=["alice", "bob"], ringing=True)

    incoming = await bob.state.incoming_call.wait_for(lambda c: c is not None, timeout=10)
    assert incoming is not None and incoming.cid == call.cid
    await incoming.accept()
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=10)
    assert call.state.value.ring_outcome is m.RingOutcome.ACCEPTED

    await call.join(MIC_ONLY)
    await incoming.join(MIC_ONLY)
    await wait_heard(alice, TONES, audible={"bob"})
    await wait_heard(bob, TONES, audible={"alice"})

    # and the other way round: bob (coordinator 2) rings alice (coordinator 1) into another call
    back = bob.make_call("default", "back")
    await back.get_or_create(members=["alice", "bob"], ringing=True)
    rung = await alice.state.incoming_call.wait_for(lambda c: c is not None, timeout=10)
    assert rung is not None and rung.cid == back.cid
    await rung.reject(RejectReason.DECLINE)
    await bob.state.outgoing_call.wait_for(lambda c: c is None, timeout=10)
    assert back.state.value.ring_outcome is m.RingOutcome.REJECTED


async def test_a_coordinator_killed_mid_ring_loses_no_event(cluster: Cluster) -> None:
    # alice reaches coordinator 1 while it lives, then coordinator 2; bob is on coordinator 2
    front = TcpBalancer(cluster.backends(0, 1))
    await front.start()
    try:
        alice = await cluster.client("alice", front.url)
        bob = await cluster.client("bob", cluster.url(1))
        alice_seen, bob_seen = record_events(alice), record_events(bob)

        answered = alice.make_call("default", "answered")
        await answered.get_or_create(
            members=["alice", "bob"], settings_override=ring_timeout(60_000), ringing=True
        )
        unanswered = alice.make_call("default", "unanswered")
        await unanswered.get_or_create(
            members=["alice", "bob"], settings_override=ring_timeout(2_000), ringing=True
        )
        await bob.state.ringing_calls.wait_for(lambda calls: len(calls) == 2, timeout=10)

        # coordinator 1 (which started both rings and armed the deadline) dies without a word
        await cluster.kill(0)
        await bob.make_call("default", "answered").accept()

        # the deadline still fires (coordinator 2 claims it), once
        bob_unanswered = bob.make_call("default", "unanswered")
        await bob_unanswered.state.wait_for(lambda s: s.ring_outcome is m.RingOutcome.MISSED, timeout=10)
        await alice.state.connection.wait_for(lambda s: s == "connected", timeout=10)
        await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=10)
        assert not alice.state.ringing_calls.value
        assert front.routed[-1] == ("127.0.0.1", cluster.ports[1]), "alice reconnected to coordinator 2"

        # every event for each user, exactly once, in order, across the failover
        await asyncio.sleep(0.5)
        for user, seen in (("alice", alice_seen), ("bob", bob_seen)):
            ids = [event.id for event in seen]
            assert ids == sorted(set(ids)), f"{user} got an event twice or out of order: {ids}"
            expected = await events_for(cluster, user)
            assert set(expected) <= set(ids), f"{user} missed events {sorted(set(expected) - set(ids))}"
        # alice heard how both of her rings ended, though both ended while she had no coordinator
        endings = {e.cid: (e.outcome, e.reason) for e in alice_seen if isinstance(e, m.CallRingEndedEvent)}
        assert endings == {
            answered.cid: (m.RingOutcome.ACCEPTED, None),
            unanswered.cid: (m.RingOutcome.REJECTED, RejectReason.TIMEOUT),
        }
        missed = [e for e in bob_seen if e.type == "call.ring_ended" and e.cid == unanswered.cid]
        assert len(missed) == 1, "the deadline fired once"
    finally:
        await front.stop()


async def test_a_coordinator_killed_mid_call_loses_no_call(cluster: Cluster) -> None:
    front = TcpBalancer(cluster.backends(0, 1))
    await front.start()
    try:
        alice = await cluster.client("alice", front.url)
        bob = await cluster.client("bob", cluster.url(1))
        alice_call = alice.make_call("default", "ongoing")
        await alice_call.get_or_create(members=["alice", "bob"])
        bob_call = bob.make_call("default", "ongoing")
        await alice_call.join(MIC_ONLY)
        await bob_call.join(MIC_ONLY)
        await wait_heard(alice, TONES, audible={"bob"})
        await wait_heard(bob, TONES, audible={"alice"})

        await cluster.kill(0)
        # media never went through the coordinator: the call goes on, heard throughout
        await stays_heard(alice, TONES, audible={"bob"}, duration=1.0)
        await alice.state.connection.wait_for(lambda s: s == "connected", timeout=10)

        # the call's state is intact on coordinator 2: alice's requests work there, and the events of
        # the call (bob's leaving, which the SFU reports to a live coordinator) reach alice
        await alice_call.update(custom={"topic": "after the failover"})
        await bob_call.state.wait_for(lambda s: s.custom == {"topic": "after the failover"}, timeout=10)
        await bob_call.leave()
        await alice_call.state.wait_for(lambda s: len(s.participants) == 1, timeout=10)
        await wait_heard(alice, TONES, audible=set())
    finally:
        await front.stop()
