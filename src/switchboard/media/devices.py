"""Virtual media devices: microphones, playout buffers, speakers and a camera.

Audio format everywhere: 48 kHz, 20 ms frames (960 samples per channel),
float32 samples in [-1, 1].

Data flow (the audio session clock that drives it lives elsewhere)::

    Microphone.read_frame()  --(session clock, every 20 ms)-->  MicrophoneTrack.feed()
        --> aiortc sender --> network --> aiortc receiver (Opus decoder)
        --> PlayoutBuffer.push(av.AudioFrame)
    CaptureSpeaker (own 20 ms real-time clock) --> PlayoutBuffer.pull() for each
        source --> mix --> ring buffer --> samples() / on_tick hooks

Playout buffers and speakers are mono by default and may be stereo
(``channels=2``): a stereo PlayoutBuffer keeps the decoder's L/R apart and a
stereo CaptureSpeaker records them apart (``samples_channels()``), while
``samples()`` and the ``on_tick`` hooks always see the mono mix.

All virtual devices report ``is_virtual = True``: their audio is synthetic or
pre-recorded and must never be run through noise suppression (it would eat the
test tones).

Everything here is single-threaded asyncio code: call it from the event loop
thread only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import math
import time
import wave
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

__all__ = [
    "AUDIO_TIME_BASE",
    "FRAME_DURATION",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "VIDEO_TIME_BASE",
    "CameraTrack",
    "CaptureSpeaker",
    "FileMicrophone",
    "FloatArray",
    "Microphone",
    "MicrophoneTrack",
    "PlayoutBuffer",
    "SilentMicrophone",
    "Speaker",
    "SpeakerSource",
    "SyntheticCamera",
    "TickHook",
    "ToneMicrophone",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
FRAME_DURATION = FRAME_SAMPLES / SAMPLE_RATE  # 0.02 s
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

FloatArray = npt.NDArray[np.float32]
TickHook = Callable[[float, FloatArray], None]


def _now() -> float:
    """The running loop's clock, or the same monotonic clock outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _check_channels(channels: int) -> int:
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels!r}")
    return channels


