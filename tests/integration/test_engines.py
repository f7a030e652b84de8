"""What any media engine must do, observed as a client and an operator sees it.

These run with the embedded SFU in the normal suite and with Janus through
``tests/test_janus_engine.py`` (same file, ``SWITCHBOARD_TEST_ENGINE=janus``).
"""

from __future__ import annotations

import aiohttp

from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.media.devices import CaptureSpeaker, ToneMicrophone
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
        lambda s: sorted(p.user_id for p in s.participants) == ["ann", "ben"], timeout=10
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
