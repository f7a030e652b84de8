"""Focus beyond on/off (SPEC §2.8): ducked suspension, per-call gain and pan, measured by listening.

Rooms A and B each have a bot playing its own tone; "me" plays a third tone. Levels are read with an
FFT from what my (stereo, where pan matters) speaker played, and from what the bots' speakers played.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchboard import Call, CallStatus, MemberRequest, MultiCallAudioPolicy, SuspendMode, VideoClient
from switchboard.errors import InvalidRequestError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_levels_dbfs
from switchboard.sdk.emitter import LocalEvent
from tests.conftest import ClientFactory, wait_heard
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
