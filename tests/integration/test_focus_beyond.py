"""Focus beyond on/off (SPEC §2.8): ducked suspension, per-call gain and pan, measured by listening.

Rooms A and B each have a bot playing its own tone; "me" plays a third tone. Levels are read with an
FFT from what my (stereo, where pan matters) speaker played, and from what the bots' speakers played.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from switchboard import (
    Call,
    CallPreferences,
    CallStatus,
    MemberRequest,
    MultiCallAudioPolicy,
    SuspendMode,
    VideoClient,
)
from switchboard.errors import InvalidRequestError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_levels_dbfs
from switchboard.sdk.emitter import LocalEvent
from tests.conftest import ClientFactory, stays_heard, wait_heard
from tests.integration.test_multicall import (
    ME_TONE,
    MIC_ON,
    ROOM_TONES,
    Rooms,
    events_of,
    multi,
    setup_rooms,
)

DUCK_DB = -18.0


def mode_of(call: Call) -> SuspendMode | None:
    return call.state.value.suspend_mode


async def stereo_rooms(make_client: ClientFactory, rooms: str, **options: Any) -> Rooms:
    """Like :func:`setup_rooms`, but "me" plays through a stereo speaker."""
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
        "me", microphone=ToneMicrophone(ME_TONE["me"]), speaker=CaptureSpeaker(channels=2), **options
    )
    return Rooms(me, bots, {name: me.make_call("default", f"room{name}") for name in rooms})


async def level_dbfs(client: VideoClient, tone: float, *, seconds: float = 1.0) -> list[float]:
    """Per-channel level (dBFS) of ``tone`` in the next ``seconds`` of ``client``'s playout."""
    speaker = client.capture_speaker
    start = speaker.total_samples
    await asyncio.sleep(seconds)
    pcm = speaker.samples_range_channels(start, speaker.total_samples)
    return [tone_levels_dbfs(row, [tone])[0] for row in pcm]


async def test_ducked_call_plays_at_the_duck_gain_and_its_microphone_is_silent(
    make_client: ClientFactory,
) -> None:
    r = await setup_rooms(make_client, "AB", **multi(MultiCallAudioPolicy.MANUAL), duck_gain_db=DUCK_DB)
    a = r.calls["A"]
    await a.join(MIC_ON)
    await r.hears("A")
    await r.room_hears_me("A", True)
    full = (await level_dbfs(r.me, ROOM_TONES["A"]))[0]

    seen = events_of(a)
    modes: list[object] = []
    a.on(
        "call.audio_suspended",
        lambda e: modes.append(e.data.get("mode") if isinstance(e, LocalEvent) else None),
    )
    await a.suspend_audio(mode=SuspendMode.DUCKED)
    assert a.state.value.is_audio_suspended
    assert a.state.value.suspend_mode is SuspendMode.DUCKED
    await r.room_hears_me("A", False)  # the microphone no longer reaches the call
    await asyncio.sleep(0.3)
    ducked = (await level_dbfs(r.me, ROOM_TONES["A"]))[0]
    assert abs((ducked - full) - DUCK_DB) < 2.0, f"full {full:.1f} dBFS, ducked {ducked:.1f} dBFS"

    await a.suspend_audio(mode=SuspendMode.SILENT)  # switches the mode
    assert mode_of(a) is SuspendMode.SILENT
    await r.hears()
    await a.resume_audio()
    assert a.state.value.suspend_mode is None and not a.state.value.is_audio_suspended
    await r.hears("A")
    await r.room_hears_me("A", True)
    assert seen == ["call.audio_suspended", "call.audio_suspended", "call.audio_resumed"]
    assert modes == ["ducked", "silent"]


async def test_policy_suspends_use_the_client_suspend_mode(make_client: ClientFactory) -> None:
    r = await setup_rooms(
        make_client,
        "AB",
        **multi(MultiCallAudioPolicy.SUSPEND_EXISTING),
        suspend_mode=SuspendMode.DUCKED,
        duck_gain_db=DUCK_DB,
    )
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    await b.join(MIC_ON)
    assert a.state.value.suspend_mode is SuspendMode.DUCKED
    assert b.state.value.suspend_mode is None
    others = {k: v for k, v in ROOM_TONES.items() if k != "A"}
    await wait_heard(r.me, others, audible={"B"})  # B at full level, A (ducked) measured below
    await r.room_hears_me("A", False)
    await r.room_hears_me("B", True)
    speaker = r.me.capture_speaker
    start = speaker.total_samples
    await asyncio.sleep(1.0)
    pcm = speaker.samples_range(start, speaker.total_samples)
    level_a, level_b = tone_levels_dbfs(pcm, [ROOM_TONES["A"], ROOM_TONES["B"]])
    # both bots play the same level, so the ducked room sits the duck gain below the focused one
    assert abs((level_a - level_b) - DUCK_DB) < 2.0, (level_a, level_b)


