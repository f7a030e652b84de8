"""Playout: the per-remote-track buffer a speaker mixes from, and the interface of such sources.

:class:`PlayoutBuffer` takes decoded ``av.AudioFrame`` s (or float PCM) and hands out 48 kHz
frames; :class:`~switchboard.media.jitter_buffer.OpusJitterBuffer` is the other
:class:`SpeakerSource`, fed encoded Opus packets. Single-threaded asyncio code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import av
import numpy as np
import numpy.typing as npt

from switchboard.media.audio_format import FRAME_SAMPLES, SAMPLE_RATE, FloatArray, check_channels, rows_for

__all__ = ["PlayoutBuffer", "SpeakerSource"]

_S16_SCALE = np.float32(1.0 / 32768.0)
_S16_PAIR_SCALE = np.float32(1.0 / 65536.0)  # average of two s16 samples, scaled to [-1, 1]


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
        self.channels = check_channels(channels)
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
        self._append(rows_for(pcm, self.channels))

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
        return rows_for(np.concatenate(parts, axis=1), self.channels)

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
