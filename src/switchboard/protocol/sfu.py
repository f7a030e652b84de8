"""SFU signalling: typed JSON messages over one WebSocket per participant session.

Each message is ``{"type": ..., ...}``. The client offers the *publisher* peer connection (its own
tracks); the SFU offers the *subscriber* peer connection (everyone else's tracks) and renegotiates it
as tracks come and go. Remote tracks are identified by the subscriber transceiver's ``mid``, which
``track_published`` maps to a participant and kind. See ``docs/protocol.md``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from switchboard.protocol.tokens import SfuGrants

TrackKind = Literal["audio", "video"]
MAX_SDP = 64 * 1024
#: the largest ``data`` of a participant message: bytes of its compact JSON (UTF-8)
MAX_MESSAGE_DATA_BYTES = 4 * 1024
#: participant messages one session may send: per second on average, and at once
MESSAGE_RATE = 20.0
MESSAGE_BURST = 40

#: the coordinator <-> SFU channel when the SFU runs in its own process (admin-token authenticated;
#: not part of the client protocol): the SFU asks before admitting a token and reports sessions ...
INTERNAL_ADMIT_PATH = "/internal/sfu/admit"
INTERNAL_PARTICIPANT_PATH = "/internal/sfu/participant"
#: ... and the coordinator tells the SFU a call ended
INTERNAL_END_CALL_PATH = "/sfu/internal/end_call"
#: ... and what a moderator did (:class:`ModerationCommand`)
INTERNAL_MODERATE_PATH = "/sfu/internal/moderate"
#: ... and starts, stops and lists recordings (:class:`RecordingCommand` -> :class:`RecordingsReport`)
INTERNAL_RECORDING_PATH = "/sfu/internal/recording"
#: ... and that users' grants changed in a call, for the sessions already in it (:class:`GrantsUpdate`)
INTERNAL_GRANTS_PATH = "/sfu/internal/grants"


class CloseCode(IntEnum):
    """WebSocket close codes the SFU ends a signalling socket with (``docs/protocol.md``).

    An ``error`` message with ``fatal: true`` naming the precise ``code`` comes first, except for
    1009, which aiohttp sends on its own when a frame exceeds the size limit (RFC 6455 §7.4.1).
    """

    #: ``leave``, the call ended, or the server is shutting down
    NORMAL = 1000
    #: a frame larger than the SFU's message size limit (RFC 6455 "message too big")
    MESSAGE_TOO_BIG = 1009
    #: too many sockets are waiting to join right now (RFC 6455 "try again later")
    TRY_AGAIN_LATER = 1013
    #: ``join`` refused: token invalid, expired, replayed (session left) or its grants changed
    UNAUTHENTICATED = 4001
    #: ``join`` refused: the user may not join this call now (e.g. backstage)
    PERMISSION_DENIED = 4003
    #: no valid ``join`` within the join timeout (or too many attempts)
    JOIN_TIMEOUT = 4004
    #: more messages than the per-socket rate allows
    RATE_LIMITED = 4008
    #: ``join`` refused: the call ended, or the session is already connected or expired
    SESSION_REFUSED = 4009
    #: too many malformed messages (text or binary)
    TOO_MANY_ERRORS = 4010
    #: the user already holds the maximum number of SFU sessions
    TOO_MANY_SESSIONS = 4029


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- client -> SFU


class JoinRequest(_Msg):
    type: Literal["join"] = "join"
    token: str
    #: resume a session that lost its socket (within the SFU's grace period)
    reconnect: bool = False
    #: start with audio forwarding to this session paused (a call joined while suspended)
    audio_paused: bool = False


class PublisherOffer(_Msg):
    type: Literal["publisher_offer"] = "publisher_offer"
    sdp: Annotated[str, Field(max_length=MAX_SDP)]
    #: what the client publishes, by transceiver mid
    tracks: dict[str, TrackKind] = Field(default_factory=dict)


class SubscriberAnswer(_Msg):
    type: Literal["subscriber_answer"] = "subscriber_answer"
    sdp: Annotated[str, Field(max_length=MAX_SDP)]


class UpdateMuteState(_Msg):
    type: Literal["update_mute_state"] = "update_mute_state"
    kind: TrackKind
    muted: bool


class UpdateSubscription(_Msg):
    """Pause or resume forwarding to *this* subscriber: every audio track, or one track by session."""

    type: Literal["update_subscription"] = "update_subscription"
    kind: TrackKind = "audio"
    paused: bool
    #: only this publisher's track; all publishers when None
    session_id: str | None = None


#: most user ids a microphone audience may name (a whisper is one; a supervisor's team a few dozen)
MAX_AUDIENCE = 64


class UpdateAudience(_Msg):
    """Forward this session's audio only to the sessions of ``user_ids``; None: to everyone (SPEC §2.8).

    The SFU pauses forwarding of the session's audio track for every subscriber whose user is not in
    the audience, and tells everyone in the call with :class:`AudienceChanged`.
    """

    type: Literal["update_audience"] = "update_audience"
    kind: Literal["audio"] = "audio"
    user_ids: (
        Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=MAX_AUDIENCE)] | None
    ) = None


class Leave(_Msg):
    type: Literal["leave"] = "leave"
    reason: str = "left"


class HealthCheckRequest(_Msg):
    type: Literal["health_check"] = "health_check"


class SendMessage(_Msg):
    """A participant message: relayed at once to the other sessions of the call, never stored.

    ``data`` is any JSON object up to :data:`MAX_MESSAGE_DATA_BYTES` bytes of compact JSON;
    ``session_ids`` limits it to those sessions (None: every other session in the call).
    """

    type: Literal["send_message"] = "send_message"
    data: dict[str, Any]
    session_ids: Annotated[list[str] | None, Field(max_length=100)] = None


class IceCandidate(_Msg):
    """A trickled ICE candidate (RFC 8838) for one of the session's two peer connections.

    ``candidate``: the ``candidate-attribute`` of RFC 8839 section 5.1 (with or without the leading
    ``candidate:``), as ``RTCIceCandidate.candidate`` gives it; None: end of candidates. ``sdp_mid``
    / ``sdp_mline_index`` name the media section it belongs to (one of them is needed).
    """

    type: Literal["ice_candidate"] = "ice_candidate"
    target: Literal["publisher", "subscriber"]
    candidate: Annotated[str, Field(max_length=1024)] | None = None
    sdp_mid: Annotated[str, Field(max_length=64)] | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=64)] | None = None


ClientMessage = Annotated[
    JoinRequest
    | PublisherOffer
    | SubscriberAnswer
    | UpdateMuteState
    | UpdateSubscription
    | UpdateAudience
    | IceCandidate
    | Leave
    | HealthCheckRequest
    | SendMessage,
    Field(discriminator="type"),
]
client_message: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ---------------------------------------------------------------- SFU -> client


class TrackInfo(_Msg):
    kind: TrackKind
    muted: bool = False


class ParticipantInfo(_Msg):
    user_id: str
    session_id: str
    tracks: list[TrackInfo] = Field(default_factory=list)
    #: the users this session's audio is forwarded to; None: everyone (see UpdateAudience)
    audience: list[str] | None = None


class JoinResponse(_Msg):
    type: Literal["join_response"] = "join_response"
    session_id: str
    call_cid: str
    participants: list[ParticipantInfo]
    reconnected: bool = False


class PublisherAnswer(_Msg):
    type: Literal["publisher_answer"] = "publisher_answer"
    sdp: str


class SubscriberOffer(_Msg):
    type: Literal["subscriber_offer"] = "subscriber_offer"
    sdp: str
    #: what each subscriber transceiver carries after this negotiation: mid -> (session, kind)
    tracks: dict[str, RemoteTrack] = Field(default_factory=dict)


class RemoteTrack(_Msg):
    user_id: str
    session_id: str
    kind: TrackKind


class ParticipantJoined(_Msg):
    type: Literal["participant_joined"] = "participant_joined"
    participant: ParticipantInfo


class ParticipantLeft(_Msg):
    type: Literal["participant_left"] = "participant_left"
    user_id: str
    session_id: str
    reason: str = "left"


class TrackPublished(_Msg):
    type: Literal["track_published"] = "track_published"
    user_id: str
    session_id: str
    kind: TrackKind
    muted: bool = False


class TrackUnpublished(_Msg):
    type: Literal["track_unpublished"] = "track_unpublished"
    user_id: str
    session_id: str
    kind: TrackKind


class MuteStateChanged(_Msg):
    type: Literal["mute_state_changed"] = "mute_state_changed"
    user_id: str
    session_id: str
    kind: TrackKind
    muted: bool


class AudienceChanged(_Msg):
    """A session's audio audience changed (UpdateAudience); sent to everyone in the call."""

    type: Literal["audience_changed"] = "audience_changed"
    user_id: str
    session_id: str
    kind: Literal["audio"] = "audio"
    user_ids: list[str] | None = None


