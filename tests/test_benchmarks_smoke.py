"""The benchmarks (``make bench``) must not rot: import them all, check the switch analysis on a
synthetic speaker timeline, and run one tiny real measurement (one join against bare aiortc)."""

from __future__ import annotations

import importlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.audio_format import FloatArray
from switchboard.media.playout import SpeakerSource


class _Script(SpeakerSource):
    """Plays the frames it is given, one per tick."""

    def __init__(self) -> None:
        self.next: FloatArray | None = None

    def pull(self, n: int = 960) -> FloatArray | None:
        return self.next


MODULES = [
    "benchmarks",
    "benchmarks.__main__",
    "benchmarks.common",
    "benchmarks.server",
    "benchmarks.bots",
    "benchmarks.p2p_peer",
    "benchmarks.loadgen",
    "benchmarks.join",
    "benchmarks.switch",
    "benchmarks.held",
    "benchmarks.whisper",
    "benchmarks.held_client",
    "benchmarks.sfu",
    "benchmarks.lossy_path",
    "benchmarks.loss",
    "benchmarks.loss_peer",
    "benchmarks.browser",
    "benchmarks.rings",
    "benchmarks.coordinators",
    "benchmarks.flood",
]


@pytest.mark.parametrize("name", MODULES)
def test_imports(name: str) -> None:
    importlib.import_module(name)


def test_switch_analysis_reads_the_speaker_timeline() -> None:
    from benchmarks.switch import analyse_switch

    speaker = CaptureSpeaker(max_seconds=5.0)
    script = _Script()
    speaker.add_source(script)
    old, new, stale = ToneMicrophone(400.0), ToneMicrophone(1400.0), ToneMicrophone(2000.0)
    t = 100.0
    # 10 frames of the old room, the switch returns 5 ms into frame 10, which still plays the old
    # room; then 2 frames of silence, 2 frames of stale audio of the new room, then its live tone.
    plan = ["old"] * 11 + ["-"] * 2 + ["stale"] * 2 + ["new"] * 10
    for k, what in enumerate(plan):
        source = {"old": old, "new": new, "stale": stale}.get(what)
        script.next = source.read_frame()[0] if source else np.zeros(960, dtype=np.float32)
        speaker.tick(t + 0.02 * k)  # driven by hand: frame k is stamped t + 20 ms * k
    t_call, t_ret = t + 0.02 * 10 + 0.001, t + 0.02 * 10 + 0.005
    sample = analyse_switch(speaker, t_call, t_ret, t + 0.02 * len(plan), (400.0,), 1400.0, 2000.0)
    assert sample.pre_ok
    assert sample.silence_ms == pytest.approx(15.0)  # frame 11 starts 15 ms after the return
    assert sample.any_audio_ms == pytest.approx(55.0)  # the stale frames (13, 14)
    assert sample.audible_ms == pytest.approx(95.0)  # the live tone (frame 15)
    assert sample.stale_ms == 40.0
    assert sample.dropouts == 0


def test_machine_probes() -> None:
    from benchmarks.common import machine_info, proc_cpu_seconds, self_cpu_seconds, udp_counters
    from benchmarks.loadgen import tone_payloads

    assert machine_info()["aiortc"] == "1.16.0"
    assert proc_cpu_seconds(os.getpid()) > 0 and self_cpu_seconds() > 0
    assert "RcvbufErrors" in udp_counters()
    assert len(tone_payloads(frames=3)) == 3


async def test_one_join_against_bare_aiortc(tmp_path: Path) -> None:
    from benchmarks import join
    from benchmarks.__main__ import print_report, to_json

    result = await join.run(tmp_path, runs=1)
    values = {m.key: m.value for m in result.metrics}
    for key in ("join_ratio_vs_aiortc", "join_ms_p50", "aiortc_p2p_ms_p50"):
        value = values[key]
        assert value is not None and math.isfinite(value) and value > 0, (key, value)
    assert result.details["sdk_milestones_ms_p50"]["join_returned"] > 0
    data = to_json([result], quick=True, wall_s=1.0, log_dir=tmp_path)
    assert data["join_ratio_vs_aiortc"]["budget"] == {"op": "<=", "limit": 1.5}
    json.dumps(data)
    print_report([result], 1.0, quick=True)
