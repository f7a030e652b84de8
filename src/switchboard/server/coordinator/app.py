"""The coordinator's HTTP surface (aiohttp): REST routes, the events WebSocket and ``/openapi.json``.

One route table drives both request handling and the OpenAPI document, so the document always
describes what the server validates. Every error answer is JSON ``{"code", "message"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ValidationError

from switchboard.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitedError,
    SwitchboardError,
)
from switchboard.protocol import coordinator as m
from switchboard.protocol.close_codes import TOKEN_EXPIRED_REASON, EventsCloseCode
from switchboard.protocol.coordinator import utcnow
from switchboard.protocol.tokens import UserClaims, verify_user_token
from switchboard.server.coordinator.call_types import CALL_TYPES
from switchboard.server.coordinator.events import Connection, EventHub
from switchboard.server.coordinator.limits import FrameBudget
from switchboard.server.coordinator.ratelimit import Limiter, RateLimiter
from switchboard.server.coordinator.redis_events import RedisEventHub
from switchboard.server.coordinator.redis_ratelimit import RedisRateLimiter
from switchboard.server.coordinator.redis_sfu_nodes import RedisSfuNodes
from switchboard.server.coordinator.redis_sfu_sessions import RedisSfuSessions
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.request_log import request_log_middleware
from switchboard.server.coordinator.service import Coordinator, CoordinatorConfig
from switchboard.server.coordinator.store import MemoryStore, Store
from switchboard.web import WebOptions, add_web_routes, cors_middleware

log = logging.getLogger("switchboard.coordinator.http")

COORDINATOR_KEY = web.AppKey("coordinator", Coordinator)
API_PREFIX = "/api/v1"
CALL_PATH = API_PREFIX + "/calls/{type}/{id}"


@dataclass(frozen=True)
class RequestContext:
    user_id: str
    call_type: str
    call_id: str


Handler = Callable[[Coordinator, RequestContext, Any], Awaitable[BaseModel]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    request: type[m.Request] | None
    response: type[BaseModel]
    summary: str
    handler: Handler


def _routes() -> list[Route]:
    return [
        Route(
            "POST", API_PREFIX + "/users", m.UserRequest, m.UserResponse,
            "Upsert the signed-in user's profile (id must be the token's user).",
            lambda c, ctx, body: _upsert_self(c, ctx, body),
        ),
        Route(
            "POST", CALL_PATH, m.GetOrCreateCallRequest, m.GetOrCreateCallResponse,
            "Get a call, creating it (with members, custom data, settings overrides) when new; may ring.",
            lambda c, ctx, body: c.get_or_create_call(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "GET", CALL_PATH, None, m.CallStateResponse,
            "Get a call, its members and the caller's own capabilities.",
            lambda c, ctx, body: c.get_call(ctx.user_id, ctx.call_type, ctx.call_id, m.GetCallRequest()),
        ),
        Route(
            "POST", CALL_PATH + "/get", m.GetCallRequest, m.CallStateResponse,
            "Get a call and (optionally) watch it on a connection.",
            lambda c, ctx, body: c.get_call(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "PATCH", CALL_PATH, m.UpdateCallRequest, m.CallStateResponse,
            "Update a call's custom data or settings (update-call).",
            lambda c, ctx, body: c.update_call(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/mark_ended", m.EmptyRequest, m.CallStateResponse,
            "End the call for everyone (end-call).",
            lambda c, ctx, body: c.end_call(ctx.user_id, ctx.call_type, ctx.call_id),
        ),
        Route(
            "POST", CALL_PATH + "/members", m.UpdateMembersRequest, m.UpdateMembersResponse,
            "Add, update and remove members (update-call-member).",
            lambda c, ctx, body: c.update_members(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/go_live", m.EmptyRequest, m.CallStateResponse,
            "Leave backstage: the audience may join (update-call).",
            lambda c, ctx, body: c.set_live(ctx.user_id, ctx.call_type, ctx.call_id, True),
        ),
        Route(
            "POST", CALL_PATH + "/stop_live", m.EmptyRequest, m.CallStateResponse,
            "Go back to backstage (update-call).",
            lambda c, ctx, body: c.set_live(ctx.user_id, ctx.call_type, ctx.call_id, False),
        ),
        Route(
            "POST", CALL_PATH + "/join", m.JoinCallRequest, m.JoinCallResponse,
            "Join a call: checks join-call (join-backstage while backstage) and returns SFU credentials.",
            lambda c, ctx, body: c.join_call(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/sfu_token", m.SfuTokenRequest, m.SfuTokenResponse,
            "A fresh SFU token for the caller's own joined session (same checks as join; 404 unknown "
            "session, 409 session left).",
            lambda c, ctx, body: c.refresh_sfu_token(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "GET", API_PREFIX + "/rings", None, m.PendingRingsResponse,
            "The signed-in user's pending rings, incoming and outgoing, oldest first, with the event "
            "cursor (last_event_id, epoch) the list is current as of.",
            lambda c, ctx, body: c.pending_rings(ctx.user_id),
        ),
        Route(
            "POST", CALL_PATH + "/ring", m.RingRequest, m.RingResponse,
            "Ring the call's members other than the caller (or the listed ones); returns the ring id.",
            lambda c, ctx, body: c.ring(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/accept", m.EmptyRequest, m.AckResponse,
            "Accept a ring (does not join).",
            lambda c, ctx, body: c.accept(ctx.user_id, ctx.call_type, ctx.call_id),
        ),
        Route(
            "POST", CALL_PATH + "/reject", m.RejectRequest, m.AckResponse,
            "Reject a ring; by the caller, cancel it.",
            lambda c, ctx, body: c.reject(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/request_permission", m.RequestPermissionRequest, m.AckResponse,
            "Ask the moderators for send-audio and/or send-video (request-to-speak).",
            lambda c, ctx, body: c.permissions.request(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/user_permissions", m.UpdateUserPermissionsRequest, m.AckResponse,
            "Grant or revoke a user's send-audio/send-video in the call (update-call-member).",
            lambda c, ctx, body: c.permissions.update(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/start_recording", m.EmptyRequest, m.RecordingsResponse,
            "Start recording the call's audio on the SFU (update-call); 409 if recording or nobody joined.",
            lambda c, ctx, body: c.recordings.start(ctx.user_id, ctx.call_type, ctx.call_id),
        ),
        Route(
            "POST", CALL_PATH + "/stop_recording", m.EmptyRequest, m.RecordingsResponse,
            "Stop recording (update-call): the Ogg/Opus files (per participant and mixed) with durations.",
            lambda c, ctx, body: c.recordings.stop(ctx.user_id, ctx.call_type, ctx.call_id),
        ),
        Route(
            "GET", CALL_PATH + "/recordings", None, m.RecordingsResponse,
            "The call's recordings and their files (read-call).",
            lambda c, ctx, body: c.recordings.list(ctx.user_id, ctx.call_type, ctx.call_id),
        ),
        Route(
            "POST", CALL_PATH + "/event", m.SendCustomEventRequest, m.SendCustomEventResponse,
            "Send a custom event (a JSON object up to 5 KiB) to everyone in the call; stored in the "
            "event log (members or joined users only; 10 per second per user and call).",
            lambda c, ctx, body: c.custom_events.send(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/mute_users", m.MuteUsersRequest, m.AckResponse,
            "Mute others' audio and/or video (mute-users): the SFU stops forwarding it and tells them.",
            lambda c, ctx, body: c.moderation.mute_users(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/remove_participant", m.RemoveParticipantRequest, m.AckResponse,
            "Remove a user's sessions from the call now, optionally blocking them (update-call-member).",
            lambda c, ctx, body: c.moderation.remove_participant(
                ctx.user_id, ctx.call_type, ctx.call_id, body
            ),
        ),
        Route(
            "POST", CALL_PATH + "/block", m.BlockUserRequest, m.AckResponse,
            "Block a user from the call: removed now, cannot join until unblocked (update-call-member).",
            lambda c, ctx, body: c.moderation.block(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
        Route(
            "POST", CALL_PATH + "/unblock", m.BlockUserRequest, m.AckResponse,
            "Unblock a user: they may join again (update-call-member).",
            lambda c, ctx, body: c.moderation.unblock(ctx.user_id, ctx.call_type, ctx.call_id, body),
        ),
    ]  # fmt: skip


async def _upsert_self(c: Coordinator, ctx: RequestContext, body: m.UserRequest) -> m.UserResponse:
    if body.id != ctx.user_id:
        raise PermissionDeniedError(f"a token for {ctx.user_id!r} cannot update user {body.id!r}")
    return await c.upsert_user(body)


ROUTES = _routes()


# -------------------------------------------------------------------- errors and auth


class RequestTimeoutError(SwitchboardError):
    """The client sent a request head but not its body in time (``CoordinatorLimits.body_timeout``)."""

    code = "request_timeout"
    status = 408


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = m.ErrorResponse(code=code, message=message, **extra).model_dump(mode="json", exclude_none=True)
    return web.json_response(body, status=status)


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]} for err in exc.errors()
    ]


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except RateLimitedError as exc:
        response = error_response(exc.status, exc.code, exc.message)
        response.headers["Retry-After"] = f"{max(1, round(exc.retry_after))}"
        return response
    except SwitchboardError as exc:
        response = error_response(exc.status, exc.code, exc.message)
        if exc.status == 408:
            response.force_close()  # the rest of the body may still be on its way: do not read it
        return response
    except ValidationError as exc:
        return error_response(
            400, "invalid_request", "request body does not match the schema", details=_validation_details(exc)
        )
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, "payload_too_large", f"request body too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if "Allow" in exc.headers:  # 405: the methods the path has (RFC 9110 §15.5.6)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error; the request changed nothing")


def _authenticate(coordinator: Coordinator, api_key: str | None, token: str | None) -> str:
    return _authenticate_claims(coordinator, api_key, token).user_id


def _authenticate_claims(coordinator: Coordinator, api_key: str | None, token: str | None) -> UserClaims:
    """The verified claims of ``token``; AuthenticationError (401) for a wrong key or a bad token."""
    if api_key != coordinator.config.api_key:
        raise AuthenticationError("unknown API key", code="invalid_api_key")
    if not token:
        raise AuthenticationError("missing user token", code="token_missing")
    return verify_user_token(coordinator.config.api_secret, token)


def _request_auth(request: web.Request) -> tuple[str | None, str | None]:
    api_key = request.headers.get("X-Api-Key") or request.query.get("api_key")
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    return api_key, token


async def _read_body(request: web.Request, model: type[m.Request]) -> m.Request:
    timeout = request.app[COORDINATOR_KEY].config.limits.body_timeout
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError:
        raise RequestTimeoutError(f"request body not received within {timeout:g} s") from None
    if not raw:  # no body: the request body is optional (all defaults)
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequestError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("body must be a JSON object")
    return model.model_validate(data)


def _make_handler(route: Route, limiter: Limiter) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        coordinator = request.app[COORDINATOR_KEY]
        user_id = _authenticate(coordinator, *_request_auth(request))
        retry_after = await limiter.acquire(user_id)
        if retry_after:
            raise RateLimitedError(f"too many requests; retry in {retry_after:.2f}s", retry_after=retry_after)
        body = await _read_body(request, route.request) if route.request is not None else None
        ctx = RequestContext(
            user_id=user_id,
            call_type=request.match_info.get("type", ""),
            call_id=request.match_info.get("id", ""),
        )
        if "id" in request.match_info:
            _validate_call_id(ctx.call_id)
        result = await route.handler(coordinator, ctx, body)
        return web.json_response(result.model_dump(mode="json"))

    return handle


class _CallId(m.Request):
    id: m.Identifier


#: The call id's constraints as JSON Schema (the same ones the handlers check).
CALL_ID_SCHEMA: dict[str, Any] = {
    k: v for k, v in _CallId.model_json_schema()["properties"]["id"].items() if k != "title"
}


def _validate_call_id(call_id: str) -> None:
    try:
        _CallId(id=call_id)
    except ValidationError as exc:
        raise InvalidRequestError(
            f"invalid call id {call_id!r}: 1-64 characters of letters, digits, _ - . @"
        ) from exc


# -------------------------------------------------------------------- events WebSocket


async def events_socket(request: web.Request) -> web.WebSocketResponse:
    """The events WebSocket: an auth frame, then events out and ``health.check`` frames in.

    Limits (``CoordinatorLimits``): the auth frame within ``auth_timeout`` s (else 4001), frames up to
    ``max_frame_bytes`` (else 1009), ``frames_per_second``/``frame_burst`` per socket and
    ``socket_opens_per_second``/``socket_open_burst`` per user (else 4029), ``max_sockets_per_user``
    (else 4030), ``max_unauthenticated_sockets_per_address``/``max_unauthenticated_sockets`` sockets
    waiting for their auth frame (else 4030). The socket is closed with 4001 ``token_expired`` when
    the user token expires (SPEC §2.10).
    Close codes: :class:`switchboard.protocol.close_codes.EventsCloseCode`.
    """
    coordinator = request.app[COORDINATOR_KEY]
    limits = coordinator.config.limits
    interval = coordinator.config.health_check_interval
    ws = web.WebSocketResponse(heartbeat=interval, max_msg_size=limits.max_frame_bytes)
    await ws.prepare(request)
    slots, address = coordinator.hub.unauthenticated, request.remote or ""
    if not slots.acquire(
        address,
        per_address=limits.max_unauthenticated_sockets_per_address,
        total=limits.max_unauthenticated_sockets,
    ):
        message = "too many sockets waiting to authenticate (from this address, or in all)"
        await _close_with_error(
            request, ws, EventsCloseCode.TOO_MANY_CONNECTIONS, "too_many_connections", message
        )
        return ws
    try:
        first = await ws.receive(timeout=limits.auth_timeout)
    except TimeoutError:
        first = None
    finally:
        slots.release(address)
    if first is None:
        await _close_with_error(
            request,
            ws,
            EventsCloseCode.UNAUTHENTICATED,
            "unauthenticated",
            f"no auth frame within {limits.auth_timeout:g} s",
        )
        return ws
    try:
        auth = _parse_auth(first)
        claims = _authenticate_claims(coordinator, auth.api_key, auth.token)
        user_id = claims.user_id
        if auth.user is not None and auth.user.id != user_id:
            raise AuthenticationError(
                f"token is for {user_id!r}, not {auth.user.id!r}", code="token_user_mismatch"
            )
    except SwitchboardError as exc:
        close_code = EventsCloseCode.UNAUTHENTICATED if exc.status == 401 else EventsCloseCode.BAD_REQUEST
        await _close_with_error(request, ws, close_code, exc.code, exc.message)
        return ws
    refused = await _over_socket_limits(request.app, user_id, auth.previous_connection_id)
    if refused is not None:
        await _close_with_error(request, ws, refused[0], refused[1], refused[2])
        return ws

    if auth.user is not None:
        user = await coordinator.upsert_user(auth.user)
    else:
        user = await coordinator.user_response(user_id)
    conn = Connection(id=uuid.uuid4().hex, user_id=user_id, ws=ws)
    hub = coordinator.hub
    inherited = await hub.attach(conn, auth.previous_connection_id)
    writer: asyncio.Task[None] | None = None
    pinger: asyncio.Task[None] | None = None
    expiry: asyncio.Task[None] | None = None
    try:
        replayed: list[dict[str, Any]] = []
        complete = True
        epoch = await coordinator.store.event_epoch()
        if auth.last_event_id is not None:
            previous = auth.previous_connection_id if inherited else None
            if auth.previous_connection_id and not inherited:
                complete = False  # its watched calls' events cannot be found: the client reloads
            else:
                replayed, complete = await hub.replay(conn, auth.last_event_id, previous, epoch=auth.epoch)
        ok = m.ConnectionOk(
            created_at=utcnow(),
            connection_id=conn.id,
            user=user,
            replayed=len(replayed),
            replay_complete=complete,
            epoch=epoch,
        )
        await ws.send_json(ok.model_dump(mode="json", exclude={"id"}))
        for payload in replayed:
            await ws.send_json(payload)
            conn.last_sent_id = max(conn.last_sent_id, int(payload["id"]))
        writer = asyncio.get_running_loop().create_task(conn.writer())
        pinger = asyncio.get_running_loop().create_task(_health_checks(conn, interval))
        if claims.exp is not None:
            expiry = asyncio.get_running_loop().create_task(_close_at_expiry(request, ws, claims.exp))
        budget = FrameBudget(limits.frames_per_second, limits.frame_burst)
        async for msg in ws:
            conn.last_seen = time.monotonic()
            if not budget.take():
                log.warning(
                    "events connection %s of %s: frame rate over the limit; closing", conn.id, user_id
                )
                await _cut_off(request, ws, EventsCloseCode.RATE_LIMITED, "rate_limited")
                break
            try:
                if msg.type != WSMsgType.TEXT:
                    raise ValueError
                data = json.loads(msg.data)
                if not isinstance(data, dict) or data.get("type") != "health.check":
                    raise ValueError
            except ValueError:
                await ws.send_json(
                    {
                        "type": "error",
                        "code": "invalid_request",
                        "message": "only JSON text health.check frames are accepted",
                    }
                )
                continue
            health = m.HealthCheckEvent(created_at=utcnow(), connection_id=conn.id)
            await ws.send_json(health.model_dump(mode="json", exclude={"id"}))
    except (ConnectionError, RuntimeError) as exc:
        log.info("events connection %s dropped: %s", conn.id, exc)
    finally:
        hub.unregister(conn)
        for task in (expiry, pinger, writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    return ws


def _parse_auth(first: Any) -> m.AuthRequest:
    """The auth frame; InvalidRequestError (close 4000) when malformed, AuthenticationError (4001) when
    its token is missing or not a string."""
    if first.type != WSMsgType.TEXT:
        raise InvalidRequestError("the first frame must be a JSON auth message")
    try:
        data = json.loads(first.data)
    except ValueError as exc:
        raise InvalidRequestError(f"the auth frame is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("the auth frame must be a JSON object")
    if data.get("token") is None:
        raise AuthenticationError("missing user token", code="token_missing")
    if not isinstance(data["token"], str):
        raise AuthenticationError("invalid user token: not a string", code="token_invalid")
    try:
        return m.AuthRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise InvalidRequestError(f"malformed auth message: {problems}") from exc


SOCKET_OPENS_KEY = web.AppKey("socket_opens", Limiter)


async def _over_socket_limits(
    app: web.Application, user_id: str, previous_connection_id: str | None
) -> tuple[EventsCloseCode, str, str] | None:
    """Why a new events socket of ``user_id`` is refused (close code, error code, message), or None.

    The connection it replaces (``previous_connection_id``, when still open) does not count.
    """
    coordinator = app[COORDINATOR_KEY]
    limits = coordinator.config.limits
    retry_after = await app[SOCKET_OPENS_KEY].acquire(user_id)
    if retry_after:
        message = f"too many events sockets opened; retry in {retry_after:.2f}s"
        return EventsCloseCode.RATE_LIMITED, "rate_limited", message
    count = coordinator.hub.connection_count(user_id)
    if coordinator.hub.connection(previous_connection_id, user_id) is not None:
        count -= 1
    if count >= limits.max_sockets_per_user:
        message = f"{user_id!r} already has {count} events sockets open (the limit)"
        return EventsCloseCode.TOO_MANY_CONNECTIONS, "too_many_connections", message
    return None


#: seconds a cut-off client gets to read its close frame before the TCP connection is dropped
CUT_OFF_GRACE = 0.5


async def _cut_off(request: web.Request, ws: web.WebSocketResponse, code: int, reason: str) -> None:
    """Close ``ws`` reading nothing more from the client: stop reading from its TCP connection (what it
    still sends waits in the kernel and then TCP flow control stops it), send the close frame, give it
    ``CUT_OFF_GRACE`` seconds to read that, then drop the connection (even if this task is cancelled)."""
    transport = request.transport
    if transport is not None:
        transport.pause_reading()
    closing = asyncio.ensure_future(ws.close(code=code, message=reason.encode()))
    closing.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        # the close waits for the client's close frame, which is never read: this is the grace period
        await asyncio.wait_for(asyncio.shield(closing), CUT_OFF_GRACE)
    except Exception:  # TimeoutError, or the connection failed while writing
        pass
    finally:
        if transport is not None:
            transport.close()


async def _close_at_expiry(request: web.Request, ws: web.WebSocketResponse, exp: float) -> None:
    """Close ``ws`` with 4001 ``token_expired`` when the user token expires (SPEC §2.10)."""
    await asyncio.sleep(max(0.0, exp - time.time()))
    if ws.closed:
        return
    message = "the user token expired: sign in again"
    await _close_with_error(request, ws, EventsCloseCode.UNAUTHENTICATED, TOKEN_EXPIRED_REASON, message)


async def _health_checks(conn: Connection, interval: float) -> None:
    """Send ``health.check`` every ``interval``; close a client silent for three intervals."""
    while not conn.ws.closed:
        await asyncio.sleep(interval)
        if time.monotonic() - conn.last_seen > 3 * interval:
            await conn.ws.close(code=4002, message=b"health check timeout")
            return
        with contextlib.suppress(Exception):
            await conn.ws.send_json(
                m.HealthCheckEvent(created_at=utcnow(), connection_id=conn.id).model_dump(
                    mode="json", exclude={"id"}
                )
            )


async def _close_with_error(
    request: web.Request, ws: web.WebSocketResponse, close_code: int, code: str, message: str
) -> None:
    """An ``error`` frame, then close with ``close_code`` (reason: the error ``code``) at once, reading
    nothing more from the client (a refused client may be flooding)."""
    log.info("events socket closed with %d %s: %s", close_code, code, message)
    with contextlib.suppress(Exception):
        await ws.send_json({"type": "error", "code": code, "message": message})
    with contextlib.suppress(Exception):
        await _cut_off(request, ws, close_code, code)


# -------------------------------------------------------------------- OpenAPI


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = ref(m.ErrorResponse)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "security": [{"apiKey": [], "userToken": []}],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": ref(route.response)}},
                },
                **{
                    str(code): {"description": text, "content": {"application/json": {"schema": error}}}
                    for code, text in [
                        (400, "malformed request"),
                        (401, "bad or expired token"),
                        (403, "not allowed"),
                        (404, "unknown call"),
                        (408, "request body not received in time"),
                        (409, "wrong state"),
                        (413, "body too large"),
                        (429, "too many requests"),
                    ]
                },
            },
        }
        if route.request is not None:
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": ref(route.request)}},
            }
        if "{type}" in route.path:
            operation["parameters"] = [
                {
                    "name": "type",
                    "in": "path",
                    "required": True,
                    "description": "The call type (a built-in one; unknown types answer 404).",
                    "schema": {"type": "string", "enum": sorted(CALL_TYPES)},
                },
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "description": "The call id.",
                    "schema": {"type": "string", **CALL_ID_SCHEMA},
                },
            ]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "switchboard coordinator", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# -------------------------------------------------------------------- app


def http_server_options(config: CoordinatorConfig) -> dict[str, Any]:
    """Options for the ``web.AppRunner`` serving :func:`create_app`: header timeout and linger time.

    aiohttp closes a connection still waiting for a complete request head ``keepalive_timeout`` seconds
    after it opened (or after its previous response), which is the header timeout; and it reads an
    unread request body for at most ``lingering_time`` seconds after the answer before closing.
    """
    limits = config.limits
    return {"keepalive_timeout": limits.header_timeout, "lingering_time": limits.linger_time}


def create_app(
    config: CoordinatorConfig, store: Store | None = None, *, web_options: WebOptions | None = None
) -> web.Application:
    """The coordinator app; ``web_options`` sets CORS and development tokens for browsers."""
    store = store if store is not None else MemoryStore()
    if isinstance(store, RedisStore):  # state shared by several coordinators
        hub: EventHub = RedisEventHub(store)
        coordinator = Coordinator(config, store, hub, RedisSfuSessions(store))
        coordinator.sfu_nodes = RedisSfuNodes(store)
    else:
        hub = EventHub(store)
        coordinator = Coordinator(config, store, hub)
    web_options = web_options if web_options is not None else WebOptions()
    app = web.Application(
        middlewares=[cors_middleware(web_options), request_log_middleware, error_middleware],
        client_max_size=config.max_body_bytes,
    )
    app[COORDINATOR_KEY] = coordinator
    limiter: Limiter
    if isinstance(store, RedisStore):  # one budget per user across every coordinator
        limiter = RedisRateLimiter(store, "api", config.rate_limit_per_second, config.rate_limit_burst)
        app[SOCKET_OPENS_KEY] = RedisRateLimiter(
            store, "socket_opens", config.limits.socket_opens_per_second, config.limits.socket_open_burst
        )
    else:
        limiter = RateLimiter(config.rate_limit_per_second, config.rate_limit_burst)
        app[SOCKET_OPENS_KEY] = RateLimiter(
            config.limits.socket_opens_per_second, config.limits.socket_open_burst
        )
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _make_handler(route, limiter))
    app.router.add_get(API_PREFIX + "/events", events_socket)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/health", _health)
    add_web_routes(app, web_options, config.api_key, config.api_secret)

    async def _startup(app: web.Application) -> None:
        await hub.start()
        await coordinator.start()

    app.on_startup.append(_startup)

    async def _shutdown(app: web.Application) -> None:
        await coordinator.close()
        await hub.close_all()

    app.on_shutdown.append(_shutdown)
    return app


__all__ = ["COORDINATOR_KEY", "ROUTES", "create_app", "http_server_options", "openapi_document"]
