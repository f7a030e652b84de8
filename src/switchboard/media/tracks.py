"""aiortc tracks: the microphone and camera as :class:`~aiortc.mediastreams.MediaStreamTrack` s."""

from __future__ import annotations

import asyncio
import collections
import contextlib

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from switchboard.media.audio_format import (
    AUDIO_TIME_BASE,
    FRAME_DURATION,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    to_mono,
)
from switchboard.media.camera import Y_BLACK, SyntheticCamera

__all__ = ["CameraTrack", "MicrophoneTrack"]


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
        mono = to_mono(pcm)
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
            img[:h] = Y_BLACK
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
