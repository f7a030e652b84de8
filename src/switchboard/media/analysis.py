"""Signal analysis helpers for audio captured by the virtual devices (numpy only).

All functions take float samples in [-1, 1] at 48 kHz unless a ``sample_rate``
is given. A 1-D array is mono; a 2-D array is interpreted as
``(channels, samples)`` (the shape :meth:`Microphone.read_frame` returns) and is
averaged to mono before any spectral analysis.

Level conventions
-----------------
* ``level_dbfs`` is plain RMS in dBFS: ``20 * log10(rms)``. A full-scale sine
  therefore reads -3.01 dBFS and a sine with a peak of -12 dBFS reads -15.01.
* ``tone_level_dbfs`` estimates the RMS of the part of the signal that lies in
  a narrow band around one frequency, using the same convention, so for a pure
  sine both functions return (about) the same number. See its docstring.
* Everything is floored at :data:`SILENCE_DBFS` (-120), which is also what
  silence or an empty input returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "SILENCE_DBFS",
    "dominant_tones",
    "first_frame_with_tone",
    "frame_levels",
    "frame_tone_levels",
    "level_dbfs",
    "share_of_frames_at_level",
    "tone_level_dbfs",
    "tone_levels_dbfs",
]

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
SILENCE_DBFS = -120.0

# A Hann window's main lobe is 4 bins wide (+-2 bins); the analysis band is
# never narrower than that, otherwise short blocks would under-read a tone.
_MIN_HALF_BAND_BINS = 2.0

FloatArray = npt.NDArray[np.float64]


def _as_mono(samples: npt.ArrayLike) -> FloatArray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 0:
        return x.reshape(1)
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        return np.asarray(x.mean(axis=0), dtype=np.float64)
    raise ValueError(f"expected a 1-D or (channels, samples) array, got shape {x.shape}")


def _power_to_db(power: FloatArray | float) -> FloatArray:
    p = np.maximum(np.asarray(power, dtype=np.float64), 0.0)
    floor = 10.0 ** (SILENCE_DBFS / 10.0)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(np.maximum(p, floor))
    return np.asarray(np.maximum(db, SILENCE_DBFS), dtype=np.float64)


def level_dbfs(samples: npt.ArrayLike) -> float:
    """RMS level in dBFS (full-scale sine = -3.01 dBFS).

    Multi-channel input is measured over all samples of all channels.
    Returns -120.0 for silence or an empty array; the result is floored there.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return SILENCE_DBFS
    ms = float(np.mean(np.square(x)))
    return float(_power_to_db(ms))


def _band_power(
    spectra: npt.NDArray[np.complex128],
    n: int,
    window_power: float,
    hz: float,
    bandwidth_hz: float,
    sample_rate: int,
) -> FloatArray:
    """Mean-square estimate of the component around ``hz`` (last axis = bins).

    Calibration: for a windowed block of length N, Parseval gives
    ``sum(|X_k|^2) (two-sided) = N * sum((x*w)^2)``. A sine of amplitude A has
    ``mean((x*w)^2) ~= A^2/2 * mean(w^2)``. Summing the one-sided bins inside
    the band, doubling (negative frequencies), dividing by N^2 and by
    ``mean(w^2)`` (0.375 for Hann) therefore gives back A^2/2 -- the same mean
    square that ``level_dbfs`` reports for the sine.
    """
    df = sample_rate / n
    half = max(bandwidth_hz / 2.0, _MIN_HALF_BAND_BINS * df)
    lo = max(int(np.ceil((hz - half) / df)), 0)
    hi = min(int(np.floor((hz + half) / df)), spectra.shape[-1] - 1)
    if hi < lo:
        return np.zeros(spectra.shape[:-1], dtype=np.float64)
    band = spectra[..., lo : hi + 1]
    energy = np.sum(np.square(np.abs(band)), axis=-1)
    # DC and Nyquist bins have no mirrored negative-frequency partner.
    weights_fix = np.zeros(spectra.shape[:-1], dtype=np.float64)
    last = spectra.shape[-1] - 1
    for edge in (0, last):
        if lo <= edge <= hi and (edge == 0 or n % 2 == 0):
            weights_fix = weights_fix + np.square(np.abs(spectra[..., edge])) / 2.0
    power = 2.0 * (energy - weights_fix) / (n * n) / window_power
    return np.asarray(power, dtype=np.float64)


def _hann(n: int) -> FloatArray:
    if n == 1:
        return np.ones(1, dtype=np.float64)
    # Periodic Hann: exactly 0.375 mean power, no leakage for bin-centred tones.
    return np.asarray(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n), dtype=np.float64)


def tone_levels_dbfs(
    samples: npt.ArrayLike,
    hzs: Sequence[float],
    bandwidth_hz: float = 20.0,
    sample_rate: int = SAMPLE_RATE,
) -> list[float]:
    """``tone_level_dbfs`` for several frequencies with a single FFT."""
    x = _as_mono(samples)
    n = x.size
    if n == 0:
        return [SILENCE_DBFS for _ in hzs]
    w = _hann(n)
    spectrum = np.fft.rfft(x * w)
    wp = float(np.mean(np.square(w)))
    return [
        float(_power_to_db(_band_power(spectrum, n, wp, float(hz), bandwidth_hz, sample_rate))) for hz in hzs
    ]


