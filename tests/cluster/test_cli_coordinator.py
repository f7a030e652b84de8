"""`switchboard coordinator --redis` as an operator runs it: a readable line for each mistake, a clean
start and stop with its own SFU process."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from pathlib import Path

import aiohttp

from switchboard.protocol.tokens import generate_key_pair
from tests.test_cli import CLI, assert_one_line_error, run_cli, user_env


def keyed_env(tmp_path: Path) -> dict[str, str]:
    key, secret = generate_key_pair()
    return user_env(tmp_path, SWITCHBOARD_API_KEY=key, SWITCHBOARD_API_SECRET=secret)


def test_a_url_that_is_not_redis_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("coordinator", "--redis", "http://127.0.0.1:6379", env=keyed_env(tmp_path))
    assert_one_line_error(done, 2, "--redis", "redis://")


def test_an_unreachable_redis_is_one_line(tmp_path: Path) -> None:
    done = run_cli(
        "coordinator", "--redis", f"unix://{tmp_path}/nothing.sock", "--port", "0", env=keyed_env(tmp_path)
    )
    assert_one_line_error(done, 1, "cannot reach Redis", "nothing.sock")


def test_without_a_key_pair_it_says_which_variables_to_set(tmp_path: Path, redis_url: str) -> None:
    done = run_cli("coordinator", "--redis", redis_url, "--port", "0", env=user_env(tmp_path))
    assert_one_line_error(done, 1, "SWITCHBOARD_API_KEY", "SWITCHBOARD_API_SECRET")


async def test_it_serves_with_its_own_sfu_and_stops_on_sigterm(tmp_path: Path, redis_url: str) -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 (a real coordinator process)
        [*CLI, "coordinator", "--redis", redis_url, "--port", "0", "--prefix", "clitest:"],
        env=keyed_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        found = re.search(r"on (http://\S+) \(Redis .*\), SFU (ws://\S+/sfu)", line)
        assert found, line
        async with aiohttp.ClientSession() as http, http.get(found.group(1) + "/health") as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.get_running_loop().run_in_executor(None, lambda: proc.wait(20)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_sigterm_during_start_up_stops_it(tmp_path: Path) -> None:
    """A Redis that accepts connections and never answers holds the start-up; SIGTERM still stops
    the coordinator at once, cleanly (exit 0, no traceback)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, read, never answer
        writer.close()

    silent_redis = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = silent_redis.sockets[0].getsockname()[1]
    proc = subprocess.Popen(  # noqa: ASYNC220 (a real coordinator process)
        [*CLI, "coordinator", "--redis", f"redis://127.0.0.1:{port}/0", "--port", "0"],
        env=keyed_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(200):  # until it is waiting on the silent Redis
            await asyncio.sleep(0.05)
            if _connected(port):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.get_running_loop().run_in_executor(
            None, lambda: proc.communicate(timeout=10)
        )
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "switchboard coordinator on" not in out, (out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        silent_redis.close()
        await silent_redis.wait_closed()


def _connected(port: int) -> bool:
    """Whether some process holds an established TCP connection to 127.0.0.1:``port``."""
    done = subprocess.run(
        ["ss", "-Htn", "state", "established", f"dport = :{port}"], capture_output=True, text=True
    )
    return bool(done.stdout.strip())
