"""DirectRtpSender on a real aiortc peer connection pair: what the receiving side observes.

Pre-encoded Opus frames written straight to the sender's SRTP transport arrive as one RTP packet
each, on the sender's SSRC, with consecutive sequence numbers (aiortc's receiver counts no loss),
timestamps 960 apart, and RTCP sender reports that count them; a pause sends nothing and the
timeline then jumps by the wall time that passed; a NACK gets the packet again (as RTX).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc import codecs as aiortc_codecs
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteOutboundRtpStreamStats

from switchboard.media.local_ice import IPV4_LOOPBACK, create_peer_connection
from switchboard.media.rtp_hooks import (
    DirectRtpSender,
    EncodedFrame,
    EncodedTrack,
    OpusFrameEncoder,
    ReceiverTap,
    direct_sender,
    ntp_now,
    tap_receiver,
)

FRAME_S = 0.020
FORWARDED = ("audio/opus", "audio/rtx")
Pair = tuple[RTCPeerConnection, RTCPeerConnection, DirectRtpSender, list[EncodedFrame]]
Inbound = tuple[RTCInboundRtpStreamStats, RTCRemoteOutboundRtpStreamStats | None]


def _opus_frames(count: int) -> list[bytes]:
    encoder = OpusFrameEncoder()
    t = np.arange(960) / 48000
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    return [encoder.encode(pcm).data for _ in range(count)]


async def _connected_pair() -> tuple[
    RTCPeerConnection, RTCPeerConnection, DirectRtpSender, list[EncodedFrame]
]:
    sender_pc = create_peer_connection(loopback_address=IPV4_LOOPBACK)
    receiver_pc = create_peer_connection(loopback_address=IPV4_LOOPBACK)
    track = EncodedTrack("audio")
    transceiver = sender_pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("audio").codecs
            if c.mimeType.lower() in ("audio/opus", "audio/rtx")
        ]
    )
    direct = DirectRtpSender(transceiver.sender, track.stats)
    received: list[EncodedFrame] = []
    taps: list[ReceiverTap] = []

    @receiver_pc.on("track")
    def on_track(remote: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in receiver_pc.getTransceivers() if t.receiver.track is remote)
        taps.append(tap_receiver(receiver, received.append))

    await sender_pc.setLocalDescription(await sender_pc.createOffer())
    await receiver_pc.setRemoteDescription(sender_pc.localDescription)
    await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
    await sender_pc.setRemoteDescription(receiver_pc.localDescription)
    deadline = time.monotonic() + 10.0
    while not (direct.ready and taps and sender_pc.connectionState == "connected"):
        assert time.monotonic() < deadline, "the pair did not connect"
        await asyncio.sleep(0.02)
    return sender_pc, receiver_pc, direct, received


async def _send(direct: DirectRtpSender, payloads: list[bytes], first: int, stream_id: int = 1) -> None:
    for n, payload in enumerate(payloads, start=first):
        direct.send(payload, n * 960, stream_id, time.monotonic(), ntp_now())
        await asyncio.sleep(FRAME_S)


async def _inbound(
    pc: RTCPeerConnection,
) -> tuple[RTCInboundRtpStreamStats, RTCRemoteOutboundRtpStreamStats | None]:
    report = await pc.getTransceivers()[0].receiver.getStats()
    inbound = next(s for s in report.values() if isinstance(s, RTCInboundRtpStreamStats))
    remote = next((s for s in report.values() if isinstance(s, RTCRemoteOutboundRtpStreamStats)), None)
    return inbound, remote


@pytest.mark.asyncio
async def test_direct_rtp_reaches_an_aiortc_receiver_in_order_with_sender_reports() -> None:
    sender_pc, receiver_pc, direct, received = await _connected_pair()
    try:
        payloads = _opus_frames(40)
        await _send(direct, payloads, 0)
        await asyncio.sleep(0.1)
        assert [f.data for f in received] == payloads  # one packet per frame, in order, unchanged
        assert {b.timestamp - a.timestamp for a, b in itertools.pairwise(received)} == {960}
        inbound, _ = await _inbound(receiver_pc)
        assert inbound.ssrc == direct.ssrc == sender_pc.getTransceivers()[0].sender._ssrc
        assert inbound.packetsReceived == 40 and inbound.packetsLost == 0
        assert direct.stats.sent == 40 and direct.stats.pushed == 40

        # paused: nothing is sent; resumed: the timeline advances by the wall time of the pause
        direct.pause()
        await _send(direct, payloads[:15], 40)
        assert direct.stats.dropped_paused == 15 and len(received) == 40
        direct.resume()
        await _send(direct, payloads[:10], 55)
        await asyncio.sleep(0.1)
        assert len(received) == 50
        gap = received[40].timestamp - received[39].timestamp
        assert 0.25 * 48000 < gap < 0.6 * 48000  # ~16 frames (0.32 s) of wall time, not one frame
        inbound, _ = await _inbound(receiver_pc)
        assert inbound.packetsReceived == 50 and inbound.packetsLost == 0  # sequence numbers carry on

        # the sender's RTCP sender reports count what was written directly (RFC 3550 section 6.4.1)
        deadline = time.monotonic() + 4.0
        while True:
            _, remote = await _inbound(receiver_pc)
            if remote is not None and remote.packetsSent == 50:
                break
            assert time.monotonic() < deadline, f"no sender report counting 50 packets: {remote}"
            await asyncio.sleep(0.1)
    finally:
        await asyncio.gather(sender_pc.close(), receiver_pc.close())


@pytest.fixture
def audio_rtx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opus with NACK and RTX (RFC 4588) offered, for this test only: aiortc offers neither for audio.

    Without RTX a NACKed packet cannot be sent again at all: aiortc's SRTP policy does not allow a
    sequence number to be protected twice (libsrtp's replay check), for its own sender as for ours.
    """
    opus = next(c for c in aiortc_codecs.CODECS["audio"] if c.mimeType.lower() == "audio/opus")
    assert opus.payloadType is not None
    with_nack = replace(opus, rtcpFeedback=[*opus.rtcpFeedback, RTCRtcpFeedback(type="nack")])
    rtx = RTCRtpCodecParameters(
        mimeType="audio/rtx",
        clockRate=48000,
        payloadType=opus.payloadType + 1,
        parameters={"apt": opus.payloadType},
    )
    others = [c for c in aiortc_codecs.CODECS["audio"] if c is not opus]
    monkeypatch.setitem(aiortc_codecs.CODECS, "audio", [with_nack, rtx, *others])


