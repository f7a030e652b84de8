"""`switchboard serve` and `switchboard token` as a user runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

from switchboard import ClientOptions, User, VideoClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_and_token_share_the_key_pair() -> None:
    port, sfu_port = free_port(), free_port()
    env = {**os.environ, "SWITCHBOARD_API_KEY": "key_test", "SWITCHBOARD_API_SECRET": "s" * 40}
    cli = [sys.executable, "-m", "switchboard.cli"]
    server = subprocess.Popen(  # noqa: ASYNC220 (a real server process)
        [*cli, "serve", "--port", str(port), "--sfu-port", str(sfu_port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = await asyncio.get_running_loop().run_in_executor(None, server.stdout.readline)
        assert f"127.0.0.1:{port}" in first and f":{sfu_port}/sfu" in first
        token = subprocess.run([*cli, "token", "alice"], env=env, capture_output=True, text=True, check=True)  # noqa: ASYNC221
        client = VideoClient(
            "key_test",
            user=User.regular("alice"),
            user_token=token.stdout.strip(),
            options=ClientOptions(base_url=f"http://127.0.0.1:{port}"),
        )
        await client.connect()
        call = client.make_call("default", "cli")
        await call.get_or_create()
        await call.join()
        assert call.media is not None and call.media.credentials.server.url.endswith(f":{sfu_port}/sfu")
        await client.disconnect()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
    assert server.returncode == 0


def test_token_without_keys_explains_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "token", "bob"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "SWITCHBOARD_API_SECRET" in done.stderr
