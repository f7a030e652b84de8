"""Connection quality per participant, from the SFU's own RTP and RTCP statistics.

Every :data:`INTERVAL` seconds the room's :class:`QualityMonitor` reads, for each session, the
loss of what it publishes (packets lost / expected at the SFU's receivers over the interval, RFC
3550 §6.4.1 counting) and what its client reports about what it receives (RTCP receiver reports:
fraction lost, round-trip time), and rates it: ``excellent`` (loss under 2 %, round trip under
300 ms), ``good`` (loss under 10 %, round trip under 600 ms) or ``poor``. The room gets
``connection_quality`` when a rating changes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats

from switchboard.protocol import sfu as p

if TYPE_CHECKING:
    from switchboard.server.sfu.participant import Participant
    from switchboard.server.sfu.room import Room

log = logging.getLogger("switchboard.sfu.quality")

INTERVAL = 2.0
EXCELLENT = (0.02, 0.3)  # (loss, round trip s) limits
GOOD = (0.10, 0.6)


@dataclass
class _Counts:
    received: int = 0
    lost: int = 0


def rate(loss: float, rtt: float | None) -> p.Quality:
    """The rating for a loss fraction (0..1) and round-trip time (s, None: unknown)."""
    rtt = rtt or 0.0
    if loss < EXCELLENT[0] and rtt < EXCELLENT[1]:
        return "excellent"
    if loss < GOOD[0] and rtt < GOOD[1]:
        return "good"
    return "poor"


class QualityMonitor:
    def __init__(self, room: Room) -> None:
        self._room = room
        self._counts: dict[tuple[str, int], _Counts] = {}
        self.ratings: dict[str, p.Quality] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._room.participants:
                await asyncio.sleep(INTERVAL)
                if await self.tick():
                    await self._room.broadcast(
                        p.ConnectionQuality(qualities=dict(self.ratings)), exclude=None
                    )
        except Exception:
            log.exception("%s: connection quality failed", self._room.cid)

    async def tick(self) -> bool:
        """Rate every session now; whether any rating changed."""
        changed = False
        present = set(self._room.participants)
        for session in [s for s in self.ratings if s not in present]:
            del self.ratings[session]
            changed = True
        for session, participant in list(self._room.participants.items()):
            loss, rtt = await self._measure(participant)
            if loss is None:
                continue
            rating = rate(loss, rtt)
            if self.ratings.get(session) != rating:
                self.ratings[session] = rating
                changed = True
        return changed

    async def _measure(self, participant: Participant) -> tuple[float | None, float | None]:
        losses: list[float] = []
        rtts: list[float] = []
        for track in list(participant.published.values()):
            report = await track.receiver.getStats()
            for stats in report.values():
                if not isinstance(stats, RTCInboundRtpStreamStats):
                    continue
                key = (participant.session_id, stats.ssrc)
                before = self._counts.get(key, _Counts())
                got = stats.packetsReceived - before.received
                lost = max(0, stats.packetsLost - before.lost)
                self._counts[key] = _Counts(stats.packetsReceived, max(0, stats.packetsLost))
                if got + lost > 0:
                    losses.append(lost / (got + lost))
        for down in list(participant.downtracks):
            if down.source is None:
                continue
            report = await down.transceiver.sender.getStats()
            for stats in report.values():
                if isinstance(stats, RTCRemoteInboundRtpStreamStats):
                    losses.append(stats.fractionLost / 256)  # 8-bit fixed point (RFC 3550 §6.4.1)
                    rtt: float | None = getattr(stats, "roundTripTime", None)  # None before a report pair
                    if rtt is not None:
                        rtts.append(rtt)
        if not losses:
            return None, None
        return max(losses), max(rtts) if rtts else None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
