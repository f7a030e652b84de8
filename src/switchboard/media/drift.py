"""Clock-drift compensation between a sound device and the event loop's 20 ms clock.

A device runs on its own clock; the loop ticks on the machine's. Between them sits a FIFO, and its
fill level says which clock runs faster. Dropping or duplicating samples when the FIFO strays (the
simple answer) moves every later sample by a whole block: the echo a canceller has locked on jumps
with it. Instead, :class:`FillLevelControl` turns the smoothed fill level into a small rate
correction and :class:`DriftResampler` applies it by interpolation, so the delay through the FIFO
stays near its target and changes only smoothly.

Units: samples at 48 kHz throughout; a ratio is input samples consumed per output sample (above 1
drains the FIFO downstream of the resampler, below 1 fills it).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from switchboard.media.audio_format import SAMPLE_RATE, FloatArray

__all__ = ["DEAD_BAND_MS", "MAX_RATE_CORRECTION", "DriftResampler", "FillLevelControl"]

#: the largest rate correction applied (0.1 %: several times the drift between real sound cards'
#: crystals and the machine's clock, and far below what a listener notices)
MAX_RATE_CORRECTION: Final = 0.001
#: a fill-level error beyond the dead band is corrected over about this long (seconds)
CORRECTION_TIME_S: Final = 8.0
#: within this distance of the target (ms) the ratio is exactly 1: callback jitter on a busy
#: machine moves the fill by tens of ms without any drift, and chasing it would make the echo path
#: itself move (an echo canceller's linear filter cannot follow a path that slides continuously)
DEAD_BAND_MS: Final = 30
#: smoothing of the fill level, per update (one update per 20 ms: a time constant of about 4 s, longer
#: than the jitter of a busy machine's callbacks)
SMOOTHING: Final = 0.005


class DriftResampler:
    """Streaming linear-interpolation resampler with a ratio that may change on every call.

    :meth:`process` takes ``(channels, n)`` float32 audio and returns what it can interpolate so far
    (one input sample is held back between calls). At ``ratio`` 1.0 the output equals the input,
    sample for sample.
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._buf = np.zeros((channels, 0), dtype=np.float32)
        self._pos = 0.0  # position of the next output sample in ``_buf``'s coordinates

    @property
    def pending(self) -> float:
        """Input samples received but not yet consumed (the resampler's own small delay)."""
        return max(self._buf.shape[1] - self._pos, 0.0)

    def reset(self) -> None:
        self._buf = np.zeros((self.channels, 0), dtype=np.float32)
        self._pos = 0.0

    def process(self, pcm: FloatArray, ratio: float = 1.0) -> FloatArray:
        """Resample ``pcm`` (appended to what is held back) at ``ratio`` input samples per output sample."""
        buf = np.concatenate([self._buf, pcm], axis=1) if self._buf.shape[1] else pcm
        n = buf.shape[1]
        last = n - 1
        if n < 2 or self._pos > last:
            self._buf = buf
            return np.zeros((self.channels, 0), dtype=np.float32)
        count = int((last - self._pos) // ratio) + 1
        positions = self._pos + ratio * np.arange(count)
        grid = np.arange(n)
        out = np.empty((self.channels, count), dtype=np.float32)
        for channel in range(self.channels):
            out[channel] = np.interp(positions, grid, buf[channel])
        next_pos = self._pos + ratio * count
        drop = min(int(next_pos), last)
        self._buf = buf[:, drop:]
        self._pos = next_pos - drop
        return out


class FillLevelControl:
    """Turns a FIFO's fill level (samples) into a resampling ratio that steers it to ``target``.

    Proportional control with a dead band on an exponentially smoothed fill level: an error of ``e``
    samples beyond :data:`DEAD_BAND_MS` asks for ``e / (CORRECTION_TIME_S * 48000)`` of rate
    correction, clamped to :data:`MAX_RATE_CORRECTION`; inside the band the ratio is exactly 1.
    ``ratio`` above 1 means the FIFO is too full (consume faster), below 1 too empty.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.smoothed: float | None = None
        self.ratio = 1.0

    def reset(self) -> None:
        self.smoothed = None
        self.ratio = 1.0

    def update(self, fill: float) -> float:
        """Record one fill-level observation (samples); returns the new ratio."""
        self.smoothed = fill if self.smoothed is None else self.smoothed + SMOOTHING * (fill - self.smoothed)
        error = self.smoothed - self.target
        band = DEAD_BAND_MS * SAMPLE_RATE / 1000
        excess = max(abs(error) - band, 0.0) * (1.0 if error > 0 else -1.0)
        correction = excess / (CORRECTION_TIME_S * SAMPLE_RATE)
        self.ratio = 1.0 + min(max(correction, -MAX_RATE_CORRECTION), MAX_RATE_CORRECTION)
        return self.ratio
