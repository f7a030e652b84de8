"""What both SFU engines' signalling endpoints share (``server/sfu/`` and ``server/sfu_janus/``).

:class:`SignallingServer` holds the ``/sfu`` WebSocket protocol once: the unjoined-socket cap, the
``join`` wait (timeout, rate limit, malformed messages), token check and coordinator admission, the
resume of a session within its reconnect grace, the per-user session caps, the message loop with its
per-socket limits, the close codes, ``/sfu/stats`` (admin token) and the common message dispatch.
Each engine supplies its rooms and participants through a few small hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from aiohttp import WSMessage, WSMsgType, web
from pydantic import ValidationError

from switchboard.errors import AuthenticationError, CallStateError, RateLimitedError, SwitchboardError
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims, SfuGrants, verify_admin_token, verify_sfu_token
from switchboard.server.address_slots import AddressSlots
from switchboard.server.sfu.limits import SocketGuard

if TYPE_CHECKING:
    from switchboard.server.sfu.config import SfuConfig

Admission = Callable[[SfuClaims], Awaitable[None]]
"""Asks the coordinator whether a verified SFU token may still be used (raises a SwitchboardError)."""


class SessionRoom(Protocol):
    """What the signalling code uses of an engine's room."""

    @property
    def cid(self) -> str: ...
    @property
    def participants(self) -> dict[str, Any]: ...
    def others(self, participant: Any) -> Iterable[Any]: ...
    async def remove(self, participant: Any, *, reason: str = "left") -> None: ...
    def schedule_removal(self, participant: Any, grace: float) -> None: ...
    def cancel_removal(self, participant: Any) -> None: ...
    async def add(self, participant: Any) -> None: ...


class Session(Protocol):
    """What the signalling code uses of an engine's participant (one SFU session)."""

    @property
    def room(self) -> SessionRoom: ...
    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def ws(self) -> web.WebSocketResponse | None: ...
    @property
    def closed(self) -> bool: ...
    def info(self) -> p.ParticipantInfo: ...
    async def send(self, message: p._Msg) -> None: ...
    async def error(self, code: str, message: str, *, fatal: bool = False) -> None: ...
    def attach(self, ws: web.WebSocketResponse) -> None: ...
    def apply_grants(self, grants: SfuGrants) -> None: ...
    def request_negotiation(self) -> None: ...
    async def handle_publisher_offer(self, offer: p.PublisherOffer) -> None: ...
    async def handle_subscriber_answer(self, message: p.SubscriberAnswer, /) -> None: ...
    async def update_mute_state(self, message: p.UpdateMuteState) -> None: ...
    def update_subscription(self, message: p.UpdateSubscription) -> bool: ...
    async def add_ice_candidate(self, message: p.IceCandidate) -> None: ...


P = TypeVar("P", bound=Session)
R = TypeVar("R", bound=SessionRoom)


