"""The SFU's internal routes: ``POST`` requests from the coordinator, each with an admin token.

Every internal route (end a call, moderate, change live grants, recording; paths in
:mod:`switchboard.protocol.sfu`) answers the same way before its own work: 401 ``{code,message}``
without a valid ``Authorization: Bearer <admin token>`` (signed with the API secret, see
:func:`~switchboard.protocol.tokens.create_admin_token`), 400 ``invalid_request`` for a body that
is not the route's pydantic model. :func:`add_admin_route` registers a route with those checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from switchboard.errors import SwitchboardError
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import verify_admin_token

__all__ = [
    "EndCall",
    "SfuControl",
    "add_admin_route",
    "add_sfu_internal_routes",
    "error_response",
    "require_admin",
]

Body = TypeVar("Body", bound=BaseModel)


def require_admin(request: web.Request, api_secret: str) -> None:
    """Verify the request's ``Authorization: Bearer`` admin token.

    Raises :class:`~switchboard.errors.AuthenticationError` when it is missing, forged or expired.
    """
    header = request.headers.get("Authorization", "")
    verify_admin_token(api_secret, header[7:].strip() if header.lower().startswith("bearer ") else "")


def error_response(code: str, message: str, status: int) -> web.Response:
    """The JSON error body every route answers with: ``{"code": ..., "message": ...}``."""
    return web.json_response({"code": code, "message": message}, status=status)


def add_admin_route(
    app: web.Application,
    path: str,
    model: type[Body],
    api_secret: str,
    handle: Callable[[Body], Awaitable[web.Response]],
) -> None:
    """``POST path``: check the admin token (401), parse the body as ``model`` (400
    ``invalid_request``), then answer with ``handle(body)``."""

    async def route(request: web.Request) -> web.Response:
        try:
            require_admin(request, api_secret)
        except SwitchboardError as exc:
            return error_response(exc.code, exc.message, 401)
        try:
            body = model.model_validate_json(await request.read())
        except ValueError as exc:
            return error_response("invalid_request", str(exc), 400)
        return await handle(body)

    app.router.add_post(path, route)


class EndCall(BaseModel):
    """The body of ``POST`` :data:`~switchboard.protocol.sfu.INTERNAL_END_CALL_PATH`."""

    model_config = ConfigDict(extra="forbid")

    cid: str


class SfuControl(Protocol):
    """What the coordinator asks of an SFU engine (the embedded SFU and the Janus engine both)."""

    async def end_call(self, cid: str) -> None: ...
    async def moderate(self, command: p.ModerationCommand) -> int: ...
    async def update_grants(self, update: p.GrantsUpdate) -> int: ...
    async def recording(self, command: p.RecordingCommand) -> p.RecordingsReport: ...


def add_sfu_internal_routes(app: web.Application, sfu: SfuControl, api_secret: str) -> None:
    """Every internal route of an SFU in its own process, for either engine:

    * end_call: :class:`EndCall` → 204;
    * moderate: :class:`~switchboard.protocol.sfu.ModerationCommand` → 204;
    * grants: :class:`~switchboard.protocol.sfu.GrantsUpdate` → 200
      :class:`~switchboard.protocol.sfu.GrantsReport`;
    * recording: :class:`~switchboard.protocol.sfu.RecordingCommand` → 200
      :class:`~switchboard.protocol.sfu.RecordingsReport`, or the engine's refusal with its status.
    """

    async def end_call(body: EndCall) -> web.Response:
        await sfu.end_call(body.cid)
        return web.Response(status=204)

    async def moderate(command: p.ModerationCommand) -> web.Response:
        await sfu.moderate(command)
        return web.Response(status=204)

    async def grants(update: p.GrantsUpdate) -> web.Response:
        sessions = await sfu.update_grants(update)
        return web.json_response(text=p.GrantsReport(sessions=sessions).model_dump_json())

    async def recording(command: p.RecordingCommand) -> web.Response:
        try:
            report = await sfu.recording(command)
        except SwitchboardError as exc:
            return error_response(exc.code, exc.message, exc.status)
        except ValueError as exc:
            return error_response("invalid_request", str(exc), 400)
        return web.json_response(text=report.model_dump_json())

    add_admin_route(app, p.INTERNAL_END_CALL_PATH, EndCall, api_secret, end_call)
    add_admin_route(app, p.INTERNAL_MODERATE_PATH, p.ModerationCommand, api_secret, moderate)
    add_admin_route(app, p.INTERNAL_GRANTS_PATH, p.GrantsUpdate, api_secret, grants)
    add_admin_route(app, p.INTERNAL_RECORDING_PATH, p.RecordingCommand, api_secret, recording)
