"""Recording with real clients: the files decode to the tones that were sent, for their duration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from switchboard import CallConnectOptions, TrackOption
from switchboard.errors import CallStateError, PermissionDeniedError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_levels_dbfs
from switchboard.protocol import coordinator as m
from switchboard.server import EmbeddedServer
from switchboard.server.sfu import SfuConfig
from switchboard.server.sfu.recording import decode_ogg
from tests.conftest import TEST_ENGINE, TEST_HOST, ClientFactory, wait_heard

TONES = {"alice": 440.0, "bob": 660.0}
NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())
RECORD_SECONDS = 2.0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    config = SfuConfig(api_secret="", recordings_dir=str(tmp_path))
    # the engine under test (tests/test_janus_engine.py runs this file with Janus too)
    async with EmbeddedServer(host=TEST_HOST, engine=TEST_ENGINE, sfu_config=config) as srv:
        yield srv


def levels(samples: np.ndarray) -> dict[str, float]:
    return dict(zip(TONES, tone_levels_dbfs(samples, list(TONES.values())), strict=True))


async def test_recording_files_decode_to_the_tones_sent_for_their_duration(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    clients = {
        u: await make_client(u, microphone=ToneMicrophone(hz), speaker=CaptureSpeaker())
        for u, hz in TONES.items()
    }
    alice, bob = (clients[u].make_call("default", "recorded") for u in TONES)
    await alice.get_or_create(members=["bob"])
    with pytest.raises(CallStateError, match="join before recording"):
        await alice.start_recording()
    await alice.join(NO_CAMERA)
    await bob.join(NO_CAMERA)
    await wait_heard(clients["alice"], TONES, audible={"bob"})
    with pytest.raises(PermissionDeniedError, match="update-call"):
        await bob.start_recording()  # a plain member may not record

    events: list[m.Event] = []
    bob.on("call.recording_stopped", events.append)
    started = await alice.start_recording()
    assert started.stopped_at is None and started.files == []
    with pytest.raises(CallStateError, match="already"):
        await alice.start_recording()
    await asyncio.sleep(RECORD_SECONDS)
    recording = await alice.stop_recording()
    with pytest.raises(CallStateError, match="not being recorded"):
        await alice.stop_recording()

    assert recording.recording_id == started.recording_id and recording.stopped_at is not None
    by_user = {f.user_id: f for f in recording.files if not f.mixed}
    (mixed,) = [f for f in recording.files if f.mixed]
    assert set(by_user) == set(TONES)
    for user, file in by_user.items():
        assert user is not None
        assert tmp_path in Path(file.path).parents
        samples = decode_ogg(file.path)
        seconds = len(samples) / 48000
        # the duration listed is what the file holds, and about as long as the recording ran
        assert abs(file.duration_ms / 1000 - seconds) < 0.05, (file.duration_ms, seconds)
        assert RECORD_SECONDS - 0.4 < seconds < RECORD_SECONDS + 0.4, seconds
        heard = levels(samples[4800:])  # skip the decoder's first 100 ms
        others = set(TONES) - {user}
        assert heard[user] > -20, heard  # the -12 dBFS tone sent (about -15 dBFS RMS)
        assert all(heard[o] < -50 for o in others), heard
    mix = decode_ogg(mixed.path)
    assert RECORD_SECONDS - 0.4 < len(mix) / 48000 < RECORD_SECONDS + 0.4
    assert all(level > -20 for level in levels(mix[4800:]).values()), levels(mix[4800:])

    listed = await bob.list_recordings()
    assert [r.recording_id for r in listed] == [recording.recording_id]
    assert {f.path for f in listed[0].files} == {f.path for f in recording.files}
    await asyncio.sleep(0.2)
    assert events and isinstance(events[0], m.CallRecordingStoppedEvent)
    assert events[0].recording.recording_id == recording.recording_id


async def test_recording_through_an_sfu_in_its_own_process(tmp_path: Path) -> None:
    from switchboard import ClientOptions, User, VideoClient

    config = SfuConfig(api_secret="", recordings_dir=str(tmp_path / "split"))
    async with EmbeddedServer(
        sfu_process=True, host=TEST_HOST, engine=TEST_ENGINE, sfu_config=config
    ) as split:
        client = VideoClient(
            split.api_key,
            user=User.regular("alice"),
            user_token=split.create_token("alice"),
            options=ClientOptions(
                base_url=split.url, microphone=ToneMicrophone(440.0), speaker=CaptureSpeaker()
            ),
        )
        await client.connect()
        try:
            call = client.make_call("default", "split-recorded")
            await call.get_or_create()
            await call.join(NO_CAMERA)
            await call.start_recording()
            with pytest.raises(CallStateError, match="already"):
                await call.start_recording()  # the SFU process's refusal keeps its kind
            await asyncio.sleep(1.0)
            recording = await call.stop_recording()
        finally:
            await client.disconnect()
    (own,) = [f for f in recording.files if f.user_id == "alice"]
    samples = decode_ogg(own.path)
    assert 0.6 < len(samples) / 48000 < 1.4
    assert levels(samples[4800:])["alice"] > -20
