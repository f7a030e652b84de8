"""The SFU's signalling endpoint (aiohttp WebSocket) and its rooms.

One WebSocket per participant session: the first message is ``join`` with the SFU token the
coordinator minted (signature and expiry checked here, then the coordinator admits it: call live,
session not left, grants current); then SDP offers/answers, mute state, subscription control, health
checks and ``leave``. Garbage gets an ``error`` message and the session (and everyone else) carries
on, within the per-socket limits (message size, rate, malformed messages) and the per-user session
caps of :class:`SfuConfig`; going over one closes the socket with a ``protocol.sfu.CloseCode``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from aiohttp import web

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims
from switchboard.server.sfu.config import SfuConfig
from switchboard.server.sfu.live_grants import apply_grants_update
from switchboard.server.sfu.messages import MessageRelay
from switchboard.server.sfu.moderation import moderate
from switchboard.server.sfu.participant import Participant
from switchboard.server.sfu.recording import Recordings
from switchboard.server.sfu.room import ParticipantHook, Room
from switchboard.server.sfu.signalling import Admission, SignallingServer, close_code_for

__all__ = ["Admission", "SfuConfig", "SfuServer", "close_code_for"]

log = logging.getLogger("switchboard.sfu")


class SfuServer(SignallingServer[Participant, Room]):
    def __init__(
        self,
        config: SfuConfig,
        admission: Admission | None = None,
        on_participant: ParticipantHook | None = None,
    ) -> None:
        super().__init__(config, admission)
        self._on_participant = on_participant
        self.messages = MessageRelay()
        self.recordings = Recordings(
            Path(config.recordings_dir or Path(tempfile.gettempdir()) / "switchboard-recordings")
        )

    def room(self, cid: str) -> Room:
        room = self.rooms.get(cid)
        if room is None:
            room = self.rooms[cid] = Room(cid, on_participant=self._on_participant, on_empty=self._room_empty)
        return room

    def _room_empty(self, room: Room) -> None:
        if self.rooms.get(room.cid) is room:
            del self.rooms[room.cid]

    def stats(self) -> dict[str, object]:
        """Forwarding counters per room, participant and track (for operators and benchmarks)."""
        rooms: dict[str, object] = {}
        for cid, room in self.rooms.items():
            rooms[cid] = {
                session: {
                    "user_id": part.user_id,
                    "published": {
                        kind: {"frames_in": t.frames_in, "bytes_in": t.bytes_in, "muted": t.muted}
                        for kind, t in part.published.items()
                    },
                    "downtracks": [
                        {
                            "kind": d.kind,
                            "source": d.source.session_id if d.source else None,
                            "paused": d.paused,
                            "pushed": d.track.stats.pushed,
                            "sent": d.track.stats.sent,
                            "dropped_overflow": d.track.stats.dropped_overflow,
                            "dropped_paused": d.track.stats.dropped_paused,
                        }
                        for d in part.downtracks
                    ],
                }
                for session, part in room.participants.items()
            }
        return {"participants": self.participant_count(), "rooms": rooms}

    async def end_call(self, cid: str) -> None:
        """The coordinator ended the call: tell everyone and close their sessions."""
        await self.recordings.call_ended(cid)
        room = self.rooms.pop(cid, None)
        if room is not None:
            await room.end()

    async def recording(self, command: p.RecordingCommand) -> p.RecordingsReport:
        """Start, stop or list a call's recordings (``recording.py``); CallStateError when refused."""
        return await self.recordings.command(self.rooms, command)

    async def moderate(self, command: p.ModerationCommand) -> int:
        """A moderator's command (``moderation.py``); the number of sessions it acted on."""
        room = self.rooms.get(command.cid)
        return 0 if room is None else await moderate(room, command)

    async def update_grants(self, update: p.GrantsUpdate) -> int:
        """Users' grants changed in a call (``live_grants.py``); the number of sessions it acted on."""
        room = self.rooms.get(update.cid)
        return 0 if room is None else await apply_grants_update(room, update)

    async def close(self) -> None:
        self._closing = True
        rooms, self.rooms = list(self.rooms.values()), {}
        await asyncio.gather(
            *(r.remove(q, reason="server_shutdown") for r in rooms for q in list(r.participants.values())),
            return_exceptions=True,
        )

    # ---------------------------------------------------------------- signalling hooks

    async def _open_room(self, cid: str) -> Room:
        return self.room(cid)

    def _new_participant(self, room: Room, claims: SfuClaims, ws: web.WebSocketResponse) -> Participant:
        return Participant(room, claims, ws, ice_loopback_address=self.config.ice_loopback_address)

    def _pause_all_audio(self, participant: Participant) -> None:
        participant.paused.add((None, "audio"))

    async def _dispatch_more(self, participant: Participant, message: p.ClientMessage) -> None:
        if isinstance(message, p.UpdateAudience):
            await participant.update_audience(message)
        elif isinstance(message, p.SendMessage):
            await self.messages.relay(participant, message)

    def _socket_done(self, participant: Participant) -> None:
        room = participant.room
        if not room.participants:
            self._room_empty(room)
