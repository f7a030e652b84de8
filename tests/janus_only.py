"""Janus-only behaviour, run by ``tests/test_janus_engine.py`` inside its network namespace.

Not collected by the normal suite (the file name does not start with ``test_``): it needs
``SWITCHBOARD_TEST_ENGINE=janus`` and fails loudly without it.
"""

from __future__ import annotations

import os
import signal

from switchboard import CallConnectOptions, CallStatus, TrackOption
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.server import EmbeddedServer
from tests.conftest import TEST_ENGINE, ClientFactory, wait_heard

TONES = {"ann": 440.0, "ben": 660.0}
AUDIO_ONLY = CallConnectOptions(camera=TrackOption.disabled())


def test_runs_with_the_janus_engine() -> None:
    assert TEST_ENGINE == "janus", "run through tests/test_janus_engine.py"


async def test_janus_dying_ends_every_session_visibly(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    assert server.janus_pid is not None
    clients = {
        u: await make_client(u, microphone=ToneMicrophone(hz), speaker=CaptureSpeaker())
        for u, hz in TONES.items()
    }
    calls = {u: c.make_call("default", "crash") for u, c in clients.items()}
    for call in calls.values():
        await call.join(AUDIO_ONLY)
    await wait_heard(clients["ann"], TONES, audible={"ben"})
    os.kill(server.janus_pid, signal.SIGKILL)
    for call in calls.values():
        await call.state.wait_for(lambda s: s.status is not CallStatus.JOINED, timeout=10)
    stats = server.janus_sfu.stats()
    assert stats["participants"] == 0
