"""Pause-on-incoming-call (Stream's ``video_livestream_with_call`` Flutter sample), in Python.

"me" hosts a livestream with a co-host, Carol. A viewer, Erin, rings me for a 1:1 call. When I accept
and join it, the default policy ``MultiCallAudioPolicy.SUSPEND_EXISTING`` suspends the livestream
(newest call wins); when I hang up, it resumes the livestream by itself. Carol and Erin are bots that
speak their own tones, so the example can check by ear (an FFT of my speaker) whom I am hearing.

    switchboard serve                    # in another terminal; export the key pair it prints, then:
    python examples/livestream_with_call.py
    python examples/livestream_with_call.py --embedded    # or run the server inside this process
"""

from __future__ import annotations

import asyncio
import uuid

from _harness import Connect, hears, run_example

from switchboard import (
    AudioConfigurationPolicy,
    Call,
    CallConnectOptions,
    CallPreferences,
    CallType,
    MemberRequest,
    TrackOption,
)
from switchboard.media import ToneMicrophone

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
VOICES = {"Carol": 500.0, "Erin": 800.0}  # the tone each bot speaks


async def main(connect: Connect) -> bool:
    suffix = uuid.uuid4().hex[:6]  # fresh call ids, so the example can run again on the same server
    show_id, side_call_id = f"show-{suffix}", f"one-on-one-{suffix}"
    carol = await connect("carol", ToneMicrophone(VOICES["Carol"]))
    erin = await connect("erin", ToneMicrophone(VOICES["Erin"]))
    # SUSPEND_EXISTING is the default policy: only multiple active calls need turning on.
    me = await connect("me", ToneMicrophone(1000.0), allow_multiple_active_calls=True)

    print("me: go live with Carol as co-host")
    # Per-call audio configuration: a host broadcasts (a viewer's livestream would use .viewer()).
    livestream = me.make_call(
        CallType.livestream(),
        show_id,
        preferences=CallPreferences(audio_configuration_policy=AudioConfigurationPolicy.broadcaster()),
    )
    await livestream.get_or_create(members=[MemberRequest("carol", role="host")])
    await livestream.join(MIC_ON)
    await livestream.go_live()
    await carol.make_call(CallType.livestream(), show_id).join(MIC_ON)
    ok = await hears(me, VOICES, "Carol")

    # Answer rings as Stream's Flutter sample does: watch incoming_call, mute the livestream, accept, join.
    async def answer_incoming_calls() -> None:
        async for incoming in me.state.incoming_call:
            if incoming is None:
                continue
            print(f"me: {incoming.cid} is ringing: livestream mic off, accept(), join()")
            await livestream.set_microphone_enabled(False)  # viewers don't hear the side call
            await incoming.accept()
            await incoming.join(MIC_ON)  # SUSPEND_EXISTING suspends the livestream here
            answered.set_result(incoming)

    answered: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
    answering = asyncio.create_task(answer_incoming_calls())

    print("erin: ring me for a 1:1 call")
    side_call = erin.make_call(CallType.default(), side_call_id)
    await side_call.get_or_create(members=[MemberRequest("me")], ringing=True)
    await side_call.join(MIC_ON)
    incoming = await asyncio.wait_for(answered, timeout=10)
    print(f"    livestream is_audio_suspended = {livestream.state.value.is_audio_suspended}")
    ok = livestream.state.value.is_audio_suspended and await hears(me, VOICES, "Erin") and ok

    print("me: hang up the 1:1 call")
    await incoming.leave()  # SUSPEND_EXISTING resumes the livestream here
    print(f"    livestream is_audio_suspended = {livestream.state.value.is_audio_suspended}")
    await livestream.set_microphone_enabled(True)  # back on air
    ok = not livestream.state.value.is_audio_suspended and await hears(me, VOICES, "Carol") and ok

    print("me: end the livestream")
    answering.cancel()
    await livestream.end()
    return ok


if __name__ == "__main__":
    run_example(__doc__, main, "OK: the livestream paused for the 1:1 call and came back after it")
