"""``switchboard sfu``: an SFU node of either engine for a coordinator elsewhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

ENV = {**os.environ, "SWITCHBOARD_API_KEY": "cli-sfu-key", "SWITCHBOARD_API_SECRET": "cli-sfu-secret" * 3}


def test_janus_on_loopback_is_one_readable_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "switchboard.cli",
            "sfu",
            "--engine",
            "janus",
            "--coordinator",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("switchboard sfu: ") and "non-loopback" in lines[0]


def test_unknown_engine_is_a_usage_error() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "switchboard.cli",
            "sfu",
            "--engine",
            "mediasoup",
            "--coordinator",
            "http://x",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_an_embedded_node_listens_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "switchboard.cli",
            "sfu",
            "--port",
            "0",
            "--coordinator",
            "http://127.0.0.1:9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = json.loads(line)["sfu_url"]
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/sfu")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _sfu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "sfu", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
    )


def test_a_coordinator_that_is_not_a_url_is_a_usage_error() -> None:
    result = _sfu("--coordinator", "127.0.0.1:3030", "--port", "0")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("switchboard sfu: argument --coordinator: "), lines
    assert "'127.0.0.1:3030' is not a coordinator URL" in lines[0]


def test_a_port_in_use_names_only_the_sfu_s_own_options() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _sfu("--coordinator", "http://127.0.0.1:9", "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "address already in use" in lines[0], lines
    assert "--port" in lines[0] and "--sfu-port" not in lines[0]
