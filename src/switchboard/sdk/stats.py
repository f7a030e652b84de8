"""Call statistics from this client's peer connections and RTCP (``await call.get_stats()``).

Per published track (``outbound``): payload bitrate, packets sent, and from the SFU's RTCP receiver
reports (RFC 3550 §6.4.2) the packets lost, fraction lost, interarrival jitter and round-trip time.
Per received track (``inbound``): payload bitrate, packets received, packets lost, the fraction lost
over the interval, and the interarrival jitter this client measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCOutboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
)

from switchboard.media.rtp_hooks import receiver_tap

if TYPE_CHECKING:
    from switchboard.sdk.session import CallSession

__all__ = ["CallStats", "TrackStats"]

#: RTP clock rates (Hz) of the codecs forwarded: jitter comes in these units
_CLOCK_RATE = {"audio": 48000, "video": 90000}
#: when no earlier sample is this recent, ``get_stats`` samples twice this far apart (s)
SAMPLE_WINDOW = 0.5


@dataclass(frozen=True)
class TrackStats:
    """One track's numbers. ``bitrate`` in bits per second of payload over the last interval;
    ``jitter_ms`` and ``round_trip_time_ms`` in milliseconds; ``fraction_lost`` 0..1; None: unknown
    (no RTCP report yet, or not measured for this direction)."""

    kind: str
    direction: Literal["outbound", "inbound"]
    #: the publisher: this client for outbound, the remote participant for inbound
    user_id: str
    session_id: str
    bitrate: float | None
    packets: int
    packets_lost: int
    fraction_lost: float | None
    jitter_ms: float | None
    round_trip_time_ms: float | None = None


@dataclass(frozen=True)
class CallStats:
    """Every track of the call as this client sees it, at ``timestamp`` (Unix time, s)."""

    timestamp: float
    tracks: tuple[TrackStats, ...]

    def outbound(self, kind: str = "audio") -> TrackStats | None:
        return next((t for t in self.tracks if t.direction == "outbound" and t.kind == kind), None)

    def inbound(self, user_id: str, kind: str = "audio") -> TrackStats | None:
        return next(
            (t for t in self.tracks if t.direction == "inbound" and t.kind == kind and t.user_id == user_id),
            None,
        )


@dataclass
class _Sample:
    at: float
    bytes: int
    packets: int
    lost: int


class StatsCollector:
    """Reads one call session's stats; keeps the previous sample of each track for rates."""

    def __init__(self) -> None:
        self._previous: dict[str, _Sample] = {}

    async def collect(self, media: CallSession, user_id: str) -> CallStats:
        samples = await self._read(media, user_id)
        stale = [key for key, (sample, _) in samples.items() if not self._recent(key, sample.at)]
        if stale:
            for key in stale:
                self._previous[key] = samples[key][0]
            await asyncio.sleep(SAMPLE_WINDOW)
            samples = await self._read(media, user_id)
        tracks: list[TrackStats] = []
        for key, (sample, partial) in samples.items():
            before = self._previous.get(key)
            bitrate = fraction = None
            if before is not None and sample.at > before.at:
                bitrate = max(0, sample.bytes - before.bytes) * 8 / (sample.at - before.at)
                if partial.direction == "inbound":
                    got = max(0, sample.packets - before.packets)
                    lost = max(0, sample.lost - before.lost)
                    fraction = lost / (got + lost) if got + lost else 0.0
            self._previous[key] = sample
            tracks.append(
                TrackStats(
                    kind=partial.kind,
                    direction=partial.direction,
                    user_id=partial.user_id,
                    session_id=partial.session_id,
                    bitrate=bitrate,
                    packets=partial.packets,
                    packets_lost=partial.packets_lost,
                    fraction_lost=partial.fraction_lost if partial.direction == "outbound" else fraction,
                    jitter_ms=partial.jitter_ms,
                    round_trip_time_ms=partial.round_trip_time_ms,
                )
            )
        return CallStats(timestamp=time.time(), tracks=tuple(tracks))

    def _recent(self, key: str, now: float) -> bool:
        before = self._previous.get(key)
        return before is not None and 0.2 <= now - before.at <= 10.0

    async def _read(self, media: CallSession, user_id: str) -> dict[str, tuple[_Sample, TrackStats]]:
        out: dict[str, tuple[_Sample, TrackStats]] = {}
        now = time.monotonic()
        for kind, transceiver in list(media.published_transceivers().items()):
            report = await transceiver.sender.getStats()
            sent = next((s for s in report.values() if isinstance(s, RTCOutboundRtpStreamStats)), None)
            remote = next((s for s in report.values() if isinstance(s, RTCRemoteInboundRtpStreamStats)), None)
            if sent is None:
                continue
            clock = _CLOCK_RATE.get(kind, 48000)
            # aiortc leaves the round trip None until a receiver report answers one of its reports
            rtt: float | None = getattr(remote, "roundTripTime", None)
            out[f"out:{kind}"] = (
                _Sample(now, sent.bytesSent, sent.packetsSent, remote.packetsLost if remote else 0),
                TrackStats(
                    kind=kind,
                    direction="outbound",
                    user_id=user_id,
                    session_id=media.session_id or "",
                    bitrate=None,
                    packets=sent.packetsSent,
                    packets_lost=remote.packetsLost if remote else 0,
                    # RTCP carries it as an 8-bit fixed-point fraction (RFC 3550 §6.4.1); aiortc as is
                    fraction_lost=remote.fractionLost / 256 if remote else None,
                    jitter_ms=remote.jitter * 1000 / clock if remote else None,
                    round_trip_time_ms=rtt * 1000 if rtt is not None else None,
                ),
            )
        for transceiver in media.subscriber.getTransceivers():
            owner = media.mid_owner.get(transceiver.mid or "")
            if owner is None:
                continue
            report = await transceiver.receiver.getStats()
            got = next((s for s in report.values() if isinstance(s, RTCInboundRtpStreamStats)), None)
            if got is None:
                continue
            tap = receiver_tap(transceiver.receiver)
            clock = _CLOCK_RATE.get(owner.kind, 48000)
            out[f"in:{transceiver.mid}:{owner.session_id}"] = (
                _Sample(now, tap.bytes if tap is not None else 0, got.packetsReceived, got.packetsLost),
                TrackStats(
                    kind=owner.kind,
                    direction="inbound",
                    user_id=owner.user_id,
                    session_id=owner.session_id,
                    bitrate=None,
                    packets=got.packetsReceived,
                    packets_lost=max(0, got.packetsLost),
                    fraction_lost=None,
                    jitter_ms=got.jitter * 1000 / clock,
                ),
            )
        return out
