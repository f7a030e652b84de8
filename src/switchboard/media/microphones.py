"""Microphones: real-time sources of 20 ms frames (a tone, a WAV file, silence).

All of them are virtual (``is_virtual = True``): their audio is synthetic or pre-recorded and is
never run through noise suppression (it would eat a test tone). Single-threaded asyncio code.
"""

from __future__ import annotations

import fractions
import math
import wave
from abc import ABC, abstractmethod
from pathlib import Path

import av
import numpy as np

from switchboard.media.audio_format import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    FloatArray,
    check_channels,
    layout_for,
    to_mono,
)

__all__ = ["FileMicrophone", "Microphone", "SilentMicrophone", "ToneMicrophone"]


class Microphone(ABC):
    """A real-time audio source producing one 20 ms frame per call.

    The audio session clock calls :meth:`read_frame` once per 20 ms tick and
    fans the frame out to whichever calls want it. A microphone has no queue:
    frames nobody takes are simply never produced, so a resumed call never
    plays stale audio.
    """

    sample_rate: int = SAMPLE_RATE
    frame_samples: int = FRAME_SAMPLES
    #: Virtual devices must never be run through noise suppression.
    is_virtual: bool = True

    def __init__(self, name: str, channels: int = 1) -> None:
        self.name = name
        self.channels = check_channels(channels)

    def start(self) -> None:  # noqa: B027 - optional hook: virtual microphones have nothing to open
        """Open the device, if the microphone has one (virtual microphones: nothing to do)."""

    def stop(self) -> None:  # noqa: B027 - optional hook, like start()
        """Close the device, if any; :meth:`start` may open it again."""

    @property
    def input_delay_ms(self) -> float:
        """Capture delay (ms) from the sound reaching the device to :meth:`read_frame` (0 when virtual)."""
        return 0.0

    @abstractmethod
    def read_frame(self) -> FloatArray:
        """The next 20 ms: float32 array of shape ``(channels, 960)`` in [-1, 1]."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, channels={self.channels})"


class ToneMicrophone(Microphone):
    """A continuous sine tone.

    ``level_dbfs`` is the *peak* amplitude (``10 ** (level_dbfs / 20)``), so the
    RMS level measured by :func:`analysis.level_dbfs` is ``level_dbfs - 3.01``.
    The phase is carried across frames, so consecutive frames join without
    clicks; every channel carries the same signal.
    """

    def __init__(
        self,
        hz: float,
        level_dbfs: float = -12.0,
        channels: int = 1,
        name: str | None = None,
    ) -> None:
        if not 0.0 <= hz < SAMPLE_RATE / 2:
            raise ValueError(f"tone frequency must be in [0, {SAMPLE_RATE // 2}) Hz, got {hz}")
        super().__init__(name or f"tone-{hz:g}Hz", channels)
        self.hz = float(hz)
        self.level_dbfs = float(level_dbfs)
        self.amplitude = float(10.0 ** (level_dbfs / 20.0))
        self._phase = 0.0  # radians at the start of the next frame, in [0, 2*pi)
        self._step = 2.0 * math.pi * self.hz / SAMPLE_RATE
        self._ramp = self._step * np.arange(FRAME_SAMPLES, dtype=np.float64)

    def read_frame(self) -> FloatArray:
        mono = (self.amplitude * np.sin(self._phase + self._ramp)).astype(np.float32)
        self._phase = math.fmod(self._phase + self._step * FRAME_SAMPLES, 2.0 * math.pi)
        if self.channels == 1:
            return mono.reshape(1, FRAME_SAMPLES)
        return np.repeat(mono.reshape(1, FRAME_SAMPLES), self.channels, axis=0)


class SilentMicrophone(Microphone):
    """Digital silence."""

    def __init__(self, channels: int = 1, name: str = "silence") -> None:
        super().__init__(name, channels)

    def read_frame(self) -> FloatArray:
        return np.zeros((self.channels, FRAME_SAMPLES), dtype=np.float32)


def _read_wav(path: Path) -> tuple[FloatArray, int]:
    """Decode a PCM WAV file into ``((channels, n) float32, sample_rate)``."""
    if not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"not a readable PCM WAV file: {path} ({exc})") from exc

    if channels not in (1, 2):
        raise ValueError(f"{path}: only mono or stereo WAV is supported, got {channels} channels")
    if rate <= 0:
        raise ValueError(f"{path}: invalid sample rate {rate}")
    frame_bytes = channels * width
    usable = len(raw) - len(raw) % frame_bytes  # tolerate a truncated last frame
    buf = np.frombuffer(raw[:usable], dtype=np.uint8)
    if width == 1:  # unsigned 8-bit
        data = (buf.astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = buf.view("<i2").astype(np.float32) / 32768.0
    elif width == 3:
        triplets = buf.reshape(-1, 3)
        wide = np.zeros((triplets.shape[0], 4), dtype=np.uint8)
        wide[:, 1:] = triplets  # shift left by 8 bits, then arithmetic shift back
        data = (wide.view("<i4").reshape(-1) >> 8).astype(np.float32) / 8388608.0
    elif width == 4:
        data = buf.view("<i4").astype(np.float32) / 2147483648.0
    else:
        raise ValueError(f"{path}: unsupported sample width {width * 8} bits")
    if data.size == 0:
        raise ValueError(f"{path}: WAV file contains no audio")
    pcm = np.ascontiguousarray(data.reshape(-1, channels).T, dtype=np.float32)
    return pcm, rate


def _resample_to_48k(pcm: FloatArray, rate: int, chunk_seconds: float = 1.0) -> FloatArray:
    """Resample ``(channels, n)`` float32 audio to 48 kHz with libswresample."""
    if rate == SAMPLE_RATE:
        return pcm
    channels = pcm.shape[0]
    layout = layout_for(channels)
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
    chunk = max(1, int(rate * chunk_seconds))
    out: list[FloatArray] = []

    def collect(frames: list[av.AudioFrame]) -> None:
        for f in frames:
            out.append(np.asarray(f.to_ndarray(), dtype=np.float32).reshape(channels, -1))

    for start in range(0, pcm.shape[1], chunk):
        block = np.ascontiguousarray(pcm[:, start : start + chunk])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = fractions.Fraction(1, rate)
        collect(resampler.resample(frame))
    collect(resampler.resample(None))
    if not out:
        return np.zeros((channels, 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(out, axis=1), dtype=np.float32)


class FileMicrophone(Microphone):
    """Plays a PCM WAV file (8/16/24/32-bit, any rate, mono or stereo).

    The whole file is decoded and resampled to 48 kHz (libswresample via
    ``av.AudioResampler``) at construction, so keep files short (a minute of
    stereo is ~23 MB in memory). At the end it loops when ``loop`` is true,
    otherwise it produces silence (see :attr:`finished`).

    ``channels`` defaults to the file's channel count; pass 1 to downmix a
    stereo file or 2 to duplicate a mono one.

    Raises ``ValueError`` at construction for a missing, unreadable, non-PCM
    or empty file.
    """

    def __init__(
        self,
        path: str | Path,
        loop: bool = True,
        channels: int | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        pcm, rate = _read_wav(self.path)
        file_channels = pcm.shape[0]
        out_channels = file_channels if channels is None else check_channels(channels)
        super().__init__(name or self.path.name, out_channels)
        self.source_sample_rate = rate
        self.source_channels = file_channels
        pcm = _resample_to_48k(pcm, rate)
        if out_channels != file_channels:
            pcm = to_mono(pcm).reshape(1, -1) if out_channels == 1 else np.repeat(pcm, out_channels, axis=0)
        if pcm.shape[1] == 0:
            raise ValueError(f"{self.path}: WAV file contains no audio")
        self._pcm: FloatArray = np.clip(pcm, -1.0, 1.0).astype(np.float32)
        self.loop = loop
        self._pos = 0
        self.finished = False

    @property
    def duration(self) -> float:
        """Length of the (resampled) file in seconds."""
        return int(self._pcm.shape[1]) / SAMPLE_RATE

    @property
    def position(self) -> int:
        """Index of the next 48 kHz sample to be played."""
        return self._pos

    def rewind(self) -> None:
        self._pos = 0
        self.finished = False

    def read_frame(self) -> FloatArray:
        out = np.zeros((self.channels, FRAME_SAMPLES), dtype=np.float32)
        total = self._pcm.shape[1]
        filled = 0
        while filled < FRAME_SAMPLES and not self.finished:
            take = min(FRAME_SAMPLES - filled, total - self._pos)
            out[:, filled : filled + take] = self._pcm[:, self._pos : self._pos + take]
            filled += take
            self._pos += take
            if self._pos >= total:
                if self.loop:
                    self._pos = 0
                else:
                    self.finished = True
        return out
