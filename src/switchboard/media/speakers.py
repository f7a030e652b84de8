"""Speakers: real-time sinks that mix every playing source on a 20 ms clock.

:class:`CaptureSpeaker` is the virtual one: it records what it plays, so tests and tools can listen.
Single-threaded asyncio code: call it from the event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from switchboard.media.audio_format import (
    FRAME_DURATION,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    FloatArray,
    TickHook,
    check_channels,
    now,
)
from switchboard.media.playout import SpeakerSource

__all__ = ["CaptureSpeaker", "Speaker"]

logger = logging.getLogger(__name__)


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
        self.channels = check_channels(channels)
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
    def output_delay_ms(self) -> float:
        """Render delay (ms) from a mixed frame to its sound leaving the device (0 when virtual)."""
        return 0.0

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
        when = now() if t is None else t
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
