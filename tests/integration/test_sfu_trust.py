"""A hostile or broken client cannot hurt anyone else's call through the SFU.

Real server, real sockets, real peer connections: send grants enforced on the tracks the SFU creates
(whatever the SDP says), per-socket and per-user limits with their close codes, SFU tokens bound to
one session and its current grants, and memory that does not grow with what a client names.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import gc
import json
import re
import secrets
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, VideoFrame

from switchboard import (
    CallConnectOptions,
    CallStatus,
    CallType,
    ClientOptions,
    MemberRequest,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.errors import CallStateError, InvalidRequestError, NotFoundError, PermissionDeniedError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import verify_sfu_token
from switchboard.server import EmbeddedServer
from tests.conftest import (
    ClientFactory,
    hears_throughout,
    stays_heard,
    wait_heard,
)

NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())
HOST_TONE, GUEST_TONE, INTRUDER_TONE = 440.0, 660.0, 1000.0


# ---------------------------------------------------------------- a hand-made (hostile) SFU client


class SineTrack(MediaStreamTrack):
    """Mono 48 kHz sine in real time, 20 ms frames, encoded by aiortc itself (not by the SDK)."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self.samples = 0
        self.start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.samples / 48000 - time.monotonic()))
        t = (self.samples + np.arange(960)) / 48000
        pcm = (np.sin(2 * np.pi * self.freq * t) * 16000).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += 960
        return frame


