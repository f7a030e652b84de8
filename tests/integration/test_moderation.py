"""Moderation with real clients: mute others, remove and block a participant, on what is heard."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard import CallConnectOptions, CallStatus, ClientOptions, TrackOption, User, VideoClient
from switchboard.errors import InvalidRequestError, PermissionDeniedError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.sdk.call import Call
from switchboard.server import EmbeddedServer
from tests.conftest import TEST_ENGINE, TEST_HOST, ClientFactory, collect, until, wait_heard

TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0}
NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())


async def tone_client(make_client: ClientFactory, user: str) -> VideoClient:
    return await make_client(user, microphone=ToneMicrophone(TONES[user]), speaker=CaptureSpeaker())


async def three_in_a_call(make_client: ClientFactory, call_id: str) -> dict[str, Call]:
    """carol creates the call (host: every capability); alice and bob are plain members."""
    clients = {u: await tone_client(make_client, u) for u in ("carol", "alice", "bob")}
    calls = {u: c.make_call("default", call_id) for u, c in clients.items()}
    await calls["carol"].get_or_create(members=["alice", "bob"])
    for call in calls.values():
        await call.join(NO_CAMERA)
    for user, client in clients.items():
        await wait_heard(client, TONES, audible=set(TONES) - {user})
    return calls


async def test_a_muted_participant_is_not_heard_is_told_and_may_unmute(make_client: ClientFactory) -> None:
    calls = await three_in_a_call(make_client, "mute")
    carol, alice, bob = calls["carol"], calls["alice"], calls["bob"]
    told = collect(alice, "call.muted_by_moderator")
    muted_events = collect(bob, "call.user_muted")

    # a plain member may not mute others
    with pytest.raises(PermissionDeniedError, match="mute-users"):
        await bob.mute_users(["alice"])
    with pytest.raises(InvalidRequestError, match="nothing to mute"):
        await carol.mute_users(["alice"], audio=False)

    await carol.mute_users(["alice"])
    for call in (carol, bob):
        await wait_heard(call._client, TONES, audible=set(TONES) - {"alice", call._client.user.id})
    await until(lambda: bool(told), "alice told she was muted")
    assert told[0].data == {"kinds": ["audio"], "by": "carol"}  # type: ignore[attr-defined]
    assert alice.microphone_enabled is False
    assert alice.state.value.local_participant is not None
    assert not alice.state.value.local_participant.audio_enabled
    await until(lambda: bool(muted_events), "call.user_muted at bob")
    event = muted_events[0]
    assert isinstance(event, m.CallUserMutedEvent)
    assert event.from_user_id == "carol" and event.muted_user_ids == ["alice"] and event.audio
    await until(
        lambda: any(p.user_id == "alice" and not p.audio_enabled for p in bob.state.value.participants),
        "alice shown muted at bob",
    )

    # she turns her microphone on again herself: heard again
    await alice.set_microphone_enabled(True)
    for call in (carol, bob):
        await wait_heard(call._client, TONES, audible=set(TONES) - {call._client.user.id})

    # mute everyone else: only the moderator is heard
    await carol.mute_all_users()
    await wait_heard(alice._client, TONES, audible={"carol"})
    await wait_heard(bob._client, TONES, audible={"carol"})
    await wait_heard(carol._client, TONES, audible=set())


async def test_a_removed_participant_is_out_and_cannot_rejoin_while_blocked(
    make_client: ClientFactory,
) -> None:
    calls = await three_in_a_call(make_client, "remove")
    carol, alice, bob = calls["carol"], calls["alice"], calls["bob"]
    removed = collect(bob, "call.removed")
    left = collect(bob, "call.left")
    with pytest.raises(PermissionDeniedError, match="update-call-member"):
        await alice.remove_participant("bob")

    await carol.remove_participant("bob", block=True)
    await until(lambda: bool(left), "bob's call.left")
    assert [e.data for e in removed] == [{"by": "carol", "blocked": True}]  # type: ignore[attr-defined]
    assert [e.data["reason"] for e in left] == ["removed"]  # type: ignore[attr-defined]
    assert bob.state.value.status is CallStatus.DISCONNECTED
    # the SDK emits call.left, closes the media, then takes the call off active_calls
    await until(lambda: bob._client.state.active_calls.value == [], "bob's call off active_calls")
    await until(
        lambda: all(p.user_id != "bob" for c in (carol, alice) for p in c.state.value.participants),
        "bob gone from the others' participants",
    )
    await wait_heard(alice._client, TONES, audible={"carol"})
    await wait_heard(carol._client, TONES, audible={"alice"})

    with pytest.raises(PermissionDeniedError) as refused:
        await bob.join(NO_CAMERA)
    assert refused.value.code == "blocked"
    assert bob.state.value.status.value == "idle"  # the refused join left nothing behind

    await carol.unblock_user("bob")
    await bob.join(NO_CAMERA)
    await wait_heard(alice._client, TONES, audible={"carol", "bob"})

    # removed without a block: out now, but may come back
    await carol.remove_participant("alice")
    await until(lambda: alice.state.value.status is CallStatus.DISCONNECTED, "alice out")
    await alice.join(NO_CAMERA)
    await wait_heard(alice._client, TONES, audible={"carol", "bob"})

    # block without remove first: same effect; and end for everyone ends it for all
    await carol.block_user("alice")
    await until(lambda: alice.state.value.status is CallStatus.DISCONNECTED, "alice blocked out")
    await carol.end()
    await until(lambda: bob.state.value.status is CallStatus.DISCONNECTED, "bob out at the end")


@pytest.fixture
async def split_server() -> AsyncIterator[EmbeddedServer]:
    # the engine under test (tests/test_janus_engine.py runs this file with Janus too)
    async with EmbeddedServer(sfu_process=True, host=TEST_HOST, engine=TEST_ENGINE) as server:
        yield server


async def test_moderation_reaches_an_sfu_in_its_own_process(split_server: EmbeddedServer) -> None:
    clients: list[VideoClient] = []
    try:
        for user in ("carol", "bob"):
            client = VideoClient(
                split_server.api_key,
                user=User.regular(user),
                user_token=split_server.create_token(user),
                options=ClientOptions(
                    base_url=split_server.url,
                    microphone=ToneMicrophone(TONES[user]),
                    speaker=CaptureSpeaker(),
                ),
            )
            await client.connect()
            clients.append(client)
        carol, bob = (c.make_call("default", "split") for c in clients)
        await carol.get_or_create(members=["bob"])
        await carol.join(NO_CAMERA)
        await bob.join(NO_CAMERA)
        await wait_heard(clients[0], TONES, audible={"bob"})
        await carol.mute_users(["bob"])
        await wait_heard(clients[0], TONES, audible=set())
        await carol.block_user("bob")
        await until(lambda: bob.state.value.status is CallStatus.DISCONNECTED, "bob out")
        with pytest.raises(PermissionDeniedError):
            await bob.join(NO_CAMERA)
    finally:
        for client in clients:
            await client.disconnect()
