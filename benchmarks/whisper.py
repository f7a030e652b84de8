"""Whisper switch latency (SPEC §2.8): how long after ``set_microphone_audience`` the change is heard.

One embedded server in this process; a supervisor, an agent and a customer in one call, each speaking
its own tone. Each round: the supervisor whispers to the agent (``set_microphone_audience(["agent"])``)
and we time, from the call, until the customer's speaker plays the supervisor's tone below -60 dBFS
for 5 frames in a row (the first of them counts: "whisper on"); then barge in (audience None) and time
until it is above -40 dBFS again ("whisper off"). Frames are 20 ms, so the resolution is 20 ms.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks.common import BenchResult, median, percentile
from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_level_dbfs
from switchboard.media.audio_format import FloatArray
from switchboard.server import EmbeddedServer

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
TONES = {"supervisor": 1200.0, "agent": 400.0, "customer": 700.0}
RUN_FRAMES = 5


class FrameMeter:
    """The supervisor's tone level at one speaker, per 20 ms frame, stamped with loop time."""

    def __init__(self, speaker: CaptureSpeaker, hz: float) -> None:
        self.hz = hz
        self.frames: list[tuple[float, float]] = []
        speaker.on_tick.append(self._tick)

    def _tick(self, t: float, frame: FloatArray) -> None:
        self.frames.append((t, tone_level_dbfs(frame, self.hz)))

    async def first_run(self, since: float, *, audible: bool, timeout: float = 5.0) -> float:  # noqa: ASYNC109
        """Seconds from ``since`` to the first of RUN_FRAMES frames in a row in the wanted state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            run: list[float] = []
            for t, level in self.frames:
                if t < since:
                    continue
                if (level > -40.0) if audible else (level < -60.0):
                    run.append(t)
                    if len(run) >= RUN_FRAMES:
                        return run[0] - since
                else:
                    run = []
        raise RuntimeError(f"the customer never {'heard' if audible else 'stopped hearing'} the supervisor")


async def run(log_dir: Path, rounds: int = 10) -> BenchResult:
    del log_dir  # nothing to log: one process
    result = BenchResult("whisper")
    on_ms: list[float] = []
    off_ms: list[float] = []
    async with EmbeddedServer() as server:
        clients: dict[str, VideoClient] = {}
        try:
            for name, hz in TONES.items():
                client = VideoClient(
                    server.api_key,
                    user=User.regular(name),
                    user_token=server.create_token(name),
                    options=ClientOptions(
                        base_url=server.url,
                        microphone=ToneMicrophone(hz),
                        speaker=CaptureSpeaker(max_seconds=5.0),
                    ),
                )
                await client.connect()
                clients[name] = client
                await client.make_call("default", "bench-whisper").join(MIC_ON)
            meter = FrameMeter(clients["customer"].capture_speaker, TONES["supervisor"])
            loop = asyncio.get_running_loop()
            sup_call = clients["supervisor"].make_call("default", "bench-whisper")
            await meter.first_run(loop.time(), audible=True, timeout=10.0)
            for _ in range(rounds):
                t0 = loop.time()
                await sup_call.set_microphone_audience(["agent"])
                on_ms.append(1000.0 * await meter.first_run(t0, audible=False))
                await asyncio.sleep(0.3)
                t0 = loop.time()
                await sup_call.set_microphone_audience(None)
                off_ms.append(1000.0 * await meter.first_run(t0, audible=True))
                await asyncio.sleep(0.3)
        finally:
            for client in clients.values():
                await client.disconnect()
    result.add("whisper_on_ms_p50", median(on_ms), "ms", "audience set -> the customer stops hearing (p50)")
    result.add(
        "whisper_on_ms_p95", percentile(on_ms, 95), "ms", "audience set -> the customer stops hearing (p95)"
    )
    result.add("whisper_off_ms_p50", median(off_ms), "ms", "audience None -> the customer hears again (p50)")
    result.add(
        "whisper_off_ms_p95", percentile(off_ms, 95), "ms", "audience None -> the customer hears again (p95)"
    )
    result.details = {
        "rounds": rounds,
        "on_ms": [round(x, 1) for x in on_ms],
        "off_ms": [round(x, 1) for x in off_ms],
    }
    return result
