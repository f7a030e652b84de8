"""Per-call playout shaping: gain (dB) and constant-power stereo pan of one call's remote audio (SPEC §2.8).

:class:`ShapedSource` wraps the :class:`~switchboard.media.playout.SpeakerSource` of one remote
track and scales what it hands the speaker. Single-threaded asyncio code; the gains are read on
every pull, so a change takes effect from the next 20 ms tick.

Pan law: constant power with the centre at unity. With ``theta = (pan + 1) * pi / 4`` the left
channel is multiplied by ``sqrt(2) * cos(theta)`` and the right by ``sqrt(2) * sin(theta)``: at
``pan = 0`` both are 1.0 (the track plays as it would unpanned), at ``pan = -1`` left is +3 dB and
right silent, and ``left**2 + right**2 = 2`` everywhere (the total power of a centred mono source).
A mono source is played on both channels before the pan is applied; a panned source always comes
out stereo, so only a stereo speaker renders the pan (a mono speaker averages it back).
"""

from __future__ import annotations

import math

import numpy as np

from switchboard.errors import InvalidRequestError
from switchboard.media.audio_format import FRAME_SAMPLES, FloatArray
from switchboard.media.playout import SpeakerSource

__all__ = ["ShapedSource", "db_to_gain", "pan_gains"]

#: the lowest gain accepted, in dB (below it the audio is inaudible anyway: -120 dB is 1e-6)
MIN_GAIN_DB = -120.0
#: the highest gain accepted, in dB (a quiet call can be lifted, not blasted)
MAX_GAIN_DB = 24.0


def db_to_gain(db: float) -> float:
    """Linear amplitude factor of ``db`` decibels (``10 ** (db / 20)``)."""
    return float(10.0 ** (db / 20.0))


def check_gain_db(db: object, what: str = "gain_db") -> float:
    """``db`` as a float in [-120, +24] dB, else :class:`InvalidRequestError`."""
    if isinstance(db, bool) or not isinstance(db, int | float) or not math.isfinite(db):
        raise InvalidRequestError(f"{what} must be a finite number of dB, got {db!r}")
    if not MIN_GAIN_DB <= db <= MAX_GAIN_DB:
        raise InvalidRequestError(f"{what} must be within {MIN_GAIN_DB:g}..{MAX_GAIN_DB:g} dB, got {db!r}")
    return float(db)


def check_pan(pan: object) -> float:
    """``pan`` as a float in [-1, +1] (-1 left, +1 right), else :class:`InvalidRequestError`."""
    if isinstance(pan, bool) or not isinstance(pan, int | float) or not math.isfinite(pan):
        raise InvalidRequestError(f"pan must be a number from -1 (left) to +1 (right), got {pan!r}")
    if not -1.0 <= pan <= 1.0:
        raise InvalidRequestError(f"pan must be within -1 (left) .. +1 (right), got {pan!r}")
    return float(pan)


def pan_gains(pan: float) -> tuple[float, float]:
    """(left, right) amplitude factors of the constant-power pan law above (unity at the centre)."""
    theta = (pan + 1.0) * math.pi / 4.0
    return math.sqrt(2.0) * math.cos(theta), math.sqrt(2.0) * math.sin(theta)


class ShapedSource(SpeakerSource):
    """``source`` scaled by :attr:`gain` (linear) and panned by :attr:`pan` (-1 .. +1).

    ``pull`` returns the source's shape unchanged while ``pan == 0``; once panned it returns
    ``(2, n)``. ``None`` (nothing playing) passes through.
    """

    def __init__(self, source: SpeakerSource, *, gain: float = 1.0, pan: float = 0.0) -> None:
        self.source = source
        self.name = source.name
        self.gain = gain
        self._pan = 0.0
        self.channels = source.channels
        self.pan = pan

    @property
    def pan(self) -> float:
        return self._pan

    @pan.setter
    def pan(self, value: float) -> None:
        self._pan = value
        self.channels = 2 if value != 0.0 else self.source.channels

    def pull(self, n: int = FRAME_SAMPLES) -> FloatArray | None:
        x = self.source.pull(n)
        if x is None:
            return None
        if self._pan == 0.0:
            return x * np.float32(self.gain) if self.gain != 1.0 else x
        left, right = pan_gains(self._pan)
        rows = x.reshape(1, -1) if x.ndim == 1 else x
        if rows.shape[0] == 1:
            rows = np.repeat(rows, 2, axis=0)
        elif rows.shape[0] > 2:
            rows = np.repeat(rows.mean(axis=0, keepdims=True), 2, axis=0)
        out: FloatArray = rows * np.array([[left * self.gain], [right * self.gain]], dtype=np.float32)
        return out