@pytest.mark.asyncio
@pytest.mark.usefixtures("audio_rtx")
async def test_a_nack_is_answered_from_the_history_as_rtx() -> None:
    sender_pc, receiver_pc, direct, received = await _connected_pair()
    try:
        first = direct.sequence_number
        await _send(direct, _opus_frames(10), 0)
        await asyncio.sleep(0.1)
        inbound, _ = await _inbound(receiver_pc)
        assert inbound.packetsReceived == 10
        # the receiver reports the 4th packet lost (RFC 4585 generic NACK): it comes again as RTX
        transceiver = receiver_pc.getTransceivers()[0]
        await transceiver.receiver._send_rtcp_nack(direct.ssrc, [(first + 3) & 0xFFFF])
        rtx_ssrc = sender_pc.getTransceivers()[0].sender._rtx_ssrc
        deadline = time.monotonic() + 2.0
        while not any(
            isinstance(s, RTCInboundRtpStreamStats) and s.ssrc == rtx_ssrc and s.packetsReceived == 1
            for s in (await transceiver.receiver.getStats()).values()
        ):
            assert time.monotonic() < deadline, "the NACKed packet did not come again as RTX"
            await asyncio.sleep(0.02)
        assert direct.stats.retransmitted == 1 and direct.stats.sent == 10
        assert len(received) == 10  # (the tap drops the repaired duplicate)
        # a sequence number never sent (or gone from the 128-packet history) is ignored
        await transceiver.receiver._send_rtcp_nack(direct.ssrc, [(first + 500) & 0xFFFF])
        await asyncio.sleep(0.2)
        assert direct.stats.retransmitted == 1
    finally:
        await asyncio.gather(sender_pc.close(), receiver_pc.close())


@pytest.mark.asyncio
async def test_frames_before_negotiation_are_dropped_and_a_sender_takes_one_direct_sender() -> None:
    pc = create_peer_connection(loopback_address=IPV4_LOOPBACK)
    try:
        sender = pc.addTransceiver(EncodedTrack("audio"), direction="sendonly").sender
        direct = DirectRtpSender(sender)
        assert direct_sender(sender) is direct and not direct.ready
        direct.send(b"\xf8\xff\xfe", 0, 1, time.monotonic(), ntp_now())
        assert direct.stats.dropped_overflow == 1 and direct.stats.sent == 0
        with pytest.raises(RuntimeError, match="already has"):
            DirectRtpSender(sender)
        with pytest.raises(RuntimeError, match="attribute layout"):
            DirectRtpSender(object.__new__(RTCRtpSender))
    finally:
        await pc.close()
