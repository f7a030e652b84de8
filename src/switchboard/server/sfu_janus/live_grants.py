"""Grants that change while sessions are in the call, on the Janus engine.

The same observable results as the embedded engine (``server/sfu/live_grants.py``, whose
:func:`~switchboard.server.sfu.live_grants.apply_update` this reuses): a send kind no longer granted
stops being forwarded (the others get ``track_unpublished`` and unsubscribe from its Janus stream;
the session gets a non-fatal ``permission_denied``); a kind newly granted whose stream the client
already sends is forwarded from now on (``track_published``); ``grants: null`` removes the session at
once (fatal ``permission_denied``, ``participant_left`` reason ``permission_denied``, close 4003).
"""

from __future__ import annotations

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuGrants
from switchboard.server.sfu.live_grants import allows, apply_update
from switchboard.server.sfu.sessions import Kind
from switchboard.server.sfu_janus.room import JanusParticipant, JanusRoom


def _regrant(participant: JanusParticipant, grants: SfuGrants) -> list[Kind]:
    """Apply ``grants`` to a live Janus session; the kinds it forwarded and no longer may."""
    forwarded: set[Kind] = {"audio" if kind == "audio" else "video" for kind in participant.pub_mids.values()}
    revoked = sorted(kind for kind in forwarded if not allows(grants, kind))
    participant.apply_grants(grants)  # stops forwarding what the grants no longer allow
    participant.spawn(participant.publish_allowed())  # forwards what they now allow and is sent
    return revoked


async def apply_grants_update(room: JanusRoom, update: p.GrantsUpdate) -> int:
    """Apply ``update`` to the live sessions of ``room``; the number of sessions it acted on."""
    return await apply_update(room, update, _regrant)