class CallEnded(_Msg):
    type: Literal["call_ended"] = "call_ended"


class ErrorMessage(_Msg):
    type: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool = False


class HealthCheckResponse(_Msg):
    type: Literal["health_check_response"] = "health_check_response"


class AudioLevel(_Msg):
    """One session's microphone over the last interval: ``level`` is the RMS amplitude relative to
    full scale (0..1, from the RFC 6464 levels its packets carry), ``speaking`` above the threshold."""

    user_id: str
    session_id: str
    level: float
    speaking: bool


class AudioLevels(_Msg):
    """To every session, a few times per second while anyone publishes audio: every audio level and
    the dominant speaker's session (None until someone spoke; kept while nobody speaks)."""

    type: Literal["audio_levels"] = "audio_levels"
    levels: list[AudioLevel]
    dominant_speaker: str | None = None


Quality = Literal["excellent", "good", "poor"]


class ConnectionQuality(_Msg):
    """To every session when a rating changes: each session's connection quality, by session id."""

    type: Literal["connection_quality"] = "connection_quality"
    qualities: dict[str, Quality]


class ModerationNotice(_Msg):
    """To the session a moderator acted on: its ``kinds`` were muted (forwarding stopped until the
    client unmutes them itself), or it was removed from the call (``blocked``: it may not rejoin)."""

    type: Literal["moderation"] = "moderation"
    action: Literal["muted", "removed"]
    by: str
    kinds: list[TrackKind] = Field(default_factory=list)
    blocked: bool = False


