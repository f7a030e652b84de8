"""``python -m tests.echo_scenario DIR``: a real echo path, measured from the far end.

A private PulseAudio: the near end's ``DeviceSpeaker`` plays into null sink ``room``;
``module-loopback`` feeds ``room.monitor`` into null sink ``air`` (the acoustic path, with delay);
the near end's ``DeviceMicrophone`` records ``air.monitor``. The far end talks (voice-like audio from
a WAV file) and listens: what comes back is its own voice, echoed by the near end. Run once with the
near end's voice processing on (``broadcaster()``) and once off; prints one JSON line with the level
(dBFS RMS) of the returned echo in each case. Used by ``tests/integration/test_devices.py``; run it
by hand with ``python -m tests.echo_scenario DIR``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
import wave
from pathlib import Path

import numpy as np

from switchboard import (
    AudioConfigurationPolicy,
    CallConnectOptions,
    CallPreferences,
    ClientOptions,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.media import CaptureSpeaker, DeviceMicrophone, DeviceSpeaker, FileMicrophone
from switchboard.media.analysis import level_dbfs
from switchboard.server import EmbeddedServer
from tests.pulse import Pulse

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
WARMUP_S = 6.0  # the echo canceller converges
MEASURE_S = 4.0


def voice_wav(path: Path, seconds: float = 20.0) -> Path:
    """A gliding harmonic complex with a syllable-rate envelope and pauses: speech-like, not a tone."""
    t = np.arange(int(48000 * seconds)) / 48000
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / 48000
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.5)
    pcm = (x / np.max(np.abs(x)) * 0.4 * envelope * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(pcm.tobytes())
    return path


async def echo_level(server: EmbeddedServer, wav: Path, processing: bool, room: str) -> float:
    def client(user: str, **options: object) -> VideoClient:
        return VideoClient(
            server.api_key,
            user=User.regular(user),
            user_token=server.create_token(user),
            options=ClientOptions(base_url=server.url, **options),  # type: ignore[arg-type]
        )

    far_ears = CaptureSpeaker()
    far = client("far", microphone=FileMicrophone(wav), speaker=far_ears)
    near = client("near", microphone=DeviceMicrophone("pulse"), speaker=DeviceSpeaker("pulse"))
    policy = (
        AudioConfigurationPolicy.broadcaster()
        if processing
        else AudioConfigurationPolicy.custom(voice_processing=False)
    )
    await far.connect()
    await near.connect()
    try:
        for c, preferences in ((far, None), (near, CallPreferences(audio_configuration_policy=policy))):
            call = c.make_call("default", room, preferences=preferences)
            await call.get_or_create()
            await call.join(MIC_ON)
        await asyncio.sleep(WARMUP_S + MEASURE_S)
        return level_dbfs(far_ears.samples(MEASURE_S))
    finally:
        await near.disconnect()
        await far.disconnect()


async def scenario(pulse: Pulse, root: Path) -> dict[str, object]:
    pulse.null_sink("room")
    pulse.null_sink("air")
    pulse.pactl("load-module", "module-loopback", "source=room.monitor", "sink=air", "latency_msec=40")
    pulse.pactl("set-default-sink", "room")
    pulse.pactl("set-default-source", "air.monitor")
    wav = voice_wav(root / "voice.wav")
    async with EmbeddedServer() as server:
        off = await echo_level(server, wav, processing=False, room="echo-off")
        on = await echo_level(server, wav, processing=True, room="echo-on")
    return {"echo_off_dbfs": round(off, 1), "echo_on_dbfs": round(on, 1), "reduction_db": round(off - on, 1)}


def main() -> None:
    root = Path(sys.argv[1])
    pulse = Pulse(root / "pulse")
    os.environ.update(pulse.env)
    pulse.start()
    try:
        print(json.dumps(asyncio.run(scenario(pulse, root))), flush=True)
    except Exception:
        print(traceback.format_exc(), flush=True)
        raise SystemExit(1) from None
    finally:
        pulse.stop()


if __name__ == "__main__":
    main()
