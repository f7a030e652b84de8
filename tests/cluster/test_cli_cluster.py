"""``switchboard cluster`` and ``switchboard sfu --redis``: bad input is one readable line and a
non-zero exit (the running cluster is tested in ``test_sfu_node_processes.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

ENV = {**os.environ, "SWITCHBOARD_API_KEY": "cli-cluster-key", "SWITCHBOARD_API_SECRET": "c" * 40}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args], capture_output=True, text=True, timeout=60, env=ENV
    )


def one_line(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    return lines[0]


def test_a_janus_cluster_on_loopback_is_one_readable_line() -> None:
    result = run("cluster", "--engine", "janus", "--port", "0")
    assert result.returncode == 1
    assert "non-loopback" in one_line(result, "switchboard cluster: ")
    assert result.stdout == "", "nothing was started"


def test_cluster_sizes_out_of_range_are_usage_errors() -> None:
    for option, value in (("--nodes", "0"), ("--coordinators", "17"), ("--nodes", "two")):
        result = run("cluster", option, value)
        assert result.returncode == 2
        assert f"argument {option}" in result.stderr


def test_an_sfu_node_whose_redis_does_not_answer_is_one_readable_line() -> None:
    result = run(
        "sfu",
        "--redis",
        "unix:///nonexistent/redis.sock",
        "--port",
        "0",
        "--coordinator",
        "http://127.0.0.1:9",
    )
    assert result.returncode == 1
    assert "cannot register the SFU node in Redis" in one_line(result, "switchboard sfu: ")


def test_an_sfu_node_rejects_a_redis_url_that_is_not_one() -> None:
    result = run("sfu", "--redis", "localhost:6379", "--coordinator", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "is not a redis://, rediss:// or unix:// URL" in result.stderr
