"""Audio levels and the dominant speaker, measured by the SFU from RFC 6464 levels, on real clients."""

from __future__ import annotations

import asyncio
from typing import Any

from switchboard import CallConnectOptions, TrackOption
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.sdk.call import Call
from switchboard.server import EmbeddedServer
from tests.conftest import TEST_ENGINE, ClientFactory, until, wait_heard

TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0}
LOUD_DBFS, QUIET_DBFS = -10.0, -25.0
NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())


def dominant(call: Call) -> str | None:
    speaker = call.state.value.dominant_speaker
    return speaker.user_id if speaker is not None else None


def by_user(call: Call) -> dict[str, Any]:
    return {q.user_id: q for q in call.state.value.participants}


async def test_the_dominant_speaker_follows_the_loudest_tone_within_a_second(
    make_client: ClientFactory, server: EmbeddedServer
) -> None:
    mics = {
        "alice": ToneMicrophone(TONES["alice"], level_dbfs=LOUD_DBFS),
        "bob": ToneMicrophone(TONES["bob"], level_dbfs=QUIET_DBFS),
    }
    clients = {u: await make_client(u, microphone=mic, speaker=CaptureSpeaker()) for u, mic in mics.items()}
    clients["carol"] = await make_client("carol", speaker=CaptureSpeaker())  # listens only
    calls = {u: c.make_call("default", "panel") for u, c in clients.items()}
    await calls["alice"].get_or_create()
    await calls["alice"].join(NO_CAMERA)
    await calls["bob"].join(NO_CAMERA)
    await calls["carol"].join(
        CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())
    )
    await wait_heard(clients["carol"], TONES, audible={"alice", "bob"})
    carol = calls["carol"]
    changes: list[m.Event] = []
    carol.on("call.dominant_speaker_changed", changes.append)

    await until(lambda: dominant(carol) == "alice", "alice dominant")
    await until(lambda: by_user(carol)["bob"].is_speaking, "bob speaking")
    seen = by_user(carol)
    # levels as sent: -10 dBFS peak is about -13 dBov RMS (0.22), -25 dBFS peak about -28 dBov (0.04)
    assert 0.12 < seen["alice"].audio_level < 0.4, seen["alice"]
    assert 0.02 < seen["bob"].audio_level < 0.07, seen["bob"]
    assert seen["alice"].is_speaking and not seen["carol"].is_speaking
    local = calls["alice"].state.value.local_participant
    assert local is not None and local.is_speaking  # a client sees its own level too
    for user in ("alice", "bob"):
        await until(lambda u=user: dominant(calls[u]) == "alice", f"alice dominant at {user}")

    # swap: bob is now the loud one; within a second everyone sees him dominant
    mics["alice"].amplitude, mics["bob"].amplitude = mics["bob"].amplitude, mics["alice"].amplitude
    await until(lambda: dominant(carol) == "bob", "bob dominant after the swap", timeout=1.0)
    assert [e.data["user_id"] for e in changes] == ["bob"]  # type: ignore[attr-defined]

    # hysteresis: a short burst from alice (shorter than two intervals) does not take it over
    mics["alice"].amplitude = 1.0
    await asyncio.sleep(0.15)
    mics["alice"].amplitude = 10 ** (QUIET_DBFS / 20)
    await asyncio.sleep(1.0)
    assert dominant(carol) == "bob"

    # silence keeps the last dominant speaker; it changes only when someone speaks
    mics["bob"].amplitude = 0.0
    mics["alice"].amplitude = 0.0
    await until(lambda: not any(q.is_speaking for q in carol.state.value.participants), "silence")
    assert dominant(carol) == "bob"
    mics["alice"].amplitude = 10 ** (LOUD_DBFS / 20)
    await until(lambda: dominant(carol) == "alice", "alice back", timeout=1.0)

    # the SFU never decoded anything to measure this
    if TEST_ENGINE == "janus":  # the node's level listener taps its receivers (tests/test_janus_engine.py)
        janus_room = server.janus_sfu.rooms["default:panel"]
        audio = sum("audio" in q.pub_mids.values() for q in janus_room.participants.values())
        assert audio >= 2 and len(janus_room.levels.taps) == audio
        assert not any(tap.closed for tap in janus_room.levels.taps)
        return
    room = server.sfu.rooms["default:panel"]
    assert all(
        q.published["audio"].tap is not None for q in room.participants.values() if "audio" in q.published
    )
