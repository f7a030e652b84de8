"""The SFU's internal routes: ``POST`` requests from the coordinator, each with an admin token.

Every internal route (end a call, moderate, change live grants, recording; paths in
:mod:`switchboard.protocol.sfu`) answers the same way before its own work: 401 ``{code,message}``
without a valid ``Authorization: Bearer <admin token>`` (signed with the API secret, see
:func:`~switchboard.protocol.tokens.create_admin_token`), 400 ``invalid_request`` for a body that
is not the route's pydantic model. :func:`add_admin_route` registers a route with those checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from switchboard.errors import SwitchboardError
from switchboard.protocol.tokens import verify_admin_token

__all__ = ["add_admin_route", "error_response", "require_admin"]

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
