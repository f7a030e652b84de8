"""The Janus engine's signalling endpoint: switchboard's SFU protocol in front of a Janus VideoRoom.

Clients cannot tell it from the embedded SFU (``server/sfu/server.py``): the same ``/sfu`` WebSocket,
messages, SFU tokens, coordinator admission, per-socket limits, close codes and reconnect grace
(``docs/protocol.md``); ``/sfu/stats`` (admin token) lists rooms, sessions and down-tracks. Media
flows between the clients and Janus only. See ``docs/janus.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from aiohttp import WSMsgType, web

from switchboard.errors import AuthenticationError, CallStateError, RateLimitedError, SwitchboardError
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims, verify_admin_token, verify_sfu_token
from switchboard.server.sfu.limits import SocketGuard
from switchboard.server.sfu.room import ParticipantHook
from switchboard.server.sfu.server import Admission, SfuConfig, _close, _parse, _send_error, close_code_for
from switchboard.server.sfu_janus.janus_api import JanusConnection, JanusError, JanusHandle
from switchboard.server.sfu_janus.room import JanusParticipant, JanusRoom

log = logging.getLogger("switchboard.sfu.janus")

#: most publishers one Janus VideoRoom admits (its ``publishers`` setting)
MAX_PUBLISHERS_PER_ROOM = 256


class JanusSfuServer:
    """An SFU node whose media engine is Janus (its WebSocket API at ``janus_url``).

    ``await start()`` connects to Janus (``ConnectionError`` if it is unreachable); ``app()`` is the
    aiohttp application clients connect to, exactly as with :class:`switchboard.server.sfu.SfuServer`.
    """

    def __init__(
        self,
        config: SfuConfig,
        janus_url: str,
        admission: Admission | None = None,
        on_participant: ParticipantHook | None = None,
    ) -> None:
        self.config = config
        self.janus_url = janus_url
        self.janus: JanusConnection | None = None
        self._control: JanusHandle | None = None
        self.rooms: dict[str, JanusRoom] = {}
        self._admission = admission
        self._on_participant = on_participant
        self._closing = False
        self._unjoined = 0
        self._room_ids = itertools.count(1)
        self._room_lock = asyncio.Lock()
        self._watch: asyncio.Future[None] | None = None

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

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/sfu", self.handle)
        app.router.add_get("/sfu/stats", self._stats)

        async def _shutdown(app: web.Application) -> None:
            await self.close()

        app.on_shutdown.append(_shutdown)
        return app

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

    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())

    def stats(self) -> dict[str, object]:
        return {
            "engine": "janus",
            "participants": self.participant_count(),
            "rooms": {cid: room.stats() for cid, room in self.rooms.items()},
        }

    async def _stats(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        try:
            verify_admin_token(
                self.config.api_secret, header[7:] if header.lower().startswith("bearer ") else ""
            )
        except SwitchboardError as exc:
            return web.json_response({"code": exc.code, "message": exc.message}, status=401)
        return web.json_response(self.stats())

    async def end_call(self, cid: str) -> None:
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
        ending: str | None = None
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
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
        return ws

    async def _dispatch(self, participant: JanusParticipant, message: p.ClientMessage) -> None:
        if isinstance(message, p.PublisherOffer):
            await participant.handle_publisher_offer(message)
        elif isinstance(message, p.SubscriberAnswer):
            await participant.handle_subscriber_answer(message)
        elif isinstance(message, p.UpdateMuteState):
            await participant.update_mute_state(message)
        elif isinstance(message, p.UpdateSubscription):
            if not participant.update_subscription(message):
                await participant.error("unknown_session", f"no session {message.session_id!r} in this call")
        elif isinstance(message, p.IceCandidate):
            await participant.add_ice_candidate(message)
        elif isinstance(message, p.HealthCheckRequest):
            await participant.send(p.HealthCheckResponse())
        elif isinstance(message, p.JoinRequest):
            await participant.error("already_joined", "this socket has already joined")

    async def _join(self, ws: web.WebSocketResponse, guard: SocketGuard) -> JanusParticipant | None:
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
            except (JanusError, ConnectionError, TimeoutError) as exc:
                log.error("janus refused a join: %s", exc)
                await _close(
                    ws, "server_busy", "the media server is unavailable", p.CloseCode.TRY_AGAIN_LATER
                )
                return None

    def sessions_of(self, user_id: str) -> int:
        return sum(q.user_id == user_id for r in self.rooms.values() for q in r.participants.values())

    async def _admit(
        self, ws: web.WebSocketResponse, claims: SfuClaims, join: p.JoinRequest
    ) -> JanusParticipant:
        if self._closing or self.janus is None:
            raise CallStateError("the SFU is shutting down", code="server_shutdown")
        if self._admission is not None:
            await self._admission(claims)
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
        room = await self.room(claims.call_cid)
        participant = JanusParticipant(room, claims, ws)
        if join.audio_paused:
            participant.paused.add((None, "audio"))
        await room.add(participant)
        return participant
