"""``switchboard demo`` keeps all its media on loopback, checked on the wire in a network namespace.

The demo runs in a fresh network namespace of its own that has loopback *and* a veth pair with
addresses 10.9.9.9 / 10.9.9.10, which stock aioice would gather and use. Every UDP datagram in
the namespace is captured (``tests.packet_capture``): the demo's calls must all be on loopback.
Needs Linux, root (``unshare -n``, a raw socket) and ``ip``: required in CI, a skip elsewhere.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

NAMESPACE_SETUP = (
    "set -e; ip link set lo up; "
    "ip link add sb0 type veth peer name sb1; "
    "ip addr add 10.9.9.9/24 dev sb0; ip addr add 10.9.9.10/24 dev sb1; "
    "ip link set sb0 up; ip link set sb1 up; "
)


def require_namespaces() -> None:
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        why = f"missing {missing}"
    else:
        probe = subprocess.run(["unshare", "-n", "sh", "-c", NAMESPACE_SETUP], capture_output=True, text=True)
        if probe.returncode == 0:
            return
        why = probe.stderr.strip()
    message = f"a private network namespace with a veth pair is needed (Linux, root, unshare, ip): {why}"
    if os.environ.get("CI") == "true":
        raise RuntimeError(message)
    pytest.skip(message)


def test_the_demo_sends_every_media_packet_over_loopback() -> None:
    require_namespaces()
    command = [sys.executable, "-m", "tests.packet_capture", sys.executable, "-m", "switchboard.cli", "demo"]
    script = NAMESPACE_SETUP + "exec " + shlex.join(command)
    env = {
        k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    capture = json.loads(result.stdout.strip().splitlines()[-1])
    assert capture["exit"] == 0, result.stderr[-3000:]
    assert "segments follow the policies" in result.stderr
    # A non-loopback address was there to be used (stock ICE gathers it)...
    assert "10.9.9.9" in capture["stock_host_addresses"], capture
    # ...the demo's calls really flowed (tens of seconds of audio, thousands of datagrams)...
    assert capture["udp"] > 2000, capture
    # ...and not one datagram had an address outside loopback.
    assert capture["non_loopback"] == 0, capture["non_loopback_pairs"]
