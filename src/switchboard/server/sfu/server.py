"""The SFU's signalling endpoint (aiohttp WebSocket) and its rooms.

One WebSocket per participant session: the first message is ``join`` with the SFU token the
coordinator minted (signature, expiry, call and session checked); then SDP offers/answers, mute
state, subscription control, health checks and ``leave``. Garbage gets an ``error`` message and the
session (and everyone else) carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from switchboard.errors import SwitchboardError
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims, verify_admin_token, verify_sfu_token
from switchboard.server.sfu.participant import Participant
from switchboard.server.sfu.room import ParticipantHook, Room

log = logging.getLogger("switchboard.sfu")

CallChecker = Callable[[str], Awaitable[bool]]


@dataclass
class SfuConfig:
    api_secret: str
    #: how long a session whose socket dropped (without ``leave``) may come back
    reconnect_grace: float = 5.0
    join_timeout: float = 10.0
    max_message_bytes: int = 256 * 1024
    max_bad_messages: int = 50
    #: ``127.0.0.1`` / ``::1``: every peer connection gathers its only ICE candidate there, so media
    #: stays on loopback; None: every interface. Set from the advertised SFU URL with
    #: ``switchboard.media.local_ice.loopback_ice_address`` (the SDK applies the same rule to it).
    ice_loopback_address: str | None = None


class SfuServer:
    def __init__(
        self,
        config: SfuConfig,
        call_is_active: CallChecker | None = None,
        on_participant: ParticipantHook | None = None,
    ) -> None:
        self.config = config
        self.rooms: dict[str, Room] = {}
        self._call_is_active = call_is_active
        self._on_participant = on_participant
        self._closing = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/sfu", self.handle)
        app.router.add_get("/sfu/stats", self._stats)

        async def _shutdown(app: web.Application) -> None:
            await self.close()

        app.on_shutdown.append(_shutdown)
        return app

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

    async def _stats(self, request: web.Request) -> web.Response:
        """Operators only: ``Authorization: Bearer <admin token>`` (``create_admin_token(api_secret)``)."""
        header = request.headers.get("Authorization", "")
        try:
            verify_admin_token(
                self.config.api_secret, header[7:] if header.lower().startswith("bearer ") else ""
            )
        except SwitchboardError as exc:
            return web.json_response({"code": exc.code, "message": exc.message}, status=401)
        return web.json_response(self.stats())

    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())

    async def end_call(self, cid: str) -> None:
        """The coordinator ended the call: tell everyone and close their sessions."""
        room = self.rooms.pop(cid, None)
        if room is not None:
            await room.end()

    async def close(self) -> None:
        self._closing = True
        rooms, self.rooms = list(self.rooms.values()), {}
        await asyncio.gather(
            *(r.remove(q, reason="server_shutdown") for r in rooms for q in list(r.participants.values())),
            return_exceptions=True,
        )

    # ---------------------------------------------------------------- signalling

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=self.config.max_message_bytes)
        await ws.prepare(request)
        participant = await self._join(ws)
        if participant is None:
            return ws
        room = participant.room
        left = False
        bad = 0
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    bad += 1
                    await _send_error(ws, "invalid_request", "only JSON text messages are accepted")
                    continue
                try:
                    message = p.client_message.validate_json(msg.data)
                except ValidationError as exc:
                    bad += 1
                    await _send_error(ws, "invalid_request", f"malformed message: {_summary(exc)}")
                    if bad > self.config.max_bad_messages:
                        await _send_error(
                            ws, "too_many_errors", "closing: too many malformed messages", fatal=True
                        )
                        break
                    continue
                if isinstance(message, p.Leave):
                    left = True
                    break
                await self._dispatch(participant, message)
        finally:
            if participant.ws is ws:
                if left or self._closing or participant.closed:
                    await room.remove(participant, reason="left")
                else:
                    room.schedule_removal(participant, self.config.reconnect_grace)
            if not room.participants:
                self._room_empty(room)
        return ws

    async def _dispatch(self, participant: Participant, message: p.ClientMessage) -> None:
        if isinstance(message, p.PublisherOffer):
            await participant.handle_publisher_offer(message)
        elif isinstance(message, p.SubscriberAnswer):
            await participant.handle_subscriber_answer(message)
        elif isinstance(message, p.UpdateMuteState):
            await participant.update_mute_state(message)
        elif isinstance(message, p.UpdateSubscription):
            participant.update_subscription(message)
        elif isinstance(message, p.HealthCheckRequest):
            await participant.send(p.HealthCheckResponse())
        elif isinstance(message, p.JoinRequest):
            await participant.error("already_joined", "this socket has already joined")

    async def _join(self, ws: web.WebSocketResponse) -> Participant | None:
        """Read messages until a valid ``join``; answer errors; None when the socket is done."""
        for _ in range(self.config.max_bad_messages):
            try:
                msg = await ws.receive(timeout=self.config.join_timeout)
            except TimeoutError:
                await _send_error(ws, "join_timeout", "no join message", fatal=True)
                await ws.close()
                return None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return None
            try:
                message = p.client_message.validate_json(msg.data) if msg.type == WSMsgType.TEXT else None
            except ValidationError as exc:
                await _send_error(ws, "invalid_request", f"malformed message: {_summary(exc)}")
                continue
            if not isinstance(message, p.JoinRequest):
                await _send_error(ws, "not_joined", "send a join message first")
                continue
            try:
                claims = verify_sfu_token(self.config.api_secret, message.token)
                return await self._admit(ws, claims, message)
            except SwitchboardError as exc:
                await _send_error(ws, exc.code, exc.message, fatal=True)
                await ws.close()
                return None
        await ws.close()
        return None

    async def _admit(self, ws: web.WebSocketResponse, claims: SfuClaims, join: p.JoinRequest) -> Participant:
        from switchboard.errors import AuthenticationError, CallStateError

        if self._closing:
            raise CallStateError("the SFU is shutting down")
        if self._call_is_active is not None and not await self._call_is_active(claims.call_cid):
            raise CallStateError(f"call {claims.call_cid} does not exist or has ended", code="call_ended")
        room = self.room(claims.call_cid)
        existing = room.participants.get(claims.session_id)
        if existing is not None:
            if existing.user_id != claims.user_id:
                raise AuthenticationError("session belongs to another user", code="session_mismatch")
            if not join.reconnect or (existing.ws is not None and not existing.ws.closed):
                raise CallStateError("this session is already connected", code="session_in_use")
            room.cancel_removal(existing)
            old = existing.ws
            existing.attach(ws)
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.close()
            await existing.send(
                p.JoinResponse(
                    session_id=existing.session_id,
                    call_cid=room.cid,
                    participants=[q.info() for q in room.others(existing)],
                    reconnected=True,
                )
            )
            existing.request_negotiation()
            return existing
        if join.reconnect:
            raise CallStateError("session expired: join the call again", code="session_expired")
        participant = Participant(room, claims, ws, ice_loopback_address=self.config.ice_loopback_address)
        if join.audio_paused:
            participant.paused.add((None, "audio"))
        await room.add(participant)
        return participant


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(x) for x in first['loc']) or 'message'}: {first['msg']}"


async def _send_error(ws: web.WebSocketResponse, code: str, message: str, *, fatal: bool = False) -> None:
    with contextlib.suppress(Exception):
        await ws.send_str(p.ErrorMessage(code=code, message=message, fatal=fatal).model_dump_json())
