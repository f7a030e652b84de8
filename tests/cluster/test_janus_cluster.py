"""``switchboard cluster --engine janus``: SFU nodes running Janus register, take calls and carry
audio. Runs ``tests/cluster/janus_cluster_only.py`` in a private network namespace with a
non-loopback address (``tests/test_janus_engine.py`` explains why and what it needs: required under
``CI=true``, a skip with the reason elsewhere)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from tests.test_janus_engine import ADDRESS, NAMESPACE_SETUP, REPO, require_janus_namespace


def test_a_cluster_of_janus_nodes_serves_a_call() -> None:
    require_janus_namespace()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command.append("tests/cluster/janus_cluster_only.py")
    env = {
        k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    }
    env["SWITCHBOARD_TEST_HOST"] = ADDRESS
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", NAMESPACE_SETUP + "exec " + shlex.join(command)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout.strip().splitlines()[-1], result.stdout[-2000:]
