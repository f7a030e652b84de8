"""`switchboard serve`, `switchboard token` and `--help`/`--version` as a user runs them.

Every run gets its own empty config directory (``XDG_CONFIG_HOME``), so the development key pair a
test stores never touches the real home directory, and each test starts as a first-time user.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import jwt
import pytest

from switchboard import ClientOptions, User, VideoClient
from switchboard.cli import build_parser
from switchboard.errors import AuthenticationError

CLI = [sys.executable, "-m", "switchboard.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def user_env(config_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user who set no key pair (plus ``extra``), with its own config directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    return {**env, "XDG_CONFIG_HOME": str(config_home), **extra}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def assert_one_line_error(done: subprocess.CompletedProcess[str], exit_code: int, *words: str) -> str:
    """The command failed with ``exit_code``, printing exactly one line on stderr (no traceback)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert len(lines) == 1, f"expected one line, got:\n{done.stderr}"
    assert "Traceback" not in done.stderr and done.stdout == ""
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


@dataclass
class Serve:
    process: subprocess.Popen[str]
    printed: list[str]
    log_path: Path

    @property
    def url(self) -> str:
        return self.printed[0].split()[3].rstrip(",")

    @property
    def api_key(self) -> str:
        return next(line.split("=", 1)[1] for line in self.printed if "SWITCHBOARD_API_KEY=" in line)

    def stop(self) -> str:
        """Ctrl-C, as a user would; returns what it logged on stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(15)
        return self.log_path.read_text()


@contextmanager
def serving(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[Serve]:
    """``switchboard serve --port 0 --sfu-port 0 ARGS``, read up to its "Ctrl-C stops" line."""
    log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", "0", "--sfu-port", "0", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert process.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("Ctrl-C stops" in p for p in printed):
        line = process.stdout.readline()
        if not line:
            break
        printed.append(line.rstrip("\n"))
    serve = Serve(process, printed, log_path)
    try:
        assert any("Ctrl-C stops" in p for p in printed), f"serve printed {printed}; {log_path.read_text()}"
        yield serve
    finally:
        serve.stop()


async def connect(url: str, api_key: str, token: str, user_id: str = "alice") -> VideoClient:
    client = VideoClient(
        api_key, user=User.regular(user_id), user_token=token, options=ClientOptions(base_url=url)
    )
    await client.connect()
    return client


# ---------------------------------------------------------------- serve


async def test_serve_and_token_share_the_key_pair(tmp_path: Path) -> None:
    port, sfu_port = free_port(), free_port()
    env = user_env(tmp_path, SWITCHBOARD_API_KEY="key_test", SWITCHBOARD_API_SECRET="s" * 40)
    server = subprocess.Popen(  # noqa: ASYNC220 (a real server process)
        [*CLI, "serve", "--port", str(port), "--sfu-port", str(sfu_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = await asyncio.get_running_loop().run_in_executor(None, server.stdout.readline)
        assert f"127.0.0.1:{port}" in first and f":{sfu_port}/sfu" in first
        token = subprocess.run([*CLI, "token", "alice"], env=env, capture_output=True, text=True, check=True)  # noqa: ASYNC221
        client = await connect(f"http://127.0.0.1:{port}", "key_test", token.stdout.strip())
        call = client.make_call("default", "cli")
        await call.get_or_create()
        await call.join()
        assert call.media is not None and call.media.credentials.server.url.endswith(f":{sfu_port}/sfu")
        await client.disconnect()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
    assert server.returncode == 0
    assert not (tmp_path / "switchboard").exists()  # a key pair from the environment stores nothing


async def test_the_development_key_pair_survives_restarts_and_token_uses_it(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    stored = tmp_path / "switchboard" / "dev-keys.json"
    with serving(tmp_path, env) as first:
        assert f"stored in {stored}" in "\n".join(first.printed)
        key = first.api_key
    assert stored.exists() and stored.stat().st_mode & 0o777 == 0o600
    with serving(tmp_path, env) as second:
        assert second.api_key == key
        token = run_cli("token", "alice", env=env)  # no exports needed: the stored pair signs it
        assert token.returncode == 0, token.stderr
        client = await connect(second.url, key, token.stdout.strip())
        await client.make_call("default", "restart").get_or_create()
        await client.disconnect()


async def test_serve_logs_requests_and_errors(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    with serving(tmp_path, env) as serve:
        token = run_cli("token", "alice", env=env).stdout.strip()
        client = await connect(serve.url, serve.api_key, token)
        await client.make_call("default", "logged").get_or_create()
        await client.disconnect()
        with pytest.raises(AuthenticationError, match="unknown API key"):
            await connect(serve.url, "key_copied_from_another_server", token)
        async with aiohttp.ClientSession() as http:
            bad = await http.post(
                f"{serve.url}/api/v1/calls/default/x", headers={"X-Api-Key": "nope"}, json={}
            )
            assert bad.status == 401
        logged = serve.stop()
    assert "Traceback" not in logged
    assert '"POST /api/v1/calls/default/logged HTTP/1.1" 200' in logged  # the access log, at INFO
    assert (
        "INFO switchboard.coordinator.http: events socket closed with 4001 invalid_api_key: unknown API key"
        in logged
    )
    assert "POST /api/v1/calls/default/x -> 401 invalid_api_key: unknown API key" in logged
    assert serve.process.returncode == 0


def test_serve_ports_default_to_the_environment(tmp_path: Path) -> None:
    port, sfu_port = free_port(), free_port()
    env = user_env(tmp_path, SWITCHBOARD_PORT=str(port), SWITCHBOARD_SFU_PORT=str(sfu_port))
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        serve = subprocess.Popen([*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert f"http://127.0.0.1:{port}," in first and f"ws://127.0.0.1:{sfu_port}/sfu" in first, first
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(15)
    assert serve.returncode == 0 and "Traceback" not in log_path.read_text()


def test_serve_on_a_taken_port_says_so_in_one_line_and_prints_no_keys(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", str(port), "--sfu-port", "0", env=user_env(tmp_path))
    line = assert_one_line_error(
        done, 1, "switchboard serve: cannot listen", f"{port}", "address already in use"
    )
    assert "--port" in line


def test_serve_with_an_unknown_host_or_bad_port_is_one_line(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    assert_one_line_error(run_cli("serve", "--host", "no-such-host.invalid", env=env), 1, "check --host")
    assert_one_line_error(run_cli("serve", "--port", "70000", env=env), 2, "'70000' is not a port number")


def test_serve_with_half_a_key_pair_is_one_line(tmp_path: Path) -> None:
    done = run_cli("serve", env=user_env(tmp_path, SWITCHBOARD_API_KEY="key_only"))
    assert_one_line_error(done, 1, "set both SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET")


def test_a_corrupt_development_key_file_is_named(tmp_path: Path) -> None:
    stored = tmp_path / "switchboard" / "dev-keys.json"
    stored.parent.mkdir()
    stored.write_text("{not json")
    done = run_cli("serve", env=user_env(tmp_path))
    assert_one_line_error(done, 1, str(stored), "delete it to get a new pair")


# ---------------------------------------------------------------- token


def test_token_without_any_key_pair_explains_what_to_set(tmp_path: Path) -> None:
    done = run_cli("token", "bob", env=user_env(tmp_path))
    assert_one_line_error(done, 1, "SWITCHBOARD_API_SECRET", "switchboard serve")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("token", ""), "user id '' is not valid"),
        (("token", "bob smith"), "user id 'bob smith' is not valid"),
        (("token", "bob", "--ttl", "-5"), "argument --ttl: '-5' is not a positive number of seconds"),
        (("token", "bob", "--ttl", "0"), "'0' is not a positive number"),
        (("token", "bob", "--ttl", "soon"), "'soon' is not a positive number"),
        (("token", "bob", "--ttl", "nan"), "'nan' is not a positive number"),
        (("token",), "the following arguments are required: user_id"),
        (("serve", "--nope"), "unrecognized arguments: --nope"),
        (("dance",), "invalid choice: 'dance'"),
        ((), "the following arguments are required: COMMAND"),
    ],
)
def test_bad_command_lines_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    env = user_env(tmp_path, SWITCHBOARD_API_KEY="key_test", SWITCHBOARD_API_SECRET="s" * 40)
    line = assert_one_line_error(run_cli(*args, env=env), 2, words)
    assert line.endswith("--help)")


def test_token_ttl_sets_the_expiry(tmp_path: Path) -> None:
    env = user_env(tmp_path, SWITCHBOARD_API_KEY="key_test", SWITCHBOARD_API_SECRET="s" * 40)
    done = run_cli("token", "bob", "--ttl", "60", env=env)
    claims = jwt.decode(done.stdout.strip(), "s" * 40, algorithms=["HS256"])
    assert claims["user_id"] == "bob" and 55 <= claims["exp"] - time.time() <= 61


# ---------------------------------------------------------------- demo


def test_demo_refuses_a_report_path_it_cannot_write_before_running(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    missing = tmp_path / "no-such-dir" / "report.json"
    done = run_cli("demo", "--json", str(missing), env=env)
    # stdout stays empty: refused before the demo printed its first line, not after it ran
    assert_one_line_error(done, 1, "switchboard demo: --json", "no such directory")
    assert_one_line_error(run_cli("demo", "--plot", str(tmp_path), env=env), 1, "is a directory")


# ---------------------------------------------------------------- version and help


def test_version(tmp_path: Path) -> None:
    done = run_cli("--version", env=user_env(tmp_path))
    assert done.returncode == 0 and done.stdout.strip() == "switchboard 0.1.0"


def test_every_option_and_command_has_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"serve", "sfu", "coordinator", "cluster", "token", "demo", "devices"}
    for name, sub in commands.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"switchboard {name} {action.option_strings or action.dest} has no help"
    for action in commands._choices_actions:
        assert action.help, action.dest


def test_serve_help_explains_host_port_and_keys(tmp_path: Path) -> None:
    done = run_cli("serve", "--help", env=user_env(tmp_path))
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for words in ("--host HOST address to listen on", "--port PORT coordinator port", "development pair"):
        assert words in text