class ModerationCommand(_Msg):
    """Coordinator -> SFU (internal, not a client message): act on the sessions of ``user_ids``
    (None: every session of the call except those of ``by``). ``grants``: the sessions' send grants
    are now ``grants`` (kept for engines that implement it; the coordinator sends grants changes as a
    :class:`GrantsUpdate`)."""

    cid: str
    action: Literal["mute", "remove", "grants"]
    by: str
    user_ids: list[str] | None = None
    kinds: list[TrackKind] = Field(default_factory=list)
    blocked: bool = False
    grants: SfuGrants | None = None


class UserGrants(_Msg):
    """One user's grants in a call from now on: ``grants`` for the send kinds, or None when the user
    may no longer be in the call's media at all (``join-call`` lost: backstage again, blocked)."""

    user_id: str
    grants: SfuGrants | None = None


class GrantsUpdate(_Msg):
    """Coordinator -> SFU (internal, engine-neutral): the grants of ``users`` in call ``cid`` changed
    while they may have sessions in its media (SPEC §2.7, §2.10).

    Every SFU engine applies it to the live sessions of those users: a send kind no longer granted
    stops being forwarded at once (``track_unpublished`` to the others, ``error``
    ``permission_denied`` to the session); a kind newly granted whose track the client already sends
    is forwarded; ``grants: null`` removes the user's sessions (a fatal ``error``
    ``permission_denied``, close 4003, ``participant_left`` reason ``permission_denied`` to the
    others). ``reason`` says what changed (``permissions_updated``, ``members_updated``,
    ``live_stopped``, ``call_updated``), for logs.
    """

    cid: str
    reason: str
    users: list[UserGrants]


class GrantsReport(_Msg):
    """SFU -> coordinator: the answer to a :class:`GrantsUpdate`, how many sessions it acted on."""

    sessions: int


class RecordingCommand(_Msg):
    """Coordinator -> SFU (internal): start, stop or list the recordings of call ``cid``."""

    cid: str
    action: Literal["start", "stop", "list"]


class RecordingFileInfo(_Msg):
    """One Ogg/Opus file: a session's audio as sent (``mixed`` False) or the mix of all (True)."""

    path: str
    mixed: bool
    user_id: str | None = None
    session_id: str | None = None
    duration_ms: float


class RecordingInfo(_Msg):
    recording_id: str
    cid: str
    #: Unix times (s)
    started_at: float
    stopped_at: float | None = None
    files: list[RecordingFileInfo] = Field(default_factory=list)


class RecordingsReport(_Msg):
    recordings: list[RecordingInfo] = Field(default_factory=list)


class ParticipantMessage(_Msg):
    """A participant message from session ``session_id`` of ``user_id`` (see :class:`SendMessage`)."""

    type: Literal["participant_message"] = "participant_message"
    user_id: str
    session_id: str
    data: dict[str, Any]


ServerMessage = Annotated[
    JoinResponse
    | PublisherAnswer
    | SubscriberOffer
    | ParticipantJoined
    | ParticipantLeft
    | TrackPublished
    | TrackUnpublished
    | MuteStateChanged
    | AudienceChanged
    | CallEnded
    | ErrorMessage
    | HealthCheckResponse
    | ParticipantMessage
    | ModerationNotice
    | AudioLevels
    | ConnectionQuality,
    Field(discriminator="type"),
]
server_message: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

SubscriberOffer.model_rebuild()
