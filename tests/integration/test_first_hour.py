"""A newcomer's first hour: every input mistake is a clear SwitchboardError raised before any network.

Clients are real (a real embedded server, real sockets). "Before any network" is shown by making the
mistake on a client that is not connected: the input error wins over "not connected".
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from switchboard import (
    AudioConfigurationPolicy,
    CallConnectOptions,
    CallPreferences,
    CallStatus,
    CallType,
    ClientOptions,
    MemberRequest,
    MultiCallAudioPolicy,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.errors import CallStateError, InvalidRequestError, NetworkError, SwitchboardError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.sdk.multicall import PolicyIgnoredWarning
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, wait_heard

BOB = {"bob": 660.0}
AUDIO_ONLY = CallConnectOptions(camera=TrackOption.disabled())


# ---------------------------------------------------------------- members


async def test_get_or_create_takes_plain_user_ids_like_ring(make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    call = alice.make_call("default", "plain-ids")
    state = await call.get_or_create(members=["bob", MemberRequest("carol", role="host")])
    roles = {mb.user_id: mb.role for mb in state.members}
    assert roles["bob"] == "call_member" and roles["carol"] == "host"
    await call.update_members(update=["dave"], remove=["bob"])
    assert {mb.user_id for mb in call.state.value.members} == {"alice", "carol", "dave"}


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: MemberRequest(123), "MemberRequest user_id must be a string"),  # type: ignore[arg-type]
        (lambda: MemberRequest("bob", role="boss"), "role 'boss' is not valid"),
        (lambda: MemberRequest("bob/smith"), "'bob/smith' is not valid: use 1 to 64 characters"),
        (lambda: MemberRequest(""), "'' is not valid"),
        (lambda: User.regular(42), "User id must be a string"),  # type: ignore[arg-type]
        (lambda: User.regular("a b"), "User id 'a b' is not valid"),
        (lambda: CallType.custom("my type"), "call type 'my type' is not valid"),
        (lambda: TrackOption.provided(None), "TrackOption.provided() needs a track"),
        (lambda: AudioConfigurationPolicy.custom(capture_channels=3), "channel counts must be 1 or 2, not 3"),
        (lambda: AudioConfigurationPolicy.custom(opus_bitrate=1), "opus_bitrate must be within 6000..510000"),
        (lambda: CallConnectOptions(microphone=True), "must be a TrackOption, not bool"),  # type: ignore[arg-type]
        (lambda: CallPreferences(audio_configuration_policy="viewer"), "must be a AudioConfigurationPolicy"),  # type: ignore[arg-type]
    ],
)
def test_value_types_refuse_bad_input_with_a_readable_message(make: object, words: str) -> None:
    assert callable(make)
    with pytest.raises(InvalidRequestError) as raised:
        make()
    assert words in str(raised.value)
    assert isinstance(raised.value, SwitchboardError) and raised.value.code == "invalid_request"


async def test_member_mistakes_fail_before_any_network(make_client: ClientFactory) -> None:
    offline = await make_client("alice", connect=False)
    call = offline.make_call("default", "offline")
    cases = [
        (call.get_or_create(members=[123]), "members[0] must be a user id string or a MemberRequest"),  # type: ignore[list-item]
        (call.get_or_create(members="bob"), "members must be a list"),
        (call.ring(members="bob"), "members must be a list"),  # type: ignore[arg-type]
        (call.ring(members=["ok", "not ok"]), "members[1] 'not ok' is not valid"),
        (call.update_members(remove=[7]), "remove[0] must be a string"),  # type: ignore[list-item]
        (call.reject("nope"), "reject reason 'nope' is not valid"),  # type: ignore[arg-type]
        (call.join(connect_options="mic"), "connect_options must be a CallConnectOptions"),  # type: ignore[arg-type]
    ]
    for attempt, words in cases:
        with pytest.raises(InvalidRequestError) as raised:
            await attempt
        assert words in str(raised.value)
    # the same call, well formed, gets as far as the network: the client is not connected
    with pytest.raises(CallStateError, match="not connected"):
        await call.get_or_create(members=["bob"])


# ---------------------------------------------------------------- call ids, options, client


@pytest.mark.parametrize(
    ("call_type", "call_id", "words"),
    [
        (
            "default",
            "room/1",
            "call id 'room/1' is not valid: use 1 to 64 characters from A-Z a-z 0-9 _ - . @",
        ),
        ("default", "room 1", "call id 'room 1' is not valid"),
        ("default", "x" * 65, "is not valid: use 1 to 64 characters"),
        ("default", "", "call id '' is not valid"),
        ("de/fault", "room", "call type 'de/fault' is not valid"),
        ("default", 5, "call id must be a string"),
    ],
)
async def test_make_call_refuses_ids_the_server_would_refuse(
    make_client: ClientFactory, call_type: str, call_id: str, words: str
) -> None:
    client = await make_client("alice", connect=False)
    with pytest.raises(InvalidRequestError) as raised:
        client.make_call(call_type, call_id)
    assert words in str(raised.value)


async def test_make_call_accepts_every_character_the_server_accepts(make_client: ClientFactory) -> None:
    client = await make_client("alice")
    call = client.make_call("default", "Room_1-2.three@host")
    await call.get_or_create()
    assert call.state.value.created_by == "alice"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"base_url": "not a url"}, "ClientOptions.base_url 'not a url' is not a coordinator URL"),
        ({"base_url": "ftp://127.0.0.1:3030"}, "use http:// or https://"),
        ({"base_url": "http://"}, "is not a coordinator URL"),
        ({"base_url": "http://127.0.0.1:99999"}, "is not a coordinator URL"),
        ({"base_url": None}, "ClientOptions.base_url must be a string URL"),
        ({"allow_multiple_active_calls": "yes"}, "ClientOptions.allow_multiple_active_calls must be a bool"),
        ({"multi_call_audio_policy": "manual"}, "must be a MultiCallAudioPolicy, not str 'manual'"),
        ({"health_check_interval": 0}, "health_check_interval must be a positive number of seconds"),
    ],
)
def test_client_options_are_checked_at_construction(options: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        ClientOptions(**options)  # type: ignore[arg-type]
    assert words in str(raised.value)


def test_client_options_accept_real_urls() -> None:
    for url in ("http://127.0.0.1:3030", "https://calls.example.com", "http://[::1]:8080/api", "http://host"):
        assert ClientOptions(base_url=url).base_url == url


def test_video_client_refuses_an_empty_key_or_a_user_id_string() -> None:
    with pytest.raises(InvalidRequestError, match="api_key must be a non-empty string"):
        VideoClient("", user=User.regular("alice"), user_token="t")
    with pytest.raises(InvalidRequestError, match="user must be a User, not str 'alice'"):
        VideoClient("key", user="alice", user_token="t")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match=r"user_token must be a string \(JWT\) or None, not int 5"):
        VideoClient("key", user=User.regular("alice"), user_token=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="token_provider must be an async function"):
        VideoClient("key", user=User.regular("alice"), token_provider="jwt")  # type: ignore[arg-type]


async def test_focus_and_track_switches_refuse_a_non_call_or_non_bool(make_client: ClientFactory) -> None:
    client = await make_client("alice", connect=False)
    call = client.make_call("default", "room")
    cases = [
        (client.switch_focus(None, call), "switch_focus from_call must be a Call, not None"),  # type: ignore[arg-type]
        (client.switch_focus(call, "room"), "switch_focus to_call must be a Call, not str 'room'"),  # type: ignore[arg-type]
        (call.set_microphone_enabled("yes"), "set_microphone_enabled needs True or False, not str 'yes'"),  # type: ignore[arg-type]
        (call.set_camera_enabled(None), "set_camera_enabled needs True or False, not None"),  # type: ignore[arg-type]
    ]
    for attempt, words in cases:
        with pytest.raises(InvalidRequestError) as raised:
            await attempt
        assert words in str(raised.value)


# ---------------------------------------------------------------- policy without multi-call mode


@pytest.mark.parametrize("policy", [MultiCallAudioPolicy.SUSPEND_INCOMING, MultiCallAudioPolicy.MANUAL])
def test_a_policy_without_multi_call_mode_warns_that_it_has_no_effect(policy: MultiCallAudioPolicy) -> None:
    with pytest.warns(PolicyIgnoredWarning) as caught:
        ClientOptions(multi_call_audio_policy=policy)
    message = str(caught[0].message)
    assert "has no effect without allow_multiple_active_calls=True" in message
    assert caught[0].filename == __file__  # points at the line that built the options


def test_no_warning_when_the_policy_can_act() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClientOptions()
        ClientOptions(multi_call_audio_policy=MultiCallAudioPolicy.SUSPEND_EXISTING)
        ClientOptions(allow_multiple_active_calls=True, multi_call_audio_policy=MultiCallAudioPolicy.MANUAL)


# ---------------------------------------------------------------- suspend before join


async def test_suspend_before_join_is_refused_and_the_joined_call_is_heard(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice", speaker=CaptureSpeaker())
    bob = await make_client("bob", microphone=ToneMicrophone(BOB["bob"]))
    call = alice.make_call("default", "suspend-early")
    await call.get_or_create(members=["bob"])
    with pytest.raises(CallStateError, match="it is idle, not joined; call suspend_audio\\(\\) once join"):
        await call.suspend_audio()
    assert call.state.value.is_audio_suspended is False
    await bob.make_call("default", "suspend-early").join(AUDIO_ONLY)
    await call.join(AUDIO_ONLY)
    await wait_heard(alice, BOB, audible={"bob"})
    # suspended while joined, then left: the next join is heard again
    await call.suspend_audio()
    await wait_heard(alice, BOB, audible=set())
    await call.leave()
    assert call.state.value.is_audio_suspended is False
    with pytest.raises(CallStateError):
        await call.suspend_audio()
    await call.join(AUDIO_ONLY)
    assert call.state.value.status is CallStatus.JOINED and not call.state.value.is_audio_suspended
    await wait_heard(alice, BOB, audible={"bob"})


async def test_a_base_url_that_is_not_a_coordinator_says_so(server: EmbeddedServer) -> None:
    client = VideoClient(
        server.api_key,
        user=User.regular("alice"),
        user_token=server.create_token("alice"),
        options=ClientOptions(base_url=server.url + "/api/v1"),  # the API prefix given twice
    )
    with pytest.raises(NetworkError) as raised:
        await client.connect()
    assert "HTTP 404; is ClientOptions.base_url a switchboard coordinator" in str(raised.value)


FORGETS_TO_DISCONNECT = """
import asyncio
from switchboard import ClientOptions, User, VideoClient
from switchboard.server import EmbeddedServer

