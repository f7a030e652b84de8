"""Helper process for the audio-under-loss benchmark and test, run inside a :mod:`benchmarks.lossy_path`
namespace.

Config: ``{"role": "core" | "edge", "host": ADDRESS, "server": ServerInfo (edge only), "room": ...,
"user": ..., "send_hz": ..., "listen_hz": ..., "seconds": ..., "resilience": true | false}``.

* ``core`` starts the whole server (``EmbeddedServer`` on ``host``) and prints ``{"server": ...}``,
  then joins as a participant with a clean path to the SFU (same namespace).
* ``edge`` joins as the participant behind the lossy path.

Either one sends a steady tone at ``send_hz``, prints ``{"joined": true}`` once in the call and waits
for the parent's ``measure`` command (the parent turns the loss on in between), then listens for
``listen_hz``: once the other side's tone is audible it records ``seconds`` of what its speaker
played and prints ``{"result": ...}``: the share of 20 ms frames within 3 dB of the tone's level,
and its jitter buffer's counts. It then
stays in the call until its stdin closes. ``resilience`` false turns in-band FEC and loss
concealment off in both directions of this participant (the comparison run).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import numpy as np

from benchmarks.common import Json, ServerInfo, commands, emit, make_client, run_child, wait_audible
from switchboard import (
    AudioConfigurationPolicy,
    Call,
    CallConnectOptions,
    CallPreferences,
    TrackOption,
)
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import frame_tone_levels, share_of_frames_at_level
from switchboard.server import EmbeddedServer

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
TONE_PEAK_DBFS = -12.0
#: RMS level of that sine: what a frame carrying the tone intact reads
TONE_RMS_DBFS = TONE_PEAK_DBFS - 3.01
TOLERANCE_DB = 3.0


def policy(resilience: bool) -> AudioConfigurationPolicy:
    if resilience:
        return AudioConfigurationPolicy.broadcaster()
    return AudioConfigurationPolicy.custom(name="no-resilience", opus_fec=False, loss_concealment=False)


def _jitter_stats(call: Call) -> Json:
    adm = call.audio_device_module
    totals: Json = {}
    for remote in adm.remotes.values() if adm is not None else ():
        for key, value in asdict(remote.buffer.stats).items():
            totals[key] = totals.get(key, 0) + value
    return totals


async def _listen(call: Call, speaker: CaptureSpeaker, hz: float, seconds: float) -> Json:
    if not await wait_audible(speaker, hz, timeout=30.0):
        raise RuntimeError(f"the other side's {hz:g} Hz tone never became audible")
    before = _jitter_stats(call)
    start = speaker.total_samples
    await asyncio.sleep(seconds)
    samples = speaker.samples_range(start, start + round(seconds * 48000))
    after = _jitter_stats(call)
    levels = frame_tone_levels(samples, hz)
    return {
        "frames": int(levels.size),
        "share_within_3db": round(share_of_frames_at_level(samples, hz, TONE_RMS_DBFS, TOLERANCE_DB), 4),
        "median_level_dbfs": round(float(np.median(levels)), 2) if levels.size else None,
        "jitter_buffer": {key: after.get(key, 0) - before.get(key, 0) for key in after},
    }


async def _participate(server: ServerInfo, config: Json) -> None:
    speaker = CaptureSpeaker(max_seconds=float(config["seconds"]) + 40.0)
    client = make_client(
        server,
        str(config["user"]),
        microphone=ToneMicrophone(float(config["send_hz"]), TONE_PEAK_DBFS),
        speaker=speaker,
    )
    await client.connect()
    try:
        call = client.make_call(
            "default",
            str(config["room"]),
            preferences=CallPreferences(audio_configuration_policy=policy(bool(config["resilience"]))),
        )
        await call.get_or_create()
        await call.join(MIC_ON)
        # the parent turns the loss on once both peers are in the call, then says "measure"
        emit({"joined": True})
        parent = commands()
        await anext(parent)
        emit({"result": await _listen(call, speaker, float(config["listen_hz"]), float(config["seconds"]))})
        async for _ in parent:  # stay in the call until the parent closes our stdin
            pass
    finally:
        await client.disconnect()


async def main(config: Json) -> None:
    if config["role"] == "edge":
        await _participate(ServerInfo.from_json(config["server"]), config)
        return
    async with EmbeddedServer(host=str(config["host"])) as server:
        info = ServerInfo(server.url, server.api_key, server.api_secret, server.sfu_url, 0)
        emit({"server": info.to_json()})
        await _participate(info, config)


if __name__ == "__main__":
    run_child(main)