class GreyVideoTrack(MediaStreamTrack):
    """320x240 grey frames at 15 fps in real time."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.start: float | None = None

    async def recv(self) -> VideoFrame:
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.n / 15 - time.monotonic()))
        frame = VideoFrame.from_ndarray(np.full((360, 320), 128, dtype=np.uint8), format="yuv420p")
        frame.pts = self.n * 6000
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


@dataclass
class RawSfuClient:
    """A client speaking the SFU protocol by hand, as an attacker would."""

    ws: aiohttp.ClientWebSocketResponse
    #: keep every message (False: only count them by type/code, for floods)
    keep: bool = True
    messages: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                message = json.loads(msg.data)
                self.counts[message.get("code") or message["type"]] += 1
                if self.keep or message["type"] != "error":
                    self.messages.append(message)
                self.arrived.set()

    async def wait_for(self, type_: str, *, code: str | None = None, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if message["type"] == type_ and (code is None or message.get("code") == code):
                        return message
                self.arrived.clear()
                await self.arrived.wait()

    async def send(self, message: p._Msg) -> None:
        await self.ws.send_str(message.model_dump_json())

    async def closed(self, timeout: float = 10.0) -> int | None:  # noqa: ASYNC109
        """Wait for the server to close the socket; its close code."""
        assert self.reader is not None
        await asyncio.wait_for(asyncio.shield(self.reader), timeout)
        return self.ws.close_code


@contextlib.asynccontextmanager
async def raw_sfu(url: str, *, keep: bool = True) -> AsyncIterator[RawSfuClient]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        client = RawSfuClient(ws, keep=keep)
        client.reader = asyncio.get_running_loop().create_task(client.read())
        try:
            yield client
        finally:
            client.reader.cancel()


async def rest_join(client: VideoClient, call_type: str, call_id: str) -> m.JoinCallResponse:
    """The coordinator's ``join`` answer (SFU URL and token), without the SDK's media."""
    return await client._require_api().request(
        "POST", f"/calls/{call_type}/{call_id}/join", m.JoinCallResponse, m.JoinCallRequest()
    )


async def publish_by_hand(
    sfu: RawSfuClient, tracks: list[MediaStreamTrack], *, port_zero: bool
) -> RTCPeerConnection:
    """Offer ``tracks`` on a publisher connection (every m-line's port set to 0 if asked) and connect."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for track in tracks:
        pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    if port_zero:
        sdp = re.sub(r"^m=(audio|video) \d+", r"m=\1 0", sdp, flags=re.MULTILINE)
    await sfu.send(p.PublisherOffer(sdp=sdp))
    answer = await sfu.wait_for("publisher_answer")
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    for _ in range(200):
        if pc.connectionState == "connected":
            return pc
        await asyncio.sleep(0.05)
    raise AssertionError(f"publisher connection {pc.connectionState}, not connected, after 10 s")


async def refused_frames(server: EmbeddedServer, cid: str, session_id: str, *, at_least: int) -> int:
    """Frames of refused tracks that reached the SFU from ``session_id`` (proof the intruder sends)."""
    participant = server.sfu.rooms[cid].participants[session_id]
    for _ in range(200):
        frames = sum(tap.frames for tap in participant.refused)
        if frames >= at_least:
            return frames
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {frames} frames of the refused tracks reached the SFU in 10 s")


# ---------------------------------------------------------------- send grants


async def test_a_port_zero_offer_from_a_livestream_viewer_is_never_heard(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    host = await make_client("host", microphone=ToneMicrophone(HOST_TONE), speaker=CaptureSpeaker())
    mallory = await make_client("mallory")  # signed in, not a member
    show = host.make_call(CallType.livestream(), "show")
    await show.get_or_create()
    await show.go_live()
    await show.join(CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled()))

    joined = await rest_join(mallory, "livestream", "show")
    async with raw_sfu(joined.credentials.server.url) as sfu:
        await sfu.send(p.JoinRequest(token=joined.credentials.token))
        await sfu.wait_for("join_response")
        pc = await publish_by_hand(sfu, [SineTrack(INTRUDER_TONE)], port_zero=True)
        denied = await sfu.wait_for("error", code="permission_denied")
        assert "audio" in denied["message"] and denied["fatal"] is False
        # the intruder's audio really reaches the SFU (50 frames = 1 s) ...
        await refused_frames(server, show.cid, joined.session_id, at_least=50)
        # ... and the host never hears it, for 2 s of playout, while hearing nobody else either
        # (every 100 ms window below -60 dBFS at the intruder's frequency)
        await stays_heard(host, {"intruder": INTRUDER_TONE}, audible=set(), duration=2.0)
        assert show.media is not None and show.media.participants[joined.session_id].tracks == {}
        assert server.sfu.rooms[show.cid].participants[joined.session_id].published == {}
        await pc.close()


async def test_an_audio_room_admins_video_is_not_forwarded_but_their_audio_is(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    host = await make_client("host", speaker=CaptureSpeaker())
    admin = await make_client("admin")
    room = host.make_call(CallType.audio_room(), "stage")
    await room.get_or_create(members=[MemberRequest(user_id="admin", role="admin")])
    await room.go_live()
    await room.join(NO_CAMERA)

    joined = await rest_join(admin, "audio_room", "stage")
    async with raw_sfu(joined.credentials.server.url) as sfu:
        await sfu.send(p.JoinRequest(token=joined.credentials.token))
        await sfu.wait_for("join_response")
        pc = await publish_by_hand(sfu, [SineTrack(GUEST_TONE), GreyVideoTrack()], port_zero=False)
        denied = await sfu.wait_for("error", code="permission_denied")
        assert "may not publish video in" in denied["message"]
        await refused_frames(server, room.cid, joined.session_id, at_least=15)  # 1 s of video arrived
        await wait_heard(host, {"admin": GUEST_TONE}, audible={"admin"})  # audio is allowed
        media = room.media
        assert media is not None
        part = media.participants[joined.session_id]
        assert set(part.tracks) == {"audio"} and part.video_frames == 0
        published = server.sfu.rooms[room.cid].participants[joined.session_id].published
        assert set(published) == {"audio"}
        await pc.close()


# ---------------------------------------------------------------- socket limits


async def test_binary_frames_count_toward_the_bad_message_limit(server: EmbeddedServer) -> None:
    limit = server.sfu.config.max_bad_messages
    async with raw_sfu(server.sfu_url) as sfu:
        for _ in range(limit + 1):
            await sfu.ws.send_bytes(b"\x00\x01binary")
        assert await sfu.closed() == p.CloseCode.TOO_MANY_ERRORS
        assert sum(msg.get("code") == "invalid_request" for msg in sfu.messages) == limit
        assert sfu.messages[-1]["code"] == "too_many_errors" and sfu.messages[-1]["fatal"] is True


async def test_an_oversized_frame_closes_the_socket_with_1009(server: EmbeddedServer) -> None:
    async with raw_sfu(server.sfu_url) as sfu:
        await sfu.ws.send_str("x" * (server.sfu.config.max_message_bytes + 1))
        assert await sfu.closed() == p.CloseCode.MESSAGE_TOO_BIG


async def test_sockets_that_never_join_are_bounded(server: EmbeddedServer) -> None:
    server.sfu.config.max_unjoined_sockets = 2
    async with raw_sfu(server.sfu_url) as first, raw_sfu(server.sfu_url) as second:
        await first.send(p.HealthCheckRequest())  # answered: these two are being served
        await second.send(p.HealthCheckRequest())
        await first.wait_for("error", code="not_joined")
        await second.wait_for("error", code="not_joined")
        async with raw_sfu(server.sfu_url) as third:
            assert await third.closed() == p.CloseCode.TRY_AGAIN_LATER
            assert third.messages[-1]["code"] == "server_busy"
    for _ in range(100):  # their slots are free again once they are gone
        if server.sfu.unjoined_sockets == 0:
            break
        await asyncio.sleep(0.05)
    async with raw_sfu(server.sfu_url) as later:
        await later.send(p.HealthCheckRequest())
        await later.wait_for("error", code="not_joined")


async def test_one_user_cannot_open_many_sessions_in_someone_elses_call(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice")
    mallory = await make_client("mallory")
    await alice.make_call("default", "private").get_or_create()
    cap = server.sfu.config.max_sessions_per_user_per_call
    async with contextlib.AsyncExitStack() as stack:
        for n in range(cap + 2):
            joined = await rest_join(mallory, "default", "private")
            sfu = await stack.enter_async_context(raw_sfu(joined.credentials.server.url))
            await sfu.send(p.JoinRequest(token=joined.credentials.token))
            if n < cap:
                await sfu.wait_for("join_response")
            else:
                refused = await sfu.wait_for("error", code="too_many_sessions")
                assert refused["fatal"] is True
                assert await sfu.closed() == p.CloseCode.TOO_MANY_SESSIONS
        assert server.sfu.sessions_of("mallory") == cap


FLOODER = """
import asyncio, json, sys
import aiohttp

async def main():
    url, token = sys.argv[1:3]
    report = {"joined": False, "sent": 0, "close_code": None, "last_error": None}
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"type": "join", "token": token}))
        report["joined"] = json.loads((await ws.receive(timeout=10)).data)["type"] == "join_response"

        async def read():
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "error":
                    error = json.loads(msg.data)
                    report["last_error"] = {"code": error["code"], "fatal": error["fatal"]}

        reader = asyncio.create_task(read())
        try:
            for _ in range(50_000):  # bounded: about 1 MB of health checks, as fast as possible
                await ws.send_str('{"type": "health_check"}')
                report["sent"] += 1
                if report["sent"] % 100 == 0:
                    await asyncio.sleep(0)  # let the reader see the close
        except (ConnectionError, RuntimeError):
            pass
        await asyncio.wait_for(reader, 10)
        report["close_code"] = ws.close_code
    print(json.dumps(report), flush=True)

asyncio.run(main())
"""


async def test_a_flood_on_the_sfu_socket_cuts_the_flooder_off_and_others_keep_hearing_each_other(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    tones = {"alice": HOST_TONE, "bob": GUEST_TONE}
    alice = await make_client("alice", microphone=ToneMicrophone(HOST_TONE), speaker=CaptureSpeaker())
    bob = await make_client("bob", microphone=ToneMicrophone(GUEST_TONE), speaker=CaptureSpeaker())
    mallory = await make_client("mallory")
    a_call = alice.make_call("default", "flooded")
    await a_call.get_or_create()
    await a_call.join(NO_CAMERA)
    await bob.make_call("default", "flooded").join(NO_CAMERA)
    await wait_heard(alice, tones, audible={"bob"})
    await wait_heard(bob, tones, audible={"alice"})

    joined = await rest_join(mallory, "default", "flooded")
    # the flooder is its own process, as an attacker would be: its sending does not borrow this
    # process's event loop, which runs the server and both listeners
    flooder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOODER, joined.credentials.server.url, joined.credentials.token,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    listening = asyncio.gather(  # from before the flooder starts until well after it was cut off
        hears_throughout(alice, "bob", GUEST_TONE, duration=3.0),
        hears_throughout(bob, "alice", HOST_TONE, duration=3.0),
    )
    out, _ = await asyncio.wait_for(flooder.communicate(), 30)
    await listening
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["joined"] and report["close_code"] == p.CloseCode.RATE_LIMITED
    assert report["last_error"] == {"code": "rate_limited", "fatal": True}
    assert report["sent"] > server.sfu.config.message_burst
    # the flooder's session is gone at once (no reconnect grace), the others still hear each other
    room = server.sfu.rooms[a_call.cid]
    assert joined.session_id not in room.participants and len(room.participants) == 2
    await hears_throughout(alice, "bob", GUEST_TONE, duration=0.6)


async def test_update_subscription_naming_made_up_sessions_does_not_grow_memory(
    make_client: ClientFactory,
) -> None:
    # the rate limit is lifted so 100k messages get through quickly; memory is what is measured (the
    # unbounded pause set this guards against kept ~260 B a message: 26 MB here, against the 4 MB bound)
    async with EmbeddedServer() as server:
        server.sfu.config.message_rate = 1e9
        server.sfu.config.message_burst = 10**9
        alice = VideoClient(
            server.api_key,
            user=User.regular("alice"),
            user_token=server.create_token("alice"),
            options=ClientOptions(base_url=server.url),
        )
        await alice.connect()
        try:
            await alice.make_call("default", "bogus").get_or_create()
            joined = await rest_join(alice, "default", "bogus")
            async with raw_sfu(server.sfu_url, keep=False) as sfu:
                await sfu.send(p.JoinRequest(token=joined.credentials.token))
                await sfu.wait_for("join_response")
                participant = server.sfu.rooms["default:bogus"].participants[joined.session_id]
                total = 100_000
                gc.collect()
                tracemalloc.start()
                before = tracemalloc.take_snapshot()
                for n in range(total):
                    await sfu.ws.send_str(
                        p.UpdateSubscription(
                            kind="video" if n % 2 else "audio", paused=True, session_id=secrets.token_hex(16)
                        ).model_dump_json()
                    )
                await sfu.send(p.HealthCheckRequest())
                await sfu.wait_for("health_check_response", timeout=120)
                gc.collect()
                after = tracemalloc.take_snapshot()
                tracemalloc.stop()
                assert sfu.counts["unknown_session"] == total  # each one answered, none remembered
                assert len(participant.paused) == 0
                diffs = after.compare_to(before, "filename")
                server_growth = sum(
                    d.size_diff for d in diffs if "switchboard/server" in d.traceback[0].filename
                )
                assert server_growth < 64 * 1024, f"the server's own structures grew by {server_growth} bytes"
                # the whole process (server, client, libraries' bounded caches): nowhere near the
                # 52 MB the unbounded pause set used to keep
                growth = sum(d.size_diff for d in diffs)
                assert growth < 4 * 1024 * 1024, f"the process grew by {growth} bytes"
        finally:
            await alice.disconnect()


# ---------------------------------------------------------------- SFU tokens bound to a session


async def test_a_token_is_refused_after_its_session_left(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice")
    call = alice.make_call("default", "replay")
    await call.get_or_create()
    await call.join(NO_CAMERA)
    assert call.media is not None
    token = call.media.credentials.token
    await call.leave()
    for reconnect in (False, True):
        async with raw_sfu(server.sfu_url) as sfu:
            await sfu.send(p.JoinRequest(token=token, reconnect=reconnect))
            refused = await sfu.wait_for("error")
            assert refused["code"] == "session_ended" and refused["fatal"] is True
            assert await sfu.closed() == p.CloseCode.UNAUTHENTICATED
    assert call.cid not in server.sfu.rooms


async def test_a_viewer_token_minted_while_live_is_refused_after_stop_live(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    host = await make_client("host")
    viewer = await make_client("viewer")
    show = host.make_call(CallType.livestream(), "late")
    await show.get_or_create()
    await show.go_live()
    joined = await rest_join(viewer, "livestream", "late")  # allowed while live
    await show.stop_live()
    with pytest.raises(PermissionDeniedError):
        await rest_join(viewer, "livestream", "late")
    async with raw_sfu(server.sfu_url) as sfu:
        await sfu.send(p.JoinRequest(token=joined.credentials.token))
        refused = await sfu.wait_for("error")
        assert refused["code"] == "permission_denied" and refused["fatal"] is True
        assert await sfu.closed() == p.CloseCode.PERMISSION_DENIED
    # and no fresh token either
    with pytest.raises(PermissionDeniedError):
        await viewer._require_api().sfu_token("livestream", "late", joined.session_id)


async def test_a_fresh_sfu_token_is_only_for_the_callers_own_live_session(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice")
    mallory = await make_client("mallory")
    call = alice.make_call("default", "fresh")
    await call.get_or_create()
    await call.join(NO_CAMERA)
    assert call.media is not None and call.media.session_id is not None
    session = call.media.session_id
    fresh = await alice._require_api().sfu_token("default", "fresh", session)
    claims = verify_sfu_token(server.api_secret, fresh.credentials.token)
    assert fresh.session_id == session and claims.session_id == session and claims.user_id == "alice"
    with pytest.raises(NotFoundError):  # someone else's session
        await mallory._require_api().sfu_token("default", "fresh", session)
    with pytest.raises(NotFoundError):  # a session that was never minted
        await alice._require_api().sfu_token("default", "fresh", "made-up")
    with pytest.raises(InvalidRequestError):
        await alice._require_api().sfu_token("default", "fresh", "")
    await call.leave()
    with pytest.raises(CallStateError) as left:
        await alice._require_api().sfu_token("default", "fresh", session)
    assert left.value.code == "session_ended"
    async with aiohttp.ClientSession() as http, http.get(server.url + "/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    assert "post" in paths["/api/v1/calls/{type}/{id}/sfu_token"]
    assert not any(path.startswith("/internal") for path in paths)


async def test_a_call_older_than_its_sfu_token_resumes_after_a_socket_drop(
    make_client: ClientFactory,
) -> None:
    tones = {"alice": HOST_TONE, "bob": GUEST_TONE}
    async with EmbeddedServer(sfu_token_ttl=3.0) as server:
        clients: list[VideoClient] = []
        for user, tone in tones.items():
            client = VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(
                    base_url=server.url, microphone=ToneMicrophone(tone), speaker=CaptureSpeaker()
                ),
            )
            await client.connect()
            clients.append(client)
        alice, bob = clients
        try:
            a_call = alice.make_call("default", "old")
            await a_call.get_or_create()
            await a_call.join(NO_CAMERA)
            await bob.make_call("default", "old").join(NO_CAMERA)
            await wait_heard(alice, tones, audible={"bob"})
            media = a_call.media
            assert media is not None and media._ws is not None
            first_token = media.credentials.token
            await asyncio.sleep(3.5)  # the SFU token has expired; the call goes on
            await wait_heard(bob, tones, audible={"alice"})
            await media._ws.close()
            await a_call.state.wait_for(lambda s: s.status is CallStatus.RECONNECTING, timeout=5)
            await a_call.state.wait_for(lambda s: s.status is CallStatus.JOINED, timeout=10)
            assert media.reconnects == 1 and media.credentials.token != first_token
            assert a_call.media is media
            await wait_heard(alice, tones, audible={"bob"})
            await wait_heard(bob, tones, audible={"alice"})
            # the expired token itself is still refused
            async with raw_sfu(server.sfu_url) as sfu:
                await sfu.send(p.JoinRequest(token=first_token, reconnect=True))
                assert (await sfu.wait_for("error"))["code"] == "token_expired"
        finally:
            for client in clients:
                await client.disconnect()


async def test_a_session_whose_grants_changed_resumes_with_a_fresh_token_and_the_new_grants(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    host = await make_client("host")
    guest = await make_client("guest")
    show = host.make_call(CallType.livestream(), "promotion")
    await show.get_or_create(members=[MemberRequest(user_id="guest", role="call_member")])
    await show.go_live()
    watch = guest.make_call(CallType.livestream(), "promotion")
    await watch.join()  # a member without send grants
    media = watch.media
    assert media is not None and media._ws is not None and media.session_id is not None
    first_token = media.credentials.token
    participant = server.sfu.rooms[show.cid].participants[media.session_id]
    assert not participant.grants.send_audio

    await show.update_members(update=[MemberRequest(user_id="guest", role="host")])
    async with raw_sfu(server.sfu_url) as sfu:  # the old token now carries stale grants
        await sfu.send(p.JoinRequest(token=first_token, reconnect=True))
        refused = await sfu.wait_for("error")
        assert refused["code"] == "grants_changed" and await sfu.closed() == p.CloseCode.UNAUTHENTICATED
    await media._ws.close()  # a network blip: the SDK gets a fresh token and carries on
    await watch.state.wait_for(lambda s: s.status is CallStatus.RECONNECTING, timeout=5)
    await watch.state.wait_for(lambda s: s.status is CallStatus.JOINED, timeout=10)
    assert media.reconnects == 1 and media.credentials.token != first_token
    assert server.sfu.rooms[show.cid].participants[media.session_id] is participant
    assert participant.grants.send_audio and participant.grants.send_video
