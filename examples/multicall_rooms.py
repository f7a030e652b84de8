"""Foreground / background rooms (Stream's ``video_multicall`` Flutter sample), in Python.

"me" joins room A, then room B in the background. With ``MultiCallAudioPolicy.SUSPEND_INCOMING`` the
first room keeps the microphone and speaker and room B joins suspended; ``client.switch_focus()``
hands them over to room B and back. A bot in each room speaks its own tone, so the example can check
by ear (an FFT of my speaker) which room I am hearing.

    switchboard serve                    # in another terminal; export the key pair it prints, then:
    python examples/multicall_rooms.py
    python examples/multicall_rooms.py --embedded    # or run the server inside this process
"""

from __future__ import annotations

import asyncio
import uuid

from _harness import Connect, hears, run_example

from switchboard import (
    CallConnectOptions,
    CallType,
    MemberRequest,
    MultiCallAudioPolicy,
    TrackOption,
)
from switchboard.media import ToneMicrophone

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
BACKGROUND = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())
VOICES = {"room A": 400.0, "room B": 700.0}  # the tone each room's bot speaks
BOTS = {"room A": "alice", "room B": "bob"}


async def main(connect: Connect) -> bool:
    suffix = uuid.uuid4().hex[:6]  # fresh call ids, so the example can run again on the same server
    ids = {"room A": f"room-a-{suffix}", "room B": f"room-b-{suffix}"}

    # One bot per room, each speaking its own tone.
    for room, hz in VOICES.items():
        bot = await connect(BOTS[room], ToneMicrophone(hz))
        call = bot.make_call(CallType.default(), ids[room])
        await call.get_or_create(members=[MemberRequest("me")])
        await call.join(MIC_ON)

    # Me: several calls at once; the first room joined keeps the focus.
    me = await connect(
        "me",
        ToneMicrophone(1000.0),
        allow_multiple_active_calls=True,
        multi_call_audio_policy=MultiCallAudioPolicy.SUSPEND_INCOMING,
    )
    room_a = me.make_call(CallType.default(), ids["room A"])
    room_b = me.make_call(CallType.default(), ids["room B"])

    print("me: join room A with the microphone on")
    await room_a.join(MIC_ON)
    ok = await hears(me, VOICES, "room A")

    print("me: join room B in the background (microphone and camera off)")
    await room_b.join(BACKGROUND)  # SUSPEND_INCOMING suspends it: room A is already active
    print(f"    room B is_audio_suspended = {room_b.state.value.is_audio_suspended}")
    await asyncio.sleep(1.0)  # give room B's audio time to (not) arrive
    ok = room_b.state.value.is_audio_suspended and await hears(me, VOICES, "room A") and ok

    print("me: switch_focus(room A -> room B)")
    await me.switch_focus(room_a, room_b)  # mic off + suspend in A, resume + mic on in B
    ok = await hears(me, VOICES, "room B") and ok

    print("me: switch_focus(room B -> room A)")
    await me.switch_focus(room_b, room_a)
    ok = await hears(me, VOICES, "room A") and ok

    print("me: leave both rooms")
    await room_b.leave()
    await room_a.leave()
    return ok


if __name__ == "__main__":
    run_example(__doc__, main, "OK: the focused room was the one I heard, every time")
