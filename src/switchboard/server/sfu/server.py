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
import contextlib
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import WSMessage, WSMsgType, web
from pydantic import ValidationError

from switchboard.errors import AuthenticationError, CallStateError, RateLimitedError, SwitchboardError
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims, verify_admin_token, verify_sfu_token
from switchboard.server.sfu.limits import SocketGuard
from switchboard.server.sfu.messages import MessageRelay
from switchboard.server.sfu.moderation import moderate
from switchboard.server.sfu.participant import Participant
from switchboard.server.sfu.recording import Recordings
from switchboard.server.sfu.room import ParticipantHook, Room

log = logging.getLogger("switchboard.sfu")

Admission = Callable[[SfuClaims], Awaitable[None]]
"""Asks the coordinator whether a verified SFU token may still be used (raises a SwitchboardError)."""


@dataclass
class SfuConfig:
    """SFU settings; the limits apply per signalling socket or per user (``docs/protocol.md``)."""

    api_secret: str
    #: how long a session whose socket dropped (without ``leave``) may come back, seconds
    reconnect_grace: float = 5.0
    #: seconds a new socket has to send a valid ``join``
    join_timeout: float = 10.0
    #: largest accepted WebSocket message, bytes (larger: close 1009)
    max_message_bytes: int = 128 * 1024
    #: malformed messages (text or binary) a socket may send before it is closed (4010)
    max_bad_messages: int = 50
    #: ``127.0.0.1`` / ``::1``: every peer connection gathers its only ICE candidate there, so media
    #: stays on loopback; None: every interface. Set from the advertised SFU URL with
    #: ``switchboard.media.local_ice.loopback_ice_address`` (the SDK applies the same rule to it).
    ice_loopback_address: str | None = None
    #: sustained messages per second per socket (token bucket; over it: close 4008)
    message_rate: float = 50.0
    #: messages a socket may send at once before the rate applies
    message_burst: int = 200
    #: SFU sessions one user may hold in one call (over it: join refused, close 4029)
    max_sessions_per_user_per_call: int = 4
    #: SFU sessions one user may hold across all calls on this SFU
    max_sessions_per_user: int = 128
    #: sockets that have not joined yet, all clients together (over it: close 1013)
    max_unjoined_sockets: int = 1000
    #: where call recordings are written (None: ``switchboard-recordings`` in the system temp dir)
    recordings_dir: str | None = None


