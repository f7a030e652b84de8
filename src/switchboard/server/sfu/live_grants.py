"""Grants that change while sessions are in the call: the embedded SFU's side of a ``GrantsUpdate``.

The coordinator sends a :class:`~switchboard.protocol.sfu.GrantsUpdate` whenever users' grants in a
call change for sessions that are already connected (request-to-speak granted or revoked, a member's
role changed or the member removed, ``stop_live``, video turned off in the call's settings; SPEC
§2.7, §2.10). An SFU token only proves the grants at admission; this is how a session that is
already in keeps to the current ones:

* a send kind no longer granted stops being forwarded at once: the others get ``track_unpublished``,
  the session gets a (non-fatal) ``error`` ``permission_denied`` naming the kinds; the publisher's
  packets are still read (never decoded) and dropped;
* a send kind newly granted whose track the client already sends is forwarded from now on;
* ``grants: null`` (the user may no longer be in the call): the session gets a fatal ``error``
  ``permission_denied``, is removed at once (no reconnect grace; the others get
  ``participant_left`` with reason ``permission_denied``) and its socket is closed with 4003.

The request is engine-neutral: an engine applies it with the same observable results.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuGrants
from switchboard.server.sfu.forwarding import Kind
from switchboard.server.sfu.internal_routes import add_admin_route
from switchboard.server.sfu.moderation import update_grants
from switchboard.server.sfu.participant import Participant
from switchboard.server.sfu.room import Room
from switchboard.server.sfu.signalling import close

log = logging.getLogger("switchboard.sfu.grants")

#: the ``participant_left`` reason of a session removed because its user may no longer be in the call
REMOVED_REASON = "permission_denied"


def _allows(grants: SfuGrants, kind: Kind) -> bool:
    return grants.send_audio if kind == "audio" else grants.send_video


async def apply_grants_update(room: Room, update: p.GrantsUpdate) -> int:
    """Apply ``update`` to the live sessions of ``room``; the number of sessions it acted on."""
    wanted = {u.user_id: u.grants for u in update.users}
    sessions = [q for q in list(room.participants.values()) if q.user_id in wanted]
    for participant in sessions:
        grants = wanted[participant.user_id]
        if grants is None:
            await _remove(room, participant, update.reason)
        else:
            await _regrant(participant, grants, update.reason)
    return len(sessions)


async def _regrant(participant: Participant, grants: SfuGrants, reason: str) -> None:
    revoked = sorted(kind for kind in participant.published if not _allows(grants, kind))
    update_grants(participant, grants)  # unpublishes what is no longer granted, publishes what now is
    if revoked:
        log.info("%r: %s no longer granted (%s); not forwarded", participant, "+".join(revoked), reason)
        await participant.error(
            "permission_denied",
            f"{participant.user_id!r} may no longer publish {', '.join(revoked)} in "
            f"{participant.room.cid} ({reason}); not forwarded",
        )


async def _remove(room: Room, participant: Participant, reason: str) -> None:
    ws = participant.ws
    # detached first: the socket loop then leaves the session to us (no reconnect grace)
    participant.detach()
    await room.remove(participant, reason=REMOVED_REASON)
    log.info("%r: may no longer be in %s (%s); removed", participant, room.cid, reason)
    if ws is not None and not ws.closed:
        await close(
            ws,
            "permission_denied",
            f"{participant.user_id!r} may no longer be in {room.cid} ({reason})",
            p.CloseCode.PERMISSION_DENIED,
        )


def add_grants_route(
    app: web.Application, handler: Callable[[p.GrantsUpdate], Awaitable[int]], api_secret: str
) -> None:
    """``POST`` :data:`~switchboard.protocol.sfu.INTERNAL_GRANTS_PATH` on an SFU in its own process: a
    :class:`~switchboard.protocol.sfu.GrantsUpdate` with an admin token; 200 with a
    :class:`~switchboard.protocol.sfu.GrantsReport`, 401 ``{code,message}`` without a valid admin
    token, 400 ``invalid_request`` for a malformed body."""

    async def report(update: p.GrantsUpdate) -> web.Response:
        sessions = await handler(update)
        return web.json_response(text=p.GrantsReport(sessions=sessions).model_dump_json())

    add_admin_route(app, p.INTERNAL_GRANTS_PATH, p.GrantsUpdate, api_secret, report)