class SignallingServer(Generic[P, R]):
    """The ``/sfu`` signalling endpoint of an SFU engine; subclasses supply rooms and participants."""

    #: errors of the media engine that refuse a ``join`` with ``server_busy`` (close 1013)
    engine_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, config: SfuConfig, admission: Admission | None) -> None:
        self.config = config
        self.rooms: dict[str, R] = {}
        self._admission = admission
        self._closing = False
        #: sockets that have not joined yet, per remote address
        self._unjoined = AddressSlots()

    # ------------------------------------------------------------ engine hooks

    def _refuses_joins(self) -> bool:
        """True while no new session may join (the server is shutting down)."""
        return self._closing

    async def _open_room(self, cid: str) -> R:
        """The call's room, created if it does not exist yet."""
        raise NotImplementedError

    def _new_participant(self, room: R, claims: SfuClaims, ws: web.WebSocketResponse) -> P:
        """A new session of ``claims`` in ``room`` (not added to it yet)."""
        raise NotImplementedError

    def _pause_all_audio(self, participant: P) -> None:
        """The ``join`` asked for no audio until the client asks for it."""
        raise NotImplementedError

    async def _dispatch_more(self, participant: P, message: p.ClientMessage) -> None:
        """Messages only this engine handles (the others are answered by :meth:`_dispatch`)."""

    def _socket_done(self, participant: P) -> None:
        """The session's socket loop ended (after the session was removed or given its grace)."""

    async def _engine_failure(self, ws: web.WebSocketResponse, exc: BaseException) -> None:
        """The media engine failed a ``join`` (one of :attr:`engine_errors`)."""
        await close(ws, "server_busy", "the media server is unavailable", p.CloseCode.TRY_AGAIN_LATER)

    # ------------------------------------------------------------ shared

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/sfu", self.handle)
        app.router.add_get("/sfu/stats", self._stats)

        async def _shutdown(app: web.Application) -> None:
            await self.close()

        app.on_shutdown.append(_shutdown)
        return app

    async def close(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, object]:
        raise NotImplementedError

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

    @property
    def unjoined_sockets(self) -> int:
        """Signalling sockets open now that have not joined (yet)."""
        return self._unjoined.total

    def sessions_of(self, user_id: str) -> int:
        """SFU sessions ``user_id`` holds on this SFU (connected or within their reconnect grace)."""
        return sum(q.user_id == user_id for r in self.rooms.values() for q in r.participants.values())

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=self.config.max_message_bytes)
        await ws.prepare(request)
        guard = SocketGuard(self.config.message_rate, self.config.message_burst, self.config.max_bad_messages)
        if self._unjoined.total >= self.config.max_unjoined_sockets:
            await close(ws, "server_busy", "too many sockets waiting to join", p.CloseCode.TRY_AGAIN_LATER)
            return ws
        address = request.remote or ""
        if not self._unjoined.acquire(
            address,
            per_address=self.config.max_unjoined_sockets_per_address,
            total=self.config.max_unjoined_sockets,
        ):
            await close(
                ws,
                "too_many_connections",
                "too many sockets from this address waiting to join",
                p.CloseCode.TRY_AGAIN_LATER,
            )
            return ws
        try:
            participant = await self._join(ws, guard)
        finally:
            self._unjoined.release(address)
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
                    await close(ws, "rate_limited", "closing: too many messages", p.CloseCode.RATE_LIMITED)
                    break
                message, problem = parse(msg)
                if message is None:
                    if guard.bad():
                        ending = "too_many_errors"
                        await close(
                            ws,
                            "too_many_errors",
                            "closing: too many malformed messages",
                            p.CloseCode.TOO_MANY_ERRORS,
                        )
                        break
                    await send_error(ws, "invalid_request", problem)
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
            self._socket_done(participant)
        return ws

    async def _dispatch(self, participant: P, message: p.ClientMessage) -> None:
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
        else:
            await self._dispatch_more(participant, message)

    async def _join(self, ws: web.WebSocketResponse, guard: SocketGuard) -> P | None:
        """Read messages until a valid ``join``; answer errors; None when the socket is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.join_timeout
        while True:
            try:
                msg = await ws.receive(timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                await close(ws, "join_timeout", "no join message", p.CloseCode.JOIN_TIMEOUT)
                return None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return None
            if not guard.take():
                await close(ws, "rate_limited", "closing: too many messages", p.CloseCode.RATE_LIMITED)
                return None
            message, problem = parse(msg)
            if not isinstance(message, p.JoinRequest):
                if guard.bad():
                    await close(
                        ws,
                        "too_many_errors",
                        "closing: too many malformed messages",
                        p.CloseCode.TOO_MANY_ERRORS,
                    )
                    return None
                if message is None:
                    await send_error(ws, "invalid_request", problem)
                else:
                    await send_error(ws, "not_joined", "send a join message first")
                continue
            try:
                claims = verify_sfu_token(self.config.api_secret, message.token)
                return await self._admit(ws, claims, message)
            except SwitchboardError as exc:
                await close(ws, exc.code, exc.message, close_code_for(exc.code))
                return None
            except self.engine_errors as exc:
                await self._engine_failure(ws, exc)
                return None

    async def _admit(self, ws: web.WebSocketResponse, claims: SfuClaims, join: p.JoinRequest) -> P:
        if self._refuses_joins():
            raise CallStateError("the SFU is shutting down", code="server_shutdown")
        if self._admission is not None:
            await self._admission(claims)  # call live, session not left, grants current
        room = self.rooms.get(claims.call_cid)
        existing: P | None = room.participants.get(claims.session_id) if room is not None else None
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
        room = await self._open_room(claims.call_cid)
        participant = self._new_participant(room, claims, ws)
        if join.audio_paused:
            self._pause_all_audio(participant)
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


def parse(msg: WSMessage) -> tuple[p.ClientMessage | None, str]:
    """The client message in a frame, or None and what is wrong with it."""
    if msg.type != WSMsgType.TEXT:
        return None, "only JSON text messages are accepted"
    try:
        return p.client_message.validate_json(msg.data), ""
    except ValidationError as exc:
        return None, f"malformed message: {_summary(exc)}"


async def close(ws: web.WebSocketResponse, code: str, message: str, close_code: p.CloseCode) -> None:
    """A fatal ``error`` naming ``code``, then the close frame with ``close_code``."""
    await send_error(ws, code, message, fatal=True)
    with contextlib.suppress(Exception):
        await ws.close(code=close_code, message=code.encode()[:120])


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(x) for x in first['loc']) or 'message'}: {first['msg']}"


async def send_error(ws: web.WebSocketResponse, code: str, message: str, *, fatal: bool = False) -> None:
    with contextlib.suppress(Exception):
        await ws.send_str(p.ErrorMessage(code=code, message=message, fatal=fatal).model_dump_json())
