"""The forwarding graph: one published track fans its encoded frames out to every subscriber.

A :class:`PublishedTrack` taps the publisher's receiver (no decoder is ever created) and hands each
frame to the :class:`DownTrack` of every subscriber. A down-track is one sending transceiver of a
subscriber's peer connection with one long-lived :class:`EncodedTrack`; when its source goes away it
is kept idle and reused for the next track of the same kind (aiortc's sender loop ends for good when
its track ends, so tracks are never swapped under it). Keyframe requests from any subscriber reach
the publisher as a PLI, coalesced.

Audio is written straight from the ingest callback: each Opus packet becomes one RTP packet per
subscriber (its own SSRC, sequence numbers and timestamp timeline), SRTP-protected and sent by the
down-track's :class:`DirectRtpSender`, with no task, queue or per-packet object in between; the
aiortc sender keeps doing the RTCP (reports, PLI, NACK answers come from the direct sender's
history). Video goes through the down-track's :class:`EncodedTrack` and aiortc's sender, which
packetizes frames (``docs/performance.md``, SFU section).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiortc import RTCRtpReceiver, RTCRtpTransceiver

from switchboard.media.rtp_hooks import (
    DirectRtpSender,
    EncodedFrame,
    EncodedTrack,
    ReceiverTap,
    ntp_now,
    on_keyframe_request,
    request_keyframe,
    tap_receiver,
)

Kind = Literal["audio", "video"]
#: at most one PLI per publisher track per this many seconds, however many subscribers ask
PLI_MIN_INTERVAL = 0.3
#: audio down-tracks created from now on send RTP straight from the ingest path; False: through
#: aiortc's sender task like video (kept as the benchmarks' baseline, ``benchmarks/engines.py``)
DIRECT_AUDIO = True


class DownTrack:
    """One sending transceiver on a subscriber's connection, forwarding one source at a time."""

    def __init__(self, kind: Kind, transceiver: RTCRtpTransceiver, track: EncodedTrack) -> None:
        self.kind = kind
        self.transceiver = transceiver
        self.track = track
        self.source: PublishedTrack | None = None
        self._paused = False
        #: audio: writes this down-track's RTP itself (its counters are the track's ``stats``)
        self.direct: DirectRtpSender | None = (
            DirectRtpSender(transceiver.sender, track.stats) if kind == "audio" and DIRECT_AUDIO else None
        )
        if self.direct is not None:
            self.direct.pause()
        track.on_keyframe_needed = self._keyframe_needed
        on_keyframe_request(transceiver.sender, self._keyframe_needed)

    @property
    def mid(self) -> str | None:
        return self.transceiver.mid

    @property
    def paused(self) -> bool:
        return self._paused

    def _keyframe_needed(self) -> None:
        if self.source is not None:
            self.source.request_keyframe()

    def bind(self, source: PublishedTrack, *, paused: bool) -> None:
        """Forward ``source`` from now on (a video source starts at its next keyframe)."""
        self.unbind()
        self.source = source
        source.downtracks.append(self)
        self.set_paused(paused, force=True)

    def unbind(self) -> None:
        if self.source is not None and self in self.source.downtracks:
            self.source.downtracks.remove(self)
        self.source = None
        self.track.pause()
        if self.direct is not None:
            self.direct.pause()

    def set_paused(self, paused: bool, *, force: bool = False) -> None:
        if paused == self._paused and not force:
            return
        self._paused = paused
        direct = self.direct
        if paused or self.source is None:
            self.track.pause()
            if direct is not None:
                direct.pause()
        else:
            # flush, then resume: timestamps jump with wall time, video waits for a keyframe
            self.track.pause()
            self.track.resume()
            if direct is not None:
                direct.pause()
                direct.resume()

    def close(self) -> None:
        self.unbind()
        self.track.stop()


@dataclass(eq=False)
class PublishedTrack:
    user_id: str
    session_id: str
    kind: Kind
    receiver: RTCRtpReceiver
    muted: bool = False
    downtracks: list[DownTrack] = field(default_factory=list)
    tap: ReceiverTap | None = None
    frames_in: int = 0
    bytes_in: int = 0
    #: first byte of the newest frame: for Opus, the TOC byte (mode, bandwidth, stereo) as sent
    last_head: int | None = None
    #: muted by a moderator: nothing is forwarded until the publisher unmutes (``moderation.py``)
    moderated: bool = False
    #: told each forwarded frame's RFC 6464 level, dBov -127..0 (``speakers.py``)
    on_audio_level: Callable[[int], None] | None = None
    #: also given every forwarded frame (recorders, ``recording.py``)
    sinks: list[Callable[[EncodedFrame], None]] = field(default_factory=list)

    def start(self) -> None:
        self.tap = tap_receiver(self.receiver, self._forward)

    def _forward(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        self.bytes_in += len(frame.data)
        if frame.data:
            self.last_head = frame.data[0]
        if self.moderated:
            return
        if self.on_audio_level is not None and frame.audio_level is not None:
            self.on_audio_level(frame.audio_level)
        for sink in self.sinks:
            sink(frame)
        if self.kind == "audio":
            now = time.monotonic()
            ntp = ntp_now()
            data, timestamp, stream = frame.data, frame.timestamp, frame.stream_id
            for down in self.downtracks:
                direct = down.direct
                if direct is not None:
                    direct.send(data, timestamp, stream, now, ntp)
                else:
                    down.track.push(frame)
        else:
            for down in self.downtracks:
                down.track.push(frame)

    def request_keyframe(self) -> None:
        if self.kind == "video":
            request_keyframe(self.receiver, min_interval=PLI_MIN_INTERVAL)

    def close(self) -> None:
        for down in list(self.downtracks):
            down.unbind()
        if self.tap is not None:
            self.tap.close()
            self.tap = None
