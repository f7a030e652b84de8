"""Request-to-speak in an audio room, with real clients: grants and revokes are heard."""

from __future__ import annotations

import pytest

from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.errors import InvalidRequestError, PermissionDeniedError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, collect, stays_heard, until, wait_heard

TONES = {"alice": 440.0, "carol": 880.0}
SEND_AUDIO = m.Capability.SEND_AUDIO


async def tone_client(make_client: ClientFactory, user: str) -> VideoClient:
    return await make_client(user, microphone=ToneMicrophone(TONES[user]), speaker=CaptureSpeaker())


async def test_request_grant_and_revoke_are_heard(make_client: ClientFactory, server: EmbeddedServer) -> None:
    carol_client, alice_client = (
        await tone_client(make_client, "carol"),
        await tone_client(make_client, "alice"),
    )
    carol = carol_client.make_call("audio_room", "stage")
    await carol.get_or_create()
    await carol.go_live()
    await carol.join(CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled()))
    alice = alice_client.make_call("audio_room", "stage")
    await alice.join()
    assert SEND_AUDIO not in alice.state.value.own_capabilities
    with pytest.raises(PermissionDeniedError, match="send-audio"):
        await alice.set_microphone_enabled(True)
    await wait_heard(alice_client, TONES, audible={"carol"})
    await stays_heard(carol_client, TONES, audible=set())

    requests = collect(carol, "call.permission_request")
    with pytest.raises(InvalidRequestError, match="send-audio"):
        await alice.request_permission(["end-call"])
    await alice.request_permission([SEND_AUDIO])
    await until(lambda: bool(requests), "the request at carol")
    request = requests[0]
    assert isinstance(request, m.CallPermissionRequestEvent)
    assert request.user.id == "alice" and request.permissions == [SEND_AUDIO]

    # a listener may not grant
    with pytest.raises(PermissionDeniedError, match="update-call-member"):
        await alice.grant_permissions("alice", [SEND_AUDIO])

    updates = collect(alice, "call.permissions_updated")
    await carol.grant_permissions("alice", [SEND_AUDIO])
    await until(lambda: SEND_AUDIO in alice.state.value.own_capabilities, "the grant at alice")
    assert isinstance(updates[0], m.CallPermissionsUpdatedEvent) and updates[0].user_id == "alice"
    await alice.set_microphone_enabled(True)
    await wait_heard(carol_client, TONES, audible={"alice"})
    await wait_heard(alice_client, TONES, audible={"carol"})

    await carol.revoke_permissions("alice", [SEND_AUDIO])
    await wait_heard(carol_client, TONES, audible=set())
    # the SFU itself stopped forwarding (not only alice's client muting itself)
    session = server.sfu.rooms["audio_room:stage"].participants[alice.state.value.session_id or ""]
    assert "audio" not in session.published and not session.grants.send_audio
    await until(lambda: SEND_AUDIO not in alice.state.value.own_capabilities, "the revoke at alice")
    assert alice.microphone_enabled is False
    with pytest.raises(PermissionDeniedError):
        await alice.set_microphone_enabled(True)
    await stays_heard(carol_client, TONES, audible=set())

    # granted again: the microphone already published is forwarded again once she turns it on
    await carol.grant_permissions("alice", [SEND_AUDIO])
    await until(lambda: SEND_AUDIO in alice.state.value.own_capabilities, "the second grant")
    await alice.set_microphone_enabled(True)
    await wait_heard(carol_client, TONES, audible={"alice"})

    # a fresh join carries the grant in its SFU token
    await alice.leave()
    await alice.join(CallConnectOptions(microphone=TrackOption.enabled()))
    await wait_heard(carol_client, TONES, audible={"alice"})
