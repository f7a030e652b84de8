"""The README and docs/getting-started.md run as written: every code block, every command.

Python blocks run as complete programs and must print what the text around them says they print.
Shell blocks run in a fresh shell of a user who has set nothing up: no ``SWITCHBOARD_*`` variables,
no activated environment (``.venv/bin`` is not on ``PATH``), an empty config directory, in the
repository root. A block that starts ``switchboard serve`` is that user's first terminal: it keeps
running (on the ports ``SWITCHBOARD_PORT`` / ``SWITCHBOARD_SFU_PORT`` name, so the suite never fights
another server for 3030) while the blocks after it run, and is stopped with Ctrl-C at the end. One
command is not run for real: ``make test`` would run this suite from inside itself, so its plan
(``make --dry-run test``) is checked instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]

#: commands replaced by a check of their plan, and why
NOT_RUN = {"make test": "make --dry-run test"}  # running the whole suite from inside the suite recurses
SERVER = "switchboard serve"
COMMAND_TIMEOUT_S = 300  # `make demo` takes about 30 s; this only stops a hung run


def blocks(lang: str) -> list[tuple[Path, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(rf"```{lang}\n(.*?)```", doc.read_text(), flags=re.S):
            found.append((doc, block))
    return found


def flat(text: str) -> str:
    return " ".join(text.split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- python


@pytest.mark.parametrize(
    ("doc", "program"),
    blocks("python"),
    ids=[f"{doc.name}-{i}" for i, (doc, _) in enumerate(blocks("python"))],
)
def test_python_block_runs_and_prints_what_the_text_says(doc: Path, program: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # no warning, no leaked session
    printed = done.stdout.strip().splitlines()
    assert printed, "the example prints nothing to compare with the text"
    assert flat(printed[-1]) in flat(doc.read_text()), (
        f"{doc.name} does not show what it prints: {printed[-1]!r}"
    )


def test_the_examples_print_what_a_reader_expects() -> None:
    outputs = {}
    for _, program in blocks("python"):
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
        outputs[done.stdout.strip()] = program
    assert "default:standup ['alice', 'bob'] Call('default:standup', status=outgoing)" in outputs
    assert "[True, False]" in outputs  # multicall: A suspended, B in focus
    assert any(out.startswith("ClientOptions.base_url 'localhost:3030' is not") for out in outputs)


# ---------------------------------------------------------------- shell


def first_time_user_env(config_home: Path) -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != Path(venv_bin).resolve()
    )
    env["XDG_CONFIG_HOME"] = str(config_home)
    env["SWITCHBOARD_PORT"], env["SWITCHBOARD_SFU_PORT"] = str(free_port()), str(free_port())
    for forcing_a_terminal in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(forcing_a_terminal, None)
    return env


def commands(block: str) -> list[str]:
    """The block's commands, comments dropped."""
    return [c for c in (line.split("#", 1)[0].strip() for line in block.splitlines()) if c]


def starts_server(block: str) -> bool:
    return any(SERVER in command for command in commands(block))


def as_run(block: str) -> str:
    """The block as it is run: every line as written, but for NOT_RUN commands."""
    lines = []
    for line in block.splitlines():
        command = line.split("#", 1)[0].strip()
        lines.append(NOT_RUN.get(command, line))
    return "\n".join(lines)


def start_server(block: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[str], list[str]]:
    with log.open("w") as err:
        server = subprocess.Popen(
            ["bash", "-e", "-c", block],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,  # its own process group: Ctrl-C reaches it as in a terminal
        )
    assert server.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("Ctrl-C stops" in line for line in printed):
        line = server.stdout.readline()
        if not line:
            break
        printed.append(line)
    assert any("Ctrl-C stops" in line for line in printed), f"{block!r} printed {printed}\n{log.read_text()}"
    return server, printed


def test_shell_blocks_run_as_written(tmp_path: Path) -> None:
    for tool in ("bash", "make"):
        assert shutil.which(tool), f"{tool} is needed to run the README's commands"
    env = first_time_user_env(tmp_path / "config")
    assert shutil.which("switchboard", path=env["PATH"]) is None  # it takes the activation line to find it
    unique = list(dict.fromkeys(block for _, block in blocks("sh")))
    assert any(starts_server(block) for block in unique) and any("make demo" in block for block in unique)
    servers: list[tuple[subprocess.Popen[str], Path]] = []
    printed = ""
    try:
        for index, block in enumerate(unique):
            if starts_server(block):
                log = tmp_path / f"server-{index}.log"
                server, lines = start_server(block, env, log)
                servers.append((server, log))
                printed += "".join(lines)
                continue
            done = subprocess.run(
                ["bash", "-e", "-c", as_run(block)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
            assert done.returncode == 0, (
                f"{block}\nexited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr}"
            )
            assert "Traceback" not in done.stderr, done.stderr
            printed += done.stdout
    finally:
        for server, _ in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGINT)
            server.wait(15)
    for server, log in servers:
        assert server.returncode == 0, log.read_text()
        assert "Traceback" not in log.read_text()

    # what the reader is told they will see
    assert "segments follow the policies" in printed  # make demo: the verdict
    assert "pytest" in printed and "mypy" in printed  # make test's plan
    assert f"127.0.0.1:{env['SWITCHBOARD_PORT']}" in printed  # serve: where it listens
    stored = json.loads((tmp_path / "config" / "switchboard" / "dev-keys.json").read_text())
    assert f"export SWITCHBOARD_API_KEY={stored['api_key']}" in printed
    tokens = re.findall(r"^eyJ[\w-]+\.[\w-]+\.[\w-]+$", printed, flags=re.M)
    assert tokens, f"no token printed:\n{printed[-2000:]}"
    claims = jwt.decode(tokens[0], stored["api_secret"], algorithms=["HS256"])  # signed with serve's pair
    assert claims["user_id"] == "alice"
    assert "usage: switchboard" in printed and "serve" in printed  # switchboard --help
