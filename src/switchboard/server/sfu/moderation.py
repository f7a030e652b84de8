"""Moderation on the SFU: what a moderator's command does to the sessions it names.

``mute``: each named kind of each session stops being forwarded at once (the publisher's frames
are still read, never decoded, and dropped); the track shows as muted to everyone
(``mute_state_changed``) and the session is told (``moderation`` ``muted``). Forwarding restarts
only when that client unmutes the kind itself (``update_mute_state`` ``muted: false``), which the
SDK does only on its user's request; taking the right to send away for good is a grants change
(``send-audio``), not a mute.

``grants``: the sessions' send grants change (request-to-speak granted or revoked). A kind no
longer granted stops being forwarded at once (``track_unpublished``); a kind newly granted whose
track the client already sends (refused so far, or revoked before) is forwarded from now on; a
client that had no such track publishes one (``publisher_offer``), which the new grants admit.

``remove``: the session is told (``moderation`` ``removed``), then removed from the room at once
(``participant_left`` with reason ``removed``, no reconnect grace); its SFU token's session is
over, so it cannot resume; whether it may join again is the coordinator's decision (blocking).
"""

from __future__ import annotations

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuGrants
from switchboard.server.sfu.forwarding import Kind
from switchboard.server.sfu.participant import Participant
from switchboard.server.sfu.room import Room
from switchboard.server.sfu.sessions import moderation_targets


def targets(room: Room, command: p.ModerationCommand) -> list[Participant]:
    """The sessions ``command`` acts on (never the moderator's own when acting on everyone)."""
    return moderation_targets(room.participants.values(), command)


async def moderate(room: Room, command: p.ModerationCommand) -> int:
    """Apply ``command`` to ``room``; the number of sessions it acted on."""
    sessions = targets(room, command)
    for participant in sessions:
        if command.action == "grants":
            if command.grants is not None:
                update_grants(participant, command.grants)
        elif command.action == "mute":
            for kind in command.kinds:
                participant.moderated.add(kind)
                participant.muted[kind] = True
                track = participant.published.get(kind)
                if track is not None:
                    track.muted = True
                    track.moderated = True
                await room.broadcast(
                    p.MuteStateChanged(
                        user_id=participant.user_id,
                        session_id=participant.session_id,
                        kind=kind,
                        muted=True,
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


def update_grants(participant: Participant, grants: SfuGrants) -> None:
    """Apply new send grants to a live session: stop what is no longer allowed, start what now is."""
    participant.apply_grants(grants)  # unpublishes (stops forwarding) what the grants no longer allow
    for transceiver in participant.publisher.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind not in ("audio", "video"):
            continue
        kind: Kind = "audio" if transceiver.kind == "audio" else "video"
        if receiver.track is None or kind in participant.published:
            continue
        if transceiver.direction not in ("recvonly", "sendrecv") or not participant.may_send(kind):
            continue
        for tap in [t for t in participant.refused if t.receiver is receiver]:
            tap.close()
            participant.refused.remove(tap)
        participant.publish_receiver(kind, receiver)
