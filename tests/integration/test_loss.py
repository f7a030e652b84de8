"""Audio under loss on a real lossy path (network namespaces, random UDP drops both ways).

Two participants in two processes, the server beside one of them; 20 % of the UDP datagrams on the
other's path to the SFU are dropped in each direction. What each one hears is analysed frame by frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from benchmarks.loss import measure
from benchmarks.lossy_path import LossyPathUnavailable, check_available

LOSS_PERCENT = 20.0
SECONDS = 6.0


@pytest.fixture
def lossy_path_available() -> None:
    try:
        check_available()
    except LossyPathUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the lossy path is required under CI: {exc}")
        pytest.skip(str(exc))


@pytest.mark.timeout(240)
async def test_concealment_makes_a_lossy_path_sound_whole(lossy_path_available: None, tmp_path: Path) -> None:
    with_resilience = await measure(tmp_path, LOSS_PERCENT, resilience=True, seconds=SECONDS)
    without = await measure(tmp_path, LOSS_PERCENT, resilience=False, seconds=SECONDS)
    for direction in ("uplink", "downlink"):
        on, off = with_resilience[direction], without[direction]
        # The path really loses packets: without resilience the losses are heard as gaps ...
        assert off["share_within_3db"] < 0.9, (direction, off)
        assert off["jitter_buffer"]["concealed"] == 0
        # ... and with it they are concealed: clearly better. (How close to whole it gets depends on
        # jitter, i.e. on how loaded the machine is: that figure belongs to the benchmark.)
        assert on["jitter_buffer"]["concealed"] + on["jitter_buffer"]["recovered"] > 0, (direction, on)
        assert on["share_within_3db"] >= off["share_within_3db"] + 0.1, (direction, on, off)
