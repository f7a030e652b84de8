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
import contextlib
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


def voice_wav(path: Path, seconds: float = 20.0, seed: int = 11) -> Path:
    """Speech-like audio, not a tone: a harmonic voice whose pitch wanders (100-220 Hz) in syllables of
    random length (120-320 ms) separated by random pauses, with a little breath noise.

    Nothing in it repeats: a signal with a fixed syllable rate or pitch cycle correlates with itself
    at lags of a few hundred ms, where an echo canceller searches for the echo's delay, and makes
    it lock on the wrong one (the delay estimator sees several equally good candidates).
    """
    rate = 48000
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    envelope = np.zeros(n)
    pitch = np.full(n, 150.0)
    at = 0
    while at < n:
        length = int(rate * rng.uniform(0.12, 0.32))
        end = min(at + length, n)
        envelope[at:end] = np.sin(np.linspace(0, np.pi, end - at)) ** 0.5
        pitch[at:end] = np.linspace(rng.uniform(100, 220), rng.uniform(100, 220), end - at)
        at = end + int(rate * rng.choice([rng.uniform(0.03, 0.12), rng.uniform(0.2, 0.6)], p=[0.75, 0.25]))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) + 0.3 * rng.standard_normal(n)
    pcm = (x / np.max(np.abs(x)) * 0.4 * envelope * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


async def echo_level(
    server: EmbeddedServer, wav: Path, processing: bool, room: str
) -> tuple[float, dict[str, object]]:
    def client(user: str, **options: object) -> VideoClient:
        return VideoClient(
            server.api_key,
            user=User.regular(user),
            user_token=server.create_token(user),
            options=ClientOptions(base_url=server.url, **options),  # type: ignore[arg-type]
        )

    far_ears = CaptureSpeaker()
    far = client("far", microphone=FileMicrophone(wav), speaker=far_ears)
    mic, speaker = DeviceMicrophone("pulse"), DeviceSpeaker("pulse")
    near = client("near", microphone=mic, speaker=speaker)
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
        devices: dict[str, object] = {
            "mic_resyncs": mic.resyncs,
            "mic_silent_frames": mic.silent_frames,
            "speaker_resyncs": speaker.resyncs,
            "speaker_underruns": speaker.underruns,
            "xruns": mic.xruns + speaker.xruns,
            "delay_ms": round(mic.input_delay_ms + speaker.output_delay_ms, 1),
        }
        return level_dbfs(far_ears.samples(MEASURE_S)), devices
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
        off, _ = await echo_level(server, wav, processing=False, room="echo-off")
        on, devices = await echo_level(server, wav, processing=True, room="echo-on")
    return {
        "echo_off_dbfs": round(off, 1),
        "echo_on_dbfs": round(on, 1),
        "reduction_db": round(off - on, 1),
        "near_devices": devices,
    }


#: the scheduling priority asked for (``nice``), as an audio daemon does: the echo path's timing is
#: what is measured, not how the machine shares its cores with other work
AUDIO_NICE = -10


def raise_priority() -> int:
    """Ask for :data:`AUDIO_NICE` (needs root or CAP_SYS_NICE); the niceness in effect."""
    with contextlib.suppress(PermissionError):
        os.nice(AUDIO_NICE - os.nice(0))
    return os.nice(0)


def main() -> None:
    root = Path(sys.argv[1])
    niceness = raise_priority()  # before PulseAudio starts: the daemon inherits it
    pulse = Pulse(root / "pulse")
    os.environ.update(pulse.env)
    pulse.start()
    try:
        print(json.dumps({**asyncio.run(scenario(pulse, root)), "nice": niceness}), flush=True)
    except Exception:
        print(traceback.format_exc(), flush=True)
        raise SystemExit(1) from None
    finally:
        pulse.stop()


if __name__ == "__main__":
    main()
