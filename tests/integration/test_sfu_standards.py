"""The SFU's standards rules with a hand-driven client: trickled candidates, codec refusal."""

from __future__ import annotations

import asyncio
import re

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from switchboard.protocol import sfu as p
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory
from tests.integration.test_sfu_trust import RawSfuClient, SineTrack, raw_sfu, rest_join

CANDIDATE = re.compile(r"^a=candidate:(.*)$", re.MULTILINE)


async def _connected(pc: RTCPeerConnection) -> None:
    for _ in range(200):
        if pc.connectionState == "connected":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"publisher connection {pc.connectionState}, not connected, after 10 s")


async def _join(make_client: ClientFactory, call_id: str, sfu: RawSfuClient, user: str = "trickler") -> str:
    client = await make_client(user)
    await client.make_call("default", call_id).get_or_create()
    joined = await rest_join(client, "default", call_id)
    await sfu.send(p.JoinRequest(token=joined.credentials.token))
    await sfu.wait_for("join_response")
    return joined.session_id


async def _sfu_url(make_client: ClientFactory, call_id: str) -> str:
    client = await make_client("host")
    await client.make_call("default", call_id).get_or_create()
    return (await rest_join(client, "default", call_id)).credentials.server.url


async def test_candidates_trickled_after_the_offer_connect_and_media_flows(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    async with raw_sfu(await _sfu_url(make_client, "trickle")) as sfu:
        session_id = await _join(make_client, "trickle", sfu)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(SineTrack(500.0), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        full = pc.localDescription.sdp
        candidates = CANDIDATE.findall(full)
        assert candidates
        bare = "".join(
            line + "\r\n"
            for line in full.splitlines()
            if not line.startswith(("a=candidate:", "a=end-of-candidates"))
        )
        await sfu.send(p.PublisherOffer(sdp=bare))
        answer = await sfu.wait_for("publisher_answer")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        for candidate in candidates:
            await sfu.send(
                p.IceCandidate(target="publisher", candidate=f"candidate:{candidate}", sdp_mid="0")
            )
        await sfu.send(p.IceCandidate(target="publisher", candidate=None, sdp_mid="0"))
        await _connected(pc)
        participant = server.sfu.rooms["default:trickle"].participants[session_id]
        transport = participant.publisher.getTransceivers()[0].receiver.transport.transport
        applied = {(c.ip, c.port) for c in transport.getRemoteCandidates()}
        sent = {(c.split()[4], int(c.split()[5])) for c in candidates}
        assert sent <= applied, (sent, applied)
        track = participant.published["audio"]
        for _ in range(100):
            if track.frames_in >= 25:
                break
            await asyncio.sleep(0.05)
        assert track.frames_in >= 25, "the trickled publisher's audio did not reach the SFU"
        await pc.close()


async def test_a_bad_candidate_is_an_error_and_the_session_carries_on(make_client: ClientFactory) -> None:
    async with raw_sfu(await _sfu_url(make_client, "badcand")) as sfu:
        await _join(make_client, "badcand", sfu)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(SineTrack(500.0), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await sfu.send(p.PublisherOffer(sdp=pc.localDescription.sdp))
        await sfu.wait_for("publisher_answer")
        await sfu.send(p.IceCandidate(target="publisher", candidate="candidate:not a candidate", sdp_mid="0"))
        error = await sfu.wait_for("error", code="invalid_candidate")
        assert error["fatal"] is False and "publisher" in error["message"]
        await sfu.send(p.HealthCheckRequest())
        await sfu.wait_for("health_check_response")
        await pc.close()


async def test_an_offer_without_opus_is_refused_and_a_later_one_is_answered(
    make_client: ClientFactory,
) -> None:
    async with raw_sfu(await _sfu_url(make_client, "pcmu")) as sfu:
        await _join(make_client, "pcmu", sfu)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        transceiver = pc.addTransceiver(SineTrack(500.0), direction="sendonly")
        caps = [c for c in transceiver.sender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
        transceiver.setCodecPreferences(caps)
        await pc.setLocalDescription(await pc.createOffer())
        assert "opus" not in pc.localDescription.sdp
        await sfu.send(p.PublisherOffer(sdp=pc.localDescription.sdp))
        error = await sfu.wait_for("error", code="unsupported_codec")
        assert "pcmu" in error["message"] and "opus" in error["message"] and error["fatal"] is False
        assert not [m for m in sfu.messages if m["type"] == "publisher_answer"]
        await pc.close()

        # the same session offers Opus next: answered, with FEC asked for
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(SineTrack(500.0), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await sfu.send(p.PublisherOffer(sdp=pc.localDescription.sdp))
        answer = await sfu.wait_for("publisher_answer")
        assert re.search(r"a=fmtp:\d+ .*useinbandfec=1", answer["sdp"]), answer["sdp"]
        assert "PCMU" not in answer["sdp"]
        await pc.close()
