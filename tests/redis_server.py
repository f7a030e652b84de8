"""A private redis-server for tests: started on a unix socket in a temporary directory, stopped after.

Under ``CI=true`` a missing ``redis-server`` is a failure (``scripts/install-system-deps.sh``
installs it); elsewhere the tests that need it are skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed (run scripts/install-system-deps.sh as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def redis_server() -> Iterator[str]:
    """Run redis-server without persistence on a unix socket; yields its ``unix://`` URL."""
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="sb-redis-") as tmp:
        sock = Path(tmp) / "redis.sock"
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start (exit {proc.poll()})")
                time.sleep(0.02)
            yield f"unix://{sock}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
