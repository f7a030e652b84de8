"""The examples that mirror the seed's two sample apps run, say what they do, and check what they hear."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "multicall_rooms.py": [
        "me: join room A with the microphone on",
        "me: join room B in the background (microphone and camera off)",
        "    room B is_audio_suspended = True",
        "me: switch_focus(room A -> room B)",
        "    my speaker plays: room B",
        "me: switch_focus(room B -> room A)",
        "    my speaker plays: room A",
        "OK: the focused room was the one I heard, every time",
    ],
    "livestream_with_call.py": [
        "me: go live with Carol as co-host",
        "    my speaker plays: Carol",
        "erin: ring me for a 1:1 call",
        "    livestream is_audio_suspended = True",
        "    my speaker plays: Erin",
        "me: hang up the 1:1 call",
        "    livestream is_audio_suspended = False",
        "OK: the livestream paused for the 1:1 call and came back after it",
    ],
    "supervisor.py": [
        "me: monitor the three calls, ducked; call 1 left, call 2 centre, call 3 right",
        "    agent1 on my left: heard",
        "    agent1 on my right: silent",
        "    agent3 on my right: heard",
        "    me at agent1: silent",
        "me: whisper to agent1",
        "    me at agent1: heard",
        "    me at customer1: silent",
        "me: barge in",
        "    me at customer1: heard",
        "me: hand the call back",
        "    me at customer1: silent",
        "OK: the whisper reached the agent only, the barge-in everyone",
    ],
}


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, f"{name} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def assert_in_order(output: str, expected: list[str]) -> None:
    lines = output.splitlines()
    position = 0
    for line in expected:
        assert line in lines[position:], f"missing (in order) {line!r} in:\n{output}"
        position = lines.index(line, position) + 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_embedded(name: str) -> None:
    assert_in_order(run_example(name, "--embedded"), EXPECTED[name])


def test_examples_run_against_switchboard_serve() -> None:
    env = {
        **os.environ,
        "SWITCHBOARD_API_KEY": "examples-test-key",
        "SWITCHBOARD_API_SECRET": "examples-test-secret-0123456789abcdef",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "serve", "--port", "0", "--sfu-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert serve.stdout is not None
        deadline = time.monotonic() + 20
        url, printed = None, ""
        while url is None and time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            printed += line
            match = re.search(r"http://[\w.\-]+:\d+", line)
            url = match.group(0) if match else None
        assert url, f"switchboard serve did not print its URL:\n{printed}"
        for name, expected in EXPECTED.items():
            assert_in_order(run_example(name, "--base-url", url, env=env), expected)
    finally:
        serve.terminate()
        serve.wait(timeout=10)