def tone_level_dbfs(
    samples: npt.ArrayLike,
    hz: float,
    bandwidth_hz: float = 20.0,
    sample_rate: int = SAMPLE_RATE,
) -> float:
    """Level in dBFS of the component of ``samples`` near ``hz``.

    The whole input is Hann-windowed and transformed with one FFT; the energy
    of the bins within ``hz +- bandwidth_hz/2`` (never less than +-2 bins, the
    Hann main lobe) is converted to an RMS level.

    Calibration: the result is an RMS level on the same scale as
    :func:`level_dbfs`, corrected for the window's power (mean(w^2) = 0.375) and
    for the negative-frequency half of the spectrum. A pure sine with a peak of
    -12 dBFS therefore reads about -15.0 dBFS here, exactly like
    ``level_dbfs`` of that sine (within ~0.1 dB for blocks of >= 20 ms; a tone
    that falls between bins loses a little of its side lobes). Floored at -120.
    """
    return tone_levels_dbfs(samples, [hz], bandwidth_hz, sample_rate)[0]


def dominant_tones(
    samples: npt.ArrayLike,
    candidates: Sequence[float],
    threshold_dbfs: float = -50.0,
    bandwidth_hz: float = 20.0,
    sample_rate: int = SAMPLE_RATE,
) -> set[float]:
    """The candidate frequencies whose tone level is >= ``threshold_dbfs``.

    Candidates should be further apart than ``bandwidth_hz`` (and, for short
    inputs, than a few FFT bins: 4 bins = 4 * sample_rate / len(samples)).
    """
    levels = tone_levels_dbfs(samples, candidates, bandwidth_hz, sample_rate)
    return {float(hz) for hz, lvl in zip(candidates, levels, strict=True) if lvl >= threshold_dbfs}


def _frames(x: FloatArray, frame: int) -> FloatArray:
    if frame <= 0:
        raise ValueError("frame must be positive")
    count = x.size // frame
    return x[: count * frame].reshape(count, frame)


def frame_levels(samples: npt.ArrayLike, frame: int = FRAME_SAMPLES) -> FloatArray:
    """Per-frame RMS level in dBFS (default 20 ms frames).

    Only whole frames are measured: a trailing partial frame is ignored.
    2-D input is averaged to mono first.
    """
    blocks = _frames(_as_mono(samples), frame)
    if blocks.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    return _power_to_db(np.mean(np.square(blocks), axis=1))


def frame_tone_levels(
    samples: npt.ArrayLike,
    hz: float,
    frame: int = FRAME_SAMPLES,
    bandwidth_hz: float = 20.0,
    sample_rate: int = SAMPLE_RATE,
) -> FloatArray:
    """Per-frame ``tone_level_dbfs`` of ``hz`` (whole frames only).

    With 20 ms frames the FFT bins are 50 Hz wide, so the analysis band is at
    least +-100 Hz: tones closer together than ~200 Hz are not separated.
    """
    blocks = _frames(_as_mono(samples), frame)
    if blocks.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    w = _hann(frame)
    spectra = np.fft.rfft(blocks * w, axis=1)
    wp = float(np.mean(np.square(w)))
    return _power_to_db(_band_power(spectra, frame, wp, hz, bandwidth_hz, sample_rate))


def first_frame_with_tone(
    samples: npt.ArrayLike,
    hz: float,
    threshold_dbfs: float = -40.0,
    frame: int = FRAME_SAMPLES,
    bandwidth_hz: float = 20.0,
    sample_rate: int = SAMPLE_RATE,
) -> int | None:
    """Index of the first whole frame whose level at ``hz`` is >= threshold.

    Multiply by ``frame`` to get a sample index (e.g. for latency
    measurements with :meth:`CaptureSpeaker.time_of_sample`). ``None`` if the
    tone never reaches the threshold.
    """
    levels = frame_tone_levels(samples, hz, frame, bandwidth_hz, sample_rate)
    hits = np.flatnonzero(levels >= threshold_dbfs)
    return int(hits[0]) if hits.size else None


def share_of_frames_at_level(
    samples: npt.ArrayLike,
    hz: float,
    level_dbfs: float,
    tolerance_db: float = 3.0,
    frame: int = FRAME_SAMPLES,
) -> float:
    """Share (0..1) of whole ``frame``-sample frames whose level at ``hz`` is within ``tolerance_db`` of
    ``level_dbfs`` (an RMS level, see :func:`tone_level_dbfs`); 0.0 for input shorter than a frame.

    The measure of audio under loss (SPEC §5): a frame lost and not concealed reads as silence, a
    badly concealed one as too quiet, and both count against the share.
    """
    levels = frame_tone_levels(samples, hz, frame)
    if levels.size == 0:
        return 0.0
    return float(np.mean(np.abs(levels - level_dbfs) <= tolerance_db))
