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
from switchboard.server.sfu.sessions import moderation_targets
from switchboard.server.sfu_janus.room import JanusRoom


async def moderate(room: JanusRoom, command: p.ModerationCommand) -> int:
    """Apply ``command`` to ``room``; the number of sessions it acted on."""
    sessions = moderation_targets(list(room.participants.values()), command)
    for participant in sessions:
        if command.action == "grants":
            if command.grants is not None:
                participant.apply_grants(command.grants)
                participant.spawn(participant.publish_allowed())
        elif command.action == "mute":
            participant.moderated.update(command.kinds)
            room.refresh_pauses()
            for kind in command.kinds:
                participant.muted[kind] = True
                await room.broadcast(
                    p.MuteStateChanged(
                        user_id=participant.user_id, session_id=participant.session_id, kind=kind, muted=True
                    ),
                    exclude=None,
                )
            await participant.send(p.ModerationNotice(action="muted", by=command.by, kinds=command.kinds))
        else:
            await participant.send(
                p.ModerationNotice(action="removed", by=command.by, blocked=command.blocked)
            )
            await room.remove(participant, reason="removed")
    return len(sessions)
