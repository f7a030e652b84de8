"""Custom events (coordinator, event log) and participant messages (SFU), between real clients."""

from __future__ import annotations

import asyncio
import functools
import json

import aiohttp
import pytest

from switchboard import CallConnectOptions, CallStatus, TrackOption, VideoClient
from switchboard.errors import (
    CallStateError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
)
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.sdk.call import Call
from switchboard.sdk.messages import ParticipantMessageEvent
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, collect
from tests.conftest import until as wait_until

#: these waits fail after 5 s
until = functools.partial(wait_until, timeout=5.0)

NO_MEDIA = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())


async def joined(client: VideoClient, call_id: str) -> Call:
    call = client.make_call("default", call_id)
    await call.get_or_create()
    await call.join(NO_MEDIA)
    assert call.state.value.status is CallStatus.JOINED
    return call


async def wait_all_joined(calls: list[Call], count: int) -> None:
    await until(lambda: all(len(c.state.value.participants) == count for c in calls), "participants")


async def test_custom_event_reaches_everyone_in_the_call_and_nobody_outside(
    make_client: ClientFactory,
) -> None:
    alice, bob, carol, dave, eve = [await make_client(u) for u in ("alice", "bob", "carol", "dave", "eve")]
    room = [await joined(c, "standup") for c in (alice, bob, carol)]
    other = [await joined(c, "elsewhere") for c in (dave, eve)]
    got = {c.user.id: collect(call, "custom") for c, call in zip((alice, bob, carol), room, strict=True)}
    got_outside = {c.user.id: collect(call, "custom") for c, call in zip((dave, eve), other, strict=True)}
    # dave also listens client-wide: a custom event of a call he is not in must not reach him at all
    dave_everything: list[m.Event] = []
    dave.on("custom", dave_everything.append)

    event_id = await room[0].send_custom_event({"kind": "raise_hand", "n": 1, "nested": {"ok": True}})
    await until(lambda: all(got[u] for u in ("bob", "carol")), "the custom event at bob and carol")
    for user in ("alice", "bob", "carol"):
        await until(lambda u=user: bool(got[u]), f"the custom event at {user}")
        (event,) = got[user]
        assert isinstance(event, m.CustomEvent)
        assert event.id == event_id and event.cid == "default:standup"
        assert event.user.id == "alice"
        assert event.custom == {"kind": "raise_hand", "n": 1, "nested": {"ok": True}}

    # a marker in the other call, sent after: once dave has it, alice's event would have come first
    await other[1].send_custom_event({"marker": True})
    await until(lambda: bool(got_outside["dave"]), "the marker at dave")
    assert [e.custom for e in got_outside["dave"] if isinstance(e, m.CustomEvent)] == [{"marker": True}]
    assert [e.cid for e in dave_everything] == ["default:elsewhere"]


async def test_custom_events_are_in_the_event_log_for_a_member_who_was_offline(
    make_client: ClientFactory,
) -> None:
    alice = await make_client("alice")
    call = alice.make_call("default", "log")
    await call.get_or_create(members=["bob"])
    await call.send_custom_event({"agenda": "first"})
    bob = await make_client("bob")  # connects after the event: members are sent it, so it is replayable
    bob_call = bob.make_call("default", "log")
    got = collect(bob_call, "custom")
    await call.send_custom_event({"agenda": "second"})
    await until(lambda: bool(got), "the second event at bob")
    assert [e.custom for e in got if isinstance(e, m.CustomEvent)] == [{"agenda": "second"}]


