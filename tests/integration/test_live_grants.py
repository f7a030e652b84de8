"""Grants that shrink while sessions are connected: the others stop hearing, the user is told.

Real clients, real peer connections, tones heard through FFT: a member demoted from ``host`` and a
guest sent back to the audience by ``stop_live`` stop being forwarded by the SFU at once, not only at
their next admission or resume. Engine-neutral (``TEST_ENGINE``): ``tests/test_janus_engine.py`` runs
this file with Janus too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

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
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.server import EmbeddedServer
from tests.conftest import TEST_ENGINE, TEST_HOST, ClientFactory, until, wait_heard

TONES = {"alice": 440.0, "bob": 880.0}
SEND_AUDIO = m.Capability.SEND_AUDIO
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
LISTEN = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())
#: how long the others may still hear a user after the operation that took their grant answered (s)
BOUND = 3.0


async def published(server: EmbeddedServer, cid: str, session_id: str) -> set[str]:
    """The kinds the SFU forwards from ``session_id`` now, from its ``/sfu/stats`` (either engine)."""
    base = server.sfu_url.replace("ws://", "http://", 1).removesuffix("/sfu")
    headers = {"Authorization": f"Bearer {server.create_admin_token()}"}
    async with aiohttp.ClientSession() as http, http.get(base + "/sfu/stats", headers=headers) as resp:
        assert resp.status == 200
        stats: dict[str, Any] = await resp.json()
    return set(stats["rooms"][cid][session_id]["published"])


async def test_a_demoted_host_stops_being_heard_and_is_told(
    make_client: ClientFactory, server: EmbeddedServer
) -> None:
    alice_client = await make_client("alice", microphone=ToneMicrophone(TONES["alice"]))
    bob_client = await make_client("bob", microphone=ToneMicrophone(TONES["bob"]))
    carol_client = await make_client("carol", speaker=CaptureSpeaker())
    alice = alice_client.make_call(CallType.livestream(), "show")
    await alice.get_or_create(members=[MemberRequest("bob", role="host")])
    await alice.go_live()
    await alice.join(MIC_ON)
    bob = bob_client.make_call(CallType.livestream(), "show")
    await bob.join(MIC_ON)
    carol = carol_client.make_call(CallType.livestream(), "show")
    await carol.join(LISTEN)
    await wait_heard(carol_client, TONES, audible={"alice", "bob"})

    await alice.update_members(update=[MemberRequest("bob", role="call_member")])
    # bob's microphone is still on: only the SFU can make him inaudible this fast
    await wait_heard(carol_client, TONES, audible={"alice"}, timeout=BOUND)
    assert "audio" not in await published(server, "livestream:show", bob.state.value.session_id or "")
    assert bob.media is not None
    await until(lambda: any(e.code == "permission_denied" for e in bob.media.errors), "the SFU telling bob")
    await until(lambda: SEND_AUDIO not in bob.state.value.own_capabilities, "bob's new capabilities")
    assert bob.state.value.status is CallStatus.JOINED  # still in the call, as a viewer now
    assert bob.microphone_enabled is False

    # promoted back: his published microphone is forwarded again once he turns it on
    await alice.update_members(update=[MemberRequest("bob", role="host")])
    await until(lambda: SEND_AUDIO in bob.state.value.own_capabilities, "bob promoted again")
    await bob.set_microphone_enabled(True)
    await wait_heard(carol_client, TONES, audible={"alice", "bob"})


@pytest.fixture
async def split_server() -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(sfu_process=True, host=TEST_HOST, engine=TEST_ENGINE) as server:
        yield server


async def test_stop_live_takes_a_guest_out_of_the_media_of_an_sfu_in_its_own_process(
    split_server: EmbeddedServer,
) -> None:
    server = split_server
    clients: list[VideoClient] = []

    async def client(user: str, **options: Any) -> VideoClient:
        made = VideoClient(
            server.api_key,
            user=User.regular(user),
            user_token=server.create_token(user),
            options=ClientOptions(base_url=server.url, **options),
        )
        await made.connect()
        clients.append(made)
        return made

    try:
        alice_client = await client("alice", speaker=CaptureSpeaker())
        bob_client = await client("bob", microphone=ToneMicrophone(TONES["bob"]))
        alice = alice_client.make_call(CallType.livestream(), "late")
        await alice.get_or_create()
        await alice.go_live()
        await alice.join(LISTEN)
        bob = bob_client.make_call(CallType.livestream(), "late")
        await bob.join(LISTEN)  # a viewer ...
        await alice.grant_permissions("bob", [SEND_AUDIO])  # ... invited on stage
        await until(lambda: SEND_AUDIO in bob.state.value.own_capabilities, "bob's grant")
        await bob.set_microphone_enabled(True)
        await wait_heard(alice_client, TONES, audible={"bob"})

        left: list[Any] = []
        bob.on("call.left", left.append)
        await alice.stop_live()  # back to backstage: only hosts may be in the call
        await wait_heard(alice_client, TONES, audible=set(), timeout=BOUND)
        await until(lambda: bob.state.value.status is CallStatus.DISCONNECTED, "bob out of the call")
        await until(lambda: bool(left), "call.left at bob")
        assert left[0].data["reason"] == "permission_denied"
        await until(lambda: "bob" not in {q.user_id for q in alice.state.value.participants}, "bob gone")

        # the channel route is for the coordinator only
        base = server.sfu_url.replace("ws://", "http://").removesuffix("/sfu")
        body = p.GrantsUpdate(cid="livestream:late", reason="test", users=[p.UserGrants(user_id="alice")])
        async with (
            aiohttp.ClientSession() as http,
            http.post(base + p.INTERNAL_GRANTS_PATH, data=body.model_dump_json()) as resp,
        ):
            assert resp.status == 401
            assert (await resp.json())["code"] == "token_invalid"
        assert alice.state.value.status is CallStatus.JOINED
    finally:
        for made in clients:
            await made.disconnect()


async def test_turning_video_off_in_the_settings_stops_a_live_camera_but_not_its_microphone(
    make_client: ClientFactory, server: EmbeddedServer
) -> None:
    alice_client = await make_client("alice", microphone=ToneMicrophone(TONES["alice"]))
    bob_client = await make_client("bob", speaker=CaptureSpeaker())
    alice = alice_client.make_call(CallType.default(), "cams")
    await alice.get_or_create()
    await alice.join()  # default call type: microphone and camera on
    bob = bob_client.make_call(CallType.default(), "cams")
    await bob.join(LISTEN)
    assert bob.media is not None
    media = bob.media
    session = alice.state.value.session_id or ""
    await until(
        lambda: session in media.participants and media.participants[session].video_frames >= 5, "video"
    )

    await alice.update(settings_override=m.CallSettingsRequest(video=m.VideoSettingsRequest(enabled=False)))
    await until(lambda: "video" not in media.participants[session].tracks, "track_unpublished at bob", BOUND)
    assert "video" not in await published(server, "default:cams", session)
    await until(lambda: m.Capability.SEND_VIDEO not in alice.state.value.own_capabilities, "alice told")
    frames = media.participants[session].video_frames
    await wait_heard(bob_client, {"alice": TONES["alice"]}, audible={"alice"})  # audio still granted
    await asyncio.sleep(0.5)
    assert media.participants[session].video_frames <= frames + 2  # (a frame or two already in flight)
