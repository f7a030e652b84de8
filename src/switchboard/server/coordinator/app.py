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
    RateLimitedError,
    SwitchboardError,
)
from switchboard.protocol import coordinator as m
from switchboard.protocol.coordinator import utcnow
from switchboard.protocol.tokens import verify_user_token
from switchboard.server.coordinator.events import Connection, EventHub
from switchboard.server.coordinator.ratelimit import RateLimiter
from switchboard.server.coordinator.request_log import request_log_middleware
from switchboard.server.coordinator.service import Coordinator, CoordinatorConfig
from switchboard.server.coordinator.store import MemoryStore, Store

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
            "POST", CALL_PATH + "/ring", m.RingRequest, m.AckResponse,
            "Ring the call's members other than the caller (or the listed ones).",
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
    ]  # fmt: skip


async def _upsert_self(c: Coordinator, ctx: RequestContext, body: m.UserRequest) -> m.UserResponse:
    if body.id != ctx.user_id:
        raise InvalidRequestError(f"a token for {ctx.user_id!r} cannot update user {body.id!r}")
    return await c.upsert_user(body)


ROUTES = _routes()


# -------------------------------------------------------------------- errors and auth


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
        return error_response(exc.status, exc.code, exc.message)
    except ValidationError as exc:
        return error_response(
            400, "invalid_request", "request body does not match the schema", details=_validation_details(exc)
        )
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, "payload_too_large", f"request body too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error; the request changed nothing")


def _authenticate(coordinator: Coordinator, api_key: str | None, token: str | None) -> str:
    if api_key != coordinator.config.api_key:
        raise AuthenticationError("unknown API key", code="invalid_api_key")
    if not token:
        raise AuthenticationError("missing user token", code="token_missing")
    return verify_user_token(coordinator.config.api_secret, token).user_id


def _request_auth(request: web.Request) -> tuple[str | None, str | None]:
    api_key = request.headers.get("X-Api-Key") or request.query.get("api_key")
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    return api_key, token


async def _read_body(request: web.Request, model: type[m.Request]) -> m.Request:
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequestError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("body must be a JSON object")
    return model.model_validate(data)


def _make_handler(route: Route, limiter: RateLimiter) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        coordinator = request.app[COORDINATOR_KEY]
        user_id = _authenticate(coordinator, *_request_auth(request))
        retry_after = limiter.check(user_id)
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


def _validate_call_id(call_id: str) -> None:
    try:
        _CallId(id=call_id)
    except ValidationError as exc:
        raise InvalidRequestError(
            f"invalid call id {call_id!r}: 1-64 characters of letters, digits, _ - . @"
        ) from exc


# -------------------------------------------------------------------- events WebSocket


async def events_socket(request: web.Request) -> web.WebSocketResponse:
    coordinator = request.app[COORDINATOR_KEY]
    interval = coordinator.config.health_check_interval
    ws = web.WebSocketResponse(heartbeat=interval, max_msg_size=coordinator.config.max_body_bytes)
    await ws.prepare(request)
    try:
        first = await ws.receive(timeout=10)
    except TimeoutError:
        await _close_with_error(ws, 4001, "unauthenticated", "no auth frame within 10 s")
        return ws
    try:
        if first.type != WSMsgType.TEXT:
            raise InvalidRequestError("the first frame must be a JSON auth message")
        try:
            auth = m.AuthRequest.model_validate_json(first.data)
        except ValidationError as exc:
            raise InvalidRequestError(f"malformed auth message: {exc.error_count()} error(s)") from exc
        user_id = _authenticate(coordinator, auth.api_key, auth.token)
        if auth.user is not None and auth.user.id != user_id:
            raise AuthenticationError(
                f"token is for {user_id!r}, not {auth.user.id!r}", code="token_user_mismatch"
            )
    except SwitchboardError as exc:
        await _close_with_error(ws, 4001 if exc.status == 401 else 4000, exc.code, exc.message)
        return ws

    if auth.user is not None:
        user = await coordinator.upsert_user(auth.user)
    else:
        user = await coordinator.user_response(user_id)
    conn = Connection(id=uuid.uuid4().hex, user_id=user_id, ws=ws)
    hub = coordinator.hub
    inherited = hub.register(conn, auth.previous_connection_id)
    writer: asyncio.Task[None] | None = None
    pinger: asyncio.Task[None] | None = None
    try:
        replayed: list[dict[str, Any]] = []
        complete = True
        if auth.last_event_id is not None:
            previous = auth.previous_connection_id if inherited else None
            replayed, complete = await hub.replay(conn, auth.last_event_id, previous)
        ok = m.ConnectionOk(
            created_at=utcnow(),
            connection_id=conn.id,
            user=user,
            replayed=len(replayed),
            replay_complete=complete,
        )
        await ws.send_json(ok.model_dump(mode="json", exclude={"id"}))
        for payload in replayed:
            await ws.send_json(payload)
            conn.last_sent_id = max(conn.last_sent_id, int(payload["id"]))
        writer = asyncio.get_running_loop().create_task(conn.writer())
        pinger = asyncio.get_running_loop().create_task(_health_checks(conn, interval))
        async for msg in ws:
            conn.last_seen = time.monotonic()
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
                if not isinstance(data, dict) or data.get("type") != "health.check":
                    raise ValueError
            except ValueError:
                await ws.send_json(
                    {
                        "type": "error",
                        "code": "invalid_request",
                        "message": "only health.check frames are accepted",
                    }
                )
                continue
            health = m.HealthCheckEvent(created_at=utcnow(), connection_id=conn.id)
            await ws.send_json(health.model_dump(mode="json", exclude={"id"}))
    except (ConnectionError, RuntimeError) as exc:
        log.info("events connection %s dropped: %s", conn.id, exc)
    finally:
        hub.unregister(conn)
        for task in (pinger, writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    return ws


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


async def _close_with_error(ws: web.WebSocketResponse, close_code: int, code: str, message: str) -> None:
    log.info("events socket closed with %d %s: %s", close_code, code, message)
    with contextlib.suppress(Exception):
        await ws.send_json({"type": "error", "code": code, "message": message})
        await ws.close(code=close_code, message=message[:120].encode())


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
                {"name": "type", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}},
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


def create_app(config: CoordinatorConfig, store: Store | None = None) -> web.Application:
    store = store if store is not None else MemoryStore()
    hub = EventHub(store)
    coordinator = Coordinator(config, store, hub)
    app = web.Application(
        middlewares=[request_log_middleware, error_middleware], client_max_size=config.max_body_bytes
    )
    app[COORDINATOR_KEY] = coordinator
    limiter = RateLimiter(config.rate_limit_per_second, config.rate_limit_burst)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _make_handler(route, limiter))
    app.router.add_get(API_PREFIX + "/events", events_socket)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/health", _health)

    async def _shutdown(app: web.Application) -> None:
        await coordinator.close()
        await hub.close_all()

    app.on_shutdown.append(_shutdown)
    return app


__all__ = ["COORDINATOR_KEY", "ROUTES", "create_app", "openapi_document"]