async def test_playout_gain_and_pan_per_channel(make_client: ClientFactory) -> None:
    r = await stereo_rooms(make_client, "AB", **multi(MultiCallAudioPolicy.MANUAL))
    a, b = r.calls["A"], r.calls["B"]
    await a.join(MIC_ON)
    await b.join(MIC_ON)
    await r.hears("A", "B")
    base_a = await level_dbfs(r.me, ROOM_TONES["A"])
    assert abs(base_a[0] - base_a[1]) < 1.0, base_a

    await a.set_playout_gain(-12.0)
    await a.set_playout_pan(-1.0)  # A hard left
    await b.set_playout_pan(1.0)  # B hard right
    await asyncio.sleep(0.3)
    la, lb = await level_dbfs(r.me, ROOM_TONES["A"]), await level_dbfs(r.me, ROOM_TONES["B"])
    # constant-power pan, unity at the centre: hard left is +3 dB on the left, nothing on the right
    assert abs(la[0] - (base_a[0] - 12.0 + 3.0)) < 2.0, (base_a, la)
    assert la[1] < -60.0, la
    assert lb[0] < -60.0 and lb[1] > -30.0, lb

    await a.set_playout_pan(0.5)  # right of centre: right louder by 20*log10(tan(3*pi/8)) = 7.7 dB
    await asyncio.sleep(0.3)
    la = await level_dbfs(r.me, ROOM_TONES["A"])
    assert abs((la[1] - la[0]) - 7.66) < 1.5, la

    for bad in (1.5, float("nan")):
        with pytest.raises(InvalidRequestError):
            await a.set_playout_pan(bad)
    with pytest.raises(InvalidRequestError):
        await a.set_playout_gain(200.0)
    assert a.state.value.status is CallStatus.JOINED


def test_suspend_options_are_checked() -> None:
    from switchboard import ClientOptions

    with pytest.raises(InvalidRequestError):
        ClientOptions(duck_gain_db=6.0)
    with pytest.raises(InvalidRequestError):
        ClientOptions(suspend_mode="ducked")  # type: ignore[arg-type]


# ---------------------------------------------------------------- RESTORE_PREVIOUS and priority


def suspended(r: Rooms) -> dict[str, bool]:
    return {name: call.state.value.is_audio_suspended for name, call in r.calls.items()}


async def test_restore_previous_returns_focus_after_a_side_call_following_a_manual_switch(
    make_client: ClientFactory,
) -> None:
    r = await setup_rooms(make_client, "ABC", **multi(MultiCallAudioPolicy.RESTORE_PREVIOUS))
    a, b, c = r.calls["A"], r.calls["B"], r.calls["C"]
    await a.join(MIC_ON)
    await b.join(MIC_ON)  # newest wins
    assert suspended(r) == {"A": True, "B": False, "C": False}
    await r.me.switch_focus(b, a)  # back to A by hand
    await r.hears("A")
    await c.join(MIC_ON)  # the side call
    assert suspended(r) == {"A": True, "B": True, "C": False}
    await r.hears("C")
    await c.leave()  # focus goes back to A, where it was (SUSPEND_EXISTING would pick B, the newest)
    assert suspended(r) == {"A": False, "B": True, "C": False}
    await r.hears("A")
    await r.room_hears_me("A", True)
    await r.room_hears_me("B", False)
    await a.leave()  # A had taken focus from B through switch_focus: B gets it back
    assert not b.state.value.is_audio_suspended
    await r.hears("B")


@pytest.mark.parametrize(
    ("steps", "focused"),
    [
        # join A, B, C; the side call C leaves: B (which had focus before C) gets it back
        (["join A", "join B", "join C", "leave C"], "B"),
        # a call without focus leaves: focus stays where it is
        (["join A", "join B", "join C", "leave B"], "C"),
        (["join A", "join B", "join C", "leave B", "leave C"], "A"),
        # switch back and forth, then leave: the call switched away from gets focus back
        (["join A", "join B", "switch B A", "switch A B", "leave B"], "A"),
        (["join A", "join B", "switch B A", "join C", "switch C B", "leave B"], "C"),
        # the call C took focus from has left in between: the most recently focused remaining call
        (["join A", "join B", "join C", "leave B", "switch C A", "leave A"], "C"),
    ],
)
async def test_restore_previous_in_every_order(
    make_client: ClientFactory, steps: list[str], focused: str
) -> None:
    r = await setup_rooms(make_client, "ABC", **multi(MultiCallAudioPolicy.RESTORE_PREVIOUS))
    for step in steps:
        verb, *names = step.split()
        calls = [r.calls[n] for n in names]
        if verb == "join":
            await calls[0].join(MIC_ON)
        elif verb == "leave":
            await calls[0].leave()
        else:
            await r.me.switch_focus(calls[0], calls[1])
    active = {n for n, c in r.calls.items() if c in r.me.state.active_calls.value}
    assert {n for n in active if not r.calls[n].state.value.is_audio_suspended} == {focused}, steps
    await r.hears(focused)