async def main() -> None:
    async with EmbeddedServer() as server:
        client = VideoClient(server.api_key, user=User.regular("alice"),
                             user_token=server.create_token("alice"),
                             options=ClientOptions(base_url=server.url))
        await client.connect()
        await client.make_call("default", "standup").get_or_create()
    print("done")

asyncio.run(main())
"""


def test_a_program_that_never_disconnects_exits_without_unclosed_session_reports() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORGETS_TO_DISCONNECT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    assert "Unclosed" not in result.stderr, result.stderr


async def test_call_arguments_of_the_wrong_type_fail_before_any_network(make_client: ClientFactory) -> None:
    offline = await make_client("alice", connect=False)
    call = offline.make_call("default", "typed")
    cases = [
        # a bare string was split into letters: mute_users("bob") muted users "b" and "o"
        (call.mute_users("bob"), "user_ids must be a list"),
        (call.mute_users(["bob"], audio="yes"), "mute_users audio needs True or False"),  # type: ignore[arg-type]
        (call.get_or_create(custom="x"), "get_or_create custom must be a dict"),  # type: ignore[arg-type]
        (call.get_or_create(ringing="yes"), "get_or_create ringing needs True or False"),  # type: ignore[arg-type]
        (call.update(custom=["x"]), "update custom must be a dict"),  # type: ignore[arg-type]
        (call.events(5).__anext__(), "event types must be strings"),  # type: ignore[arg-type]
    ]
    for attempt, words in cases:
        with pytest.raises(InvalidRequestError) as raised:
            await attempt
        assert words in str(raised.value)
    with pytest.raises(InvalidRequestError, match="event type must be a string"):
        call.on(5, print)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="must be callable"):
        call.on("call.ended", None)  # type: ignore[arg-type]
