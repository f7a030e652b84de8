from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from switchboard.media.analysis import (
    SILENCE_DBFS,
    dominant_tones,
    first_frame_with_tone,
    frame_levels,
    frame_tone_levels,
    level_dbfs,
    tone_level_dbfs,
    tone_levels_dbfs,
)

SR = 48_000


def sine(hz: float, seconds: float, peak_dbfs: float = -12.0, phase: float = 0.0) -> npt.NDArray[np.float64]:
    n = round(seconds * SR)
    amp = 10.0 ** (peak_dbfs / 20.0)
    return np.asarray(amp * np.sin(2.0 * np.pi * hz * np.arange(n) / SR + phase), dtype=np.float64)


def test_level_of_full_scale_sine_is_minus_3_01() -> None:
    assert level_dbfs(sine(1000, 1.0, 0.0)) == pytest.approx(-3.0103, abs=1e-3)


def test_level_of_minus_12_peak_sine() -> None:
    assert level_dbfs(sine(440, 0.5, -12.0)) == pytest.approx(-15.0103, abs=0.01)


def test_level_of_dc_full_scale_is_zero() -> None:
    assert level_dbfs(np.ones(960)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "samples",
    [np.zeros(960), np.zeros(0), np.full(960, 1e-9), np.zeros((2, 960))],
    ids=["zeros", "empty", "below-floor", "stereo-zeros"],
)
def test_silence_reads_floor(samples: npt.NDArray[np.float64]) -> None:
    assert level_dbfs(samples) == SILENCE_DBFS
    assert tone_level_dbfs(samples, 1000) == SILENCE_DBFS


@pytest.mark.parametrize("hz", [300.0, 440.0, 1000.0, 1234.5, 3150.0, 9000.0])
@pytest.mark.parametrize("seconds", [0.02, 0.1, 1.0])
def test_tone_level_matches_rms_level_for_pure_sine(hz: float, seconds: float) -> None:
    x = sine(hz, seconds, -12.0, phase=0.7)
    assert tone_level_dbfs(x, hz) == pytest.approx(-15.01, abs=0.15)
    assert tone_level_dbfs(x, hz) == pytest.approx(level_dbfs(x), abs=0.15)


def test_tone_level_separates_mixed_tones() -> None:
    x = sine(440, 1.0, -12.0) + sine(1000, 1.0, -30.0) + sine(2500, 1.0, -6.0)
    assert tone_level_dbfs(x, 440) == pytest.approx(-15.01, abs=0.1)
    assert tone_level_dbfs(x, 1000) == pytest.approx(-33.01, abs=0.1)
    assert tone_level_dbfs(x, 2500) == pytest.approx(-9.01, abs=0.1)
    assert tone_level_dbfs(x, 700) < -90.0
    assert tone_levels_dbfs(x, [440, 700]) == [tone_level_dbfs(x, 440), tone_level_dbfs(x, 700)]


def test_tone_level_accepts_channels_first_stereo() -> None:
    mono = sine(1000, 0.2, -12.0)
    stereo = np.stack([mono, mono]).astype(np.float32)
    assert tone_level_dbfs(stereo, 1000) == pytest.approx(-15.01, abs=0.1)
    assert level_dbfs(stereo) == pytest.approx(-15.01, abs=0.01)


def test_tone_level_of_noise_in_band_is_low() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 10 ** (-40 / 20), SR)  # -40 dBFS white noise
    # 20 Hz out of 24 kHz of bandwidth: ~-40 + 10*log10(20/24000) = -70.8 dB
    assert tone_level_dbfs(noise, 1000) == pytest.approx(-70.8, abs=2.0)


def test_dominant_tones_mixed() -> None:
    x = sine(440, 0.5, -12.0) + sine(1000, 0.5, -20.0)
    assert dominant_tones(x, [440, 1000, 2000, 3000]) == {440.0, 1000.0}
    assert dominant_tones(x, [440, 1000], threshold_dbfs=-20.0) == {440.0}


def test_dominant_tones_silence_and_empty() -> None:
    assert dominant_tones(np.zeros(SR), [440, 1000]) == set()
    assert dominant_tones(np.zeros(0), [440]) == set()
    assert dominant_tones(sine(440, 0.1), []) == set()


def test_frame_levels() -> None:
    x = np.concatenate([np.zeros(960 * 3), sine(1000, 0.04, 0.0), np.zeros(500)])
    levels = frame_levels(x)
    assert levels.shape == (5,)  # trailing partial frame ignored
    assert list(levels[:3]) == [SILENCE_DBFS] * 3
    assert levels[3:] == pytest.approx([-3.01, -3.01], abs=0.01)
    assert frame_levels(np.zeros(100)).shape == (0,)
    assert frame_levels(x, frame=480).shape == (11,)


def test_frame_tone_levels_shape_and_values() -> None:
    x = np.concatenate([np.zeros(960 * 2), sine(1000, 0.06, -12.0)])
    lv = frame_tone_levels(x, 1000)
    assert lv.shape == (5,)
    assert lv[0] == SILENCE_DBFS
    assert lv[2:] == pytest.approx([-15.01] * 3, abs=0.1)


def test_first_frame_with_tone() -> None:
    x = np.concatenate([np.zeros(960 * 10), sine(1000, 0.2, -12.0)])
    assert first_frame_with_tone(x, 1000) == 10
    assert first_frame_with_tone(x, 3000) is None
    assert first_frame_with_tone(np.zeros(0), 1000) is None


def test_first_frame_with_tone_mid_frame_onset() -> None:
    x = np.concatenate([np.zeros(960 * 7 + 480), sine(1000, 0.2, -12.0)])
    assert first_frame_with_tone(x, 1000) == 7  # half a frame of tone is well above -40


def test_first_frame_with_tone_ignores_other_tones() -> None:
    x = np.concatenate([sine(3000, 0.2, -6.0), sine(3000, 0.2, -6.0) + sine(600, 0.2, -20.0)])
    assert first_frame_with_tone(x, 600) == 10
    assert first_frame_with_tone(x, 600, threshold_dbfs=-10.0) is None


def test_frames_must_be_positive() -> None:
    with pytest.raises(ValueError):
        frame_levels(np.zeros(10), frame=0)
