"""Real calls: real server, real WebRTC media through the SFU, and what each client actually hears."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import aiohttp
import jwt
import pytest
from aiortc.mediastreams import AudioStreamTrack

from switchboard import CallConnectOptions, CallStatus, CallType, MemberRequest, TrackOption
from switchboard.errors import AuthenticationError, PermissionDeniedError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.camera import SyntheticCamera
from switchboard.media.local_ice import create_peer_connection, loopback_ice_address
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuGrants, create_sfu_token
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, wait_heard

TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0}
NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())


async def tone_client(make_client: ClientFactory, user: str, **options: object):
    return await make_client(
        user, microphone=ToneMicrophone(TONES[user]), speaker=CaptureSpeaker(), **options
    )


def decoder_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.endswith("-decoder") and t.is_alive())


async def test_three_clients_each_hear_the_other_two_and_not_themselves(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    clients = {u: await tone_client(make_client, u) for u in TONES}
    before = decoder_threads()
    for client in clients.values():
        call = client.make_call("default", "trio")
        await call.get_or_create()
        await call.join(NO_CAMERA)
        assert call.state.value.status is CallStatus.JOINED
        assert client.state.active_calls.value == [call]
    for user, client in clients.items():
        await wait_heard(client, TONES, audible=set(TONES) - {user})
        state = client.make_call("default", "trio").state.value
        assert sorted(p.user_id for p in state.participants) == sorted(TONES)
        assert state.local_participant is not None and state.local_participant.audio_enabled

    # Encoded end to end: the SFU never decodes, and clients decode Opus themselves (no aiortc decoder
    # thread anywhere), so not a single aiortc decoder was started while three people talked.
    assert decoder_threads() - before == 0
    room = server.sfu.rooms["default:trio"]
    for participant in room.participants.values():
        assert participant.published["audio"].frames_in > 0
        assert participant.published["audio"].tap is not None


async def test_camera_frames_decode_at_the_others(make_client: ClientFactory) -> None:
    alice = await tone_client(make_client, "alice")
    bob = await tone_client(make_client, "bob")
    before = decoder_threads()
    a_call = alice.make_call("default", "video")
    await a_call.get_or_create()
    await a_call.join()  # default call type: mic and camera on
    b_call = bob.make_call("default", "video")
    await b_call.join(NO_CAMERA)
    assert b_call.media is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    remote = None
    while loop.time() < deadline:
        remote = next(iter(b_call.media.participants.values()), None)
        if remote is not None and remote.video_frames >= 5:
            break
        await asyncio.sleep(0.1)
    assert remote is not None and remote.video_frames >= 5, "no video decoded at bob"
    frame = remote.last_video_frame
    assert frame is not None and (frame.width, frame.height) == (320, 240)
    assert SyntheticCamera.read_counter(frame) > 0  # the moving test pattern's frame counter survived VP8
    alice_seen_by_bob = next(p for p in b_call.state.value.participants if p.user_id == "alice")
    assert alice_seen_by_bob.video_enabled and alice_seen_by_bob.audio_enabled
    # one VP8 decoder: bob's. The SFU's receivers of alice's audio and video decode nothing.
    assert decoder_threads() - before == 1


async def test_mute_and_unmute_mid_call_both_ways(make_client: ClientFactory) -> None:
    alice = await tone_client(make_client, "alice")
    bob = await tone_client(make_client, "bob")
    a_call, b_call = alice.make_call("default", "mute"), bob.make_call("default", "mute")
    await a_call.get_or_create()
    await a_call.join(NO_CAMERA)
    await b_call.join(NO_CAMERA)
    pair = {k: TONES[k] for k in ("alice", "bob")}
    await wait_heard(bob, pair, audible={"alice"})
    await wait_heard(alice, pair, audible={"bob"})

    await a_call.set_microphone_enabled(False)
    await wait_heard(bob, pair, audible=set())
    await b_call.state.wait_for(
        lambda s: any(p.user_id == "alice" and not p.audio_enabled for p in s.participants), timeout=5
    )
    await wait_heard(alice, pair, audible={"bob"})  # the other direction is untouched
    await b_call.set_microphone_enabled(False)
    await wait_heard(alice, pair, audible=set())

    await a_call.set_microphone_enabled(True)
    await b_call.set_microphone_enabled(True)
    await wait_heard(bob, pair, audible={"alice"})
    await wait_heard(alice, pair, audible={"bob"})
    await b_call.state.wait_for(
        lambda s: any(p.user_id == "alice" and p.audio_enabled for p in s.participants), timeout=5
    )


async def test_leave_removes_participant_and_audio(make_client: ClientFactory) -> None:
    alice = await tone_client(make_client, "alice")
    bob = await tone_client(make_client, "bob")
    a_call, b_call = alice.make_call("default", "bye"), bob.make_call("default", "bye")
    await a_call.get_or_create()
    await a_call.join(NO_CAMERA)
    await b_call.join(NO_CAMERA)
    pair = {k: TONES[k] for k in ("alice", "bob")}
    await wait_heard(alice, pair, audible={"bob"})
    await b_call.leave()
    assert b_call.state.value.status is CallStatus.IDLE
    assert bob.state.active_calls.value == []
    await a_call.state.wait_for(lambda s: [p.user_id for p in s.participants] == ["alice"], timeout=5)
    await wait_heard(alice, pair, audible=set())
    await b_call.join(NO_CAMERA)  # and back
    await wait_heard(alice, pair, audible={"bob"})


async def test_join_is_idempotent_and_single_call_mode_replaces(make_client: ClientFactory) -> None:
    alice = await tone_client(make_client, "alice")
    first, second = alice.make_call("default", "one"), alice.make_call("default", "two")
    for call in (first, second):
        await call.get_or_create()
    changes: list[object] = []
    await first.join(NO_CAMERA)
    alice.state.active_calls.listen(changes.append)
    await first.join(NO_CAMERA)
    assert changes == []
    await second.join(NO_CAMERA)
    assert alice.state.active_calls.value == [second]
    assert first.state.value.status is CallStatus.IDLE
    assert second.state.value.is_audio_suspended is False


async def test_remote_end_leaves_the_call(make_client: ClientFactory) -> None:
    alice = await tone_client(make_client, "alice")
    bob = await tone_client(make_client, "bob")
    a_call = alice.make_call("default", "ending")
    await a_call.get_or_create(members=[MemberRequest("bob")])
    await a_call.join(NO_CAMERA)
    b_call = bob.make_call("default", "ending")
    await b_call.join(NO_CAMERA)
    await a_call.end()
    await b_call.state.wait_for(lambda s: s.status is CallStatus.DISCONNECTED, timeout=5)
    await bob.state.active_calls.wait_for(lambda calls: calls == [], timeout=5)
    assert b_call.state.value.is_ended


async def test_livestream_viewer_cannot_publish(server: EmbeddedServer, make_client: ClientFactory) -> None:
    host = await tone_client(make_client, "alice")
    viewer = await tone_client(make_client, "bob")
    show = host.make_call(CallType.livestream(), "show")
    await show.get_or_create()
    await show.join(CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled()))
    await show.go_live()
    watch = viewer.make_call(CallType.livestream(), "show")
    await watch.get()
    with pytest.raises(PermissionDeniedError):
        await watch.join(CallConnectOptions(microphone=TrackOption.enabled()))
    assert viewer.state.active_calls.value == []
    await watch.join()  # defaults: a viewer publishes nothing
    assert watch.media is not None and watch.media.published == {}
    await wait_heard(viewer, {k: TONES[k] for k in ("alice", "bob")}, audible={"alice"})

    # A hand-made publisher offer with audio from the viewer's session is refused by the SFU itself.
    pc = create_peer_connection(loopback_address=loopback_ice_address(server.sfu_url))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    errors = len(watch.media.errors)
    await watch.media._send(p.PublisherOffer(sdp=pc.localDescription.sdp))
    for _ in range(50):
        if len(watch.media.errors) > errors:
            break
        await asyncio.sleep(0.05)
    assert watch.media.errors[-1].code == "permission_denied"
    await pc.close()
    room = server.sfu.rooms["livestream:show"]
    viewer_session = room.participants[watch.state.value.session_id or ""]
    assert viewer_session.published == {}
    await wait_heard(viewer, {k: TONES[k] for k in ("alice", "bob")}, audible={"alice"})


async def _sfu_exchange(url: str, *messages: str) -> list[dict[str, object]]:
    answers: list[dict[str, object]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for message in messages:
            await ws.send_str(message)
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            answers.append(json.loads(msg.data))
    return answers


async def test_forged_and_expired_sfu_tokens_are_refused(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await tone_client(make_client, "alice")
    call = alice.make_call("default", "tokens")
    await call.get_or_create()
    grants = SfuGrants(send_audio=True, send_video=True)
    forged = create_sfu_token(
        "another-secret-that-is-long-enough-000000",
        user_id="alice",
        call_cid=call.cid,
        session_id="s1",
        grants=grants,
    )
    expired = jwt.encode(
        {"user_id": "alice", "call_cid": call.cid, "session_id": "s2", "grants": grants.model_dump(),
         "iat": 0, "exp": int(time.time()) - 5, "aud": "switchboard-sfu"},
        server.api_secret, algorithm="HS256",
    )  # fmt: skip
    wrong_call = create_sfu_token(
        server.api_secret, user_id="alice", call_cid="default:nope", session_id="s3", grants=grants
    )
    for token, code in [(forged, "token_invalid"), (expired, "token_expired"), (wrong_call, "call_ended")]:
        (answer,) = await _sfu_exchange(server.sfu_url, p.JoinRequest(token=token).model_dump_json())
        assert answer["type"] == "error" and answer["code"] == code and answer["fatal"] is True
    assert "default:tokens" not in server.sfu.rooms


async def test_garbage_on_the_sfu_socket_gets_errors_and_others_keep_talking(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await tone_client(make_client, "alice")
    bob = await tone_client(make_client, "bob")
    a_call, b_call = alice.make_call("default", "garbage"), bob.make_call("default", "garbage")
    await a_call.get_or_create()
    await a_call.join(NO_CAMERA)
    await b_call.join(NO_CAMERA)
    answers = await _sfu_exchange(
        server.sfu_url, "not json", '{"type": "teleport"}', '{"type": "publisher_offer", "sdp": "x"}', "[]"
    )
    assert [a["type"] for a in answers] == ["error"] * 4
    assert all(a["fatal"] is False for a in answers)
    # garbage inside a joined session too
    assert b_call.media is not None and b_call.media._ws is not None
    await b_call.media._ws.send_str('{"type": "update_mute_state", "kind": "smell", "muted": 1}')
    await b_call.media._ws.send_str('{"type": "publisher_offer", "sdp": "v=garbage"}')
    pair = {k: TONES[k] for k in ("alice", "bob")}
    await wait_heard(alice, pair, audible={"bob"})
    await wait_heard(bob, pair, audible={"alice"})
    assert {e.code for e in b_call.media.errors} >= {"invalid_request"}


CHILD = """
import asyncio, sys
from switchboard import ClientOptions, User, VideoClient, CallConnectOptions, TrackOption
from switchboard.media import ToneMicrophone
async def main():
    url, key, token = sys.argv[1:4]
    client = VideoClient(key, user=User.regular("carol"), user_token=token,
                         options=ClientOptions(base_url=url, microphone=ToneMicrophone(880)))
    await client.connect()
    call = client.make_call("default", "vanish")
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))
    print("joined", flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_a_killed_client_disappears_from_the_others_state(make_client: ClientFactory) -> None:
    async with EmbeddedServer(reconnect_grace=1.0) as server:
        from switchboard import ClientOptions, User, VideoClient

        alice = VideoClient(
            server.api_key,
            user=User.regular("alice"),
            user_token=server.create_token("alice"),
            options=ClientOptions(
                base_url=server.url, microphone=ToneMicrophone(440), speaker=CaptureSpeaker()
            ),
        )
        await alice.connect()
        call = alice.make_call("default", "vanish")
        await call.get_or_create()
        await call.join(NO_CAMERA)
        child = subprocess.Popen(  # noqa: ASYNC220 (a real OS process we can kill)
            [sys.executable, "-c", CHILD, server.url, server.api_key, server.create_token("carol")],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)  # type: ignore[union-attr]
            assert line.strip() == b"joined"
            await call.state.wait_for(lambda s: any(p.user_id == "carol" for p in s.participants), timeout=10)
            await wait_heard(alice, {"carol": 880.0}, audible={"carol"})
            child.send_signal(signal.SIGKILL)
            await call.state.wait_for(lambda s: all(p.user_id != "carol" for p in s.participants), timeout=10)
            await wait_heard(alice, {"carol": 880.0}, audible=set())
            assert len(server.sfu.rooms["default:vanish"].participants) == 1
        finally:
            child.kill()
            child.wait()
            await alice.disconnect()


async def test_bad_sfu_join_from_sdk_is_authentication_error(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    from switchboard.protocol import coordinator as m
    from switchboard.sdk.session import CallSession

    alice = await tone_client(make_client, "alice")
    call = alice.make_call("default", "authfail")
    await call.get_or_create()
    creds = m.Credentials(server=m.SfuServer(url=server.sfu_url), token="forged")
    adm = alice.audio_session.create_module(call.audio_configuration_policy, "x")
    session = CallSession(creds, adm, alice._http(), on_change=lambda: None, on_ended=lambda r: None)
    with pytest.raises(AuthenticationError):
        await session.connect()
    await session.close(send_leave=False)
    adm.close()


async def test_server_shutdown_closes_every_connection() -> None:
    async with EmbeddedServer() as server:
        from switchboard import ClientOptions, User, VideoClient

        client = VideoClient(
            server.api_key,
            user=User.regular("alice"),
            user_token=server.create_token("alice"),
            options=ClientOptions(base_url=server.url),
        )
        await client.connect()
        call = client.make_call("default", "shutdown")
        await call.get_or_create()
        await call.join(NO_CAMERA)
        room = server.sfu.rooms["default:shutdown"]
        pcs = [pc for part in room.participants.values() for pc in (part.publisher, part.subscriber)]
    assert all(pc.connectionState == "closed" for pc in pcs)
    assert server.sfu.rooms == {}
    await call.state.wait_for(lambda s: s.status is CallStatus.DISCONNECTED, timeout=5)
    await client.disconnect()


async def test_sfu_socket_drop_resumes_the_same_session(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await tone_client(make_client, "alice")
    bob = await tone_client(make_client, "bob")
    a_call, b_call = alice.make_call("default", "resume"), bob.make_call("default", "resume")
    await a_call.get_or_create()
    await a_call.join(NO_CAMERA)
    await b_call.join(NO_CAMERA)
    pair = {k: TONES[k] for k in ("alice", "bob")}
    await wait_heard(alice, pair, audible={"bob"})
    statuses: list[CallStatus] = []
    b_call.state.listen(lambda s: statuses.append(s.status))
    left: list[str] = []
    a_call.on("*", lambda e: left.append(e.type) if "left" in e.type else None)
    session = b_call.state.value.session_id
    assert b_call.media is not None and b_call.media._ws is not None
    await b_call.media._ws.close()  # the signalling socket drops (network blip)
    await b_call.state.wait_for(
        lambda s: s.status is CallStatus.JOINED and CallStatus.RECONNECTING in statuses, 5
    )
    assert b_call.media is not None and b_call.media.reconnects == 1
    assert b_call.state.value.session_id == session
    assert [p.user_id for p in a_call.state.value.participants] == ["alice", "bob"]
    await b_call.set_microphone_enabled(False)  # signalling works again
    await wait_heard(alice, pair, audible=set())
    await b_call.set_microphone_enabled(True)
    await wait_heard(alice, pair, audible={"bob"})
    await wait_heard(bob, pair, audible={"alice"})
    assert len(server.sfu.rooms["default:resume"].participants) == 2


async def test_coordinator_tells_watchers_who_joins_the_media(make_client: ClientFactory) -> None:
    alice = await tone_client(make_client, "alice")
    watcher = await make_client("watcher")
    call = alice.make_call("default", "watched-media")
    await call.get_or_create(members=[MemberRequest("watcher")])
    seen: list[tuple[str, str]] = []
    watcher.on(
        "*", lambda e: seen.append((e.type, getattr(e, "user_id", ""))) if "participant" in e.type else None
    )
    await call.join(NO_CAMERA)
    await call.leave()
    for _ in range(100):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.05)
    assert seen == [("call.session_participant_joined", "alice"), ("call.session_participant_left", "alice")]


async def test_ending_a_joined_call_leaves_it_once(make_client: ClientFactory) -> None:
    alice = await tone_client(make_client, "alice")
    call = alice.make_call("default", "end-once")
    await call.get_or_create()
    await call.join(NO_CAMERA)
    left: list[str] = []
    call.on("call.left", lambda e: left.append(e.type))
    await call.end()
    await asyncio.sleep(0.3)  # the server's call.ended event arrives too
    assert left == ["call.left"]
    assert call.state.value.status is CallStatus.DISCONNECTED and alice.state.active_calls.value == []