class SfuServer:
    def __init__(
        self,
        config: SfuConfig,
        admission: Admission | None = None,
        on_participant: ParticipantHook | None = None,
    ) -> None:
        self.config = config
        self.rooms: dict[str, Room] = {}
        self._admission = admission
        self._on_participant = on_participant
        self._closing = False
        self._unjoined = 0
        self.messages = MessageRelay()
        self.recordings = Recordings(
            Path(config.recordings_dir or Path(tempfile.gettempdir()) / "switchboard-recordings")
        )

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
        guard = SocketGuard(self.config.message_rate, self.config.message_burst, self.config.max_bad_messages)
        if self._unjoined >= self.config.max_unjoined_sockets:
            await _close(ws, "server_busy", "too many sockets waiting to join", p.CloseCode.TRY_AGAIN_LATER)
            return ws
        self._unjoined += 1
        try:
            participant = await self._join(ws, guard)
        finally:
            self._unjoined -= 1
        if participant is None:
            return ws
        room = participant.room
        ending: str | None = None  # set: the session ends now (no reconnect grace)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break  # the socket failed (e.g. a frame over the size limit: aiohttp closed it 1009)
                if not guard.take():
                    ending = "rate_limited"
                    await _close(ws, "rate_limited", "closing: too many messages", p.CloseCode.RATE_LIMITED)
                    break
                message, problem = _parse(msg)
                if message is None:
                    if guard.bad():
                        ending = "too_many_errors"
                        await _close(
                            ws,
                            "too_many_errors",
                            "closing: too many malformed messages",
                            p.CloseCode.TOO_MANY_ERRORS,
                        )
                        break
                    await _send_error(ws, "invalid_request", problem)
                    continue
                if isinstance(message, p.Leave):
                    ending = "left"
                    break
                await self._dispatch(participant, message)
        finally:
            if participant.ws is ws:
                if ending is not None or self._closing or participant.closed:
                    await room.remove(participant, reason=ending or "left")
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
            if not participant.update_subscription(message):
                await participant.error("unknown_session", f"no session {message.session_id!r} in this call")
        elif isinstance(message, p.UpdateAudience):
            await participant.update_audience(message)
        elif isinstance(message, p.IceCandidate):
            await participant.add_ice_candidate(message)
        elif isinstance(message, p.HealthCheckRequest):
            await participant.send(p.HealthCheckResponse())
        elif isinstance(message, p.SendMessage):
            await self.messages.relay(participant, message)
        elif isinstance(message, p.JoinRequest):
            await participant.error("already_joined", "this socket has already joined")

    async def _join(self, ws: web.WebSocketResponse, guard: SocketGuard) -> Participant | None:
        """Read messages until a valid ``join``; answer errors; None when the socket is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.join_timeout
        while True:
            try:
                msg = await ws.receive(timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                await _close(ws, "join_timeout", "no join message", p.CloseCode.JOIN_TIMEOUT)
                return None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return None
            if not guard.take():
                await _close(ws, "rate_limited", "closing: too many messages", p.CloseCode.RATE_LIMITED)
                return None
            message, problem = _parse(msg)
            if not isinstance(message, p.JoinRequest):
                if guard.bad():
                    await _close(
                        ws,
                        "too_many_errors",
                        "closing: too many malformed messages",
                        p.CloseCode.TOO_MANY_ERRORS,
                    )
                    return None
                if message is None:
                    await _send_error(ws, "invalid_request", problem)
                else:
                    await _send_error(ws, "not_joined", "send a join message first")
                continue
            try:
                claims = verify_sfu_token(self.config.api_secret, message.token)
                return await self._admit(ws, claims, message)
            except SwitchboardError as exc:
                await _close(ws, exc.code, exc.message, close_code_for(exc.code))
                return None

    @property
    def unjoined_sockets(self) -> int:
        """Signalling sockets open now that have not joined (yet)."""
        return self._unjoined

    def sessions_of(self, user_id: str) -> int:
        """SFU sessions ``user_id`` holds on this SFU (connected or within their reconnect grace)."""
        return sum(q.user_id == user_id for r in self.rooms.values() for q in r.participants.values())

    async def _admit(self, ws: web.WebSocketResponse, claims: SfuClaims, join: p.JoinRequest) -> Participant:
        if self._closing:
            raise CallStateError("the SFU is shutting down", code="server_shutdown")
        if self._admission is not None:
            await self._admission(claims)  # call live, session not left, grants current
        room = self.rooms.get(claims.call_cid)
        existing = room.participants.get(claims.session_id) if room is not None else None
        if room is not None and existing is not None:
            if existing.user_id != claims.user_id:
                raise AuthenticationError("session belongs to another user", code="session_mismatch")
            if not join.reconnect or (existing.ws is not None and not existing.ws.closed):
                raise CallStateError("this session is already connected", code="session_in_use")
            room.cancel_removal(existing)
            old = existing.ws
            existing.attach(ws)
            existing.apply_grants(claims.grants)
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
        in_call = sum(q.user_id == claims.user_id for q in room.participants.values()) if room else 0
        if in_call >= self.config.max_sessions_per_user_per_call:
            raise RateLimitedError(
                f"{claims.user_id!r} already holds {in_call} sessions in {claims.call_cid}",
                code="too_many_sessions",
            )
        if self.sessions_of(claims.user_id) >= self.config.max_sessions_per_user:
            raise RateLimitedError(
                f"{claims.user_id!r} already holds {self.config.max_sessions_per_user} SFU sessions",
                code="too_many_sessions",
            )
        room = self.room(claims.call_cid)
        participant = Participant(room, claims, ws, ice_loopback_address=self.config.ice_loopback_address)
        if join.audio_paused:
            participant.paused.add((None, "audio"))
        await room.add(participant)
        return participant


_CLOSE_CODES = {
    "token_invalid": p.CloseCode.UNAUTHENTICATED,
    "token_expired": p.CloseCode.UNAUTHENTICATED,
    "session_ended": p.CloseCode.UNAUTHENTICATED,
    "grants_changed": p.CloseCode.UNAUTHENTICATED,
    "session_mismatch": p.CloseCode.UNAUTHENTICATED,
    "permission_denied": p.CloseCode.PERMISSION_DENIED,
    "too_many_sessions": p.CloseCode.TOO_MANY_SESSIONS,
}


def close_code_for(error_code: str) -> p.CloseCode:
    """The close code a refused ``join`` ends with (``call_ended``, ``session_*``: 4009)."""
    return _CLOSE_CODES.get(error_code, p.CloseCode.SESSION_REFUSED)


def _parse(msg: WSMessage) -> tuple[p.ClientMessage | None, str]:
    """The client message in a frame, or None and what is wrong with it."""
    if msg.type != WSMsgType.TEXT:
        return None, "only JSON text messages are accepted"
    try:
        return p.client_message.validate_json(msg.data), ""
    except ValidationError as exc:
        return None, f"malformed message: {_summary(exc)}"


async def _close(ws: web.WebSocketResponse, code: str, message: str, close_code: p.CloseCode) -> None:
    """A fatal ``error`` naming ``code``, then the close frame with ``close_code``."""
    await _send_error(ws, code, message, fatal=True)
    with contextlib.suppress(Exception):
        await ws.close(code=close_code, message=code.encode()[:120])


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(x) for x in first['loc']) or 'message'}: {first['msg']}"


async def _send_error(ws: web.WebSocketResponse, code: str, message: str, *, fatal: bool = False) -> None:
    with contextlib.suppress(Exception):
        await ws.send_str(p.ErrorMessage(code=code, message=message, fatal=fatal).model_dump_json())
