"""``Call``: one call as this client sees it: its coordinator operations, state and events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from switchboard.errors import (
    AuthenticationError,
    CallStateError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    SwitchboardError,
)
from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.media.audio_session import AudioDeviceModule
from switchboard.media.microphones import Microphone
from switchboard.media.playout_shaping import check_gain_db, check_pan
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.protocol.sfu import MAX_AUDIENCE
from switchboard.sdk.emitter import EventEmitter, local_event
from switchboard.sdk.messages import MessageBudget, ParticipantMessageEvent, json_object
from switchboard.sdk.observable import Observable
from switchboard.sdk.session import CallSession, connection_refused
from switchboard.sdk.stats import CallStats, StatsCollector
from switchboard.sdk.types import (
    CallConnectOptions,
    CallPreferences,
    CallStatus,
    CallType,
    MemberRequest,
    RejectReason,
    SuspendMode,
    TrackOption,
    as_member_requests,
)
from switchboard.sdk.validation import require_bool, require_identifiers, require_instance

log = logging.getLogger("switchboard.sdk.call")

#: a rejoin's first retry comes after this many seconds, doubling up to ``REJOIN_MAX_DELAY`` (each
#: delay drawn within +-20 %, so the clients of a dead SFU do not all ask the coordinator at once)
REJOIN_FIRST_DELAY = 0.1
REJOIN_MAX_DELAY = 1.0
#: a rejoin stops early when the coordinator itself refuses connections this long (s): the whole
#: server is down, not just its SFU
COORDINATOR_DOWN_GRACE = 2.0

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from switchboard.sdk.client import VideoClient
    from switchboard.sdk.multicall import Handover


@dataclass(frozen=True)
class Member:
    user_id: str
    role: str
    name: str | None = None


@dataclass(frozen=True)
class TrackInfo:
    kind: str
    track_id: str
    muted: bool = False


@dataclass(frozen=True)
class Participant:
    user_id: str
    session_id: str
    name: str | None = None
    is_local: bool = False
    audio_enabled: bool = False
    video_enabled: bool = False
    tracks: tuple[TrackInfo, ...] = ()
    #: microphone level as the SFU measured it (RMS amplitude, 0..1), a few updates per second
    audio_level: float = 0.0
    #: the SFU hears this participant speak (level above -50 dBov)
    is_speaking: bool = False
    #: the SFU's rating of this participant's connection: "excellent", "good", "poor" (None: not yet)
    connection_quality: str | None = None
    #: who hears this participant's microphone (SPEC §2.8): user ids, or None for everyone
    audience: tuple[str, ...] | None = None

    def is_whispering_to(self, user_id: str) -> bool:
        """This participant's microphone goes to a chosen audience that includes ``user_id``."""
        return self.audience is not None and user_id in self.audience


@dataclass(frozen=True)
class CallState:
    """A frozen snapshot of a call; ``call.state`` publishes a new one on every change."""

    cid: str
    call_type: str
    id: str
    status: CallStatus = CallStatus.IDLE
    is_audio_suspended: bool = False
    #: the suspension in force (SPEC §2.8): SILENT or DUCKED; None when not suspended
    suspend_mode: SuspendMode | None = None
    participants: tuple[Participant, ...] = ()
    local_participant: Participant | None = None
    members: tuple[Member, ...] = ()
    own_capabilities: frozenset[m.Capability] = frozenset()
    is_backstage: bool = False
    created_by: str | None = None
    custom: Mapping[str, Any] = field(default_factory=dict)
    settings: m.CallSettings | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None
    session_id: str | None = None
    #: how the last ring of this call ended for this user (None while ringing or never rang)
    ring_outcome: m.RingOutcome | None = None
    reject_reason: RejectReason | None = None
    #: who the SFU hears as the main speaker (with hysteresis); None before anyone spoke
    dominant_speaker: Participant | None = None

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None


def _provided_camera(options: CallConnectOptions) -> MediaStreamTrack | None:
    """The application's own camera track (``TrackOption.provided``), else None (a synthetic one)."""
    camera = options.camera
    return camera.track if camera is not None and camera.state == "provided" else None


def _reject_reason(reason: object) -> RejectReason:
    """``reason`` as a RejectReason (its string value is accepted too), else InvalidRequestError."""
    if isinstance(reason, str) and reason in {r.value for r in RejectReason}:
        return RejectReason(reason)
    options = ", ".join(f"RejectReason.{r.name}" for r in RejectReason)
    raise InvalidRequestError(f"reject reason {reason!r} is not valid: use one of {options}")


def _send_capabilities(permissions: object, what: str) -> list[m.Capability]:
    """``permissions`` as send capabilities, else InvalidRequestError naming what is accepted."""
    if isinstance(permissions, str) or not isinstance(permissions, Sequence):
        raise InvalidRequestError(
            f"{what} must be a list such as [Capability.SEND_AUDIO], not {permissions!r}"
        )
    allowed = {c.value: c for c in m.REQUESTABLE_CAPABILITIES}
    out: list[m.Capability] = []
    for item in permissions:
        cap = allowed.get(str(item.value if isinstance(item, m.Capability) else item))
        if cap is None:
            raise InvalidRequestError(f"{what}: {item!r} cannot be requested; only send-audio, send-video")
        if cap not in out:
            out.append(cap)
    return out


