"""A synthetic camera: a moving test pattern whose frame counter can be read back from received video."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

from switchboard.media.audio_format import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE

__all__ = ["Y_BLACK", "SyntheticCamera"]

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
Y_BLACK = 16
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
        y[: self.strip_height] = Y_BLACK
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
        y[by : by + box, bx : bx + box] = Y_BLACK
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
            value = (value << 1) | int(mean > (Y_BLACK + _Y_WHITE) / 2)
        return value
