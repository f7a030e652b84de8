"""Foreground / background rooms (the seed's ``video_multicall`` sample), in Python.

"me" joins room A, then room B in the background. With ``MultiCallAudioPolicy.SUSPEND_INCOMING`` the
first room keeps the microphone and speaker and room B joins suspended; ``client.switch_focus()``
hands them over to room B and back. A bot in each room speaks its own tone, so the example can check
by ear (an FFT of my speaker) which room I am hearing.

    switchboard serve                    # in another terminal; export the key pair it prints, then:
    python examples/multicall_rooms.py
    python examples/multicall_rooms.py --embedded    # or run the server inside this process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from switchboard import (
    CallConnectOptions,
    CallType,
    ClientOptions,
    MemberRequest,
    MultiCallAudioPolicy,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.errors import NetworkError
from switchboard.media.analysis import tone_levels_dbfs
from switchboard.media.devices import CaptureSpeaker, Microphone, ToneMicrophone
from switchboard.protocol.tokens import create_user_token
from switchboard.server import EmbeddedServer

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
BACKGROUND = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())
VOICES = {"room A": 400.0, "room B": 700.0}  # the tone each room's bot speaks
BOTS = {"room A": "alice", "room B": "bob"}

Connect = Callable[..., Awaitable[VideoClient]]


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
    ok = await hears(me, "room A")

    print("me: join room B in the background (microphone and camera off)")
    await room_b.join(BACKGROUND)  # SUSPEND_INCOMING suspends it: room A is already active
    print(f"    room B is_audio_suspended = {room_b.state.value.is_audio_suspended}")
    await asyncio.sleep(1.0)  # give room B's audio time to (not) arrive
    ok = room_b.state.value.is_audio_suspended and await hears(me, "room A") and ok

    print("me: switch_focus(room A -> room B)")
    await me.switch_focus(room_a, room_b)  # mic off + suspend in A, resume + mic on in B
    ok = await hears(me, "room B") and ok

    print("me: switch_focus(room B -> room A)")
    await me.switch_focus(room_b, room_a)
    ok = await hears(me, "room A") and ok

    print("me: leave both rooms")
    await room_b.leave()
    await room_a.leave()
    return ok


async def hears(me: VideoClient, expected: str) -> bool:
    """Wait (up to 5 s) until my speaker plays ``expected``'s tone and no other; print what it plays."""
    audible: list[str] = []
    for _ in range(50):
        await asyncio.sleep(0.1)
        levels = dict(
            zip(VOICES, tone_levels_dbfs(me.capture_speaker.samples(0.3), list(VOICES.values())), strict=True)
        )
        audible = [name for name, level in levels.items() if level > -40]
        quiet = all(level < -60 for name, level in levels.items() if name != expected)
        if audible == [expected] and quiet:
            break
    print(f"    my speaker plays: {', '.join(audible) or 'nothing'}")
    return audible == [expected]


# ---------------------------------------------------------------- plumbing: a server and clients


@contextlib.asynccontextmanager
async def server(args: argparse.Namespace) -> AsyncIterator[Connect]:
    """Yields ``connect(user_id, microphone, **client_options)``; disconnects every client at the end."""
    async with contextlib.AsyncExitStack() as stack:
        if args.embedded:
            embedded = await stack.enter_async_context(EmbeddedServer())
            base_url, api_key, secret = embedded.url, embedded.api_key, embedded.api_secret
        else:
            base_url = args.base_url
            api_key = os.environ.get("SWITCHBOARD_API_KEY", "")
            secret = os.environ.get("SWITCHBOARD_API_SECRET", "")
            if not (api_key and secret):
                sys.exit("set SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET (switchboard serve prints them)")
        clients: list[VideoClient] = []

        async def connect(user_id: str, microphone: Microphone, **options: Any) -> VideoClient:
            client = VideoClient(
                api_key,
                user=User.regular(user_id, name=user_id.title()),
                user_token=create_user_token(secret, user_id),  # your backend mints these
                options=ClientOptions(
                    base_url=base_url, microphone=microphone, speaker=CaptureSpeaker(), **options
                ),
            )
            await client.connect()
            clients.append(client)
            return client

        try:
            yield connect
        finally:
            for client in reversed(clients):
                await client.disconnect()


async def run(args: argparse.Namespace) -> int:
    async with server(args) as connect:
        ok = await main(connect)
    print("OK: the focused room was the one I heard, every time" if ok else "FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedded", action="store_true", help="run the server inside this process")
    parser.add_argument("--base-url", default="http://127.0.0.1:3030", help="a running `switchboard serve`")
    try:
        sys.exit(asyncio.run(run(parser.parse_args())))
    except NetworkError as exc:
        sys.exit(f"{exc}\nIs `switchboard serve` running? (or pass --embedded)")
