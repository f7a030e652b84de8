"""Local media stays on loopback: a call on a local EmbeddedServer never leaves 127.0.0.0/8.

What is checked is what ICE really used (the candidate pairs of the client's and the SFU's peer
connections) and what really went over the wire (a raw packet capture on every interface).
"""

from __future__ import annotations

import asyncio
import os

import pytest
from aiortc import RTCPeerConnection

from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.rtp_hooks import ice_candidate_pairs
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, wait_heard
from tests.packet_capture import CaptureUnavailable, UdpCapture, is_loopback

TONES = {"alice": 440.0, "bob": 660.0}
NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())


async def joined_pair(server: EmbeddedServer, make_client: ClientFactory, call_id: str) -> list[VideoClient]:
    """Alice and Bob in one call, each hearing the other (alice publishes her camera too)."""
    clients = []
    for user, hz in TONES.items():
        client = await make_client(user, microphone=ToneMicrophone(hz), speaker=CaptureSpeaker())
        call = client.make_call("default", call_id)
        await call.get_or_create()
        await call.join(None if user == "alice" else NO_CAMERA)
        clients.append(client)
    for user, client in zip(TONES, clients, strict=True):
        await wait_heard(client, TONES, audible=set(TONES) - {user})
    return clients


def call_peer_connections(
    server: EmbeddedServer, clients: list[VideoClient], call_id: str
) -> dict[str, RTCPeerConnection]:
    """Every peer connection of the call, named: both clients' and the SFU's, publisher and subscriber."""
    pcs: dict[str, RTCPeerConnection] = {}
    for client in clients:
        media = client.make_call("default", call_id).media
        assert media is not None
        pcs[f"{client.user.id} publisher"] = media.publisher
        pcs[f"{client.user.id} subscriber"] = media.subscriber
    for participant in server.sfu.rooms[f"default:{call_id}"].participants.values():
        pcs[f"SFU {participant.user_id} publisher"] = participant.publisher
        pcs[f"SFU {participant.user_id} subscriber"] = participant.subscriber
    assert len(pcs) == 8
    return pcs


async def test_every_candidate_pair_of_a_local_call_is_loopback(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    assert server.sfu.config.ice_loopback_address == "127.0.0.1"
    clients = await joined_pair(server, make_client, "loop")
    for name, pc in call_peer_connections(server, clients, "loop").items():
        assert pc.connectionState == "connected", name
        pairs = ice_candidate_pairs(pc)
        selected = [pair for pair in pairs if pair.selected]
        assert len(selected) == 1, (name, pairs)  # one bundled transport, one component (rtcp-mux)
        for pair in pairs:
            assert is_loopback(pair.local[0]) and is_loopback(pair.remote[0]), (name, pair)
        # One candidate per side: the small, deterministic set of a local run.
        assert len(pairs) == 1, (name, pairs)
        for sender in pc.getSenders():
            if sender.transport is not None:
                local = sender.transport.transport.iceGatherer.getLocalCandidates()
                assert [c.ip for c in local] == ["127.0.0.1"], name


# ---------------------------------------------------------------- packet capture


def started_capture() -> UdpCapture:
    capture = UdpCapture()
    try:
        capture.start()
    except CaptureUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    return capture


async def test_a_local_call_sends_no_packet_to_a_non_loopback_address(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    capture = started_capture()
    try:
        clients = await joined_pair(server, make_client, "wire")
        await asyncio.sleep(1.0)  # a second of audio and video both ways, and ICE consent checks
        pcs = call_peer_connections(server, clients, "wire")
        # Every UDP socket the call's ICE opened (one host candidate per transport, both sides).
        endpoints = {pair.local for pc in pcs.values() for pair in ice_candidate_pairs(pc)}
    finally:
        await asyncio.to_thread(capture.stop)
    ours = [d for d in capture.datagrams if d[0] in endpoints or d[1] in endpoints]
    # The capture really saw the call (hundreds of RTP packets a second)...
    assert len(ours) > 200, len(ours)
    # ...and not one datagram of it went to or came from an address outside 127.0.0.0/8.
    assert [d for d in ours if not (is_loopback(d[0][0]) and is_loopback(d[1][0]))] == []
