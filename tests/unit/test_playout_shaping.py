"""ShapedSource: per-call gain and constant-power pan (pure logic on small arrays)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from switchboard.errors import InvalidRequestError
from switchboard.media.audio_format import FloatArray
from switchboard.media.playout import SpeakerSource
from switchboard.media.playout_shaping import ShapedSource, check_gain_db, check_pan, db_to_gain, pan_gains


class _Ones(SpeakerSource):
    def __init__(self, channels: int = 1) -> None:
        self.channels = channels

    def pull(self, n: int = 960) -> FloatArray | None:
        shape = (n,) if self.channels == 1 else (self.channels, n)
        return np.ones(shape, dtype=np.float32)


class _Nothing(SpeakerSource):
    def pull(self, n: int = 960) -> FloatArray | None:
        return None


@pytest.mark.parametrize("pan", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_pan_law_keeps_power_and_unity_at_the_centre(pan: float) -> None:
    left, right = pan_gains(pan)
    assert left**2 + right**2 == pytest.approx(2.0)
    if pan == 0.0:
        assert (left, right) == pytest.approx((1.0, 1.0))


def test_shaped_source_gain_and_pan() -> None:
    src = ShapedSource(_Ones(), gain=db_to_gain(-6.0))
    out = src.pull(4)
    assert out is not None and out.shape == (4,) and src.channels == 1
    assert float(out[0]) == pytest.approx(10 ** (-6 / 20), rel=1e-5)
    src.pan = -1.0
    out = src.pull(4)
    assert out is not None and out.shape == (2, 4) and src.channels == 2
    assert float(out[0, 0]) == pytest.approx(math.sqrt(2.0) * 10 ** (-6 / 20), rel=1e-5)
    assert float(out[1, 0]) == pytest.approx(0.0, abs=1e-7)
    stereo = ShapedSource(_Ones(2), pan=1.0).pull(4)
    assert stereo is not None and float(stereo[0, 0]) == pytest.approx(0.0, abs=1e-7)
    assert ShapedSource(_Nothing(), pan=0.5).pull(4) is None


@pytest.mark.parametrize("bad", [1.01, -2, float("nan"), True, "0"])
def test_bad_pan_is_refused(bad: object) -> None:
    with pytest.raises(InvalidRequestError):
        check_pan(bad)


@pytest.mark.parametrize("bad", [25.0, -121.0, float("inf"), None])
def test_bad_gain_is_refused(bad: object) -> None:
    with pytest.raises(InvalidRequestError):
        check_gain_db(bad)
