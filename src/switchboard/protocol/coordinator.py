"""The coordinator's REST and event models.

These pydantic models validate every request body the server accepts (unknown fields are refused),
shape every response, and generate ``/openapi.json``. The SDK parses responses and events with the
same classes, so client and server cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

MAX_ID_LENGTH = 64


def utcnow() -> datetime:
    return datetime.now(UTC)


Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9_\-.@]+$")]


class Request(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    """Base of responses and events: tolerant when parsing (newer servers may add fields)."""

    model_config = ConfigDict(extra="ignore")


class Capability(StrEnum):
    READ_CALL = "read-call"
    JOIN_CALL = "join-call"
    JOIN_BACKSTAGE = "join-backstage"
    SEND_AUDIO = "send-audio"
    SEND_VIDEO = "send-video"
    END_CALL = "end-call"
    UPDATE_CALL = "update-call"
    UPDATE_CALL_MEMBER = "update-call-member"
    MUTE_USERS = "mute-users"


class RejectReason(StrEnum):
    DECLINE = "decline"
    CANCEL = "cancel"
    BUSY = "busy"
    TIMEOUT = "timeout"


class RingOutcome(StrEnum):
    """How a ring ended for one user (see ``call.ring_ended``)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    MISSED = "missed"
    CANCELLED = "cancelled"


# ---------------------------------------------------------------- users


class UserRequest(Request):
    id: Identifier
    name: Annotated[str | None, Field(max_length=200)] = None
    image: Annotated[str | None, Field(max_length=2000)] = None
    custom: dict[str, Any] = Field(default_factory=dict)


class UserResponse(Response):
    id: str
    name: str | None = None
    image: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- call settings


class AudioSettings(Response):
    mic_default_on: bool = True


class VideoSettings(Response):
    enabled: bool = True
    camera_default_on: bool = True


class BackstageSettings(Response):
    enabled: bool = False


class RingSettings(Response):
    incoming_call_timeout_ms: int = 15000
    auto_cancel_timeout_ms: int = 15000


