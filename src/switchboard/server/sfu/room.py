"""A call on the SFU: its participant sessions and who forwards to whom."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from switchboard.protocol import sfu as p
from switchboard.server.sfu.forwarding import PublishedTrack
from switchboard.server.sfu.quality import QualityMonitor
from switchboard.server.sfu.sessions import CallSessions, ParticipantHook, forget_session
from switchboard.server.sfu.speakers import SpeakerDetector

if TYPE_CHECKING:
    from switchboard.server.sfu.participant import Participant

log = logging.getLogger("switchboard.sfu")

__all__ = ["ParticipantHook", "Room"]


class Room(CallSessions["Participant"]):
    def __init__(
        self,
        cid: str,
        *,
        on_participant: ParticipantHook | None = None,
        on_empty: Callable[[Room], None] | None = None,
    ) -> None:
        super().__init__(cid, on_participant=on_participant)
        self._on_empty = on_empty
        #: audio levels and the dominant speaker; connection quality per session (both stop when the
        #: room ends)
        self.speakers = SpeakerDetector(self)
        self.quality = QualityMonitor(self)

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
        await self._notify(participant, True)

    def track_published(self, publisher: Participant, track: PublishedTrack) -> None:
        # (a track it replaces was closed by the publisher first, which idled its down-tracks for reuse)
        if track.kind == "audio":
            self.speakers.track_published(track)  # audio levels and dominant speaker
        self.quality.start()  # connection quality per session
        from switchboard.server.sfu.recording import recorder_of

        recorder = recorder_of(self)
        if recorder is not None:
            recorder.track_published(track)  # a recording running: this track is recorded too
        for other in self.others(publisher):
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

    def track_unpublished(self, publisher: Participant, track: PublishedTrack) -> None:
        """Stop forwarding ``track`` (already taken out of ``publisher.published``) and say so."""
        for other in self.others(publisher):
            other.unsubscribe(track)
        track.close()
        publisher.spawn(
            self.broadcast(
                p.TrackUnpublished(
                    user_id=publisher.user_id, session_id=publisher.session_id, kind=track.kind
                ),
                exclude=publisher,
            )
        )

    async def remove(self, participant: Participant, *, reason: str = "left") -> None:
        self.cancel_removal(participant)
        if self.participants.get(participant.session_id) is not participant:
            return
        del self.participants[participant.session_id]
        for track in participant.published.values():
            for other in self.others(participant):
                other.unsubscribe(track)
        for other in self.others(participant):
            # pauses naming the departed session are forgotten (bounded memory)
            other.paused = forget_session(other.paused, participant.session_id)
        await participant.close()
        await self.broadcast(
            p.ParticipantLeft(user_id=participant.user_id, session_id=participant.session_id, reason=reason),
            exclude=None,
        )
        log.info("%s: %r removed (%s)", self.cid, participant, reason)
        await self._notify(participant, False)
        if not self.participants and self._on_empty is not None:
            self._on_empty(self)

    async def end(self) -> None:
        self.speakers.close()
        self.quality.close()
        await self.broadcast(p.CallEnded(), exclude=None)
        await asyncio.gather(*(self.remove(q, reason="call_ended") for q in list(self.participants.values())))