@pytest.mark.parametrize(
    "policy", [MultiCallAudioPolicy.SUSPEND_EXISTING, MultiCallAudioPolicy.RESTORE_PREVIOUS]
)
async def test_a_lower_priority_join_does_not_take_focus(
    make_client: ClientFactory, policy: MultiCallAudioPolicy
) -> None:
    r = await setup_rooms(make_client, "AB", **multi(policy))
    a = r.me.make_call("default", "roomA", preferences=CallPreferences(priority=10))
    b = r.me.make_call("default", "roomB", preferences=CallPreferences(priority=0))
    await a.join(MIC_ON)
    await r.hears("A")
    await b.join(MIC_ON)  # lower priority: joins suspended
    assert b.state.value.is_audio_suspended and not a.state.value.is_audio_suspended
    await r.hears("A")
    await r.room_hears_me("A", True)
    await r.room_hears_me("B", False)
    await a.leave()  # the only call left gets focus
    assert not b.state.value.is_audio_suspended
    await r.hears("B")
    await r.room_hears_me("B", True)

    # an equal or higher priority join still takes focus
    await a.join(MIC_ON)
    assert b.state.value.is_audio_suspended and not a.state.value.is_audio_suspended
    await r.hears("A")


# ---------------------------------------------------------------- whisper (microphone audience)

WHISPER_TONES = {"sup": 1000.0, "agent": 440.0, "customer": 660.0, "observer": 550.0}


async def whisper_room(make_client: ClientFactory, names: list[str]) -> dict[str, tuple[VideoClient, Call]]:
    room: dict[str, tuple[VideoClient, Call]] = {}
    for name in names:
        client = await make_client(
            name, microphone=ToneMicrophone(WHISPER_TONES[name]), speaker=CaptureSpeaker()
        )
        call = client.make_call("default", "support")
        if not room:
            await call.get_or_create()
        await call.join(MIC_ON)
        room[name] = (client, call)
    return room


def sees(call: Call, user_id: str) -> tuple[str, ...] | None:
    return next(p.audience for p in call.state.value.participants if p.user_id == user_id)


async def test_whisper_is_heard_only_by_its_audience(make_client: ClientFactory) -> None:
    room = await whisper_room(make_client, ["sup", "agent", "customer"])
    sup_tone = {"sup": WHISPER_TONES["sup"]}
    for name in ("agent", "customer"):
        await wait_heard(room[name][0], sup_tone, audible={"sup"})

    sup_call = room["sup"][1]
    await sup_call.set_microphone_audience(["agent"])
    await wait_heard(room["customer"][0], sup_tone, audible=set())  # below -60 dBFS
    await stays_heard(room["agent"][0], sup_tone, audible={"sup"})
    await stays_heard(room["customer"][0], sup_tone, audible=set())
    # everyone sees who the supervisor whispers to
    agent_call, customer_call = room["agent"][1], room["customer"][1]
    await wait_for(lambda: sees(agent_call, "sup") == ("agent",) and sees(customer_call, "sup") == ("agent",))
    sup_participant = next(p for p in agent_call.state.value.participants if p.user_id == "sup")
    assert sup_participant.is_whispering_to("agent") and not sup_participant.is_whispering_to("customer")
    assert sup_call.state.value.local_participant is not None
    assert sup_call.state.value.local_participant.audience == ("agent",)

    # someone joining during the whisper does not hear it either; the agent still does
    observer = await make_client(
        "observer", microphone=ToneMicrophone(WHISPER_TONES["observer"]), speaker=CaptureSpeaker()
    )
    observer_call = observer.make_call("default", "support")
    await observer_call.join(MIC_ON)
    await wait_heard(observer, {"agent": WHISPER_TONES["agent"]}, audible={"agent"})
    await stays_heard(observer, sup_tone, audible=set())
    assert sees(observer_call, "sup") == ("agent",)

    await sup_call.set_microphone_audience(None)  # barge in: everyone hears the supervisor
    for name in ("agent", "customer"):
        await wait_heard(room[name][0], sup_tone, audible={"sup"})
    await wait_heard(observer, sup_tone, audible={"sup"})
    await wait_for(lambda: sees(customer_call, "sup") is None)

    with pytest.raises(InvalidRequestError):
        await sup_call.set_microphone_audience("agent")


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- hold audio

HOLD_TONE = {"hold": 880.0}


async def test_hold_audio_is_heard_by_the_others_only_while_suspended(make_client: ClientFactory) -> None:
    r = await setup_rooms(make_client, "A", **multi(MultiCallAudioPolicy.MANUAL))
    a = r.calls["A"]
    bot = r.bots["A"]
    both = {**ME_TONE, **HOLD_TONE}
    await a.join(MIC_ON)
    await wait_heard(bot, both, audible={"me"})

    hold = ToneMicrophone(HOLD_TONE["hold"])
    await a.suspend_audio(hold_audio=hold)
    await wait_heard(bot, both, audible={"hold"})  # the hold source, not my microphone
    await stays_heard(bot, both, audible={"hold"})
    await r.hears()  # suspended SILENT: I hear nothing of the room

    await a.resume_audio()
    await wait_heard(bot, both, audible={"me"})  # hold stopped, my microphone back
    await stays_heard(bot, both, audible={"me"})

    await a.suspend_audio()  # a plain suspension after it: silence, not the old hold source
    await wait_heard(bot, both, audible=set())

    with pytest.raises(InvalidRequestError):
        await a.suspend_audio(hold_audio="music.wav")  # type: ignore[arg-type]
