"""What both examples need besides their story: a server (embedded or `switchboard serve`), clients,
ears (an FFT of my speaker) and a command line. Read the examples first; this is plumbing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from switchboard import ClientOptions, User, VideoClient
from switchboard.dev_keys import load_dev_key_pair
from switchboard.errors import DeviceError, NetworkError
from switchboard.media import CaptureSpeaker, DeviceMicrophone, DeviceSpeaker, Microphone, Speaker
from switchboard.media.analysis import tone_levels_dbfs
from switchboard.protocol.tokens import create_user_token
from switchboard.server import EmbeddedServer

Connect = Callable[..., Awaitable[VideoClient]]
#: the person the story is about; ``--devices`` gives them the real default microphone and speaker
ME = "me"
Story = Callable[[Connect], Awaitable[bool]]


async def hears(me: VideoClient, voices: dict[str, float], expected: str) -> bool:
    """Wait (up to 5 s) until my speaker plays ``expected``'s tone and no other; print what it plays."""
    audible: list[str] = []
    for _ in range(50):
        await asyncio.sleep(0.1)
        levels = dict(
            zip(voices, tone_levels_dbfs(me.capture_speaker.samples(0.3), list(voices.values())), strict=True)
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
            stored = None if api_key or secret else load_dev_key_pair()  # what `switchboard serve` stored
            if stored is not None:
                api_key, secret = stored.api_key, stored.api_secret
            if not (api_key and secret):
                sys.exit("set SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET (switchboard serve prints them)")
        clients: list[VideoClient] = []

        async def connect(user_id: str, microphone: Microphone, **options: Any) -> VideoClient:
            speaker: Speaker = options.pop("speaker", None) or CaptureSpeaker()
            if args.devices and user_id == ME:  # you talk and listen through your own devices
                microphone, speaker = DeviceMicrophone(), DeviceSpeaker()
            client = VideoClient(
                api_key,
                user=User.regular(user_id, name=user_id.title()),
                user_token=create_user_token(secret, user_id),  # your backend mints these
                options=ClientOptions(base_url=base_url, microphone=microphone, speaker=speaker, **options),
            )
            await client.connect()
            clients.append(client)
            return client

        try:
            yield connect
        finally:
            for client in reversed(clients):
                await client.disconnect()


def run_example(doc: str, story: Story, ok_message: str) -> None:
    """Parse the command line, run ``story`` against a server, print OK/FAILED and exit with it."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--embedded", action="store_true", help="run the server inside this process")
    parser.add_argument("--base-url", default="http://127.0.0.1:3030", help="a running `switchboard serve`")
    parser.add_argument(
        "--devices", action="store_true", help="be 'me' with your default microphone and speaker"
    )
    args = parser.parse_args()

    async def run() -> int:
        async with server(args) as connect:
            ok = await story(connect)
        print(ok_message if ok else "FAILED: see above")
        return 0 if ok else 1

    try:
        sys.exit(asyncio.run(run()))
    except NetworkError as exc:
        sys.exit(f"{exc}\nIs `switchboard serve` running? (or pass --embedded)")
    except DeviceError as exc:
        sys.exit(f"--devices: {exc}\n(`switchboard devices` lists what PortAudio sees)")
