"""A supervisor sits in three agents' calls: monitors them ducked and panned, whispers, barges in.

"me" (the supervisor) joins three support calls, each with an agent and a customer bot. All three
play quietly in the background (``SuspendMode.DUCKED``, -18 dB), call 1 on the left, call 3 on the
right (``set_playout_pan``). Then I whisper to call 1's agent (``set_microphone_audience``: the SFU
forwards my voice to the agent only), barge in (audience ``None``: the customer hears me too) and
hand the call back (ducked again). The example checks by ear (an FFT of each speaker) who hears whom.

    switchboard serve                    # in another terminal; export the key pair it prints, then:
    python examples/supervisor.py
    python examples/supervisor.py --embedded    # or run the server inside this process
"""

from __future__ import annotations

import asyncio
import uuid

from _harness import Connect, run_example

from switchboard import (
    CallConnectOptions,
    CallType,
    MultiCallAudioPolicy,
    SuspendMode,
    TrackOption,
    VideoClient,
)
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_levels_dbfs

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
ME_HZ = 1200.0
AGENTS = {1: 300.0, 2: 400.0, 3: 500.0}  # the tone each agent speaks
CUSTOMERS = {1: 600.0, 2: 700.0, 3: 800.0}
PANS = {1: -1.0, 2: 0.0, 3: 1.0}


async def level(client: VideoClient, hz: float, channel: int = 0) -> float:
    """The level (dBFS) of ``hz`` on one channel of ``client``'s speaker over the last second."""
    await asyncio.sleep(1.5)
    samples = client.capture_speaker.samples_channels(1.0)[channel]
    return tone_levels_dbfs(samples, [hz])[0]


def report(what: str, dbfs: float, heard: bool) -> bool:
    ok = dbfs > -40 if heard else dbfs < -60
    print(f"    {what}: {'heard' if dbfs > -40 else 'silent' if dbfs < -60 else 'faint'}")
    return ok


async def main(connect: Connect) -> bool:
    suffix = uuid.uuid4().hex[:6]  # fresh call ids, so the example can run again on the same server
    agents: dict[int, VideoClient] = {}
    customers: dict[int, VideoClient] = {}
    for n in AGENTS:
        agents[n] = await connect(f"agent{n}", ToneMicrophone(AGENTS[n]))
        customers[n] = await connect(f"customer{n}", ToneMicrophone(CUSTOMERS[n]))
        for person in (agents[n], customers[n]):
            await person.make_call(CallType.default(), f"support-{n}-{suffix}").join(MIC_ON)

    # Me: several calls at once, suspended calls keep playing quietly (ducked), on a stereo speaker.
    me = await connect(
        "me",
        ToneMicrophone(ME_HZ),
        speaker=CaptureSpeaker(channels=2),
        allow_multiple_active_calls=True,
        multi_call_audio_policy=MultiCallAudioPolicy.MANUAL,
        suspend_mode=SuspendMode.DUCKED,
        duck_gain_db=-18.0,
    )

    print("me: monitor the three calls, ducked; call 1 left, call 2 centre, call 3 right")
    calls = {}
    for n in AGENTS:
        call = me.make_call(CallType.default(), f"support-{n}-{suffix}")
        await call.set_playout_pan(PANS[n])
        await call.join(MIC_ON)
        await call.suspend_audio()  # ducked: I hear them quietly, they do not hear me
        calls[n] = call
    ok = report("agent1 on my left", await level(me, AGENTS[1], channel=0), heard=True)
    ok = report("agent1 on my right", await level(me, AGENTS[1], channel=1), heard=False) and ok
    ok = report("agent3 on my right", await level(me, AGENTS[3], channel=1), heard=True) and ok
    ok = report("me at agent1", await level(agents[1], ME_HZ), heard=False) and ok

    print("me: whisper to agent1")
    await calls[1].set_microphone_audience(["agent1"])  # the SFU forwards my voice to agent1 only
    await calls[1].resume_audio()
    ok = report("me at agent1", await level(agents[1], ME_HZ), heard=True) and ok
    ok = report("me at customer1", await level(customers[1], ME_HZ), heard=False) and ok

    print("me: barge in")
    await calls[1].set_microphone_audience(None)
    ok = report("me at customer1", await level(customers[1], ME_HZ), heard=True) and ok

    print("me: hand the call back")
    await calls[1].suspend_audio()
    ok = report("me at customer1", await level(customers[1], ME_HZ), heard=False) and ok

    for call in calls.values():
        await call.leave()
    return ok


if __name__ == "__main__":
    run_example(__doc__, main, "OK: the whisper reached the agent only, the barge-in everyone")
