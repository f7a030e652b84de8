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
from switchboard.server.sfu.sessions import apply_moderation


async def moderate(room: Room, command: p.ModerationCommand) -> int:
    """Apply ``command`` to ``room``; the number of sessions it acted on."""
    return await apply_moderation(room, command, regrant=update_grants, mute=_mute)


def _mute(participant: Participant, kinds: list[Kind]) -> None:
    """Stop forwarding ``kinds`` of ``participant`` until its client unmutes them."""
    for kind in kinds:
        participant.moderated.add(kind)
        participant.muted[kind] = True
        track = participant.published.get(kind)
        if track is not None:
            track.muted = True
            track.moderated = True


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
