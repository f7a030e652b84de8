"""Multicall (SPEC §2): the active-call list, the three policies, suspend/resume, focus, ringing.

Every test listens: rooms A and B each have a bot playing its own tone; "me" plays a third tone. My
speaker must carry exactly the tones of my unsuspended calls, and a room's bot must hear my tone only
while that call is unsuspended and my microphone is on in it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from switchboard import (
    Call,
    CallConnectOptions,
    CallStatus,
    CallType,
    MemberRequest,
    MultiCallAudioPolicy,
    RejectReason,
    TrackOption,
    VideoClient,
)
from switchboard.errors import CallStateError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.sdk.multicall import PolicyIgnoredWarning
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, stays_heard, wait_heard

ROOM_TONES = {"A": 440.0, "B": 660.0, "C": 550.0}
ME_TONE = {"me": 1000.0}
AUDIO_ONLY = CallConnectOptions(camera=TrackOption.disabled())
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())


@dataclass
class Rooms:
    me: VideoClient
    bots: dict[str, VideoClient]
    calls: dict[str, Call]

    async def hears(self, *rooms: str) -> None:
        await wait_heard(self.me, ROOM_TONES, audible=set(rooms))

    async def room_hears_me(self, room: str, audible: bool) -> None:
        await wait_heard(self.bots[room], ME_TONE, audible={"me"} if audible else set())


async def setup_rooms(make_client: ClientFactory, rooms: str = "AB", **options: Any) -> Rooms:
    bots: dict[str, VideoClient] = {}
    for name in rooms:
        bot = await make_client(
            f"bot{name}", microphone=ToneMicrophone(ROOM_TONES[name]), speaker=CaptureSpeaker()
        )
        call = bot.make_call("default", f"room{name}")
        await call.get_or_create(members=[MemberRequest("me")])
        await call.join(MIC_ON)
        bots[name] = bot
    me = await make_client(
        "me", microphone=ToneMicrophone(ME_TONE["me"]), speaker=CaptureSpeaker(), **options
    )
    calls = {name: me.make_call("default", f"room{name}") for name in rooms}
    return Rooms(me, bots, calls)


def multi(policy: MultiCallAudioPolicy) -> dict[str, Any]:
    return {"allow_multiple_active_calls": True, "multi_call_audio_policy": policy}


def events_of(call: Call) -> list[str]:
    seen: list[str] = []
    call.on("*", lambda e: seen.append(e.type) if e.type.startswith("call.audio_") else None)
    return seen


# ---------------------------------------------------------------- the policy table


async def test_suspend_existing_newest_wins_and_previous_resumes(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, "ABC", **multi(MultiCallAudioPolicy.SUSPEND_EXISTING))
    a, b, c = r.calls["A"], r.calls["B"], r.calls["C"]
    await a.join(MIC_ON)
    await r.hears("A")
    await r.room_hears_me("A", True)

    await b.join(MIC_ON)  # A suspended by the time join() returns
    assert a.state.value.is_audio_suspended and not b.state.value.is_audio_suspended
    assert r.me.state.active_calls.value == [a, b]
    await r.hears("B")
    await r.room_hears_me("A", False)
    await r.room_hears_me("B", True)

    await c.join(MIC_ON)
    assert [x.state.value.is_audio_suspended for x in (a, b, c)] == [True, True, False]
    await r.hears("C")

    await c.leave()  # the most recently added remaining call (B) resumes, A stays suspended
    assert r.me.state.active_calls.value == [a, b]
    assert [x.state.value.is_audio_suspended for x in (a, b)] == [True, False]
    await r.hears("B")
    await b.leave()
    assert not a.state.value.is_audio_suspended
    await r.hears("A")
    await r.room_hears_me("A", True)


async def test_suspend_incoming_first_joined_keeps_focus(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, **multi(MultiCallAudioPolicy.SUSPEND_INCOMING))
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    await b.join(MIC_ON)
    assert not a.state.value.is_audio_suspended and b.state.value.is_audio_suspended
    await r.hears("A")
    await stays_heard(r.me, ROOM_TONES, audible={"A"})
    await r.room_hears_me("A", True)
    await r.room_hears_me("B", False)  # suspended: my mic does not reach B though it is "on" there
    await a.leave()  # nothing automatic: B stays suspended
    assert b.state.value.is_audio_suspended
    await r.hears()
    await b.resume_audio()
    await r.hears("B")
    await r.room_hears_me("B", True)


async def test_manual_does_nothing_and_warns_once_about_contention(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    r = await setup_rooms(make_client, **multi(MultiCallAudioPolicy.MANUAL))
    a, b = r.calls["A"], r.calls["B"]
    caplog.set_level(logging.WARNING, logger="switchboard.multicall")
    await a.join(MIC_ON)
    assert not [rec for rec in caplog.records if rec.name == "switchboard.multicall"]
    await b.join(MIC_ON)
    assert not a.state.value.is_audio_suspended and not b.state.value.is_audio_suspended
    await r.hears("A", "B")
    await r.room_hears_me("A", True)
    await r.room_hears_me("B", True)
    warnings = [rec for rec in caplog.records if rec.name == "switchboard.multicall"]
    assert len(warnings) == 1 and "contend" in warnings[0].getMessage()
    await b.set_microphone_enabled(False)  # no new sharing: no new warning
    await b.suspend_audio()
    await r.hears("A")
    await b.resume_audio()  # a second unsuspended call starts sharing again: warned again, once
    warnings = [rec for rec in caplog.records if rec.name == "switchboard.multicall"]
    assert len(warnings) == 2
    await a.leave()
    assert not b.state.value.is_audio_suspended
    await r.hears("B")


# ---------------------------------------------------------------- single-call mode


async def test_single_call_mode_replaces_and_ignores_policy(make_client: ClientFactory) -> None:
    with pytest.warns(PolicyIgnoredWarning, match="has no effect without allow_multiple_active_calls"):
        r = await setup_rooms(make_client, multi_call_audio_policy=MultiCallAudioPolicy.SUSPEND_INCOMING)
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    history: list[list[str]] = []
    r.me.state.active_calls.listen(lambda calls: history.append([c.cid for c in calls]))
    await b.join(MIC_ON)
    assert r.me.state.active_calls.value == [b]
    assert all(len(h) <= 1 for h in history)
    assert a.state.value.status is CallStatus.IDLE and not a.state.value.is_audio_suspended
    assert not b.state.value.is_audio_suspended
    await r.hears("B")
    await r.room_hears_me("A", False)
    await (
        r.bots["A"]
        .make_call("default", "roomA")
        .state.wait_for(lambda s: all(p.user_id != "me" for p in s.participants), timeout=5)
    )


async def test_single_call_mode_failed_join_keeps_the_previous_call(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, "A")
    a = r.calls["A"]
    await a.join(MIC_ON)
    await r.hears("A")
    host = r.bots["A"]
    show = host.make_call(CallType.livestream(), "backstage-show")
    await show.get_or_create()  # backstage: "me" may not join
    mine = r.me.make_call(CallType.livestream(), "backstage-show")
    with pytest.raises(Exception, match="backstage"):
        await mine.join()
    assert r.me.state.active_calls.value == [a]
    assert a.state.value.status is CallStatus.JOINED and not a.state.value.is_audio_suspended
    assert mine.state.value.status is CallStatus.IDLE
    await r.hears("A")
    await r.room_hears_me("A", True)


# ---------------------------------------------------------------- suspend / resume details (SPEC §2.3, §2.4)


async def test_suspend_resume_idempotent_with_events_and_reset_on_leave(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, "A", **multi(MultiCallAudioPolicy.MANUAL))
    a = r.calls["A"]
    seen = events_of(a)
    await a.join(MIC_ON)
    await a.suspend_audio()
    await a.suspend_audio()
    assert a.state.value.is_audio_suspended
    await r.hears()
    await r.room_hears_me("A", False)
    await a.resume_audio()
    await a.resume_audio()
    await r.hears("A")
    await r.room_hears_me("A", True)
    assert seen == ["call.audio_suspended", "call.audio_resumed"]
    await a.suspend_audio()
    await a.leave()
    assert a.state.value.is_audio_suspended is False


async def test_suspension_before_media_exists_holds(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, "A", **multi(MultiCallAudioPolicy.MANUAL))
    a = r.calls["A"]
    joining = asyncio.ensure_future(a.join(MIC_ON))
    await a.state.wait_for(lambda s: s.status is CallStatus.JOINING, timeout=5)
    await a.suspend_audio()  # before the media exists
    await joining
    assert a.state.value.is_audio_suspended
    await stays_heard(r.me, ROOM_TONES, audible=set(), duration=1.0)
    await wait_heard(r.bots["A"], ME_TONE, audible=set())
    await a.resume_audio()
    await r.hears("A")
    await r.room_hears_me("A", True)


async def test_microphone_intent_and_suspension_are_separate(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, "A", **multi(MultiCallAudioPolicy.MANUAL))
    a = r.calls["A"]
    await a.join(MIC_ON)
    await r.room_hears_me("A", True)
    # muting during suspension stays muted after resume
    await a.suspend_audio()
    await a.set_microphone_enabled(False)
    await r.room_hears_me("A", False)
    await a.resume_audio()
    await r.hears("A")
    await stays_heard(r.bots["A"], ME_TONE, audible=set())
    # unmuting during suspension takes effect at resume, not before
    await a.suspend_audio()
    await a.set_microphone_enabled(True)
    await stays_heard(r.bots["A"], ME_TONE, audible=set())
    await a.resume_audio()
    await r.room_hears_me("A", True)


async def test_suspended_calls_do_no_audio_work(server: EmbeddedServer, make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, **multi(MultiCallAudioPolicy.SUSPEND_INCOMING))
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    await b.join(MIC_ON)
    await r.hears("A")
    adm_b = b.audio_device_module
    assert adm_b is not None and b.media is not None
    encoded, received = adm_b.frames_encoded, sum(x.frames for x in adm_b.remotes.values())
    room_b = server.sfu.rooms["default:roomB"]
    mine = room_b.participants[b.state.value.session_id or ""]
    downs = [d for d in mine.downtracks if d.kind == "audio"]
    sent_before = sum(d.track.stats.sent for d in downs)
    await asyncio.sleep(1.0)
    assert adm_b.frames_encoded == encoded == 0  # my microphone is neither encoded nor sent to B
    assert sum(x.frames for x in adm_b.remotes.values()) == received  # nothing decoded
    assert downs and all(d.paused for d in downs)  # the SFU stopped forwarding B's audio to me
    assert sum(d.track.stats.sent for d in downs) == sent_before
    adm_a = a.audio_device_module
    assert adm_a is not None and adm_a.frames_encoded > 0


# ---------------------------------------------------------------- switch_focus


async def test_switch_focus_carries_microphone_and_camera(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, **multi(MultiCallAudioPolicy.SUSPEND_INCOMING))
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    await b.join(CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled()))
    await r.hears("A")
    await r.me.switch_focus(a, b)
    assert a.state.value.is_audio_suspended and not b.state.value.is_audio_suspended
    assert not a.microphone_enabled and b.microphone_enabled
    assert not a.camera_enabled and not b.camera_enabled  # camera was off in A: stays off in B
    await r.hears("B")
    await r.room_hears_me("B", True)
    await r.room_hears_me("A", False)
    await a.set_microphone_enabled(False)
    await b.set_microphone_enabled(False)  # mic off in B now: switching back keeps it off
    await r.me.switch_focus(b, a)
    await r.hears("A")
    assert not a.microphone_enabled
    await stays_heard(r.bots["A"], ME_TONE, audible=set())


async def test_switch_focus_needs_two_joined_calls(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, **multi(MultiCallAudioPolicy.SUSPEND_INCOMING))
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    with pytest.raises(CallStateError):
        await r.me.switch_focus(a, b)
    with pytest.raises(CallStateError):
        await r.me.switch_focus(a, a)
    assert not a.state.value.is_audio_suspended


# ---------------------------------------------------------------- ringing in multicall (seed use case 2)


async def test_pause_on_incoming_call_with_default_policy(make_client: ClientFactory) -> None:
    host = await make_client(
        "host", microphone=ToneMicrophone(1000), speaker=CaptureSpeaker(), allow_multiple_active_calls=True
    )
    audience = await make_client("audience", speaker=CaptureSpeaker())
    caller = await make_client("caller", microphone=ToneMicrophone(660), speaker=CaptureSpeaker())
    cohost = await make_client("cohost", microphone=ToneMicrophone(440), speaker=CaptureSpeaker())
    live = host.make_call(CallType.livestream(), "show")
    await live.get_or_create(members=[MemberRequest("cohost", role="host")])
    await live.join(MIC_ON)
    await live.go_live()
    await cohost.make_call(CallType.livestream(), "show").join(MIC_ON)
    await audience.make_call(CallType.livestream(), "show").join()
    tones = {"cohost": 440.0, "caller": 660.0}
    await wait_heard(host, tones, audible={"cohost"})
    await wait_heard(audience, {"host": 1000.0}, audible={"host"})

    one = caller.make_call("default", "one-on-one")
    await one.get_or_create(members=[MemberRequest("host")], ringing=True)
    incoming = await host.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    assert incoming is not None and incoming.cid == one.cid
    await one.join(MIC_ON)
    await live.set_microphone_enabled(False)  # the seed's UX step: viewers don't hear the side call
    await incoming.accept()
    assert host.state.incoming_call.value is None
    assert not live.state.value.is_audio_suspended  # accepting moves no focus
    await incoming.join(MIC_ON)
    assert live.state.value.is_audio_suspended
    await wait_heard(host, tones, audible={"caller"})
    await wait_heard(caller, {"host": 1000.0}, audible={"host"})
    await wait_heard(audience, {"host": 1000.0}, audible=set())

    await incoming.leave()  # hang up: the livestream resumes by itself
    assert not live.state.value.is_audio_suspended
    assert host.state.active_calls.value == [live]
    await live.set_microphone_enabled(True)
    await wait_heard(host, tones, audible={"cohost"})
    await wait_heard(audience, {"host": 1000.0}, audible={"host"})


async def test_remote_end_of_the_side_call_resumes_the_livestream(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, **multi(MultiCallAudioPolicy.SUSPEND_EXISTING))
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    await b.join(MIC_ON)
    await r.hears("B")
    await r.bots["B"].make_call("default", "roomB").end()
    await r.me.state.active_calls.wait_for(lambda calls: calls == [a], timeout=5)
    assert not a.state.value.is_audio_suspended
    await r.hears("A")


async def test_busy_rejects_rings_while_any_call_is_active(make_client: ClientFactory) -> None:
    r = await setup_rooms(
        make_client,
        "A",
        reject_call_when_busy=True,
        allow_multiple_active_calls=True,
    )
    a = r.calls["A"]
    await a.join(MIC_ON)
    await a.suspend_audio()  # suspended calls count
    shown: list[object] = []
    r.me.state.incoming_call.listen(shown.append)
    caller = await make_client("caller2")
    ring = caller.make_call("default", "busy-ring")
    await ring.get_or_create(members=[MemberRequest("me")], ringing=True)
    await caller.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert ring.state.value.reject_reason is RejectReason.BUSY
    assert shown == []