def _to_mono(pcm: npt.ArrayLike) -> FloatArray:
    """(channels, n) or (n,) float -> (n,) float32 (channel average)."""
    x = np.asarray(pcm, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        if x.shape[0] == 1:
            return np.ascontiguousarray(x[0])
        return np.asarray(x.mean(axis=0, dtype=np.float32), dtype=np.float32)
    raise ValueError(f"expected (samples,) or (channels, samples) audio, got shape {x.shape}")


def _layout_for(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


# --------------------------------------------------------------------------- #
# Microphones
# --------------------------------------------------------------------------- #


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
        self.channels = _check_channels(channels)

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
    layout = _layout_for(channels)
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
        out_channels = file_channels if channels is None else _check_channels(channels)
        super().__init__(name or self.path.name, out_channels)
        self.source_sample_rate = rate
        self.source_channels = file_channels
        pcm = _resample_to_48k(pcm, rate)
        if out_channels != file_channels:
            pcm = _to_mono(pcm).reshape(1, -1) if out_channels == 1 else np.repeat(pcm, out_channels, axis=0)
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


# --------------------------------------------------------------------------- #
# Playout
# --------------------------------------------------------------------------- #

_S16_SCALE = np.float32(1.0 / 32768.0)
_S16_PAIR_SCALE = np.float32(1.0 / 65536.0)  # average of two s16 samples, scaled to [-1, 1]


def _rows_for(pcm: npt.ArrayLike, channels: int) -> FloatArray:
    """``(n,)`` or ``(k, n)`` float -> float32 rows for a ``channels``-channel destination.

    Returns ``(channels, n)`` when the input already has that many channels,
    otherwise the channel average as ``(1, n)``, which the caller broadcasts to
    every channel (so mono input is duplicated into a stereo destination and
    stereo input is averaged into a mono one).
    """
    x = np.asarray(pcm, dtype=np.float32)
    if x.ndim == 2 and x.shape[0] == channels:
        return x
    return _to_mono(x).reshape(1, -1)


class SpeakerSource(ABC):
    """Something a :class:`Speaker` can pull 48 kHz audio from.

    :attr:`channels` says what :meth:`pull` returns: shape ``(n,)`` for a mono
    source (the default), ``(channels, n)`` otherwise. Speakers convert any
    source to their own channel count (see :class:`CaptureSpeaker`).
    """

    name: str = "source"
    #: Channel count of the audio :meth:`pull` returns (fixed for the source's lifetime).
    channels: int = 1

    @abstractmethod
    def pull(self, n: int = FRAME_SAMPLES) -> FloatArray | None:
        """Exactly ``n`` float32 samples per channel, or ``None`` when nothing is playing.

        Shape ``(n,)`` for a mono source, ``(channels, n)`` for a multi-channel one.
        """


class PlayoutBuffer(SpeakerSource):
    """Per-remote-track jitter/playout buffer, mono (default) or stereo.

    * :meth:`push` takes decoded ``av.AudioFrame`` s (aiortc's Opus decoder
      emits s16 / 48 kHz / stereo / 960 samples; that case and s16 mono 48 kHz
      take a fast numpy path). Anything else (other formats, rates, sizes) goes
      through ``av.AudioResampler`` to 48 kHz. Channels are converted to
      :attr:`channels` the same way in both paths: a mono buffer averages L/R;
      a stereo buffer keeps L and R apart and duplicates mono input into both
      (input with more than two channels is downmixed to stereo by
      libswresample for a stereo buffer, averaged for a mono one).
    * :meth:`pull` returns ``n`` samples multiplied by :attr:`gain` -- shape
      ``(n,)`` for a mono buffer, ``(2, n)`` for a stereo one -- or ``None``
      when the buffer is empty (underrun). It never stalls on a partial frame:
      if fewer than ``n`` samples are buffered they are returned zero-padded,
      so a short tail is played instead of stranded.
    * It is bounded to ``max_ms`` (default 120 ms) of audio: on overflow the
      *oldest* samples are dropped, so latency can never build up. All counts
      (:attr:`capacity`, :attr:`buffered_samples`, :attr:`dropped_samples`)
      are per channel.

    ``channels`` (1 or 2) is fixed at construction.
    """

    def __init__(
        self,
        max_ms: float = 120.0,
        gain: float = 1.0,
        name: str = "playout",
        channels: int = 1,
    ) -> None:
        if max_ms <= 0:
            raise ValueError("max_ms must be positive")
        self.name = name
        self.channels = _check_channels(channels)
        self.gain = float(gain)
        self.capacity = max(1, round(max_ms * SAMPLE_RATE / 1000.0))
        # Buffered audio is _buf[:, _head : _head + _size]; it is compacted to
        # the front only when a push would run past the end, so a steady
        # push/pull rhythm moves no memory.
        self._buf = np.zeros((self.channels, self.capacity), dtype=np.float32)
        self._head = 0
        self._size = 0
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[str, str, int] | None = None
        #: Samples (per channel) discarded because the buffer was full.
        self.dropped_samples = 0
        #: Number of pulls that found the buffer empty.
        self.underruns = 0
        self.frames_pushed = 0

    # -- input ---------------------------------------------------------------
    def push(self, frame: av.AudioFrame) -> None:
        """Append a decoded audio frame (any format/rate/layout)."""
        self.frames_pushed += 1
        self._append(self._frame_to_48k(frame))

    def push_pcm(self, pcm: npt.ArrayLike) -> None:
        """Append 48 kHz float samples, ``(n,)`` or ``(channels, n)``.

        Converted to :attr:`channels`: averaged into a mono buffer, kept (stereo)
        or duplicated (mono) in a stereo one.
        """
        self._append(_rows_for(pcm, self.channels))

    def _append(self, x: FloatArray) -> None:
        """Append ``(channels, n)`` float32, or ``(1, n)`` broadcast to every channel."""
        n = int(x.shape[1])
        if n == 0:
            return
        cap = self.capacity
        if n >= cap:
            self.dropped_samples += self._size + n - cap
            self._buf[:] = x[:, n - cap :]
            self._head = 0
            self._size = cap
            return
        overflow = self._size + n - cap
        if overflow > 0:
            self.dropped_samples += overflow
            self._head += overflow
            self._size -= overflow
        end = self._head + self._size
        if end + n > cap:
            if self._size:
                self._buf[:, : self._size] = self._buf[:, self._head : end]
            self._head = 0
            end = self._size
        self._buf[:, end : end + n] = x
        self._size += n

    def _frame_to_48k(self, frame: av.AudioFrame) -> FloatArray:
        """Decode ``frame`` to 48 kHz float32 rows for :meth:`_append`."""
        fmt = frame.format.name
        layout = frame.layout.name
        if frame.sample_rate == SAMPLE_RATE and fmt == "s16":
            if layout == "stereo":
                # Packed s16 stereo: (1, 2n) interleaved L, R, L, R, ...
                inter = np.asarray(frame.to_ndarray()).reshape(-1, 2)
                if self.channels == 1:
                    summed: FloatArray = np.add(inter[:, 0], inter[:, 1], dtype=np.float32)  # exact
                    summed *= _S16_PAIR_SCALE
                    return summed.reshape(1, -1)
                stereo = inter.T.astype(np.float32, order="C")  # deinterleave -> (2, n)
                stereo *= _S16_SCALE
                return stereo
            if layout == "mono":
                mono = np.asarray(frame.to_ndarray()).reshape(1, -1).astype(np.float32)
                mono *= _S16_SCALE
                return mono  # (1, n): duplicated into both channels of a stereo buffer
        return self._resample(frame)

    def _resample(self, frame: av.AudioFrame) -> FloatArray:
        in_layout = frame.layout.name
        channels = len(frame.layout.channels)
        # Keep the input's channel layout (only convert rate and format) and
        # convert channels in numpy, so the result matches the fast path. Only a
        # stereo buffer fed more than two channels lets libswresample downmix.
        out_layout = in_layout
        if self.channels == 2 and channels > 2:
            out_layout, channels = "stereo", 2
        key = (frame.format.name, in_layout, frame.sample_rate)
        if self._resampler is None or self._resampler_key != key:
            self._resampler = av.AudioResampler(format="fltp", layout=out_layout, rate=SAMPLE_RATE)
            self._resampler_key = key
        parts = [
            np.asarray(out.to_ndarray(), dtype=np.float32).reshape(channels, -1)
            for out in self._resampler.resample(frame)
        ]
        if not parts:
            return np.zeros((1, 0), dtype=np.float32)
        return _rows_for(np.concatenate(parts, axis=1), self.channels)

    # -- output --------------------------------------------------------------
    def pull(self, n: int = FRAME_SAMPLES) -> FloatArray | None:
        """``n`` samples: ``(n,)`` for a mono buffer, ``(2, n)`` for a stereo one; ``None`` on underrun."""
        if n <= 0:
            raise ValueError("n must be positive")
        if self._size == 0:
            self.underruns += 1
            return None
        take = min(n, self._size)
        head = self._head
        out = np.empty((self.channels, n), dtype=np.float32)
        out[:, :take] = self._buf[:, head : head + take]
        if take < n:
            out[:, take:] = 0.0
        self._size -= take
        self._head = head + take if self._size else 0
        if self.gain != 1.0:
            out *= np.float32(self.gain)
        return out[0] if self.channels == 1 else out

    def trim_to(self, samples: int) -> int:
        """Drop the oldest audio so at most ``samples`` (per channel) stay buffered; returns how many went.

        A playout buffer only fills past its steady depth after a burst (a late batch of packets), and
        would then keep that extra latency for good: trimming drains it.
        """
        excess = self._size - max(0, samples)
        if excess <= 0:
            return 0
        self._head += excess
        self._size -= excess
        self.dropped_samples += excess
        return excess

    def clear(self) -> None:
        """Drop everything buffered (e.g. when a call is put on hold)."""
        self._head = 0
        self._size = 0

    @property
    def buffered_samples(self) -> int:
        """Samples buffered per channel."""
        return self._size

    @property
    def buffered_ms(self) -> float:
        return self._size * 1000.0 / SAMPLE_RATE

    def __len__(self) -> int:
        return self._size


# --------------------------------------------------------------------------- #
# Speakers
# --------------------------------------------------------------------------- #


class Speaker(ABC):
    """A real-time audio sink that mixes any number of :class:`SpeakerSource`.

    :attr:`channels` is the speaker's own channel count (1 = mono, the
    default, or 2 = stereo). Whatever it is, ``on_tick`` hooks receive the
    *mono* mix (the channel average) -- they drive the audio session clock and
    feed echo-cancellation render references, which are mono.
    """

    sample_rate: int = SAMPLE_RATE
    is_virtual: bool = True
    #: Playout channel count (1 or 2), fixed at construction.
    channels: int = 1

    def __init__(self, name: str, channels: int = 1) -> None:
        self.name = name
        self.channels = _check_channels(channels)
        #: called once per 20 ms playout tick with (loop time, mono mix): the audio session's clock
        self.on_tick: list[TickHook] = []

    @abstractmethod
    def add_source(self, src: SpeakerSource) -> Callable[[], None]:
        """Start mixing ``src``; returns an idempotent function that removes it."""

    @abstractmethod
    async def start(self) -> None:
        """Start the playout clock (idempotent)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the playout clock (idempotent)."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """Whether the playout clock is ticking."""


class CaptureSpeaker(Speaker):
    """A speaker that records what it plays into a bounded ring buffer.

    While started it ticks every 20 ms on an absolute schedule derived from
    ``loop.time()`` (tick k is due at ``t_start + k * 0.02``, so there is no
    drift). Each tick pulls one frame from every source, sums them, clips to
    [-1, 1] and appends the result (silence when nothing is playing).

    Channels: the speaker plays and records ``channels`` (1 or 2) channels. A
    mono source played by a stereo speaker goes to both channels; a source
    with more channels than the speaker is averaged (so a stereo source in a
    mono speaker is heard as (L + R) / 2). :meth:`samples` and
    :meth:`samples_range` always return mono (the channel average);
    :meth:`samples_channels` and :meth:`samples_range_channels` return
    ``(channels, n)``. ``on_tick`` hooks and :meth:`tick` get the mono mix.
    The ring costs ``4 * 48000 * channels`` bytes per second of
    ``max_seconds``.

    If the event loop was stalled for more than ``max_catchup`` seconds
    (default 0.1), the overdue ticks are written as silence in one go (sources
    are not pulled for them and ``on_tick`` hooks are not called) instead of
    being processed as a burst; shorter lateness is caught up normally.

    Timestamps: every written frame remembers the loop time of its tick, so
    :meth:`time_of_sample` is exact even across stop/start. ``start_time`` is
    the time of sample 0, so without restarts
    ``time_of_sample(i) == start_time + i / 48000``.
    """

    def __init__(
        self,
        max_seconds: float = 120.0,
        name: str = "capture-speaker",
        max_catchup: float = 0.1,
        channels: int = 1,
    ) -> None:
        super().__init__(name, channels)
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.max_seconds = float(max_seconds)
        self.max_catchup = float(max_catchup)
        self._capacity_frames = max(1, math.ceil(max_seconds * SAMPLE_RATE / FRAME_SAMPLES))
        self._capacity = self._capacity_frames * FRAME_SAMPLES
        self._ring = np.zeros((self.channels, self._capacity), dtype=np.float32)
        self._frame_times = np.zeros(self._capacity_frames, dtype=np.float64)
        self._downmix_scratch = np.empty(FRAME_SAMPLES, dtype=np.float32)
        self._sources: list[SpeakerSource] = []
        self._task: asyncio.Task[None] | None = None
        #: Frames written since creation (including catch-up silence).
        self.frames_written = 0
        #: Frames written as silence because the loop stalled.
        self.frames_caught_up = 0
        #: Called after each tick with (tick loop time, mixed mono frame).
        self.on_tick: list[TickHook] = []
        #: Loop time of sample 0 (None until the first frame is written).
        self.start_time: float | None = None

    # -- sources -------------------------------------------------------------
    def add_source(self, src: SpeakerSource) -> Callable[[], None]:
        self._sources = [*self._sources, src]

        def remove() -> None:
            if src in self._sources:
                self._sources = [s for s in self._sources if s is not src]

        return remove

    @property
    def sources(self) -> tuple[SpeakerSource, ...]:
        return tuple(self._sources)

    # -- clock ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name}-clock")
        self._task.add_done_callback(self._on_task_done)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: playout clock crashed", self.name, exc_info=task.exception())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        while True:
            due = t0 + k * FRAME_DURATION
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > self.max_catchup:
                missed = int(-delay / FRAME_DURATION)
                self._write_silence(missed, due)
                k += missed
                due = t0 + k * FRAME_DURATION
            self.tick(due)
            k += 1

    # -- mixing --------------------------------------------------------------
    def tick(self, t: float | None = None) -> FloatArray:
        """Mix and record one frame now (the clock calls this every 20 ms).

        Public so tests can drive the speaker deterministically without
        ``start()``. ``t`` is the loop time stamped on the frame (default: now).
        Returns the mixed frame as mono ``(960,)`` float32 (the channel average
        for a stereo speaker; the same array the ``on_tick`` hooks receive). The
        frame with all its channels is in the ring: ``samples_channels(0.02)``.
        """
        when = _now() if t is None else t
        slot = self.frames_written % self._capacity_frames
        # Mix straight into the ring slot: no per-tick mix buffer.
        frame = self._ring[:, slot * FRAME_SAMPLES : (slot + 1) * FRAME_SAMPLES]
        if self._mix_into(frame):
            np.clip(frame, -1.0, 1.0, out=frame)
        mono: FloatArray
        if self.channels == 1:
            mono = frame[0].copy()
        else:
            mono = np.add(frame[0], frame[1])
            mono *= np.float32(0.5)
        self._commit(slot, when)
        for hook in list(self.on_tick):
            try:
                hook(when, mono)
            except Exception:
                logger.exception("%s: on_tick hook failed", self.name)
        return mono

    def _mix_into(self, frame: FloatArray) -> bool:
        """Sum one frame of every source into ``frame`` (``(channels, 960)``); False if all were silent."""
        mixed = False
        for src in self._sources:
            try:
                pcm = src.pull(FRAME_SAMPLES)
                if pcm is None:
                    continue
                self._add(frame, pcm, overwrite=not mixed)
            except Exception:
                logger.exception("%s: source %r failed", self.name, src)
                continue
            mixed = True
        if not mixed:
            frame.fill(0.0)
        return mixed

    def _add(self, frame: FloatArray, pcm: FloatArray, overwrite: bool) -> None:
        """Add (or, for the first source, copy) ``pcm`` into ``frame``, matching channel counts."""
        x: npt.NDArray[np.floating] = np.asarray(pcm)
        if x.ndim == 2 and x.shape[1] == FRAME_SAMPLES and x.shape[0] not in (1, self.channels):
            # More channels than the speaker: play their average.
            x = np.mean(x, axis=0, dtype=np.float32, out=self._downmix_scratch)
        elif x.shape not in ((FRAME_SAMPLES,), (1, FRAME_SAMPLES), (self.channels, FRAME_SAMPLES)):
            raise ValueError(
                f"expected ({FRAME_SAMPLES},) or (channels, {FRAME_SAMPLES}) audio, got {x.shape}"
            )
        # A (960,) or (1, 960) source broadcasts to every channel of the speaker.
        if overwrite:
            frame[...] = x
        else:
            frame += x

    def _commit(self, slot: int, t: float) -> None:
        """Account for the frame just written into ring slot ``slot`` at loop time ``t``."""
        if self.start_time is None:
            self.start_time = t
        self._frame_times[slot] = t
        self.frames_written += 1

    def _write_silence(self, count: int, first_t: float) -> None:
        for i in range(count):
            slot = self.frames_written % self._capacity_frames
            self._ring[:, slot * FRAME_SAMPLES : (slot + 1) * FRAME_SAMPLES] = 0.0
            self._commit(slot, first_t + i * FRAME_DURATION)
        self.frames_caught_up += count

    # -- reading -------------------------------------------------------------
    @property
    def total_samples(self) -> int:
        """Samples (per channel) written since creation (including evicted ones)."""
        return self.frames_written * FRAME_SAMPLES

    @property
    def first_retained_sample(self) -> int:
        """Absolute index of the oldest sample still in the ring buffer."""
        return max(0, self.total_samples - self._capacity)

    def _ring_spans(self, start: int, end: int | None) -> list[tuple[int, int]]:
        """Ring index ranges holding absolute samples ``[start, end)`` (clamped to what is retained)."""
        stop = self.total_samples if end is None else min(end, self.total_samples)
        begin = max(start, self.first_retained_sample)
        if stop <= begin:
            return []
        a = begin % self._capacity
        length = stop - begin
        if a + length <= self._capacity:
            return [(a, a + length)]
        return [(a, self._capacity), (0, length - (self._capacity - a))]

    def samples_range_channels(self, start: int, end: int | None = None) -> FloatArray:
        """Samples ``[start, end)`` of every channel, shape ``(channels, n)`` (clamped to what's retained)."""
        spans = self._ring_spans(start, end)
        if not spans:
            return np.zeros((self.channels, 0), dtype=np.float32)
        if len(spans) == 1:
            a, b = spans[0]
            return self._ring[:, a:b].copy()
        return np.concatenate([self._ring[:, a:b] for a, b in spans], axis=1)

    def samples_range(self, start: int, end: int | None = None) -> FloatArray:
        """Samples with absolute indices ``[start, end)`` (clamped to what is retained), mono float32.

        For a stereo speaker this is the channel average, (L + R) / 2.
        """
        spans = self._ring_spans(start, end)
        out = np.empty(sum(b - a for a, b in spans), dtype=np.float32)
        pos = 0
        for a, b in spans:
            dst = out[pos : pos + b - a]
            if self.channels == 1:
                dst[:] = self._ring[0, a:b]
            else:
                np.add(self._ring[0, a:b], self._ring[1, a:b], out=dst)
            pos += b - a
        if self.channels != 1:
            out *= np.float32(0.5)
        return out

    def _last_start(self, seconds: float | None) -> int:
        total = self.total_samples
        count = total if seconds is None else max(0, round(seconds * SAMPLE_RATE))
        return total - min(count, total, self._capacity)

    def samples(self, seconds: float | None = None) -> FloatArray:
        """The last ``seconds`` of audio (all retained audio when None), mono float32.

        For a stereo speaker this is the channel average, (L + R) / 2.
        """
        return self.samples_range(self._last_start(seconds))

    def samples_channels(self, seconds: float | None = None) -> FloatArray:
        """The last ``seconds`` of audio (all retained when None), shape ``(channels, n)`` float32."""
        return self.samples_range_channels(self._last_start(seconds))

    def time_of_sample(self, index: int) -> float:
        """Loop time at which absolute sample ``index`` was played.

        Raises ``ValueError`` if the sample was never written or was evicted.
        """
        if not self.first_retained_sample <= index < self.total_samples:
            raise ValueError(f"sample {index} is not in the buffer")
        frame, offset = divmod(index, FRAME_SAMPLES)
        return float(self._frame_times[frame % self._capacity_frames]) + offset / SAMPLE_RATE

    def sample_at_time(self, t: float) -> int:
        """Absolute index of the retained sample played at loop time ``t`` (clamped)."""
        total_frames = self.frames_written
        if total_frames == 0:
            raise ValueError("nothing has been written yet")
        first_frame = self.first_retained_sample // FRAME_SAMPLES
        frames = np.arange(first_frame, total_frames)
        times = self._frame_times[frames % self._capacity_frames]
        pos = int(np.searchsorted(times, t, side="right")) - 1
        if pos < 0:
            return int(frames[0]) * FRAME_SAMPLES
        offset = math.floor((t - float(times[pos])) * SAMPLE_RATE + 1e-6)  # tolerate float error
        index = int(frames[pos]) * FRAME_SAMPLES + max(0, min(offset, FRAME_SAMPLES - 1))
        return index


# --------------------------------------------------------------------------- #
# Camera
# --------------------------------------------------------------------------- #

# BT.601 limited-range YUV for 75% colour bars: white, yellow, cyan, green,
# magenta, red, blue.
_BARS_YUV: tuple[tuple[int, int, int], ...] = (
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
)
_Y_BLACK = 16
_Y_WHITE = 235


class SyntheticCamera:
    """A moving test pattern source (yuv420p).

    The picture is 75% colour bars with a black box bouncing around, and the
    frame counter encoded as 16 black/white blocks (MSB first) in a strip
    along the top edge; :meth:`read_counter` decodes it from a received frame,
    which lets tests detect freezes, drops and video latency.

    :meth:`next_frame` is not paced: the caller (e.g. :class:`CameraTrack`)
    decides when to take frames. pts is ``count * 90000 / fps`` in a 1/90000
    time base.
    """

    is_virtual: bool = True
    COUNTER_BITS = 16

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        fps: float = 15.0,
        name: str = "synthetic-camera",
    ) -> None:
        if width % 2 or height % 2 or width < 32 or height < 32:
            raise ValueError("width and height must be even and >= 32")
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.name = name
        self.width = width
        self.height = height
        self.fps = float(fps)
        self.frame_count = 0
        self.strip_height = max(2, (height // 15) & ~1)
        self._block_width = width // self.COUNTER_BITS
        self._box = max(2, (height // 5) & ~1)
        self._base = self._make_bars()

    def _make_bars(self) -> npt.NDArray[np.uint8]:
        w, h = self.width, self.height
        img = np.empty((h * 3 // 2, w), dtype=np.uint8)
        y = img[:h]
        u = img[h : h + h // 4].reshape(h // 2, w // 2)
        v = img[h + h // 4 :].reshape(h // 2, w // 2)
        bars = len(_BARS_YUV)
        for i, (yy, uu, vv) in enumerate(_BARS_YUV):
            x0, x1 = i * w // bars, (i + 1) * w // bars
            y[:, x0:x1] = yy
            u[:, x0 // 2 : x1 // 2] = uu
            v[:, x0 // 2 : x1 // 2] = vv
        # Black counter strip background (white bit blocks are drawn per frame).
        y[: self.strip_height] = _Y_BLACK
        u[: self.strip_height // 2] = 128
        v[: self.strip_height // 2] = 128
        return img

    @staticmethod
    def _bounce(pos: int, span: int) -> int:
        if span <= 0:
            return 0
        period = 2 * span
        p = pos % period
        return p if p <= span else period - p

    def next_frame(self) -> av.VideoFrame:
        """Render the next frame and advance the counter."""
        n = self.frame_count
        w, h = self.width, self.height
        img = self._base.copy()
        y = img[:h]
        u = img[h : h + h // 4].reshape(h // 2, w // 2)
        v = img[h + h // 4 :].reshape(h // 2, w // 2)
        # Moving box (even coordinates so chroma aligns), below the strip.
        box = self._box
        bx = self._bounce(n * 6, w - box) & ~1
        by = (self.strip_height + self._bounce(n * 4, h - self.strip_height - box)) & ~1
        y[by : by + box, bx : bx + box] = _Y_BLACK
        u[by // 2 : (by + box) // 2, bx // 2 : (bx + box) // 2] = 128
        v[by // 2 : (by + box) // 2, bx // 2 : (bx + box) // 2] = 128
        # Frame counter.
        bw = self._block_width
        for bit in range(self.COUNTER_BITS):
            if (n >> (self.COUNTER_BITS - 1 - bit)) & 1:
                y[: self.strip_height, bit * bw : (bit + 1) * bw] = _Y_WHITE
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = round(n * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.frame_count = n + 1
        return frame

    @classmethod
    def read_counter(cls, frame: av.VideoFrame) -> int:
        """Decode the frame counter (modulo 2**16) from a (possibly re-encoded) frame."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        h, w = frame.height, frame.width
        luma = np.asarray(frame.to_ndarray())[:h].astype(np.float32)
        strip = max(2, (h // 15) & ~1)
        bw = w // cls.COUNTER_BITS
        value = 0
        for bit in range(cls.COUNTER_BITS):
            x0, x1 = bit * bw, (bit + 1) * bw
            # Sample the block's centre to be robust to compression ringing.
            cx0, cx1 = x0 + bw // 4, x1 - bw // 4
            cy1 = max(1, strip - strip // 4)
            cy0 = min(strip // 4, cy1 - 1)
            mean = float(luma[cy0:cy1, cx0:cx1].mean())
            value = (value << 1) | int(mean > (_Y_BLACK + _Y_WHITE) / 2)
        return value


# --------------------------------------------------------------------------- #
# aiortc adapters
# --------------------------------------------------------------------------- #


class MicrophoneTrack(MediaStreamTrack):
    """aiortc audio track fed by the audio session clock (single consumer).

    The session clock calls :meth:`feed` with each 20 ms frame; :meth:`recv`
    returns it as an ``av.AudioFrame`` (s16, 48 kHz, layout "mono", pts
    advancing by the frame size -- 960 -- in a 1/48000 time base).

    * The queue holds at most ``max_queue`` (2) frames; feeding a full queue
      drops the oldest, so latency never accumulates.
    * ``recv`` keeps real-time pace on its own schedule: if nothing is fed
      within ``slack`` seconds (default 30 ms) after a frame is due it returns
      a silence frame, so RTP timing continues when the clock stalls.
    * ``enabled = False`` (mute): fed frames are discarded and ``recv``
      delivers silence frames at real-time pace (every 20 ms) instead of
      stopping, so RTP timestamps stay continuous and the remote jitter
      buffer does not reset when the track is unmuted.
    """

    kind = "audio"

    def __init__(self, name: str = "microphone", slack: float = 0.03, max_queue: int = 2) -> None:
        super().__init__()
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.name = name
        self.slack = float(slack)
        self._queue: collections.deque[npt.NDArray[np.int16]] = collections.deque(maxlen=max_queue)
        self._event = asyncio.Event()
        self._enabled = True
        self._due: float | None = None
        self._pts = 0
        self.frames_fed = 0
        self.frames_dropped = 0
        self.frames_sent = 0
        self.silence_frames = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        if not self._enabled:
            self._queue.clear()
        self._event.set()

    @property
    def queued(self) -> int:
        """Frames waiting to be sent (never more than ``max_queue``)."""
        return len(self._queue)

    def feed(self, pcm: npt.ArrayLike) -> None:
        """Queue one frame: ``(960,)`` or ``(channels, 960)`` float in [-1, 1]."""
        if self.readyState != "live" or not self._enabled:
            return
        mono = _to_mono(pcm)
        s16 = np.round(np.clip(mono, -1.0, 1.0) * 32767.0).astype(np.int16)
        if self._queue.maxlen is not None and len(self._queue) >= self._queue.maxlen:
            self.frames_dropped += 1
        self._queue.append(s16)
        self.frames_fed += 1
        self._event.set()

    async def _wait_for_pcm(self, deadline: float) -> npt.NDArray[np.int16] | None:
        loop = asyncio.get_running_loop()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            if not self._enabled:
                return None
            timeout = deadline - loop.time()
            if timeout <= 0:
                return None
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        return self._queue.popleft()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._due is None or self._due < now - 0.1:
            self._due = now  # first frame, or the consumer was away: re-anchor
        else:
            self._due += FRAME_DURATION
        pcm: npt.NDArray[np.int16] | None = None
        if not self._enabled:
            # Muted: pace silence in real time (wakes early if unmuted).
            self._queue.clear()
            delay = self._due - loop.time()
            if delay > 0:
                self._event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), delay)
        if self._enabled:
            pcm = await self._wait_for_pcm(self._due + self.slack)
        if self.readyState != "live":
            raise MediaStreamError
        if pcm is None:
            pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            self.silence_frames += 1
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = AUDIO_TIME_BASE
        self._pts += pcm.shape[0]
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._event.set()


class CameraTrack(MediaStreamTrack):
    """aiortc video track serving a :class:`SyntheticCamera` (single consumer).

    ``recv`` is paced at ``camera.fps`` on an absolute schedule
    (``loop.time()``); if the consumer falls more than two frame intervals
    behind, the schedule is re-anchored (frames are skipped, not burst).
    pts are derived from the schedule in a 1/90000 time base, so they stay
    monotonic across enable/disable.

    ``enabled = False`` (camera off): the camera is not advanced and black
    frames are sent at ``disabled_fps`` (default 1 fps) -- the encoder keeps a
    live, cheap stream and the remote sees black rather than a frozen picture.
    Re-enabling takes effect immediately.
    """

    kind = "video"

    def __init__(
        self,
        camera: SyntheticCamera | None = None,
        disabled_fps: float = 1.0,
    ) -> None:
        super().__init__()
        if disabled_fps <= 0:
            raise ValueError("disabled_fps must be positive")
        self.camera = camera or SyntheticCamera()
        self.disabled_fps = float(disabled_fps)
        self._enabled = True
        self._wake = asyncio.Event()
        self._t0: float | None = None
        self._last_due = 0.0
        self._black: npt.NDArray[np.uint8] | None = None
        self.frames_sent = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        self._wake.set()

    def _interval(self) -> float:
        return 1.0 / (self.camera.fps if self._enabled else self.disabled_fps)

    def _black_frame(self) -> av.VideoFrame:
        if self._black is None:
            w, h = self.camera.width, self.camera.height
            img = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
            img[:h] = _Y_BLACK
            self._black = img
        return av.VideoFrame.from_ndarray(self._black, format="yuv420p")

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = due = loop.time()
        else:
            due = self._last_due + self._interval()
            while True:
                now = loop.time()
                if now >= due or self.readyState != "live":
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due - now)
                # enabled may have changed: never wait longer than the new interval
                due = min(due, self._last_due + self._interval())
            if self.readyState != "live":
                raise MediaStreamError
            if loop.time() - due > 2 * self._interval():
                due = loop.time()
        self._last_due = due
        frame = self.camera.next_frame() if self._enabled else self._black_frame()
        frame.pts = round((due - self._t0) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._wake.set()
