"""Pause-on-incoming-call (the seed's ``video_livestream_with_call`` sample), in Python.

"me" hosts a livestream with a co-host, Carol. A viewer, Erin, rings me for a 1:1 call. When I accept
and join it, the default policy ``MultiCallAudioPolicy.SUSPEND_EXISTING`` suspends the livestream
(newest call wins); when I hang up, it resumes the livestream by itself. Carol and Erin are bots that
speak their own tones, so the example can check by ear (an FFT of my speaker) whom I am hearing.

    switchboard serve                    # in another terminal; export the key pair it prints, then:
    python examples/livestream_with_call.py
    python examples/livestream_with_call.py --embedded    # or run the server inside this process
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
    AudioConfigurationPolicy,
    Call,
    CallConnectOptions,
    CallPreferences,
    CallType,
    ClientOptions,
    MemberRequest,
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
VOICES = {"Carol": 500.0, "Erin": 800.0}  # the tone each bot speaks

Connect = Callable[..., Awaitable[VideoClient]]


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
    ok = await hears(me, "Carol")

    # Answer rings as the seed does: watch incoming_call, mute the livestream, accept, join.
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
    ok = livestream.state.value.is_audio_suspended and await hears(me, "Erin") and ok

    print("me: hang up the 1:1 call")
    await incoming.leave()  # SUSPEND_EXISTING resumes the livestream here
    print(f"    livestream is_audio_suspended = {livestream.state.value.is_audio_suspended}")
    await livestream.set_microphone_enabled(True)  # back on air
    ok = not livestream.state.value.is_audio_suspended and await hears(me, "Carol") and ok

    print("me: end the livestream")
    answering.cancel()
    await livestream.end()
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
    print("OK: the livestream paused for the 1:1 call and came back after it" if ok else "FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedded", action="store_true", help="run the server inside this process")
    parser.add_argument("--base-url", default="http://127.0.0.1:3030", help="a running `switchboard serve`")
    try:
        sys.exit(asyncio.run(run(parser.parse_args())))
    except NetworkError as exc:
        sys.exit(f"{exc}\nIs `switchboard serve` running? (or pass --embedded)")
