"""The ICE host-address hook: real aiortc peer connections gathering and connecting on loopback only."""

from __future__ import annotations

import asyncio
import socket

import aioice.ice
import av
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

from switchboard.media.local_ice import IPV4_LOOPBACK, IPV6_LOOPBACK, create_peer_connection
from switchboard.media.rtp_hooks import ice_candidate_pairs, restrict_ice_host_addresses


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def local_candidate_ips(pc: RTCPeerConnection) -> list[str]:
    return [
        c.ip
        for t in pc.getTransceivers()
        for c in t.receiver.transport.transport.iceGatherer.getLocalCandidates()
    ]


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind((IPV6_LOOPBACK, 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("address", [IPV4_LOOPBACK, IPV6_LOOPBACK])
async def test_two_restricted_peer_connections_connect_and_carry_audio_over_loopback(address: str) -> None:
    if address == IPV6_LOOPBACK and not ipv6_loopback_available():
        pytest.skip("this host has no IPv6 loopback (::1)")
    offerer = create_peer_connection(loopback_address=address)
    answerer = create_peer_connection(loopback_address=address)
    received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    answerer.on("track", received.set_result)
    try:
        offerer.addTrack(AudioStreamTrack())
        await negotiate(offerer, answerer)
        track = await asyncio.wait_for(received, 10)
        frame = await asyncio.wait_for(track.recv(), 10)  # a decoded audio frame came through
        assert isinstance(frame, av.AudioFrame) and frame.sample_rate == 48000
        for pc in (offerer, answerer):
            assert local_candidate_ips(pc) == [address]
            pairs = ice_candidate_pairs(pc)
            assert [(p.local[0], p.remote[0], p.selected) for p in pairs] == [(address, address, True)]
    finally:
        await offerer.close()
        await answerer.close()


async def test_the_hook_is_per_connection_and_leaves_other_connections_as_aiortc_makes_them() -> None:
    restricted = create_peer_connection(loopback_address=IPV4_LOOPBACK)
    plain = create_peer_connection(loopback_address=None)
    try:
        for pc in (restricted, plain):
            pc.addTransceiver("audio")
            await pc.setLocalDescription(await pc.createOffer())
        assert local_candidate_ips(restricted) == [IPV4_LOOPBACK]
        # Stock aioice: every interface address except loopback (maybe none at all in a bare netns).
        expected = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
        assert sorted(local_candidate_ips(plain)) == sorted(expected)
        assert IPV4_LOOPBACK not in local_candidate_ips(plain)
        assert "a=candidate:" in restricted.localDescription.sdp
        assert " 127.0.0.1 " in restricted.localDescription.sdp
    finally:
        await restricted.close()
        await plain.close()


async def test_a_restricted_connection_never_contacts_its_stun_server() -> None:
    # A STUN server that records what it receives; a stock connection would query it while gathering.
    stun = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stun.bind((IPV4_LOOPBACK, 0))
    stun.setblocking(False)
    port = stun.getsockname()[1]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(f"stun:{IPV4_LOOPBACK}:{port}")]))
    restrict_ice_host_addresses(pc, [IPV4_LOOPBACK])
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        await asyncio.sleep(0.2)
        with pytest.raises(BlockingIOError):
            stun.recv(2048)
        transport = pc.getTransceivers()[0].receiver.transport.transport
        assert [c.type for c in transport.iceGatherer.getLocalCandidates()] == ["host"]
    finally:
        await pc.close()
        stun.close()


async def test_restricting_is_refused_when_too_late_or_malformed() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        with pytest.raises(ValueError, match="at least one"):
            restrict_ice_host_addresses(pc, [])
        with pytest.raises(ValueError, match="not an IP address"):
            restrict_ice_host_addresses(pc, ["localhost"])
        restrict_ice_host_addresses(pc, [IPV4_LOOPBACK])
        restrict_ice_host_addresses(pc, [IPV4_LOOPBACK])  # the same again: nothing changes
        with pytest.raises(RuntimeError, match="already"):
            restrict_ice_host_addresses(pc, [IPV6_LOOPBACK])
    finally:
        await pc.close()

    late = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        late.addTransceiver("audio")
        with pytest.raises(RuntimeError, match="before"):
            restrict_ice_host_addresses(late, [IPV4_LOOPBACK])
    finally:
        await late.close()
