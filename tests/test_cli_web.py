"""`switchboard serve` for browsers: --dev-tokens and --cors-origin, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp

from tests.test_cli import free_port

CLI = [sys.executable, "-m", "switchboard.cli"]


def _env_without_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}


def test_dev_tokens_are_refused_with_a_real_key_pair() -> None:
    env = {**_env_without_keys(), "SWITCHBOARD_API_KEY": "key_test", "SWITCHBOARD_API_SECRET": "s" * 40}
    done = subprocess.run(
        [*CLI, "serve", "--dev-tokens", "--port", "0"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "--dev-tokens needs the generated development key pair" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_serve_with_dev_tokens_and_a_cors_origin() -> None:
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 (a real server process)
        [*CLI, "serve", "--port", str(port), "--sfu-port", "0", "--dev-tokens",
         "--cors-origin", "https://app.example.com"],
        env=_env_without_keys(),
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        loop = asyncio.get_running_loop()
        while f"127.0.0.1:{port}" not in await loop.run_in_executor(None, server.stdout.readline):
            pass
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/dev/token", json={"user_id": "alice"}) as r:
                assert r.status == 200 and (await r.json())["token"]
            preflight = {"Access-Control-Request-Method": "POST"}
            async with http.options(
                base + "/api/v1/users", headers={**preflight, "Origin": "https://app.example.com"}
            ) as ok:
                assert ok.status == 204
            async with http.options(
                base + "/api/v1/users", headers={**preflight, "Origin": "https://other.example.com"}
            ) as refused:
                assert refused.status == 403
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
    assert server.returncode == 0
