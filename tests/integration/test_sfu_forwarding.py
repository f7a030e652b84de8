"""Audio forwarding straight from the SFU's ingest path: what each subscriber receives.

One publisher, several listeners (real SDK clients, real peer connections, the embedded server). Each
listener's stream has its own SSRC (the one the SFU's sender announced), arrives with no gap in its
sequence numbers (aiortc's receiver counts a gap as lost packets), and a paused (suspended) listener
is sent nothing while the others keep receiving; after resuming, its sequence numbers carry on.
"""

from __future__ import annotations

import asyncio

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

    # the first listener is suspended: its down-track is paused and nothing is sent to it
    paused, playing = calls[0], calls[1:]
    await paused.suspend_audio()
    await asyncio.sleep(0.3)  # the SFU handled the pause; packets in flight arrived
    mid = [await _inbound(call, ssrc) for call, ssrc in zip(calls, ssrcs, strict=True)]
    sent_mid = downs[0].track.stats.sent
    await asyncio.sleep(1.0)
    after = [await _inbound(call, ssrc) for call, ssrc in zip(calls, ssrcs, strict=True)]
    assert downs[0].paused and downs[0].track.stats.sent == sent_mid
    assert after[0].packetsReceived == mid[0].packetsReceived  # the paused listener received nothing
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
