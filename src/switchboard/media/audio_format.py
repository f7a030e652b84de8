"""The audio format every device, buffer and track here shares, and small conversions.

48 kHz, 20 ms frames (960 samples per channel), float32 samples in [-1, 1], planar
``(channels, samples)`` arrays (a mono frame may also be ``(samples,)``).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = [
    "AUDIO_TIME_BASE",
    "FRAME_DURATION",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "VIDEO_CLOCK_RATE",
    "VIDEO_TIME_BASE",
    "FloatArray",
    "TickHook",
    "check_channels",
    "layout_for",
    "now",
    "rows_for",
    "to_mono",
]

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
FRAME_DURATION = FRAME_SAMPLES / SAMPLE_RATE  # 0.02 s
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

FloatArray = npt.NDArray[np.float32]
TickHook = Callable[[float, FloatArray], None]


def now() -> float:
    """The running loop's clock, or the same monotonic clock outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def check_channels(channels: int) -> int:
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels!r}")
    return channels


def to_mono(pcm: npt.ArrayLike) -> FloatArray:
    """(channels, n) or (n,) float -> (n,) float32 (channel average)."""
    x = np.asarray(pcm, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        if x.shape[0] == 1:
            return np.ascontiguousarray(x[0])
        return np.asarray(x.mean(axis=0, dtype=np.float32), dtype=np.float32)
    raise ValueError(f"expected (samples,) or (channels, samples) audio, got shape {x.shape}")


def layout_for(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def rows_for(pcm: npt.ArrayLike, channels: int) -> FloatArray:
    """``(n,)`` or ``(k, n)`` float -> float32 rows for a ``channels``-channel destination.

    Returns ``(channels, n)`` when the input already has that many channels,
    otherwise the channel average as ``(1, n)``, which the caller broadcasts to
    every channel (so mono input is duplicated into a stereo destination and
    stereo input is averaged into a mono one).
    """
    x = np.asarray(pcm, dtype=np.float32)
    if x.ndim == 2 and x.shape[0] == channels:
        return x
    return to_mono(x).reshape(1, -1)
