"""The coordinator's side of its channel with an SFU running in another process.

Two routes, not part of the public API (absent from ``/openapi.json``), for operators' processes
only: each request carries ``Authorization: Bearer <admin token>`` (signed with the API secret, which
both processes hold).

* ``POST /internal/sfu/admit`` with the claims of an SFU token the SFU has verified: 204 when the
  SFU may admit the token (:meth:`Coordinator.admit_sfu_session`), else the usual JSON error
  (401 ``session_ended`` / ``grants_changed`` / ``token_invalid``, 403 ``permission_denied``,
  409 ``call_ended``).
* ``POST /internal/sfu/participant`` ``{"cid", "user_id", "session_id", "joined"}``: a session joined
  or left the call's media (204).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from switchboard.errors import AuthenticationError, InvalidRequestError
from switchboard.protocol.sfu import INTERNAL_ADMIT_PATH, INTERNAL_PARTICIPANT_PATH
from switchboard.protocol.tokens import SfuClaims, verify_admin_token
from switchboard.server.coordinator.service import Coordinator


class ParticipantReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cid: str
    user_id: str
    session_id: str
    joined: bool


def _require_admin(request: web.Request, secret: str) -> None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise AuthenticationError("internal route: missing admin token", code="token_missing")
    verify_admin_token(secret, header[7:].strip())


def add_internal_routes(app: web.Application, coordinator: Coordinator) -> None:
    """Register the SFU channel's routes on the coordinator's application (before it starts)."""
    secret = coordinator.config.api_secret

    async def admit(request: web.Request) -> web.Response:
        _require_admin(request, secret)
        try:
            claims = SfuClaims.model_validate_json(await request.read())
        except ValueError as exc:
            raise InvalidRequestError(f"bad admit request: {exc}") from exc
        await coordinator.admit_sfu_session(claims)
        return web.Response(status=204)

    async def participant(request: web.Request) -> web.Response:
        _require_admin(request, secret)
        try:
            body = ParticipantReport.model_validate_json(await request.read())
        except ValueError as exc:
            raise InvalidRequestError(f"bad participant report: {exc}") from exc
        await coordinator.participant_changed(body.cid, body.user_id, body.session_id, body.joined)
        return web.Response(status=204)

    app.router.add_post(INTERNAL_ADMIT_PATH, admit)
    app.router.add_post(INTERNAL_PARTICIPANT_PATH, participant)
