"""The client's jitter buffer for one remote Opus stream: packets in, 48 kHz audio out, losses hidden.

Packets are kept encoded, keyed by RTP timestamp, and decoded when the speaker pulls (every 20 ms),
so a missing frame is known at the moment it would play:

* the packet is there: decode it;
* it is missing but the next one is already here: rebuild it from the next packet's in-band FEC
  (RFC 6716 section 2.1.7; libopus conceals instead when that packet carries no FEC data);
* nothing newer is here yet (lost, or late): libopus packet-loss concealment (PLC) fills the 20 ms
  and the frame stays due. If it then arrives it plays next (the buffer has grown by one frame,
  which is what lets FEC work on the following losses); if the frame after it arrives instead and
  carries FEC, the missing frame is rebuilt from it and played too (same gain of depth); without
  FEC the concealment stands and playout goes on with that packet.

Playout starts with the first packet (no prefetch: a resumed call is audible at once). Depth grows
only when packets come late or get lost, and anything beyond :data:`HIGH_WATER_SAMPLES` is
dropped back to :data:`TARGET_SAMPLES`, so a burst never leaves standing latency. After
:data:`MAX_CONCEALED_FRAMES` concealed frames in a row with nothing arriving (the sender stopped,
DTX silence) the stream goes idle: :meth:`pull` returns ``None`` until packets come again.

With ``conceal=False`` the buffer plays what arrives and nothing else: a lost frame is heard as a
gap (the behaviour without loss resilience, kept for comparison).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from switchboard.media.audio_format import FRAME_SAMPLES, FloatArray, check_channels
from switchboard.media.opus import OpusDecoder, OpusError, packet_has_fec, packet_samples
from switchboard.media.playout import SpeakerSource

__all__ = ["HIGH_WATER_SAMPLES", "MAX_CONCEALED_FRAMES", "TARGET_SAMPLES", "JitterStats", "OpusJitterBuffer"]

#: buffered audio beyond 60 ms is dropped back to 40 ms (two packets of jitter allowance)
HIGH_WATER_SAMPLES: Final = 48000 * 60 // 1000
TARGET_SAMPLES: Final = 48000 * 40 // 1000
#: 100 ms of concealment with nothing arriving: the stream has stopped, stop inventing audio
MAX_CONCEALED_FRAMES: Final = 5
_SCALE: Final = np.float32(1.0 / 32768.0)
_TS_MOD: Final = 1 << 32


@dataclass
class JitterStats:
    """Frame counts since the buffer was created (20 ms frames unless the sender uses others)."""

    packets: int = 0
    decoded: int = 0
    #: frames rebuilt from the next packet's in-band FEC
    recovered: int = 0
    #: frames filled by packet-loss concealment
    concealed: int = 0
    #: lost frames played as silence (``conceal=False``)
    gaps: int = 0
    #: packets that came after their frame had been played (or concealed)
    late: int = 0
    duplicates: int = 0
    #: packets dropped to bring the depth back to the target after a burst
    trimmed: int = 0
    undecodable: int = 0


def _has_fec(packet: bytes) -> bool:
    try:
        return packet_has_fec(packet)
    except OpusError:
        return False


class OpusJitterBuffer(SpeakerSource):
    """A :class:`SpeakerSource` fed Opus packets: ``push(timestamp, packet)``, then ``pull()``.

    ``timestamp`` is the RTP timestamp in 48 kHz samples (the unwrapped one aiortc's receiver maps,
    or raw 32-bit RTP timestamps: differences are taken modulo 2**32). ``channels`` (1 or 2) is the
    shape :meth:`pull` returns: ``(n,)`` float32 for mono, ``(2, n)`` for stereo. ``gain`` scales
    the output. Single-threaded: push and pull from the same thread.
    """

    def __init__(
        self, channels: int = 1, *, conceal: bool = True, gain: float = 1.0, name: str = "opus-jitter"
    ) -> None:
        self.name = name
        self.channels = check_channels(channels)
        self.conceal = conceal
        self.gain = float(gain)
        self.stats = JitterStats()
        self._decoder = OpusDecoder(self.channels)
        self._packets: dict[int, bytes] = {}
        self._cursor: int | None = None  # timestamp of the next frame to play
        self._concealed_run = 0
        self._pcm = np.zeros((self.channels, 0), dtype=np.float32)  # decoded, not yet pulled
        self._base: int | None = None  # first timestamp seen: timestamps are kept relative to it

    # -- input -----------------------------------------------------------------------------------

    def push(self, timestamp: int, packet: bytes) -> None:
        """Queue one Opus packet; a packet whose time has passed is counted as late and dropped."""
        self.stats.packets += 1
        if not packet:
            self.stats.undecodable += 1
            return
        if self._base is None:
            self._base = timestamp
        ts = self._relative(timestamp)
        if self._cursor is not None and ts < self._cursor:
            self.stats.late += 1
            return
        if ts in self._packets:
            self.stats.duplicates += 1
            return
        self._packets[ts] = packet

    def _relative(self, timestamp: int) -> int:
        assert self._base is not None
        delta = (timestamp - self._base) % _TS_MOD
        return delta - _TS_MOD if delta >= _TS_MOD // 2 else delta

    def reset(self) -> None:
        """Drop everything and start afresh (a call resumed after a pause: no stale audio, no click)."""
        self._packets.clear()
        self._cursor = None
        self._base = None
        self._concealed_run = 0
        self._pcm = np.zeros((self.channels, 0), dtype=np.float32)
        self._decoder.reset()

    @property
    def buffered_samples(self) -> int:
        """Audio waiting to play, per channel: decoded samples plus the span of queued packets."""
        return int(self._pcm.shape[1]) + self._queued_span()

    def _queued_span(self) -> int:
        if not self._packets or self._cursor is None:
            return 0
        newest = max(self._packets)
        return max(0, newest + self._duration(self._packets[newest]) - self._cursor)

    @staticmethod
    def _duration(packet: bytes) -> int:
        try:
            return packet_samples(packet)
        except OpusError:
            return FRAME_SAMPLES

    # -- output ----------------------------------------------------------------------------------

    def pull(self, n: int = FRAME_SAMPLES) -> FloatArray | None:
        """``n`` samples (``(n,)`` mono, ``(2, n)`` stereo), or ``None`` when nothing is playing."""
        if n <= 0:
            raise ValueError("n must be positive")
        while self._pcm.shape[1] < n:
            frame = self._next_frame()
            if frame is None:
                break
            self._pcm = np.concatenate([self._pcm, frame.astype(np.float32) * _SCALE], axis=1)
        available = int(self._pcm.shape[1])
        if available == 0:
            return None
        out = np.zeros((self.channels, n), dtype=np.float32)
        take = min(n, available)
        out[:, :take] = self._pcm[:, :take]
        self._pcm = self._pcm[:, take:]
        if self.gain != 1.0:
            out *= np.float32(self.gain)
        return out[0] if self.channels == 1 else out

    def _next_frame(self) -> npt.NDArray[np.int16] | None:
        if self._cursor is None:
            if not self._packets:
                return None
            self._cursor = min(self._packets)
        self._trim()
        cursor = self._cursor
        packet = self._packets.pop(cursor, None)
        if packet is not None:
            return self._decode(cursor, packet)
        newer = [ts for ts in self._packets if ts > cursor]
        if not newer:  # lost or late: nothing to play yet
            if not self.conceal or self._concealed_run >= MAX_CONCEALED_FRAMES:
                self._go_idle()
                return None
            self._concealed_run += 1
            self.stats.concealed += 1
            return self._decoder.conceal(FRAME_SAMPLES)  # the frame stays due: it may still come
        following = min(newer)
        if not self.conceal:
            missing = min(following - cursor, FRAME_SAMPLES)
            self._cursor = cursor + missing
            self.stats.gaps += 1
            return np.zeros((self.channels, missing), dtype=np.int16)
        next_packet = self._packets[following]
        adjacent = following - cursor == FRAME_SAMPLES
        if self._concealed_run:
            # This frame was concealed while nothing had arrived. If the packet after it carries
            # FEC, play the real frame now: one frame of depth is gained, so the next single loss
            # is recovered in time. Otherwise the concealment stands: go on with the next packet.
            self._concealed_run = 0
            if not (adjacent and _has_fec(next_packet)):
                self._cursor = following
                return self._decode(following, self._packets.pop(following))
        self._cursor = cursor + FRAME_SAMPLES
        if adjacent and _has_fec(next_packet):
            try:
                pcm = self._decoder.recover(next_packet, FRAME_SAMPLES)
            except OpusError:
                pass
            else:
                self.stats.recovered += 1
                return pcm
        self.stats.concealed += 1
        return self._decoder.conceal(FRAME_SAMPLES)

    def _decode(self, cursor: int, packet: bytes) -> npt.NDArray[np.int16] | None:
        self._concealed_run = 0
        try:
            pcm = self._decoder.decode(packet)
        except OpusError:
            self.stats.undecodable += 1
            self._cursor = cursor + FRAME_SAMPLES
            return self._decoder.conceal(FRAME_SAMPLES) if self.conceal else None
        self.stats.decoded += 1
        self._cursor = cursor + int(pcm.shape[1])
        return pcm

    def _trim(self) -> None:
        """After a burst, drop the oldest packets so at most :data:`TARGET_SAMPLES` stay queued."""
        if self._cursor is None or self._queued_span() + self._pcm.shape[1] <= HIGH_WATER_SAMPLES:
            return
        newest = max(self._packets)
        keep_from = newest + self._duration(self._packets[newest]) - TARGET_SAMPLES
        for ts in [t for t in self._packets if t < keep_from]:
            del self._packets[ts]
            self.stats.trimmed += 1
        self._cursor = min(self._packets) if self._packets else None

    def _go_idle(self) -> None:
        self._cursor = None
        self._concealed_run = 0