async def test_custom_event_limits(make_client: ClientFactory, server: EmbeddedServer) -> None:
    alice = await make_client("alice")
    call = await joined(alice, "limits")
    with pytest.raises(PayloadTooLargeError, match="limit is 5120"):
        await call.send_custom_event({"blob": "x" * 6000})
    with pytest.raises(InvalidRequestError, match="dict"):
        await call.send_custom_event(["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="JSON"):
        await call.send_custom_event({"when": object()})

    # a user neither member nor joined may not send to the call
    mallory = await make_client("mallory")
    with pytest.raises(PermissionDeniedError, match="neither a member"):
        await mallory.make_call("default", "limits").send_custom_event({"spam": 1})

    async with aiohttp.ClientSession() as http:
        headers = {
            "X-Api-Key": server.api_key,
            "Authorization": f"Bearer {server.create_token('alice')}",
            "Content-Type": "application/json",
        }
        url = server.url + "/api/v1/calls/default/limits/event"
        # the server enforces the size without the SDK's help
        body = json.dumps({"custom": {"blob": "x" * 6000}})
        async with http.post(url, data=body, headers=headers) as resp:
            assert resp.status == 413
            assert (await resp.json())["code"] == "payload_too_large"
        # and the rate, per user and call: the burst passes, then 429 with Retry-After
        statuses = []
        for i in range(40):
            async with http.post(url, data=json.dumps({"custom": {"i": i}}), headers=headers) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert (await resp.json())["code"] == "rate_limited"
                    assert int(resp.headers["Retry-After"]) >= 1
                    break
        assert statuses[:20] == [200] * 20 and statuses[-1] == 429
    with pytest.raises(RateLimitedError):
        await call.send_custom_event({"too": "soon"})

    await call.end()
    with pytest.raises(CallStateError):
        await call.send_custom_event({"after": "end"})


async def test_participant_message_reaches_the_other_sessions_and_nobody_outside(
    make_client: ClientFactory,
) -> None:
    alice, bob, carol, dave, eve = [await make_client(u) for u in ("alice", "bob", "carol", "dave", "eve")]
    room = [await joined(c, "huddle") for c in (alice, bob, carol)]
    other = [await joined(c, "elsewhere") for c in (dave, eve)]
    await wait_all_joined(room, 3)
    await wait_all_joined(other, 2)
    got = [collect(call, "participant_message") for call in room]
    got_outside = [collect(call, "participant_message") for call in other]

    await room[0].send_message({"cursor": [10, 20], "text": "hé"})
    await until(lambda: bool(got[1]) and bool(got[2]), "the message at bob and carol")
    alice_session = room[0].state.value.session_id
    for received in got[1:]:
        (event,) = received
        assert isinstance(event, ParticipantMessageEvent)
        assert event.user_id == "alice" and event.session_id == alice_session
        assert event.cid == "default:huddle"
        assert event.data == {"cursor": [10, 20], "text": "hé"}

    # to one session only
    bob_session = room[1].state.value.session_id
    assert bob_session is not None
    await room[2].send_message({"private": 1}, session_ids=[bob_session])
    await until(lambda: len(got[1]) == 2, "carol's message at bob")
    assert isinstance(got[1][1], ParticipantMessageEvent) and got[1][1].user_id == "carol"

    # markers in the other call: once both have eve's and dave's, nothing from the huddle came first
    await other[1].send_message({"marker": "eve"})
    await other[0].send_message({"marker": "dave"})
    await until(lambda: bool(got_outside[0]) and bool(got_outside[1]), "the markers")
    assert [e.data for e in got_outside[0] if isinstance(e, ParticipantMessageEvent)] == [{"marker": "eve"}]
    assert [e.data for e in got_outside[1] if isinstance(e, ParticipantMessageEvent)] == [{"marker": "dave"}]
    # alice never receives her own message, carol never got the private one
    await room[1].send_message({"marker": "bob"})
    await until(lambda: bool(got[0]) and len(got[2]) == 2, "bob's marker")
    assert [e.data for e in got[0] if isinstance(e, ParticipantMessageEvent)] == [{"marker": "bob"}]
    assert [e.data for e in got[2] if isinstance(e, ParticipantMessageEvent)] == [
        {"cursor": [10, 20], "text": "hé"},
        {"marker": "bob"},
    ]


async def test_participant_message_limits(make_client: ClientFactory) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    not_joined = alice.make_call("default", "nowhere")
    with pytest.raises(CallStateError, match="not joined"):
        await not_joined.send_message({"x": 1})
    a_call, b_call = await joined(alice, "limits"), await joined(bob, "limits")
    await wait_all_joined([a_call, b_call], 2)
    got = collect(b_call, "participant_message")
    with pytest.raises(PayloadTooLargeError, match="limit is 4096"):
        await a_call.send_message({"blob": "x" * 5000})
    with pytest.raises(InvalidRequestError, match="session_ids"):
        await a_call.send_message({"x": 1}, session_ids="bob")

    # the rate: a burst of 40 passes, then the SDK refuses before sending
    sent = 0
    with pytest.raises(RateLimitedError, match="per second"):
        for i in range(100):
            await a_call.send_message({"i": i})
            sent += 1
    assert 40 <= sent < 60
    await until(lambda: len(got) == sent, f"{sent} messages at bob")
    assert [e.data["i"] for e in got if isinstance(e, ParticipantMessageEvent)] == list(range(sent))
    await asyncio.sleep(p.MESSAGE_BURST / p.MESSAGE_RATE + 0.1)  # the budgets fill up again

    # the SFU enforces the size itself: a client that skips the check gets an error and nobody the data
    media = a_call.media
    assert media is not None
    await media._send(p.SendMessage(data={"blob": "x" * 5000}))
    await until(lambda: any(e.code == "message_too_large" for e in media.errors), "the SFU's refusal")
    await media._send(p.SendMessage(data={"x": 1}, session_ids=["no-such-session"]))
    await until(lambda: any(e.code == "unknown_session" for e in media.errors), "unknown session")
    assert len(got) == sent

    # ... and the rate, for a client that ignores it: the rest is dropped with an error
    for i in range(60):
        await media._send(p.SendMessage(data={"raw": i}))
    await until(lambda: any(e.code == "message_rate_limited" for e in media.errors), "the SFU's rate refusal")
    await asyncio.sleep(0.3)
    assert len(got) - sent < 60
    assert a_call.state.value.status is CallStatus.JOINED  # the socket carried on
