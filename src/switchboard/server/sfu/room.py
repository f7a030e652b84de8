"""A call on the SFU: its participant sessions and who forwards to whom."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from switchboard.protocol import sfu as p
from switchboard.server.sfu.forwarding import PublishedTrack

if TYPE_CHECKING:
    from switchboard.server.sfu.participant import Participant

log = logging.getLogger("switchboard.sfu")


class Room:
    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.participants: dict[str, Participant] = {}
        self._removal_timers: dict[str, asyncio.TimerHandle] = {}

    def others(self, participant: Participant) -> list[Participant]:
        return [q for q in self.participants.values() if q is not participant]

    async def broadcast(self, message: p._Msg, *, exclude: Participant | None) -> None:
        await asyncio.gather(
            *(q.send(message) for q in self.participants.values() if q is not exclude), return_exceptions=True
        )

    async def add(self, participant: Participant) -> None:
        self.participants[participant.session_id] = participant
        await participant.send(
            p.JoinResponse(
                session_id=participant.session_id,
                call_cid=self.cid,
                participants=[q.info() for q in self.others(participant)],
            )
        )
        await self.broadcast(p.ParticipantJoined(participant=participant.info()), exclude=participant)
        for other in self.others(participant):
            for track in other.published.values():
                participant.subscribe(track)

    def track_published(self, publisher: Participant, track: PublishedTrack) -> None:
        for other in self.others(publisher):
            for down in other.downtracks:
                if (
                    down.source is not None
                    and down.source.session_id == publisher.session_id
                    and down.kind == track.kind
                ):
                    down.unbind()
            other.subscribe(track)
        publisher.spawn(
            self.broadcast(
                p.TrackPublished(
                    user_id=publisher.user_id,
                    session_id=publisher.session_id,
                    kind=track.kind,
                    muted=track.muted,
                ),
                exclude=publisher,
            )
        )

    async def remove(self, participant: Participant, *, reason: str = "left") -> None:
        timer = self._removal_timers.pop(participant.session_id, None)
        if timer is not None:
            timer.cancel()
        if self.participants.get(participant.session_id) is not participant:
            return
        del self.participants[participant.session_id]
        for track in participant.published.values():
            for other in self.others(participant):
                other.unsubscribe(track)
        await participant.close()
        await self.broadcast(
            p.ParticipantLeft(user_id=participant.user_id, session_id=participant.session_id, reason=reason),
            exclude=None,
        )
        log.info("%s: %r removed (%s)", self.cid, participant, reason)

    def schedule_removal(self, participant: Participant, grace: float) -> None:
        """The socket dropped without a leave: remove the session unless it reconnects within ``grace``."""
        participant.detach()
        loop = asyncio.get_running_loop()
        self._removal_timers[participant.session_id] = loop.call_later(
            grace, lambda: participant.spawn(self.remove(participant, reason="vanished"))
        )

    def cancel_removal(self, participant: Participant) -> None:
        timer = self._removal_timers.pop(participant.session_id, None)
        if timer is not None:
            timer.cancel()

    async def end(self) -> None:
        await self.broadcast(p.CallEnded(), exclude=None)
        await asyncio.gather(*(self.remove(q, reason="call_ended") for q in list(self.participants.values())))
