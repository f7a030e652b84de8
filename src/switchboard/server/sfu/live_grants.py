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

The request is engine-neutral: :func:`apply_update` is what every engine does alike, given how the
engine applies new grants to one session (the Janus engine: ``server/sfu_janus/live_grants.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol, TypeVar

from aiohttp import web

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuGrants
from switchboard.server.sfu.forwarding import Kind
from switchboard.server.sfu.moderation import update_grants
from switchboard.server.sfu.participant import Participant
from switchboard.server.sfu.room import Room
from switchboard.server.sfu.sessions import CallSessions
from switchboard.server.sfu.signalling import close

log = logging.getLogger("switchboard.sfu.grants")

#: the ``participant_left`` reason of a session removed because its user may no longer be in the call
REMOVED_REASON = "permission_denied"


class LiveSession(Protocol):
    """What a grants update needs of a session, whatever the engine."""

    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def ws(self) -> web.WebSocketResponse | None: ...
    def spawn(self, coro: Awaitable[None]) -> None: ...
    def detach(self) -> None: ...
    async def send(self, message: p._Msg) -> None: ...
    async def error(self, code: str, message: str, *, fatal: bool = False) -> None: ...


L = TypeVar("L", bound=LiveSession)

Regrant = Callable[[L, SfuGrants], Collection[Kind]]
"""(session, new grants) -> the kinds it no longer may publish: an engine applies the grants its way
(stops forwarding what is revoked, forwards what is newly granted and already sent)."""


def allows(grants: SfuGrants, kind: Kind) -> bool:
    """Whether the send ``grants`` allow publishing ``kind`` (SPEC §2.7, §2.10)."""
    return grants.send_audio if kind == "audio" else grants.send_video


async def apply_grants_update(room: Room, update: p.GrantsUpdate) -> int:
    """Apply ``update`` to the live sessions of the embedded SFU's ``room``; the number of sessions
    it acted on."""
    return await apply_update(room, update, _regrant_embedded)


def _regrant_embedded(participant: Participant, grants: SfuGrants) -> list[Kind]:
    revoked = sorted(kind for kind in participant.published if not allows(grants, kind))
    update_grants(participant, grants)  # unpublishes what is no longer granted, publishes what now is
    return revoked


async def apply_update(room: CallSessions[L], update: p.GrantsUpdate, regrant: Regrant[L]) -> int:
    """Apply ``update`` to the live sessions of ``room`` (any engine: ``regrant`` applies new grants
    to one session); the number of sessions it acted on.

    A session whose grants are revoked in part gets a non-fatal ``permission_denied`` naming the
    kinds; one whose grants are ``None`` is removed (:data:`REMOVED_REASON`, close 4003).
    """
    wanted = {u.user_id: u.grants for u in update.users}
    sessions = [q for q in list(room.participants.values()) if q.user_id in wanted]
    for session in sessions:
        grants = wanted[session.user_id]
        if grants is None:
            await _remove(room, session, update.reason)
            continue
        revoked = sorted(regrant(session, grants))
        if revoked:
            log.info(
                "%r: %s no longer granted (%s); not forwarded", session, "+".join(revoked), update.reason
            )
            await session.error(
                "permission_denied",
                f"{session.user_id!r} may no longer publish {', '.join(revoked)} in "
                f"{room.cid} ({update.reason}); not forwarded",
            )
    return len(sessions)


async def _remove(room: CallSessions[L], session: L, reason: str) -> None:
    ws = session.ws
    # detached first: the socket loop then leaves the session to us (no reconnect grace)
    session.detach()
    await room.remove(session, reason=REMOVED_REASON)
    log.info("%r: may no longer be in %s (%s); removed", session, room.cid, reason)
    if ws is not None and not ws.closed:
        await close(
            ws,
            "permission_denied",
            f"{session.user_id!r} may no longer be in {room.cid} ({reason})",
            p.CloseCode.PERMISSION_DENIED,
        )
