"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run(program: str) -> str:
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_first_example_is_a_complete_program() -> None:
    out = run(python_blocks()[0])
    assert "default:standup" in out


def test_multicall_snippet_runs_against_an_embedded_server() -> None:
    snippet = python_blocks()[1]
    program = (
        "import asyncio\n"
        "from switchboard import *\n"
        "from switchboard.server import EmbeddedServer\n"
        "async def main():\n"
        "    async with EmbeddedServer() as server:\n"
        + textwrap.indent(snippet, " " * 8)
        + "        await me.disconnect()\n"
        "asyncio.run(main())\n"
    )
    assert run(program).strip().splitlines()[-1] == "[True, False]"
