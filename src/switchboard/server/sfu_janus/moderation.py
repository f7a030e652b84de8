"""Moderation on the Janus engine: what a moderator's command does to the sessions it names.

The same behaviour as the embedded engine (``server/sfu/moderation.py``), through Janus:

* ``mute``: each named kind of each session is held back from every subscriber at once (per-stream
  ``configure {"send": false}`` on their subscriber handles); the track shows as muted to everyone
  (``mute_state_changed``) and the session is told (``moderation`` ``muted``). Forwarding restarts
  only when that client unmutes the kind itself (``update_mute_state`` ``muted: false``).
* ``grants``: a kind no longer granted stops being forwarded (``track_unpublished``, the others
  unsubscribe from it); a kind newly granted that the client already sends is forwarded from now on
  (``track_published``); a client that had no such track publishes one, which the new grants admit.
* ``remove``: the session is told (``moderation`` ``removed``), then removed at once
  (``participant_left`` reason ``removed``, no reconnect grace, its Janus handles detached).
"""

from __future__ import annotations

from switchboard.protocol import sfu as p
from switchboard.protocol.sfu import TrackKind
from switchboard.protocol.tokens import SfuGrants
from switchboard.server.sfu.sessions import apply_moderation
from switchboard.server.sfu_janus.room import JanusParticipant, JanusRoom


async def moderate(room: JanusRoom, command: p.ModerationCommand) -> int:
    """Apply ``command`` to ``room``; the number of sessions it acted on."""
    return await apply_moderation(room, command, regrant=_regrant, mute=_mute)


def _regrant(participant: JanusParticipant, grants: SfuGrants) -> None:
    participant.apply_grants(grants)
    participant.spawn(participant.publish_allowed())


def _mute(participant: JanusParticipant, kinds: list[TrackKind]) -> None:
    """Held back from every subscriber until the client unmutes them itself."""
    participant.moderated.update(kinds)
    participant.room.refresh_pauses()
    for kind in kinds:
        participant.muted[kind] = True
