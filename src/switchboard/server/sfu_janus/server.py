"""The Janus engine's signalling endpoint: switchboard's SFU protocol in front of a Janus VideoRoom.

Clients cannot tell it from the embedded SFU (``server/sfu/server.py``): the same ``/sfu`` WebSocket,
messages, SFU tokens, coordinator admission, per-socket limits, close codes and reconnect grace
(``docs/protocol.md``); ``/sfu/stats`` (admin token) lists rooms, sessions and down-tracks. Media
flows between the clients and Janus (the node receives each publisher's audio once more, for audio
levels and recording: ``levels.py``). See ``docs/janus.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import tempfile
from pathlib import Path

from aiohttp import web

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims
from switchboard.server.sfu.messages import MessageRelay
from switchboard.server.sfu.recording import Recordings
from switchboard.server.sfu.server import SfuConfig
from switchboard.server.sfu.sessions import ParticipantHook
from switchboard.server.sfu.signalling import Admission, SignallingServer
from switchboard.server.sfu_janus.janus_api import JanusConnection, JanusError, JanusHandle
from switchboard.server.sfu_janus.live_grants import apply_grants_update
from switchboard.server.sfu_janus.moderation import moderate
from switchboard.server.sfu_janus.recording import JanusRecorder
from switchboard.server.sfu_janus.room import JanusParticipant, JanusRoom

log = logging.getLogger("switchboard.sfu.janus")

#: most publishers one Janus VideoRoom admits (its ``publishers`` setting)
MAX_PUBLISHERS_PER_ROOM = 256


class JanusSfuServer(SignallingServer[JanusParticipant, JanusRoom]):
    """An SFU node whose media engine is Janus (its WebSocket API at ``janus_url``).

    ``await start()`` connects to Janus (``ConnectionError`` if it is unreachable); ``app()`` is the
    aiohttp application clients connect to, exactly as with :class:`switchboard.server.sfu.SfuServer`.
    """

    engine_errors = (JanusError, ConnectionError, TimeoutError)

    def __init__(
        self,
        config: SfuConfig,
        janus_url: str,
        admission: Admission | None = None,
        on_participant: ParticipantHook | None = None,
    ) -> None:
        super().__init__(config, admission)
        self.janus_url = janus_url
        self.janus: JanusConnection | None = None
        self._control: JanusHandle | None = None
        self._on_participant = on_participant
        self._room_ids = itertools.count(1)
        self._room_lock = asyncio.Lock()
        self._watch: asyncio.Future[None] | None = None
        #: participant messages (``send_message``), relayed over signalling as on the embedded SFU
        self.messages = MessageRelay()
        self.recordings = Recordings(
            Path(config.recordings_dir or Path(tempfile.gettempdir()) / "switchboard-recordings"),
            new_recorder=JanusRecorder,
        )

    async def start(self) -> None:
        self.janus = JanusConnection(self.janus_url)
        await self.janus.connect()
        self._control = await self.janus.attach()
        self._watch = asyncio.ensure_future(self._watch_janus(self.janus))

    async def _watch_janus(self, janus: JanusConnection) -> None:
        """Janus went away (crashed, killed): every session ends at once, new joins are refused."""
        await janus.closed.wait()
        if self._closing or self.janus is not janus:
            return
        log.error("lost the connection to janus at %s: ending every session", self.janus_url)
        self.janus = None
        rooms, self.rooms = list(self.rooms.values()), {}
        for room in rooms:
            room.janus = None
        await asyncio.gather(
            *(r.remove(q, reason="server_shutdown") for r in rooms for q in list(r.participants.values())),
            return_exceptions=True,
        )

    async def room(self, cid: str) -> JanusRoom:
        """The call's room, creating its Janus VideoRoom the first time."""
        async with self._room_lock:
            room = self.rooms.get(cid)
            if room is not None:
                return room
            assert self.janus is not None and self._control is not None
            janus_room = next(self._room_ids)
            await self._control.message(
                {
                    "request": "create",
                    "room": janus_room,
                    "description": cid[:100],
                    "publishers": MAX_PUBLISHERS_PER_ROOM,
                    "audiocodec": "opus",
                    "videocodec": "vp8",
                    "is_private": True,
                    "permanent": False,
                    "notify_joining": False,
                }
            )
            room = self.rooms[cid] = JanusRoom(
                cid, self.janus, janus_room, on_participant=self._on_participant, on_empty=self._room_empty
            )
            return room

    async def _room_empty(self, room: JanusRoom) -> None:
        if self.rooms.get(room.cid) is room:
            del self.rooms[room.cid]
        if self._control is not None:
            with contextlib.suppress(JanusError, ConnectionError, TimeoutError):
                await self._control.message({"request": "destroy", "room": room.janus_room})

    def stats(self) -> dict[str, object]:
        return {
            "engine": "janus",
            "participants": self.participant_count(),
            "rooms": {cid: room.stats() for cid, room in self.rooms.items()},
        }

    async def moderate(self, command: p.ModerationCommand) -> int:
        """A moderator's command (``moderation.py``); the number of sessions it acted on."""
        room = self.rooms.get(command.cid)
        return 0 if room is None else await moderate(room, command)

    async def update_grants(self, update: p.GrantsUpdate) -> int:
        """Users' grants changed in a call (``live_grants.py``); the number of sessions it acted on."""
        room = self.rooms.get(update.cid)
        return 0 if room is None else await apply_grants_update(room, update)

    async def recording(self, command: p.RecordingCommand) -> p.RecordingsReport:
        """Start, stop or list a call's recordings (``recording.py``); CallStateError when refused."""
        return await self.recordings.command(self.rooms, command)

    async def end_call(self, cid: str) -> None:
        await self.recordings.call_ended(cid)
        room = self.rooms.get(cid)
        if room is not None:
            await room.end()

    async def close(self) -> None:
        self._closing = True
        rooms = list(self.rooms.values())
        await asyncio.gather(
            *(r.remove(q, reason="server_shutdown") for r in rooms for q in list(r.participants.values())),
            return_exceptions=True,
        )
        self.rooms = {}
        if self.janus is not None:
            await self.janus.close()
            self.janus = None
        if self._watch is not None:
            self._watch.cancel()

    # ---------------------------------------------------------------- signalling hooks

    def _refuses_joins(self) -> bool:
        return self._closing or self.janus is None

    async def _open_room(self, cid: str) -> JanusRoom:
        return await self.room(cid)

    def _new_participant(
        self, room: JanusRoom, claims: SfuClaims, ws: web.WebSocketResponse
    ) -> JanusParticipant:
        return JanusParticipant(room, claims, ws)

    def _pause_all_audio(self, participant: JanusParticipant) -> None:
        participant.paused.add((None, "audio"))

    async def _dispatch_more(self, participant: JanusParticipant, message: p.ClientMessage) -> None:
        if isinstance(message, p.UpdateAudience):
            await participant.update_audience(message)
        elif isinstance(message, p.SendMessage):
            await self.messages.relay(participant, message)

    async def _engine_failure(self, ws: web.WebSocketResponse, exc: BaseException) -> None:
        log.error("janus refused a join: %s", exc)
        await super()._engine_failure(ws, exc)
