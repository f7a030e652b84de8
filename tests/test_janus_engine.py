"""The media and multicall integration tests, run again with Janus as the media engine.

Janus never offers loopback addresses and aioice skips them, so each file runs in a private network
namespace that has loopback and a veth pair carrying 10.213.0.1 (nothing leaves the namespace): a
child pytest there runs the file with ``SWITCHBOARD_TEST_ENGINE=janus`` and
``SWITCHBOARD_TEST_HOST=10.213.0.1``, which the ``server`` fixture of ``tests/conftest.py`` follows.
Clients, the server and Janus all run inside the namespace. Needs Linux, root (``unshare -n``),
``ip`` and Debian's ``janus``: required under ``CI=true``, a skip (with the reason) elsewhere.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ADDRESS = "10.213.0.1"
NAMESPACE_SETUP = (
    "set -e; ip link set lo up; "
    "ip link add sbj0 type veth peer name sbj1; "
    f"ip addr add {ADDRESS}/24 dev sbj0; "
    "ip link set sbj0 up; ip link set sbj1 up; "
)

#: tests that read the embedded SFU's in-process state (``server.sfu``), which has no Janus twin;
#: what they check for clients is covered by the other tests of the same file
EMBEDDED_INTERNALS = [
    "tests/integration/test_media.py::test_three_clients_each_hear_the_other_two_and_not_themselves",
    "tests/integration/test_media.py::test_livestream_viewer_cannot_publish",
    "tests/integration/test_media.py::test_forged_and_expired_sfu_tokens_are_refused",
    "tests/integration/test_media.py::test_sfu_socket_drop_resumes_the_same_session",
    "tests/integration/test_multicall.py::test_suspended_calls_do_no_audio_work",
]


def require_janus_namespace() -> None:
    missing = [tool for tool in ("unshare", "ip", "janus") if shutil.which(tool) is None]
    if missing:
        why = f"missing {missing} (janus: scripts/install-system-deps.sh)"
    else:
        probe = subprocess.run(["unshare", "-n", "sh", "-c", NAMESPACE_SETUP], capture_output=True, text=True)
        if probe.returncode == 0:
            return
        why = probe.stderr.strip()
    message = f"the janus engine tests need Janus and a private network namespace (root): {why}"
    if os.environ.get("CI") == "true":
        raise RuntimeError(message)
    pytest.skip(message)


def run_in_namespace(test_file: str, *pytest_args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command += [test_file, *pytest_args]
    for nodeid in EMBEDDED_INTERNALS:
        if nodeid.startswith(test_file):
            command += ["--deselect", nodeid]
    env = {
        k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    }
    env.update(SWITCHBOARD_TEST_ENGINE="janus", SWITCHBOARD_TEST_HOST=ADDRESS)
    script = NAMESPACE_SETUP + "exec " + shlex.join(command)
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )


#: each file and how many of its tests must pass through Janus (all of them but EMBEDDED_INTERNALS)
FILES = {
    "tests/integration/test_active_speaker.py": 1,
    "tests/integration/test_custom_events.py": 5,
    "tests/integration/test_engines.py": 5,
    "tests/integration/test_focus_beyond.py": 15,
    "tests/integration/test_live_grants.py": 3,
    "tests/integration/test_media.py": 11,
    "tests/integration/test_moderation.py": 3,
    "tests/integration/test_multicall.py": 13,
    "tests/integration/test_recording.py": 2,
    "tests/janus_only.py": 2,
}


@pytest.mark.parametrize("test_file", sorted(FILES))
def test_integration_tests_pass_with_the_janus_engine(test_file: str) -> None:
    require_janus_namespace()
    result = run_in_namespace(test_file)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= FILES[test_file], summary
    assert not re.search(r"failed|error|skipped", summary), summary
