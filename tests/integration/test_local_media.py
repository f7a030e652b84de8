"""Local media stays on loopback: a call on a local EmbeddedServer never leaves 127.0.0.0/8.

What is checked is what ICE really used (the candidate pairs of the client's and the SFU's peer
connections) and what really went over the wire (a raw packet capture on every interface).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
import threading
from dataclasses import dataclass, field

import pytest
from aiortc import RTCPeerConnection

from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.media.devices import CaptureSpeaker, ToneMicrophone
from switchboard.media.rtp_hooks import ice_candidate_pairs
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, wait_heard

TONES = {"alice": 440.0, "bob": 660.0}
NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


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

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD


@dataclass
class UdpCapture:
    """Every UDP datagram seen on any interface of this network namespace (AF_PACKET, Linux, root)."""

    sock: socket.socket
    datagrams: list[tuple[tuple[str, int], tuple[str, int]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data, address = self.sock.recvfrom(128)
            except TimeoutError:
                continue
            endpoints = parse_udp(address[1], data)
            if endpoints is not None:
                self.datagrams.append(endpoints)


def parse_udp(ethertype: int, packet: bytes) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """((source ip, port), (destination ip, port)) of a UDP datagram starting at its IP header."""
    if ethertype == ETH_P_IP and len(packet) >= 20 and packet[9] == socket.IPPROTO_UDP:
        header, family, src_at, dst_at = (packet[0] & 0x0F) * 4, socket.AF_INET, slice(12, 16), slice(16, 20)
    elif ethertype == ETH_P_IPV6 and len(packet) >= 40 and packet[6] == socket.IPPROTO_UDP:
        header, family, src_at, dst_at = 40, socket.AF_INET6, slice(8, 24), slice(24, 40)
    else:
        return None
    if len(packet) < header + 4:
        return None
    sport, dport = struct.unpack_from("!HH", packet, header)
    src, dst = socket.inet_ntop(family, packet[src_at]), socket.inet_ntop(family, packet[dst_at])
    return (src, sport), (dst, dport)


def open_capture() -> socket.socket:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    except (PermissionError, AttributeError) as exc:
        # A raw capture needs Linux and CAP_NET_RAW: required in CI, reported as a skip elsewhere.
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"the packet capture needs Linux and CAP_NET_RAW: {exc}") from exc
        pytest.skip(f"packet capture unavailable (needs Linux and CAP_NET_RAW): {exc}")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.settimeout(0.1)
    return sock


async def test_a_local_call_sends_no_packet_to_a_non_loopback_address(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    capture = UdpCapture(open_capture())
    thread = threading.Thread(target=capture.run, name="udp-capture", daemon=True)
    thread.start()
    try:
        clients = await joined_pair(server, make_client, "wire")
        await asyncio.sleep(1.0)  # a second of audio and video both ways, and ICE consent checks
        pcs = call_peer_connections(server, clients, "wire")
        # Every UDP socket the call's ICE opened (one host candidate per transport, both sides).
        endpoints = {pair.local for pc in pcs.values() for pair in ice_candidate_pairs(pc)}
    finally:
        capture.stop.set()
        await asyncio.to_thread(thread.join)
        capture.sock.close()
    ours = [d for d in capture.datagrams if d[0] in endpoints or d[1] in endpoints]
    # The capture really saw the call (hundreds of RTP packets a second)...
    assert len(ours) > 200, len(ours)
    # ...and not one datagram of it went to or came from an address outside 127.0.0.0/8.
    assert [d for d in ours if not (is_loopback(d[0][0]) and is_loopback(d[1][0]))] == []