class CallSettings(Response):
    audio: AudioSettings = Field(default_factory=AudioSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    backstage: BackstageSettings = Field(default_factory=BackstageSettings)
    ring: RingSettings = Field(default_factory=RingSettings)


class AudioSettingsRequest(Request):
    mic_default_on: bool | None = None


class VideoSettingsRequest(Request):
    enabled: bool | None = None
    camera_default_on: bool | None = None


class BackstageSettingsRequest(Request):
    enabled: bool | None = None


class RingSettingsRequest(Request):
    # StrictInt: a JSON boolean is not an integer (pydantic's lax mode would take true as 1)
    incoming_call_timeout_ms: Annotated[StrictInt | None, Field(ge=0, le=600_000)] = None
    auto_cancel_timeout_ms: Annotated[StrictInt | None, Field(ge=0, le=600_000)] = None


class CallSettingsRequest(Request):
    """A partial override of a call type's settings, for one call."""

    audio: AudioSettingsRequest | None = None
    video: VideoSettingsRequest | None = None
    backstage: BackstageSettingsRequest | None = None
    ring: RingSettingsRequest | None = None


# ---------------------------------------------------------------- calls and members


class MemberRequest(Request):
    user_id: Identifier
    role: Annotated[str | None, Field(pattern=r"^(admin|host|call_member)$")] = None
    custom: dict[str, Any] = Field(default_factory=dict)


class MemberResponse(Response):
    user_id: str
    user: UserResponse
    role: str
    custom: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class CallResponse(Response):
    cid: str
    type: str
    id: str
    created_by: UserResponse
    custom: dict[str, Any] = Field(default_factory=dict)
    settings: CallSettings
    backstage: bool
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None


class CallDataRequest(Request):
    members: Annotated[list[MemberRequest], Field(max_length=1000)] = Field(default_factory=list)
    custom: dict[str, Any] = Field(default_factory=dict)
    settings_override: CallSettingsRequest | None = None


class GetOrCreateCallRequest(Request):
    data: CallDataRequest = Field(default_factory=lambda: CallDataRequest())
    ring: bool = False
    video: bool = False
    watch: bool = True
    connection_id: str | None = None


class CallStateResponse(Response):
    """A call as seen by one user: the call, its members and what this user may do."""

    call: CallResponse
    members: list[MemberResponse]
    own_capabilities: list[Capability]


class GetOrCreateCallResponse(CallStateResponse):
    created: bool
    #: the ring this request started (``ring=true``), else None
    ring_id: str | None = None


class GetCallRequest(Request):
    watch: bool = True
    connection_id: str | None = None


class UpdateCallRequest(Request):
    custom: dict[str, Any] | None = None
    settings_override: CallSettingsRequest | None = None


class UpdateMembersRequest(Request):
    update_members: Annotated[list[MemberRequest], Field(max_length=1000)] = Field(default_factory=list)
    remove_members: Annotated[list[Identifier], Field(max_length=1000)] = Field(default_factory=list)


class UpdateMembersResponse(Response):
    members: list[MemberResponse]


class EmptyRequest(Request):
    pass


class RingRequest(Request):
    video: bool = False
    member_ids: Annotated[list[Identifier] | None, Field(max_length=1000)] = None


class RejectRequest(Request):
    reason: RejectReason = RejectReason.DECLINE


class AckResponse(Response):
    duration_ms: float = 0.0


class RingResponse(AckResponse):
    """Answer to ``/ring``: the id of the ring it started."""

    ring_id: str


class PendingRing(Response):
    """One ring that is still ringing for the user who asked (SPEC §2.6.1).

    ``outgoing`` is true for a ring this user started (the caller's side), false for one ringing
    this user. ``deadline`` is when the server ends it (None: the call type has no ring timeout).
    """

    ring_id: str
    cid: str
    call: CallResponse
    members: list[MemberResponse]
    caller: UserResponse
    outgoing: bool
    video: bool = False
    created_at: datetime
    deadline: datetime | None = None


class PendingRingsResponse(Response):
    """Every ring pending for the user, oldest first, as of event ``last_event_id`` of ``epoch``.

    Events with an id above ``last_event_id`` (same ``epoch``) happened after this snapshot.
    """

    rings: list[PendingRing]
    last_event_id: int
    epoch: str


class IceServer(Response):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class SfuServer(Response):
    url: str
    edge_name: str = "embedded"


class Credentials(Response):
    server: SfuServer
    token: str
    ice_servers: list[IceServer] = Field(default_factory=list)


class JoinCallRequest(Request):
    create: bool = False
    data: CallDataRequest | None = None
    connection_id: str | None = None


class JoinCallResponse(CallStateResponse):
    session_id: str
    credentials: Credentials


class SfuTokenRequest(Request):
    """A fresh SFU token for a session this user joined (its first token may have expired)."""

    session_id: str = Field(min_length=1, max_length=64)


class SfuTokenResponse(Response):
    session_id: str
    credentials: Credentials


#: the largest ``custom`` payload of a custom event: bytes of its compact JSON (UTF-8)
MAX_CUSTOM_EVENT_BYTES = 5 * 1024


class SendCustomEventRequest(Request):
    """A custom event for everyone in a call: ``custom`` is any JSON object up to
    :data:`MAX_CUSTOM_EVENT_BYTES` bytes of compact JSON."""

    custom: dict[str, Any]


class SendCustomEventResponse(AckResponse):
    """The event was stored in the event log as ``event_id`` and sent."""

    event_id: int


class MuteUsersRequest(Request):
    """Mute ``user_ids`` (or, ``mute_all_users``, everyone but the caller) in a call (``mute-users``)."""

    user_ids: Annotated[list[Identifier], Field(max_length=1000)] = Field(default_factory=list)
    mute_all_users: bool = False
    audio: bool = True
    video: bool = False


class RemoveParticipantRequest(Request):
    """Remove ``user_id``'s sessions from the call; ``block``: and block them (``update-call-member``)."""

    user_id: Identifier
    block: bool = False


class BlockUserRequest(Request):
    user_id: Identifier


#: the capabilities a user may ask for and a moderator may grant or revoke per user (request-to-speak)
REQUESTABLE_CAPABILITIES = frozenset({Capability.SEND_AUDIO, Capability.SEND_VIDEO})


class RequestPermissionRequest(Request):
    """Ask the call's moderators for ``permissions`` (``send-audio`` and/or ``send-video``)."""

    permissions: Annotated[list[Capability], Field(min_length=1, max_length=2)]


class UpdateUserPermissionsRequest(Request):
    """Grant and/or revoke ``user_id``'s ``send-audio`` / ``send-video`` in this call."""

    user_id: Identifier
    grant_permissions: Annotated[list[Capability], Field(max_length=2)] = Field(default_factory=list)
    revoke_permissions: Annotated[list[Capability], Field(max_length=2)] = Field(default_factory=list)


class RecordingFile(Response):
    """One Ogg/Opus file on the SFU's disk: a session's audio as sent, or the mix (``mixed``)."""

    path: str
    mixed: bool
    user_id: str | None = None
    session_id: str | None = None
    duration_ms: float


class CallRecording(Response):
    recording_id: str
    started_at: datetime
    stopped_at: datetime | None = None
    files: list[RecordingFile] = Field(default_factory=list)


class RecordingsResponse(Response):
    """The call's recordings (finished ones with their files, and the one running if any)."""

    recordings: list[CallRecording]


class ErrorResponse(Response):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


# ---------------------------------------------------------------- events (WebSocket)


class AuthRequest(Request):
    """The first frame a client sends on the events socket."""

    type: Literal["auth"] = "auth"
    api_key: str
    token: str
    user: UserRequest | None = None
    last_event_id: Annotated[StrictInt | None, Field(ge=0)] = None
    #: the event-id epoch ``last_event_id`` belongs to (from ``connection.ok``); another epoch
    #: means the server's event ids started over, so nothing can be replayed from it
    epoch: str | None = None
    previous_connection_id: str | None = None


class HealthCheck(Request):
    type: Literal["health.check"] = "health.check"


class Event(Response):
    """Every event carries an increasing ``id`` (per server) and a ``type``."""

    id: int = 0
    type: str
    created_at: datetime
    cid: str | None = None


class ConnectionOk(Event):
    type: Literal["connection.ok"] = "connection.ok"
    connection_id: str
    user: UserResponse
    replayed: int = 0
    #: true only when every event after the client's ``last_event_id`` was replayed (or none was
    #: asked for); false when the cursor is from another epoch, left the buffer, or the previous
    #: connection (whose watched calls' events it needs) is unknown to this server
    replay_complete: bool = True
    #: the event-id epoch: ids increase within one epoch; a new epoch starts them over
    epoch: str | None = None


class HealthCheckEvent(Event):
    type: Literal["health.check"] = "health.check"
    connection_id: str


class CallEvent(Event):
    cid: str
    call: CallResponse


# Shapes several call events share. They have no ``type`` of their own (never sent as such): each
# event below adds its ``type``; its fields come in the same order as when each event spelled them.


class CallMembersEvent(CallEvent):
    """A call event naming members (``call.created``, ``call.member_added``, ``call.member_updated``)."""

    members: list[MemberResponse]


class CallUserEvent(CallEvent):
    """A call event about one ``user`` (ringing, accepting, rejecting, asking for permissions)."""

    user: UserResponse


class CallSessionEvent(CallEvent):
    """A call event about one media session ``session_id`` of ``user_id`` (joined or left)."""

    user_id: str
    session_id: str


class CallModerationEvent(CallEvent):
    """A moderator (``by``) acted on ``user_id`` (removed, blocked, unblocked)."""

    user_id: str
    by: str


class CallCreatedEvent(CallMembersEvent):
    type: Literal["call.created"] = "call.created"


class CallUpdatedEvent(CallEvent):
    type: Literal["call.updated"] = "call.updated"


class CallEndedEvent(CallEvent):
    type: Literal["call.ended"] = "call.ended"
    user: UserResponse | None = None


class CallLiveStartedEvent(CallEvent):
    type: Literal["call.live_started"] = "call.live_started"


class CallLiveStoppedEvent(CallEvent):
    type: Literal["call.live_stopped"] = "call.live_stopped"


class CallMemberAddedEvent(CallMembersEvent):
    type: Literal["call.member_added"] = "call.member_added"


class CallMemberUpdatedEvent(CallMembersEvent):
    type: Literal["call.member_updated"] = "call.member_updated"


class CallMemberRemovedEvent(CallEvent):
    type: Literal["call.member_removed"] = "call.member_removed"
    members: list[str]


class CallRingEvent(CallUserEvent):
    """Sent to each callee's connections: the call is ringing for you."""

    type: Literal["call.ring"] = "call.ring"
    members: list[MemberResponse]
    video: bool = False
    ring_id: str | None = None


class CallAcceptedEvent(CallUserEvent):
    type: Literal["call.accepted"] = "call.accepted"


class CallRejectedEvent(CallUserEvent):
    type: Literal["call.rejected"] = "call.rejected"
    reason: RejectReason


class CallMissedEvent(CallEvent):
    type: Literal["call.missed"] = "call.missed"
    user_ids: list[str]


class CallRingEndedEvent(CallEvent):
    """The ring ended for ``user_id`` (sent to that user's connections only)."""

    type: Literal["call.ring_ended"] = "call.ring_ended"
    user_id: str
    outgoing: bool
    outcome: RingOutcome
    reason: RejectReason | None = None
    ring_id: str | None = None


class ParticipantJoinedEvent(CallSessionEvent):
    type: Literal["call.session_participant_joined"] = "call.session_participant_joined"


class ParticipantLeftEvent(CallSessionEvent):
    type: Literal["call.session_participant_left"] = "call.session_participant_left"


class CallUserMutedEvent(CallEvent):
    """A moderator (``from_user_id``) muted ``muted_user_ids`` (empty: everyone but them)."""

    type: Literal["call.user_muted"] = "call.user_muted"
    from_user_id: str
    muted_user_ids: list[str]
    audio: bool
    video: bool


class CallParticipantRemovedEvent(CallModerationEvent):
    """A moderator (``by``) removed ``user_id`` from the call's media (and blocked them: ``blocked``)."""

    type: Literal["call.participant_removed"] = "call.participant_removed"
    blocked: bool = False


class CallBlockedUserEvent(CallModerationEvent):
    type: Literal["call.blocked_user"] = "call.blocked_user"


class CallUnblockedUserEvent(CallModerationEvent):
    type: Literal["call.unblocked_user"] = "call.unblocked_user"


class CallPermissionRequestEvent(CallUserEvent):
    """``user`` asks for ``permissions`` (request-to-speak); for the moderators to grant or not."""

    type: Literal["call.permission_request"] = "call.permission_request"
    permissions: list[Capability]


class CallPermissionsUpdatedEvent(CallEvent):
    """``user_id``'s capabilities in the call changed (granted or revoked): now ``own_capabilities``."""

    type: Literal["call.permissions_updated"] = "call.permissions_updated"
    user_id: str
    own_capabilities: list[Capability]


class CallRecordingStartedEvent(CallEvent):
    type: Literal["call.recording_started"] = "call.recording_started"
    recording_id: str


class CallRecordingStoppedEvent(CallEvent):
    type: Literal["call.recording_stopped"] = "call.recording_stopped"
    recording: CallRecording


class CustomEvent(Event):
    """An application's own event in a call (``call.send_custom_event``), from ``user``.

    Sent to the call's members and to every connection watching the call (which includes every
    joined participant); kept in the event log like every call event, so a reconnecting client
    gets the ones it missed.
    """

    type: Literal["custom"] = "custom"
    cid: str
    user: UserResponse
    custom: dict[str, Any] = Field(default_factory=dict)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        ConnectionOk,
        HealthCheckEvent,
        CallCreatedEvent,
        CallUpdatedEvent,
        CallEndedEvent,
        CallLiveStartedEvent,
        CallLiveStoppedEvent,
        CallMemberAddedEvent,
        CallMemberUpdatedEvent,
        CallMemberRemovedEvent,
        CallRingEvent,
        CallAcceptedEvent,
        CallRejectedEvent,
        CallMissedEvent,
        CallRingEndedEvent,
        ParticipantJoinedEvent,
        ParticipantLeftEvent,
        CustomEvent,
        CallUserMutedEvent,
        CallParticipantRemovedEvent,
        CallBlockedUserEvent,
        CallUnblockedUserEvent,
        CallPermissionRequestEvent,
        CallPermissionsUpdatedEvent,
        CallRecordingStartedEvent,
        CallRecordingStoppedEvent,
    )
}


def parse_event(data: dict[str, Any]) -> Event:
    """The typed event for a decoded frame (unknown types parse as a plain :class:`Event`)."""
    cls = EVENT_TYPES.get(str(data.get("type")), Event)
    return cls.model_validate(data)
