"""What any media engine must do, observed as a client and an operator sees it.

These run with the embedded SFU in the normal suite and with Janus through
``tests/test_janus_engine.py`` (same file, ``SWITCHBOARD_TEST_ENGINE=janus``).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiortc.mediastreams import AudioStreamTrack

from switchboard import (
    CallConnectOptions,
    CallStatus,
    CallType,
    ClientOptions,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.local_ice import create_peer_connection, loopback_ice_address
from switchboard.protocol import sfu as p
from switchboard.server import EmbeddedServer
from tests.conftest import TEST_ENGINE, TEST_HOST, ClientFactory, wait_heard

TONES = {"ann": 440.0, "ben": 660.0, "cid": 880.0}
AUDIO_ONLY = CallConnectOptions(camera=TrackOption.disabled())


async def tone_client(make_client: ClientFactory, user: str) -> VideoClient:
    return await make_client(user, microphone=ToneMicrophone(TONES[user]), speaker=CaptureSpeaker())


async def sfu_stats(server: EmbeddedServer) -> dict[str, object]:
    base = server.sfu_url.replace("ws://", "http://", 1).removesuffix("/sfu")
    headers = {"Authorization": f"Bearer {server.create_admin_token()}"}
    async with aiohttp.ClientSession() as http, http.get(base + "/sfu/stats", headers=headers) as resp:
        assert resp.status == 200
        stats: dict[str, object] = await resp.json()
        return stats


async def test_a_third_participant_joins_is_heard_and_leaves(make_client: ClientFactory) -> None:
    ann, ben, cid = [await tone_client(make_client, u) for u in TONES]
    for client in (ann, ben):
        await client.make_call("default", "trio").join(AUDIO_ONLY)
    await wait_heard(ann, TONES, audible={"ben"})
    await wait_heard(ben, TONES, audible={"ann"})

    third = cid.make_call("default", "trio")
    await third.join(AUDIO_ONLY)
    await wait_heard(cid, TONES, audible={"ann", "ben"})
    await wait_heard(ann, TONES, audible={"ben", "cid"})
    await wait_heard(ben, TONES, audible={"ann", "cid"})

    await third.leave()
    await wait_heard(ann, TONES, audible={"ben"})
    await wait_heard(ben, TONES, audible={"ann"})
    call = ann.make_call("default", "trio")
    await call.state.wait_for(
        lambda s: sorted(q.user_id for q in s.participants) == ["ann", "ben"], timeout=10
    )


async def test_suspending_pauses_forwarding_to_that_subscriber_only(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    ann, ben = [await tone_client(make_client, u) for u in ("ann", "ben")]
    calls = {c.user.id: c.make_call("default", "pause") for c in (ann, ben)}
    for call in calls.values():
        await call.join(AUDIO_ONLY)
    await wait_heard(ann, TONES, audible={"ben"})

    await calls["ann"].suspend_audio()
    await wait_heard(ann, TONES, audible=set())
    await wait_heard(ben, TONES, audible=set())  # a suspended call's microphone is off too
    stats = await sfu_stats(server)
    room = stats["rooms"]["default:pause"]  # type: ignore[index]
    ann_session = calls["ann"].state.value.local_participant.session_id  # type: ignore[union-attr]
    ben_session = calls["ben"].state.value.local_participant.session_id  # type: ignore[union-attr]
    assert [d["paused"] for d in room[ann_session]["downtracks"] if d["kind"] == "audio"] == [True]
    assert [d["paused"] for d in room[ben_session]["downtracks"] if d["kind"] == "audio"] == [False]

    await calls["ann"].resume_audio()
    await wait_heard(ann, TONES, audible={"ben"})
    stats = await sfu_stats(server)
    room = stats["rooms"]["default:pause"]  # type: ignore[index]
    assert [d["paused"] for d in room[ann_session]["downtracks"] if d["kind"] == "audio"] == [False]


async def test_the_engine_in_its_own_process_carries_a_call() -> None:
    async with EmbeddedServer(host=TEST_HOST, engine=TEST_ENGINE, sfu_process=True) as server:
        assert server.sfu_pid is not None
        clients = [
            VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(
                    base_url=server.url, microphone=ToneMicrophone(TONES[user]), speaker=CaptureSpeaker()
                ),
            )
            for user in ("ann", "ben")
        ]
        try:
            for client in clients:
                await client.connect()
                await client.make_call("default", "apart").join(AUDIO_ONLY)
            await wait_heard(clients[0], TONES, audible={"ben"})
            await wait_heard(clients[1], TONES, audible={"ann"})
            stats = await sfu_stats(server)
            assert stats["participants"] == 2
        finally:
            for client in clients:
                await client.disconnect()


async def test_a_dropped_signalling_socket_resumes_the_same_session(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    ann, ben = [await tone_client(make_client, u) for u in ("ann", "ben")]
    a_call, b_call = ann.make_call("default", "resume"), ben.make_call("default", "resume")
    await a_call.join(AUDIO_ONLY)
    await b_call.join(AUDIO_ONLY)
    pair = {k: TONES[k] for k in ("ann", "ben")}
    await wait_heard(ann, pair, audible={"ben"})
    statuses: list[CallStatus] = []
    b_call.state.listen(lambda s: statuses.append(s.status))
    session = b_call.state.value.session_id
    assert b_call.media is not None and b_call.media._ws is not None
    await b_call.media._ws.close()  # the signalling socket drops (network blip)
    await b_call.state.wait_for(
        lambda s: s.status is CallStatus.JOINED and CallStatus.RECONNECTING in statuses, 5
    )
    assert b_call.media.reconnects == 1
    assert b_call.state.value.session_id == session
    await b_call.set_microphone_enabled(False)  # signalling works again
    await wait_heard(ann, pair, audible=set())
    await b_call.set_microphone_enabled(True)
    await wait_heard(ann, pair, audible={"ben"})
    await wait_heard(ben, pair, audible={"ann"})
    stats = await sfu_stats(server)
    assert len(stats["rooms"]["default:resume"]) == 2  # type: ignore[index]


async def test_a_viewer_publishing_is_refused_and_forwarded_to_nobody(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    host, viewer = [await tone_client(make_client, u) for u in ("ann", "ben")]
    show = host.make_call(CallType.livestream(), "show")
    await show.get_or_create()
    await show.join(CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled()))
    await show.go_live()
    watch = viewer.make_call(CallType.livestream(), "show")
    await watch.join()  # a viewer publishes nothing
    pair = {k: TONES[k] for k in ("ann", "ben")}
    await wait_heard(viewer, pair, audible={"ann"})

    # a hand-made publisher offer with audio from the viewer's session: refused by the engine itself
    pc = create_peer_connection(loopback_address=loopback_ice_address(server.sfu_url))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    assert watch.media is not None
    errors = len(watch.media.errors)
    await watch.media._send(p.PublisherOffer(sdp=pc.localDescription.sdp))
    for _ in range(50):
        if len(watch.media.errors) > errors:
            break
        await asyncio.sleep(0.05)
    assert watch.media.errors[-1].code == "permission_denied"
    await asyncio.sleep(1.0)  # whatever the engine would do with the track, it has done by now
    await pc.close()
    stats = await sfu_stats(server)
    room = stats["rooms"]["livestream:show"]  # type: ignore[index]
    assert room[watch.state.value.session_id]["published"] == {}
    host_session = show.state.value.session_id
    assert [d["source"] for d in room[host_session]["downtracks"]] == []  # nothing of the viewer's
    await wait_heard(host, pair, audible=set())
    await wait_heard(viewer, pair, audible={"ann"})