class Call:
    """Made by :meth:`VideoClient.make_call` (or by an incoming ring); one instance per cid per client."""

    def __init__(
        self,
        client: VideoClient,
        call_type: CallType,
        call_id: str,
        preferences: CallPreferences | None = None,
    ) -> None:
        self._client = client
        self.type = call_type
        self.id = call_id
        self.cid = f"{call_type.name}:{call_id}"
        self.preferences = preferences or CallPreferences()
        self.state: Observable[CallState] = Observable(CallState(self.cid, call_type.name, call_id))
        self._events = EventEmitter()
        self._media: CallSession | None = None
        self._adm: AudioDeviceModule | None = None
        self._join_lock = asyncio.Lock()
        self._join_task: asyncio.Task[object] | None = None
        self._join_cancelled = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: the user's intent; the effective microphone is intent AND not suspended (SPEC §2.4.2)
        self._mic_intent = False
        self._camera_intent = False
        self._suspended = False
        self._message_budget = MessageBudget()
        self._stats = StatsCollector()
        self._suspend_mode: SuspendMode | None = None
        self._playout_gain_db = 0.0
        self._playout_pan = 0.0
        #: who hears this client's microphone in this call (SPEC §2.8); None: everyone
        self._audience: tuple[str, ...] | None = None
        #: what the others hear while this call is suspended (SPEC §2.8); None: silence
        self._hold: Microphone | None = None
        #: the options of the last join(): a rejoin uses the same microphone and camera sources
        self._connect_options = CallConnectOptions()
        #: joining again after the SFU session was lost (docs/architecture.md, "When an SFU dies")
        self._rejoin_task: asyncio.Task[None] | None = None
        #: a moderator removed this user while its SFU socket was down: the call must not rejoin
        self._removed = False
        #: when the SFU signalling socket dropped (loop time), for ``call.reconnected``'s duration
        self._reconnecting_since: float | None = None

    def __repr__(self) -> str:
        return f"Call({self.cid!r}, status={self.state.value.status.value})"

    # ---------------------------------------------------------------- state and events

    @property
    def audio_configuration_policy(self) -> AudioConfigurationPolicy:
        """CallPreferences, else ClientOptions, else broadcaster() (SPEC §2.5)."""
        return (
            self.preferences.audio_configuration_policy
            or self._client.options.audio_configuration_policy
            or AudioConfigurationPolicy.broadcaster()
        )

    def events(self, *types: str) -> AsyncIterator[m.Event]:
        return self._events.events(*types)

    def on(self, event_type: str, callback: Callable[[m.Event], None]) -> Callable[[], None]:
        return self._events.on(event_type, callback)

    def _update(self, **changes: Any) -> CallState:
        new = dataclasses.replace(self.state.value, **changes)
        self.state._set(new)
        return new

    def _apply_call(self, call: m.CallResponse) -> None:
        self._update(
            is_backstage=call.backstage,
            created_by=call.created_by.id,
            custom=dict(call.custom),
            settings=call.settings,
            created_at=call.created_at,
            ended_at=call.ended_at,
        )

    def _apply_members(self, members: list[m.MemberResponse]) -> None:
        self._update(members=tuple(Member(mr.user_id, mr.role, mr.user.name) for mr in members))

    def _apply_state(self, response: m.CallStateResponse) -> None:
        self._apply_call(response.call)
        self._apply_members(response.members)
        self._update(own_capabilities=frozenset(response.own_capabilities))

    def _handle_event(self, event: m.Event) -> None:
        """Fold a coordinator event for this call into the state, then publish it."""
        if isinstance(event, m.CallEvent):
            self._apply_call(event.call)
        if isinstance(event, m.CallCreatedEvent):
            self._apply_members(event.members)
        elif isinstance(event, m.CallMemberAddedEvent | m.CallMemberUpdatedEvent):
            by_id = {mb.user_id: mb for mb in self.state.value.members}
            for mr in event.members:
                by_id[mr.user_id] = Member(mr.user_id, mr.role, mr.user.name)
            self._update(members=tuple(by_id.values()))
        elif isinstance(event, m.CallMemberRemovedEvent):
            gone = set(event.members)
            self._update(members=tuple(mb for mb in self.state.value.members if mb.user_id not in gone))
        elif isinstance(event, m.CallPermissionsUpdatedEvent) and event.user_id == self._client.user.id:
            self._permissions_changed(frozenset(event.own_capabilities))
        elif isinstance(event, m.CallParticipantRemovedEvent) and event.user_id == self._client.user.id:
            self._removed_while_away(event)
        self._client._on_call_event(self, event)
        self._events.emit(event)

    def _emit(self, event: m.Event) -> None:
        self._events.emit(event)

    # ---------------------------------------------------------------- coordinator operations

    def _path(self, suffix: str = "") -> str:
        return f"/calls/{self.type.name}/{self.id}{suffix}"

    async def get_or_create(
        self,
        members: Sequence[MemberRequest | str] | None = None,
        *,
        ringing: bool = False,
        video: bool = False,
        custom: dict[str, Any] | None = None,
        settings_override: m.CallSettingsRequest | None = None,
    ) -> CallState:
        """Get the call, creating it when new (an existing call is returned unchanged); may ring.

        ``members``: :class:`MemberRequest` s or plain user ids (``["bob"]``, as :meth:`ring` takes).
        Raises InvalidRequestError, before any network, for a member that is neither.
        """
        wanted = as_member_requests(members)
        require_bool(ringing, "get_or_create ringing")
        require_bool(video, "get_or_create video")
        custom = _custom_data(custom, "get_or_create custom")
        api = self._client._require_api()
        request = m.GetOrCreateCallRequest(
            data=m.CallDataRequest(
                members=[
                    m.MemberRequest(user_id=mr.user_id, role=mr.role, custom=mr.custom) for mr in wanted
                ],
                custom=custom or {},
                settings_override=settings_override,
            ),
            ring=ringing,
            video=video,
            connection_id=self._client._connection_id(),
        )
        response = await api.request("POST", self._path(), m.GetOrCreateCallResponse, request)
        self._apply_state(response)
        if ringing:
            self._client._set_outgoing(self, response.ring_id)
        return self.state.value

    async def get(self) -> CallState:
        api = self._client._require_api()
        body = m.GetCallRequest(connection_id=self._client._connection_id())
        self._apply_state(await api.request("POST", self._path("/get"), m.CallStateResponse, body))
        return self.state.value

    async def update(
        self, *, custom: dict[str, Any] | None = None, settings_override: m.CallSettingsRequest | None = None
    ) -> CallState:
        custom = _custom_data(custom, "update custom")
        api = self._client._require_api()
        body = m.UpdateCallRequest(custom=custom, settings_override=settings_override)
        self._apply_state(await api.request("PATCH", self._path(), m.CallStateResponse, body))
        return self.state.value

    async def update_members(
        self, *, update: Sequence[MemberRequest | str] | None = None, remove: list[str] | None = None
    ) -> CallState:
        """Add or update members (MemberRequests or user ids) and remove members (user ids)."""
        wanted = as_member_requests(update, "update")
        removed = require_identifiers(remove or [], "remove")
        api = self._client._require_api()
        body = m.UpdateMembersRequest(
            update_members=[
                m.MemberRequest(user_id=mr.user_id, role=mr.role, custom=mr.custom) for mr in wanted
            ],
            remove_members=removed,
        )
        response = await api.request("POST", self._path("/members"), m.UpdateMembersResponse, body)
        self._apply_members(response.members)
        return self.state.value

    async def ring(self, members: list[str] | None = None, *, video: bool = False) -> None:
        """Ring the members other than this user (or just ``members``, a list of user ids), also into
        an ongoing call.

        Members an earlier ring of this call still rings are left to it; CallStateError when that
        leaves nobody, or when this user's own earlier ring of the call still rings.
        """
        if members is not None:
            members = require_identifiers(members, "members")
        api = self._client._require_api()
        response = await api.request(
            "POST", self._path("/ring"), m.RingResponse, m.RingRequest(video=video, member_ids=members)
        )
        self._client._set_outgoing(self, response.ring_id)

    async def accept(self) -> None:
        """Accept the ring. Does not join: call :meth:`join` next; moves no audio focus."""
        api = self._client._require_api()
        await api.request("POST", self._path("/accept"), m.AckResponse, m.EmptyRequest())
        self._client._ring_ended(self, m.RingOutcome.ACCEPTED, None, outgoing=False)

    async def reject(self, reason: RejectReason = RejectReason.DECLINE) -> None:
        """Reject a ring; by the caller, cancel it (every callee's ring ends). Declining never ends
        the call for the others. CallStateError when the call is not ringing for this user."""
        reason = _reject_reason(reason)
        api = self._client._require_api()
        outgoing = self._client._outgoing_ring_of(self) and not self._client._incoming_ring_of(self)
        if outgoing:
            reason = RejectReason.CANCEL
        await api.request("POST", self._path("/reject"), m.AckResponse, m.RejectRequest(reason=reason))
        outcome = m.RingOutcome.CANCELLED if outgoing else m.RingOutcome.REJECTED
        self._client._ring_ended(self, outcome, reason, outgoing=outgoing)

    async def end(self) -> None:
        """End the call for everyone (needs ``end-call``)."""
        api = self._client._require_api()
        self._apply_state(
            await api.request("POST", self._path("/mark_ended"), m.CallStateResponse, m.EmptyRequest())
        )
        await self._client._call_ended(self)

    async def go_live(self) -> CallState:
        api = self._client._require_api()
        self._apply_state(
            await api.request("POST", self._path("/go_live"), m.CallStateResponse, m.EmptyRequest())
        )
        return self.state.value

    async def stop_live(self) -> CallState:
        api = self._client._require_api()
        self._apply_state(
            await api.request("POST", self._path("/stop_live"), m.CallStateResponse, m.EmptyRequest())
        )
        return self.state.value

    # ---------------------------------------------------------------- custom events and messages

    async def send_custom_event(self, data: Mapping[str, Any]) -> int:
        """Send ``data`` (a JSON object, at most 5 KiB of compact JSON) to everyone in the call.

        Goes through the coordinator and its event log: every member and every joined participant
        receives a ``custom`` event (:class:`switchboard.protocol.coordinator.CustomEvent`, with
        ``user`` and ``custom``), this client included; a client that reconnects gets the ones it
        missed. Returns the event's id. The sender must be a member or joined.

        Raises InvalidRequestError (not a JSON object) or PayloadTooLargeError (over the size) before
        any network; PermissionDeniedError (not in the call), CallStateError (ended),
        RateLimitedError (over 10 per second per user and call; ``retry_after``).
        """
        custom = json_object(data, what="custom event data", max_bytes=m.MAX_CUSTOM_EVENT_BYTES)
        api = self._client._require_api()
        response = await api.request(
            "POST", self._path("/event"), m.SendCustomEventResponse, m.SendCustomEventRequest(custom=custom)
        )
        return response.event_id

    async def send_message(
        self, data: Mapping[str, Any], *, session_ids: Sequence[str] | None = None
    ) -> None:
        """Send ``data`` (a JSON object, at most 4 KiB of compact JSON) to the others joined, now.

        Relayed by the SFU over this session's signalling socket to every other session in the call
        (or only ``session_ids``); never stored, so only sessions connected right now receive it, as a
        ``participant_message`` event (:class:`switchboard.sdk.messages.ParticipantMessageEvent`).

        Raises, before any network: InvalidRequestError (not a JSON object, bad ``session_ids``),
        PayloadTooLargeError (over the size), RateLimitedError (over 20 per second; ``retry_after``),
        CallStateError (not joined); NetworkError while the SFU connection is down.
        """
        payload = json_object(data, what="message data", max_bytes=p.MAX_MESSAGE_DATA_BYTES)
        targets = None
        if session_ids is not None:
            if isinstance(session_ids, str) or not all(isinstance(s, str) and s for s in session_ids):
                raise InvalidRequestError(f"session_ids must be a list of session ids, not {session_ids!r}")
            targets = list(session_ids)
        media = self._media
        if media is None or self.state.value.status is not CallStatus.JOINED:
            raise CallStateError(
                f"cannot send a participant message in {self.cid}: it is {self.state.value.status.value}, "
                "not joined"
            )
        self._message_budget.take()
        await media.send_message(payload, targets)

    def _on_participant_message(self, message: p.ParticipantMessage) -> None:
        self._events.emit(ParticipantMessageEvent.from_sfu(self.cid, message))

    # ---------------------------------------------------------------- statistics

    async def get_stats(self) -> CallStats:
        """Per-track statistics of the joined call (:class:`switchboard.sdk.stats.CallStats`).

        Bitrates are over the interval since the previous ``get_stats`` (when 0.2 to 10 s ago), else
        over 0.5 s sampled now. Loss, jitter and round-trip time of published tracks come from the
        SFU's RTCP receiver reports. Raises CallStateError when the call is not joined.
        """
        media = self._media
        if media is None:
            raise CallStateError(f"no statistics for {self.cid}: it is not joined")
        return await self._stats.collect(media, self._client.user.id)

    # ---------------------------------------------------------------- recording

    async def start_recording(self) -> m.CallRecording:
        """Start recording the call's audio on the server (needs ``update-call``).

        Each participant's audio is written as sent (Opus in Ogg, no re-encoding), and a mixed file
        is made at stop. Emits ``call.recording_started``. CallStateError when a recording already
        runs or nobody has joined the call's media.
        """
        api = self._client._require_api()
        response = await api.request(
            "POST", self._path("/start_recording"), m.RecordingsResponse, m.EmptyRequest()
        )
        return response.recordings[0]

    async def stop_recording(self) -> m.CallRecording:
        """Stop recording: the recording with its files (``path``, ``duration_ms``, per participant
        and ``mixed``). Emits ``call.recording_stopped``. CallStateError when not recording."""
        api = self._client._require_api()
        response = await api.request(
            "POST", self._path("/stop_recording"), m.RecordingsResponse, m.EmptyRequest()
        )
        return response.recordings[0]

    async def list_recordings(self) -> list[m.CallRecording]:
        """The call's recordings, oldest first (a running one last, without files yet)."""
        api = self._client._require_api()
        response = await api.request("GET", self._path("/recordings"), m.RecordingsResponse)
        return response.recordings

    # ---------------------------------------------------------------- moderation

    async def mute_users(
        self, user_ids: Sequence[str] | None = None, *, audio: bool = True, video: bool = False
    ) -> None:
        """Mute others in the call (needs ``mute-users``): ``user_ids``, or everyone else when None.

        The SFU stops forwarding their muted kinds at once and tells them; their microphone (camera)
        goes off, and they may turn it on again themselves. Emits ``call.user_muted`` to the call.
        Raises InvalidRequestError (bad ids, nothing to mute) before any network; PermissionDeniedError.
        """
        ids = require_identifiers(user_ids, "user_ids") if user_ids is not None else []
        require_bool(audio, "mute_users audio")
        require_bool(video, "mute_users video")
        if not (audio or video):
            raise InvalidRequestError("nothing to mute: set audio and/or video")
        api = self._client._require_api()
        body = m.MuteUsersRequest(user_ids=ids, mute_all_users=user_ids is None, audio=audio, video=video)
        await api.request("POST", self._path("/mute_users"), m.AckResponse, body)

    async def mute_all_users(self, *, audio: bool = True, video: bool = False) -> None:
        """Mute everyone in the call but this user (see :meth:`mute_users`)."""
        await self.mute_users(None, audio=audio, video=video)

    async def remove_participant(self, user_id: str, *, block: bool = False) -> None:
        """Remove ``user_id`` from the call's media now (needs ``update-call-member``); ``block``: and
        block them from joining again. They are told (``call.removed`` then ``call.left`` with reason
        ``removed``); everyone gets ``call.participant_removed``."""
        target = require_identifiers([user_id], "user_id")[0]
        api = self._client._require_api()
        body = m.RemoveParticipantRequest(user_id=target, block=block)
        await api.request("POST", self._path("/remove_participant"), m.AckResponse, body)

    async def block_user(self, user_id: str) -> None:
        """Block ``user_id`` from the call (``update-call-member``): removed now; joining answers
        PermissionDeniedError (code ``blocked``) until :meth:`unblock_user`. Event: ``call.blocked_user``."""
        target = require_identifiers([user_id], "user_id")[0]
        api = self._client._require_api()
        await api.request("POST", self._path("/block"), m.AckResponse, m.BlockUserRequest(user_id=target))

    async def unblock_user(self, user_id: str) -> None:
        """Let a blocked user join again (``update-call-member``). Event: ``call.unblocked_user``."""
        target = require_identifiers([user_id], "user_id")[0]
        api = self._client._require_api()
        await api.request("POST", self._path("/unblock"), m.AckResponse, m.BlockUserRequest(user_id=target))

    # ---------------------------------------------------------------- request-to-speak

    async def request_permission(self, permissions: Sequence[m.Capability | str]) -> None:
        """Ask the call's moderators for ``send-audio`` and/or ``send-video`` (request-to-speak).

        They get a ``call.permission_request`` event; a grant arrives as ``call.permissions_updated``
        and ``own_capabilities`` then holds it: turn the microphone on with
        :meth:`set_microphone_enabled`. Raises InvalidRequestError before any network for anything
        else than those two capabilities.
        """
        caps = _send_capabilities(permissions, "permissions")
        if not caps:
            raise InvalidRequestError("permissions: name send-audio and/or send-video")
        api = self._client._require_api()
        body = m.RequestPermissionRequest(permissions=caps)
        await api.request("POST", self._path("/request_permission"), m.AckResponse, body)

    async def grant_permissions(self, user_id: str, permissions: Sequence[m.Capability | str]) -> None:
        """Give ``user_id`` ``send-audio`` / ``send-video`` in this call (needs ``update-call-member``)."""
        await self._update_permissions(user_id, grant=_send_capabilities(permissions, "permissions"))

    async def revoke_permissions(self, user_id: str, permissions: Sequence[m.Capability | str]) -> None:
        """Take ``send-audio`` / ``send-video`` away from ``user_id`` (needs ``update-call-member``):
        the SFU stops forwarding it at once, even when their role gives it."""
        await self._update_permissions(user_id, revoke=_send_capabilities(permissions, "permissions"))

    async def _update_permissions(
        self,
        user_id: str,
        *,
        grant: list[m.Capability] | None = None,
        revoke: list[m.Capability] | None = None,
    ) -> None:
        target = require_identifiers([user_id], "user_id")[0]
        api = self._client._require_api()
        body = m.UpdateUserPermissionsRequest(
            user_id=target, grant_permissions=grant or [], revoke_permissions=revoke or []
        )
        await api.request("POST", self._path("/user_permissions"), m.AckResponse, body)

    def _permissions_changed(self, caps: frozenset[m.Capability]) -> None:
        """This user's capabilities changed (granted or revoked): what is no longer allowed goes off."""
        self._update(own_capabilities=caps)
        if m.Capability.SEND_AUDIO not in caps and self._mic_intent:
            self._mic_intent = False
            self._spawn(self._apply_microphone())
        if m.Capability.SEND_VIDEO not in caps and self._camera_intent:
            self._spawn(self.set_camera_enabled(False))

    def _on_moderation(self, notice: p.ModerationNotice) -> None:
        """A moderator acted on this session (told by the SFU, which already enforces it)."""
        if notice.action == "muted":
            if "audio" in notice.kinds:
                self._mic_intent = False
                if self._adm is not None:
                    self._adm.microphone_enabled = False
            if "video" in notice.kinds:
                self._camera_intent = False
                if self._media is not None and self._media.camera is not None:
                    self._media.camera.enabled = False
            if self._media is not None:
                for kind in notice.kinds:
                    if kind in self._media.published:
                        self._media.published[kind] = True
            self._sync_participants()
            self._emit(
                local_event("call.muted_by_moderator", self.cid, kinds=list(notice.kinds), by=notice.by)
            )
        else:
            self._emit(local_event("call.removed", self.cid, by=notice.by, blocked=notice.blocked))

    # ---------------------------------------------------------------- media: join and leave

    @property
    def media(self) -> CallSession | None:
        """The joined call's media session (peer connections, remote participants); None when not joined."""
        return self._media

    @property
    def audio_device_module(self) -> AudioDeviceModule | None:
        """The ADM this call was built with (its configuration, capture and playout); None when not joined."""
        return self._adm

    @property
    def is_live(self) -> bool:
        """Joined with media (possibly resuming its SFU session right now)."""
        return self._media is not None and self.state.value.status in (
            CallStatus.JOINED,
            CallStatus.RECONNECTING,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def microphone_enabled(self) -> bool:
        """Whether the user wants the microphone on in this call (suspension aside)."""
        return self._mic_intent

    @property
    def camera_enabled(self) -> bool:
        return self._camera_intent

    def _track_intent(self, option: TrackOption | None, default_on: bool, capability: m.Capability) -> bool:
        allowed = capability in self.state.value.own_capabilities
        if option is None:
            return default_on and allowed
        if option.is_on and not allowed:
            raise PermissionDeniedError(f"cannot publish in {self.cid}: this user lacks {capability.value!r}")
        return option.is_on

    async def join(self, connect_options: CallConnectOptions | None = None) -> None:
        """Join with media. Returns once the SFU accepted the session and this client's tracks are published.

        Joining a call that is already joined or joining does nothing. Without ``connect_options`` the
        call type's defaults decide the microphone and camera.

        Once joined, the call looks after its SFU connection (status ``RECONNECTING`` meanwhile;
        events ``call.reconnecting`` / ``call.reconnected``): a dropped signalling socket resumes the
        same session, and a lost session (its SFU died or restarted) joins the call again through
        the coordinator, with the same microphone and camera sources and everything set on this
        call (suspension and its mode, microphone and camera intent, hold audio, audience, gain,
        pan), for at most ``ClientOptions.rejoin_window`` seconds; then it ends (``call.left``
        with ``reason`` and ``detail``). See docs/architecture.md, "When an SFU dies".
        """
        if connect_options is not None:
            require_instance(connect_options, CallConnectOptions, "connect_options")
        if (
            self._media is not None
            or self._join_task is not None
            or self._rejoin_task is not None
            or self._join_lock.locked()
        ):
            return  # joined, joining or reconnecting: nothing to do
        async with self._join_lock:
            self._client._require_api()
            self._join_task = asyncio.current_task()
            self._removed = False
            self._reconnecting_since = None
            self._update(status=CallStatus.JOINING)
            handover: Handover | None = None
            try:
                handover = await self._client._active.join_started(self)
                await self._connect_media(connect_options or CallConnectOptions())
            except BaseException as exc:
                await self._close_media()
                self._update(
                    status=CallStatus.IDLE, participants=(), local_participant=None, dominant_speaker=None
                )
                self._reset_suspension()
                self._join_task = None
                await self._client._active.join_failed(self, handover)
                if isinstance(exc, asyncio.CancelledError) and self._join_cancelled:
                    self._join_cancelled = False
                    raise CallStateError(f"join of {self.cid} was cancelled: the call was left") from None
                raise
            self._join_task = None
            self._update(status=CallStatus.JOINED)
            self._sync_participants()
            await self._client._active.join_succeeded(self, handover)
            self._client._joined_while_ringing(self)
            if self._media is not None and self._media.lost is not None:
                self._media_lost(self._media.lost)  # lost while the join was finishing

    async def _connect_media(self, options: CallConnectOptions) -> None:
        self._connect_options = options
        response = await self._request_join(create=True)
        settings = response.call.settings
        self._mic_intent = self._track_intent(
            options.microphone, settings.audio.mic_default_on, m.Capability.SEND_AUDIO
        )
        self._camera_intent = self._track_intent(
            options.camera,
            settings.video.camera_default_on and settings.video.enabled,
            m.Capability.SEND_VIDEO,
        )
        adm = self._build_adm(options)
        session = self._open_session(response.credentials, adm)
        self._update(session_id=response.session_id)
        await self._start_media(session, adm, video=self._camera_intent, camera=_provided_camera(options))

    async def _request_join(self, *, create: bool) -> m.JoinCallResponse:
        """The coordinator's ``join``: a new SFU session and its credentials (the call's state applied)."""
        client = self._client
        response = await client._require_api().request(
            "POST",
            self._path("/join"),
            m.JoinCallResponse,
            m.JoinCallRequest(create=create, connection_id=client._connection_id()),
        )
        self._apply_state(response)
        return response

    def _build_adm(self, options: CallConnectOptions) -> AudioDeviceModule:
        """A new audio device module carrying everything set on this call (mic intent, suspension,
        hold audio, gain, pan); it becomes the call's ADM."""
        adm = self._client.audio_session.create_module(self.audio_configuration_policy, self.cid)
        if options.microphone is not None and options.microphone.state == "provided":
            adm.microphone = options.microphone.track
        adm.microphone_enabled = self._mic_intent
        adm.hold = self._hold
        if self._suspended:
            adm.suspend(self._duck_gain_db())
        adm.set_playout(gain_db=self._playout_gain_db, pan=self._playout_pan)
        self._adm = adm
        return adm

    def _open_session(self, credentials: m.Credentials, adm: AudioDeviceModule) -> CallSession:
        """A new SFU session (not connected yet); it becomes the call's media."""
        client = self._client
        session = CallSession(
            credentials,
            adm,
            client._http(),
            on_change=self._sync_participants,
            on_ended=self._media_ended,
            on_connection=self._media_connection,
            refresh_credentials=self._fresh_sfu_credentials,
            on_message=self._on_participant_message,
            on_moderation=self._on_moderation,
            on_lost=self._media_lost,
        )
        self._media = session
        return session

    async def _start_media(
        self,
        session: CallSession,
        adm: AudioDeviceModule,
        *,
        video: bool,
        camera: MediaStreamTrack | None,
    ) -> None:
        """Connect ``session`` to the SFU with this call's suspension and audience, then publish."""
        await session.connect(audio_paused=self._forwarding_paused)
        if self._forwarding_paused:  # suspended while the socket was connecting: tell the SFU now
            await session.set_audio_forwarding(paused=True)
        if self._audience is not None:
            await session.set_audience(self._audience)
        adm.start()
        await session.publish(
            audio=m.Capability.SEND_AUDIO in self.state.value.own_capabilities,
            video=video,
            audio_muted=not self._effective_mic,
            video_muted=not self._camera_intent,
            camera=camera,
        )

    @property
    def _effective_mic(self) -> bool:
        return self._mic_intent and not self._suspended

    async def leave(self) -> None:
        """Leave the call (media closed, removed from ``active_calls``; the policy reacts).

        A ring this user started that is still ringing (nobody accepted yet) is cancelled: the
        callees' rings end ``cancelled`` and ``outgoing_call`` goes back to None (SPEC §2.6.1).
        """
        await self._leave(reason="left")
        await self._cancel_own_ring()

    async def _cancel_own_ring(self) -> None:
        if not self._client._outgoing_ring_of(self) or self._client._api is None:
            return
        # CallStateError: it ended meanwhile (the server cancels on leave itself); its event tells how
        with contextlib.suppress(CallStateError):
            await self.reject(RejectReason.CANCEL)

    async def _leave(self, *, reason: str) -> None:
        join = self._join_task
        if join is not None and join is not asyncio.current_task():
            # Leaving while joining: stop the join; it cleans up and takes the call off the list.
            self._join_cancelled = True
            join.cancel()
            await asyncio.wait({join})
            return
        await self._stop_rejoin()
        if self._media is None and self.state.value.status not in (
            CallStatus.JOINING,
            CallStatus.JOINED,
            CallStatus.RECONNECTING,
        ):
            self._reset_suspension()  # nothing to leave, but a left call is never suspended (SPEC §2.4.3)
            return
        log.info("%s: leaving (%s)", self.cid, reason)
        await self._close_media()
        self._update(status=CallStatus.IDLE, participants=(), local_participant=None, dominant_speaker=None)
        self._reset_suspension()
        self._emit(local_event("call.left", self.cid, reason=reason))
        await self._client._active.removed(self)

    async def _close_media(self) -> None:
        media, self._media = self._media, None
        adm, self._adm = self._adm, None
        try:
            if media is not None:  # shielded: a leave cancelling a rejoin must not leak the old session
                await asyncio.shield(media.close())
        finally:
            if adm is not None:
                adm.close()

    def _reset_suspension(self) -> None:
        """Leaving resets suspension (SPEC §2.4.3)."""
        self._suspended = False
        self._suspend_mode = None
        self._set_hold(None)
        self._update(is_audio_suspended=False, suspend_mode=None)

    async def _fresh_sfu_credentials(self, session_id: str) -> m.Credentials:
        """A new SFU token for the joined session, for a resume after the first one expired."""
        response = await self._client._require_api().sfu_token(self.type.name, self.id, session_id)
        return response.credentials

    def _media_connection(self, state: str) -> None:
        """The SFU signalling socket dropped ("reconnecting") or the session resumed ("connected")."""
        if self._media is None or self._rejoin_task is not None:
            return
        if state == "reconnecting" and self.state.value.status is CallStatus.JOINED:
            self._update(status=CallStatus.RECONNECTING)
            self._reconnecting_since = asyncio.get_running_loop().time()
            self._emit(local_event("call.reconnecting", self.cid, reason="sfu_disconnected", migrating=False))
        elif state == "connected":
            if self.state.value.status is CallStatus.RECONNECTING:
                self._update(status=CallStatus.JOINED)
                self._emit_reconnected(migrated=False, previous_session_id=self.state.value.session_id)
            self._spawn(self._resync_media())

    def _emit_reconnected(
        self, *, migrated: bool, previous_session_id: str | None, attempts: int = 1
    ) -> None:
        since, self._reconnecting_since = self._reconnecting_since, None
        duration = asyncio.get_running_loop().time() - since if since is not None else 0.0
        self._emit(
            local_event(
                "call.reconnected",
                self.cid,
                migrated=migrated,
                session_id=self.state.value.session_id,
                previous_session_id=previous_session_id,
                attempts=attempts,
                duration_ms=round(duration * 1000),
            )
        )

    async def _resync_media(self) -> None:
        """After the SFU session resumed: re-send what may have changed while the socket was down."""
        media = self._media
        if media is None:
            return
        await media.set_audio_forwarding(paused=self._forwarding_paused)
        await media.set_audience(self._audience)
        if "audio" in media.published:
            await media.set_muted("audio", not self._effective_mic)
        if "video" in media.published:
            await media.set_muted("video", not self._camera_intent)

    def _media_ended(self, reason: str) -> None:
        """The SFU ended this session (call ended, or the connection is gone)."""
        if self._media is None:
            return
        if self._rejoin_task is not None and reason == "sfu_disconnected":
            return  # a rejoin attempt's session failed to connect: the rejoin retries
        self._spawn(self._on_ended(reason))

    # ---------------------------------------------------------------- media: rejoin when the SFU is gone

    def _media_lost(self, reason: str) -> None:
        """The SFU session cannot be resumed (``CallSession`` ``on_lost``): join the call again.

        ``reason``: ``sfu_unreachable``, ``session_lost`` or ``media_failed``. A call still joining
        is left to its join (which then fails); a call whose user a moderator removed, or a client
        with ``ClientOptions.rejoin_window`` 0, ends instead.
        """
        if self._media is None or self._rejoin_task is not None:
            return
        if self.state.value.status not in (CallStatus.JOINED, CallStatus.RECONNECTING):
            return
        if self._removed:
            self._spawn(self._on_ended("removed"))
        elif self._client.options.rejoin_window <= 0:
            self._spawn(self._on_ended("sfu_disconnected", "the SFU session was lost and rejoining is off"))
        else:
            self._rejoin_task = asyncio.get_running_loop().create_task(self._rejoin(reason))

    def _removed_while_away(self, event: m.CallParticipantRemovedEvent) -> None:
        """A moderator removed this user (coordinator event) while the SFU could not tell us (its
        socket was down): a call rejoining ends (``call.removed``, then ``call.left`` ``removed``),
        one still resuming will not rejoin."""
        if self._rejoin_task is None and self.state.value.status is not CallStatus.RECONNECTING:
            return  # joined: the SFU's own notice ends the call
        self._emit(local_event("call.removed", self.cid, by=event.by, blocked=event.blocked))
        if self._rejoin_task is not None:
            self._spawn(self._on_ended("removed"))
        else:
            self._removed = True

    async def _stop_rejoin(self) -> None:
        task, self._rejoin_task = self._rejoin_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})

    async def _rejoin(self, reason: str) -> None:
        """Join again with a new SFU session (maybe on another SFU node), keeping what the user set.

        Same ``Call`` object, so its place in ``active_calls`` and the focus do not move; the new
        session starts with the call's suspension (and mode), microphone and camera intent, hold
        audio, audience, forwarding pause, playout gain and pan. Retries with backoff
        (``REJOIN_FIRST_DELAY`` doubling up to ``REJOIN_MAX_DELAY``) for at most
        ``ClientOptions.rejoin_window`` seconds. Ends the call when the coordinator refuses the join:
        ``call_ended`` (409: the call ended) or ``rejoin_refused`` (403/404/401: blocked, no longer
        allowed); ``sfu_disconnected`` when the window passes or the coordinator itself refuses
        connections for ``COORDINATOR_DOWN_GRACE`` seconds. Events: ``call.reconnecting``
        (``migrating: true``), then ``call.reconnected`` (``migrated: true``) or ``call.left``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._client.options.rejoin_window
        previous = self.state.value.session_id
        video = self._media is not None and "video" in self._media.published
        if self.state.value.status is CallStatus.JOINED:
            self._update(status=CallStatus.RECONNECTING)
        if self._reconnecting_since is None:
            self._reconnecting_since = loop.time()
        log.info("%s: SFU session %s lost (%s): joining the call again", self.cid, previous, reason)
        self._emit(local_event("call.reconnecting", self.cid, reason=reason, migrating=True))
        await self._close_media()
        attempts = 0
        delay = REJOIN_FIRST_DELAY
        refused_since: float | None = None
        end_reason, detail = (
            "sfu_disconnected",
            f"no SFU took the call within {self._client.options.rejoin_window:g} s",
        )
        try:
            while (remaining := deadline - loop.time()) > 0:
                attempts += 1
                pause = delay * random.uniform(0.8, 1.2)
                try:
                    async with asyncio.timeout(remaining):
                        response = await self._request_join(create=False)
                except CallStateError as exc:
                    end_reason, detail = "call_ended", str(exc)
                    break
                except (
                    AuthenticationError,
                    PermissionDeniedError,
                    NotFoundError,
                    InvalidRequestError,
                ) as exc:
                    end_reason, detail = "rejoin_refused", str(exc)
                    break
                except (SwitchboardError, TimeoutError) as exc:
                    if isinstance(exc, RateLimitedError):
                        pause = max(pause, exc.retry_after)
                    if connection_refused(exc):
                        refused_since = refused_since if refused_since is not None else loop.time()
                        if loop.time() - refused_since >= COORDINATOR_DOWN_GRACE:
                            detail = f"the server is down: {exc}"
                            break
                    else:
                        refused_since = None
                    detail = f"cannot join the call again: {exc}"
                else:
                    refused_since = None
                    try:
                        async with asyncio.timeout(max(0.0, deadline - loop.time())):
                            await self._connect_again(response, video=video)
                    except CallStateError as exc:
                        if exc.code == "call_ended":
                            end_reason, detail = "call_ended", str(exc)
                            break
                        detail = f"the SFU refused the new session: {exc}"
                    except (SwitchboardError, TimeoutError, OSError) as exc:
                        detail = f"the SFU at {response.credentials.server.url} did not take the call: {exc}"
                    else:
                        self._update(status=CallStatus.JOINED)
                        self._sync_participants()
                        self._spawn(self._resync_media())
                        log.info("%s: joined again as %s", self.cid, self.state.value.session_id)
                        self._emit_reconnected(migrated=True, previous_session_id=previous, attempts=attempts)
                        return
                    await self._close_media()
                log.info("%s: rejoin attempt %d failed: %s", self.cid, attempts, detail)
                await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
                delay = min(delay * 2, REJOIN_MAX_DELAY)
        finally:
            if self._rejoin_task is asyncio.current_task():
                self._rejoin_task = None
        log.warning("%s: cannot join the call again (%s): %s", self.cid, end_reason, detail)
        self._reconnecting_since = None
        await self._close_media()
        await self._on_ended(end_reason, detail)

    async def _connect_again(self, response: m.JoinCallResponse, *, video: bool) -> None:
        """Build and connect the new session of a rejoin from the coordinator's ``join`` answer."""
        caps = self.state.value.own_capabilities
        if m.Capability.SEND_AUDIO not in caps:
            self._mic_intent = False
        if m.Capability.SEND_VIDEO not in caps:
            self._camera_intent = video = False
        options = self._connect_options
        adm = self._build_adm(options)
        session = self._open_session(response.credentials, adm)
        await self._start_media(
            session, adm, video=video or self._camera_intent, camera=_provided_camera(options)
        )
        self._update(session_id=response.session_id)

    async def _on_ended(self, reason: str = "call_ended", detail: str | None = None) -> None:
        """The call ended remotely (or its media died): it is left and leaves ``active_calls``.

        ``call.left`` carries ``reason`` and, when given, ``detail`` (a sentence for a person).
        """
        join = self._join_task
        if join is not None and join is not asyncio.current_task():
            self._join_cancelled = True  # ended while joining: the join stops and cleans up
            join.cancel()
            await asyncio.wait({join})
        await self._stop_rejoin()
        status = self.state.value.status
        if self._media is not None or status in (CallStatus.JOINED, CallStatus.RECONNECTING):
            # state first, so a second report of the same end (REST answer and event) finds nothing to do
            self._update(
                status=CallStatus.DISCONNECTED, participants=(), local_participant=None, dominant_speaker=None
            )
            self._reset_suspension()
            extra = {"detail": detail} if detail else {}
            self._emit(local_event("call.left", self.cid, reason=reason, **extra))
            await self._close_media()
        elif status in (CallStatus.INCOMING, CallStatus.OUTGOING):
            self._update(status=CallStatus.IDLE)
        await self._client._active.removed(self)

    # ---------------------------------------------------------------- media: microphone, camera

    async def set_microphone_enabled(self, enabled: bool) -> None:
        """Turn the microphone on or off in this call. While suspended, "on" takes effect at resume."""
        require_bool(enabled, "set_microphone_enabled")
        if (
            enabled
            and self._media is not None
            and m.Capability.SEND_AUDIO not in self.state.value.own_capabilities
        ):
            raise PermissionDeniedError(f"cannot unmute in {self.cid}: this user lacks 'send-audio'")
        if enabled and self._media is not None and "audio" not in self._media.published:
            # send-audio granted after joining (request-to-speak): publish the microphone now
            await self._media.publish(audio=True, video=False, audio_muted=True, video_muted=True)
        self._mic_intent = enabled
        await self._apply_microphone()

    async def _apply_microphone(self) -> None:
        if self._adm is not None:
            self._adm.microphone_enabled = self._mic_intent
        if self._media is not None:
            await self._media.set_muted("audio", not self._effective_mic)
        self._sync_participants()

    async def set_camera_enabled(self, enabled: bool) -> None:
        """Turn the camera on or off in this call (video is untouched by suspension)."""
        require_bool(enabled, "set_camera_enabled")
        media = self._media
        if enabled and media is not None:
            if m.Capability.SEND_VIDEO not in self.state.value.own_capabilities:
                raise PermissionDeniedError(
                    f"cannot turn the camera on in {self.cid}: this user lacks 'send-video'"
                )
            await media.publish(audio=False, video=True, audio_muted=True, video_muted=False)
        self._camera_intent = enabled
        if media is not None:
            await media.set_muted("video", not enabled)
        self._sync_participants()

    async def _set_microphone_if_allowed(self, enabled: bool) -> None:
        if enabled and m.Capability.SEND_AUDIO not in self.state.value.own_capabilities:
            return
        await self.set_microphone_enabled(enabled)

    async def _set_camera_if_allowed(self, enabled: bool) -> None:
        if enabled and m.Capability.SEND_VIDEO not in self.state.value.own_capabilities:
            return
        await self.set_camera_enabled(enabled)

    # ---------------------------------------------------------------- media: suspend and resume

    async def suspend_audio(
        self, mode: SuspendMode | None = None, *, hold_audio: Microphone | None = None
    ) -> None:
        """Stop the microphone reaching the call and, unless ducked, its remote audio reaching the speaker.

        ``mode`` (SPEC §2.8): ``SuspendMode.SILENT`` plays nothing of the call (the SFU stops
        forwarding its audio to this client); ``SuspendMode.DUCKED`` keeps decoding and playing it at
        ``ClientOptions.duck_gain_db``. None: ``ClientOptions.suspend_mode``. Suspending a suspended
        call in the other mode switches the mode. Idempotent; holds at any moment after ``join()``
        starts (media that appears later starts suspended, SPEC §2.4.1). Emits
        ``call.audio_suspended`` with ``reason`` and ``mode``. Video is untouched.

        ``hold_audio`` (any :class:`~switchboard.media.Microphone`, e.g. a ``FileMicrophone``): while
        suspended, the others in the call hear it instead of silence (encoded and sent like the
        microphone, without voice processing); ``resume_audio()`` stops it. The participant still
        shows its microphone off.

        Raises CallStateError when the call is neither joining nor joined: a suspension set before
        ``join()`` would silently make the call join unheard. To join a call suspended, start
        ``join()`` first (the suspension then holds while it connects), or let the
        ``SUSPEND_INCOMING`` policy do it. InvalidRequestError when ``mode`` is not a SuspendMode.
        """
        if mode is not None:
            require_instance(mode, SuspendMode, "suspend_audio mode")
        if hold_audio is not None and not isinstance(hold_audio, Microphone):
            raise InvalidRequestError(
                f"suspend_audio hold_audio must be a Microphone (e.g. FileMicrophone), not {hold_audio!r}"
            )
        status = self.state.value.status
        if status not in (CallStatus.JOINING, CallStatus.JOINED, CallStatus.RECONNECTING):
            raise CallStateError(
                f"cannot suspend audio of {self.cid}: it is {status.value}, not joined; call suspend_audio() "
                "once join() has started (a suspension then holds while the call connects)"
            )
        await self._suspend(reason="suspend", mode=mode, hold=hold_audio)

    async def resume_audio(self) -> None:
        """Restore exactly what suspension took away. Idempotent; emits ``call.audio_resumed``."""
        await self._resume(reason="resume")

    def _set_hold(self, hold: Microphone | None) -> None:
        """Start ``hold`` as this call's hold source (stopping the previous one); None: no hold audio."""
        if hold is self._hold:
            return
        if self._hold is not None:
            self._hold.stop()
        self._hold = hold
        if hold is not None:
            hold.start()
        if self._adm is not None:
            self._adm.hold = hold

    @property
    def suspend_mode(self) -> SuspendMode | None:
        """The suspension in force (None when not suspended)."""
        return self._suspend_mode

    @property
    def _forwarding_paused(self) -> bool:
        """The SFU stops forwarding the call's audio to us only in a SILENT suspension."""
        return self._suspended and self._suspend_mode is not SuspendMode.DUCKED

    def _duck_gain_db(self) -> float | None:
        return self._client.options.duck_gain_db if self._suspend_mode is SuspendMode.DUCKED else None

    async def _suspend(
        self, *, reason: str, mode: SuspendMode | None = None, hold: Microphone | None = None
    ) -> None:
        mode = mode if mode is not None else self._client.options.suspend_mode
        if self._suspended and self._suspend_mode is mode and self._hold is hold:
            return
        self._suspended = True
        self._suspend_mode = mode
        self._set_hold(hold)
        if self._adm is not None:
            self._adm.suspend(self._duck_gain_db())
        self._update(is_audio_suspended=True, suspend_mode=mode)
        if self._media is not None:
            await self._media.set_audio_forwarding(paused=self._forwarding_paused)
            await self._apply_microphone()
        self._emit(local_event("call.audio_suspended", self.cid, reason=reason, mode=mode.value))
        self._client._active.check_contention()

    async def _resume(self, *, reason: str) -> None:
        if not self._suspended:
            return
        mode = self._suspend_mode
        self._suspended = False
        self._suspend_mode = None
        self._set_hold(None)
        if self._media is not None:
            await self._media.set_audio_forwarding(paused=False)
        if self._adm is not None:
            self._adm.resume()
        self._update(is_audio_suspended=False, suspend_mode=None)
        if self._media is not None:
            await self._apply_microphone()
        self._emit(
            local_event("call.audio_resumed", self.cid, reason=reason, mode=mode.value if mode else None)
        )
        self._client._active.check_contention()

    # ---------------------------------------------------------------- media: per-call playout

    async def set_playout_gain(self, db: float) -> None:
        """Play this call's remote audio ``db`` dB louder (> 0) or quieter (< 0) at this client (SPEC §2.8).

        Applies from the next 20 ms tick, adds to the duck gain while ducked, and holds across
        rejoins of this Call object. ``db`` within -120..+24, else InvalidRequestError.
        """
        self._playout_gain_db = check_gain_db(db, "playout gain")
        if self._adm is not None:
            self._adm.set_playout(gain_db=self._playout_gain_db)

    async def set_playout_pan(self, pan: float) -> None:
        """Place this call's audio from -1 (left) through 0 (centre) to +1 (right) (SPEC §2.8).

        Constant-power pan, unity at the centre (see :mod:`switchboard.media.playout_shaping`);
        audible as such on a stereo speaker. ``pan`` outside -1..+1: InvalidRequestError.
        """
        self._playout_pan = check_pan(pan)
        if self._adm is not None:
            self._adm.set_playout(pan=self._playout_pan)

    # ---------------------------------------------------------------- media: microphone audience

    async def set_microphone_audience(self, user_ids: Sequence[str] | None) -> None:
        """Forward this client's microphone in this call only to ``user_ids``' sessions (SPEC §2.8).

        A whisper is an audience of one; ``None`` restores everyone (barge in: audience None and focus).
        The SFU enforces it: it stops forwarding the audio to every other session, so nobody else can
        hear it, whatever their client does. Everyone in the call sees it in
        ``Participant.audience`` of this client's participant (so a user can tell who whispers to
        them). Holds for the rest of this Call object's life, rejoins included. An empty list: nobody
        hears the microphone. Raises InvalidRequestError for anything but a list of user ids
        (at most 64).
        """
        if user_ids is None:
            audience = None
        else:
            audience = tuple(dict.fromkeys(require_identifiers(user_ids, "microphone audience")))
            if len(audience) > MAX_AUDIENCE:
                raise InvalidRequestError(
                    f"a microphone audience names at most {MAX_AUDIENCE} users, got {len(audience)}"
                )
        self._audience = audience
        if self._media is not None:
            await self._media.set_audience(audience)
        self._sync_participants()

    @property
    def microphone_audience(self) -> tuple[str, ...] | None:
        """Who hears this client's microphone in this call (None: everyone)."""
        return self._audience

    @property
    def playout_gain_db(self) -> float:
        return self._playout_gain_db

    @property
    def playout_pan(self) -> float:
        return self._playout_pan

    # ---------------------------------------------------------------- participants

    def _sync_participants(self) -> None:
        media = self._media
        if media is None:
            return
        levels = media.audio_levels
        remote = tuple(
            Participant(
                user_id=rp.user_id,
                session_id=rp.session_id,
                audio_enabled="audio" in rp.tracks and not rp.tracks["audio"],
                video_enabled="video" in rp.tracks and not rp.tracks["video"],
                tracks=tuple(
                    TrackInfo(kind, f"{rp.session_id}:{kind}", muted) for kind, muted in rp.tracks.items()
                ),
                audio_level=levels[rp.session_id].level if rp.session_id in levels else 0.0,
                is_speaking=levels[rp.session_id].speaking if rp.session_id in levels else False,
                connection_quality=media.connection_quality.get(rp.session_id),
                audience=rp.audience,
            )
            for rp in media.participants.values()
        )
        own = levels.get(media.session_id or "")
        local = Participant(
            user_id=self._client.user.id,
            session_id=media.session_id or "",
            name=self._client.user.name,
            is_local=True,
            audio_enabled="audio" in media.published and self._effective_mic,
            video_enabled="video" in media.published and self._camera_intent,
            tracks=tuple(
                TrackInfo(kind, f"{media.session_id}:{kind}", muted)
                for kind, muted in media.published.items()
            ),
            audio_level=own.level if own is not None else 0.0,
            is_speaking=own.speaking if own is not None else False,
            connection_quality=media.connection_quality.get(media.session_id or ""),
            audience=self._audience,
        )
        everyone = (local, *remote)
        dominant = next((q for q in everyone if q.session_id == media.dominant_speaker), None)
        before = self.state.value.dominant_speaker
        self._update(participants=everyone, local_participant=local, dominant_speaker=dominant)
        if dominant is not None and (before is None or before.session_id != dominant.session_id):
            self._emit(
                local_event(
                    "call.dominant_speaker_changed",
                    self.cid,
                    user_id=dominant.user_id,
                    session_id=dominant.session_id,
                )
            )


def _custom_data(custom: object, what: str) -> dict[str, Any] | None:
    """A call's ``custom`` data as given (None: unchanged), else InvalidRequestError before any network."""
    if custom is None:
        return None
    if not isinstance(custom, Mapping) or any(not isinstance(key, str) for key in custom):
        raise InvalidRequestError(
            f"{what} must be a dict with string keys (a JSON object), not {type(custom).__name__} {custom!r}"
        )
    return dict(custom)
