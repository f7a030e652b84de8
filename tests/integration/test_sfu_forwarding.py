"""Audio forwarding straight from the SFU's ingest path: what each subscriber receives.

One publisher, several listeners (real SDK clients, real peer connections, the embedded server). Each
listener's stream has its own SSRC (the one the SFU's sender announced), arrives with no gap in its
sequence numbers (aiortc's receiver counts a gap as lost packets), and a paused (suspended) listener
is sent nothing while the others keep receiving; after resuming, its sequence numbers carry on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiortc.stats import RTCInboundRtpStreamStats

from switchboard import CallConnectOptions, TrackOption
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.sdk.call import Call
from switchboard.server import EmbeddedServer
from switchboard.server.sfu.forwarding import DownTrack
from tests.conftest import ClientFactory, wait_heard

LISTENERS = 5
TONE = 440.0
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
LISTEN = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())


async def _inbound(call: Call, ssrc: int) -> RTCInboundRtpStreamStats:
    """The listener's inbound audio stream ``ssrc``, as its aiortc receiver counts it."""
    assert call.media is not None
    found = [
        stats
        for transceiver in call.media.subscriber.getTransceivers()
        if transceiver.kind == "audio"
        for stats in (await transceiver.receiver.getStats()).values()
        if isinstance(stats, RTCInboundRtpStreamStats) and stats.ssrc == ssrc
    ]
    assert len(found) == 1, f"{len(found)} inbound audio streams with SSRC {ssrc}"
    return found[0]


async def _until(ready: Callable[[], bool], what: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def _settled(call: Call, ssrc: int, quiet: float = 0.5, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until the stream's received count has not moved for ``quiet`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = -1, loop.time()
    while loop.time() - since < quiet:
        assert loop.time() < deadline, "the paused listener kept receiving"
        count = (await _inbound(call, ssrc)).packetsReceived
        if count != last:
            last, since = count, loop.time()
        await asyncio.sleep(0.05)


def _downtrack(server: EmbeddedServer, call: Call) -> DownTrack:
    """The SFU's down-track forwarding alice's audio to ``call``'s session."""
    participant = server.sfu.rooms["default:fanout"].participants[call.state.value.session_id or ""]
    downs = [
        d
        for d in participant.downtracks
        if d.kind == "audio" and d.source is not None and d.source.user_id == "alice"
    ]
    assert len(downs) == 1
    return downs[0]


async def test_each_listener_gets_its_own_continuous_stream_and_a_paused_one_gets_nothing(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice", microphone=ToneMicrophone(TONE))
    publisher = alice.make_call("default", "fanout")
    await publisher.get_or_create()
    await publisher.join(MIC_ON)
    listeners, calls = [], []
    for i in range(LISTENERS):
        client = await make_client(f"ear-{i}", speaker=CaptureSpeaker(max_seconds=10.0))
        call = client.make_call("default", "fanout")
        await call.join(LISTEN)
        listeners.append(client)
        calls.append(call)
    for client in listeners:
        await wait_heard(client, {"alice": TONE}, audible={"alice"})

    # every listener's stream of alice: the SSRC its down-track sends with, distinct, no sequence gap
    downs = [_downtrack(server, call) for call in calls]
    assert all(d.direct is not None for d in downs)  # audio goes out through the direct path
    ssrcs = [d.transceiver.sender._ssrc for d in downs]
    assert len(set(ssrcs)) == LISTENERS
    before = [await _inbound(call, ssrc) for call, ssrc in zip(calls, ssrcs, strict=True)]
    assert all(s.packetsReceived > 0 and s.packetsLost == 0 for s in before)

    # the first listener is suspended: its down-track is paused and nothing more is sent to it
    paused, playing = calls[0], calls[1:]
    await paused.suspend_audio()
    await _until(lambda: downs[0].paused, "the SFU pauses the suspended listener's down-track")
    sent = downs[0].track.stats.sent
    await _settled(paused, ssrcs[0])  # what was in flight when it paused has arrived, however late
    mid = [await _inbound(call, ssrc) for call, ssrc in zip(calls, ssrcs, strict=True)]
    await asyncio.sleep(1.0)
    after = [await _inbound(call, ssrc) for call, ssrc in zip(calls, ssrcs, strict=True)]
    assert downs[0].paused and downs[0].track.stats.sent == sent  # the SFU sent it nothing ...
    assert after[0].packetsReceived == mid[0].packetsReceived  # ... and nothing arrived
    for m, a in zip(mid[1:], after[1:], strict=True):
        assert a.packetsReceived - m.packetsReceived >= 25  # ~50 packets/s kept flowing to the others
        assert a.packetsLost == 0

    # resumed: it hears the publisher again and its sequence numbers carry on (no gap counted)
    await paused.resume_audio()
    await wait_heard(listeners[0], {"alice": TONE}, audible={"alice"})
    resumed = await _inbound(paused, ssrcs[0])
    assert resumed.packetsReceived > after[0].packetsReceived and resumed.packetsLost == 0
    for call, ssrc in zip(playing, ssrcs[1:], strict=True):
        assert (await _inbound(call, ssrc)).packetsLost == 0
