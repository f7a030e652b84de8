"""``Call``: one call as this client sees it: its coordinator operations, state and events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from switchboard.errors import CallStateError, InvalidRequestError, PermissionDeniedError
from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.media.audio_session import AudioDeviceModule
from switchboard.media.microphones import Microphone
from switchboard.media.playout_shaping import check_gain_db, check_pan
from switchboard.protocol import coordinator as m
from switchboard.protocol.sfu import MAX_AUDIENCE
from switchboard.sdk.emitter import EventEmitter, local_event
from switchboard.sdk.observable import Observable
from switchboard.sdk.session import CallSession
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
from switchboard.sdk.validation import require_identifiers, require_instance

log = logging.getLogger("switchboard.sdk.call")

if TYPE_CHECKING:
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

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None


def _reject_reason(reason: object) -> RejectReason:
    """``reason`` as a RejectReason (its string value is accepted too), else InvalidRequestError."""
    if isinstance(reason, str) and reason in {r.value for r in RejectReason}:
        return RejectReason(reason)
    options = ", ".join(f"RejectReason.{r.name}" for r in RejectReason)
    raise InvalidRequestError(f"reject reason {reason!r} is not valid: use one of {options}")


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
        self._suspend_mode: SuspendMode | None = None
        self._playout_gain_db = 0.0
        self._playout_pan = 0.0
        #: who hears this client's microphone in this call (SPEC §2.8); None: everyone
        self._audience: tuple[str, ...] | None = None
        #: what the others hear while this call is suspended (SPEC §2.8); None: silence
        self._hold: Microphone | None = None

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
        """
        if connect_options is not None:
            require_instance(connect_options, CallConnectOptions, "connect_options")
        if self._media is not None or self._join_task is not None or self._join_lock.locked():
            return  # joined, joining or reconnecting: nothing to do
        async with self._join_lock:
            self._client._require_api()
            self._join_task = asyncio.current_task()
            self._update(status=CallStatus.JOINING)
            handover: Handover | None = None
            try:
                handover = await self._client._active.join_started(self)
                await self._connect_media(connect_options or CallConnectOptions())
            except BaseException as exc:
                await self._close_media()
                self._update(status=CallStatus.IDLE, participants=(), local_participant=None)
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

    async def _connect_media(self, options: CallConnectOptions) -> None:
        client = self._client
        response = await client._require_api().request(
            "POST",
            self._path("/join"),
            m.JoinCallResponse,
            m.JoinCallRequest(create=True, connection_id=client._connection_id()),
        )
        self._apply_state(response)
        settings = response.call.settings
        self._mic_intent = self._track_intent(
            options.microphone, settings.audio.mic_default_on, m.Capability.SEND_AUDIO
        )
        self._camera_intent = self._track_intent(
            options.camera,
            settings.video.camera_default_on and settings.video.enabled,
            m.Capability.SEND_VIDEO,
        )
        adm = client.audio_session.create_module(self.audio_configuration_policy, self.cid)
        if options.microphone is not None and options.microphone.state == "provided":
            adm.microphone = options.microphone.track
        adm.microphone_enabled = self._mic_intent
        adm.hold = self._hold
        if self._suspended:
            adm.suspend(self._duck_gain_db())
        adm.set_playout(gain_db=self._playout_gain_db, pan=self._playout_pan)
        self._adm = adm
        session = CallSession(
            response.credentials,
            adm,
            client._http(),
            on_change=self._sync_participants,
            on_ended=self._media_ended,
            on_connection=self._media_connection,
            refresh_credentials=self._fresh_sfu_credentials,
        )
        self._media = session
        self._update(session_id=response.session_id)
        await session.connect(audio_paused=self._forwarding_paused)
        if self._forwarding_paused:  # suspended while the socket was connecting: tell the SFU now
            await session.set_audio_forwarding(paused=True)
        if self._audience is not None:
            await session.set_audience(self._audience)
        adm.start()
        camera_track = (
            options.camera.track
            if options.camera is not None and options.camera.state == "provided"
            else None
        )
        await session.publish(
            audio=m.Capability.SEND_AUDIO in self.state.value.own_capabilities,
            video=self._camera_intent,
            audio_muted=not self._effective_mic,
            video_muted=not self._camera_intent,
            camera=camera_track,
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
        if self._media is None and self.state.value.status not in (CallStatus.JOINING, CallStatus.JOINED):
            self._reset_suspension()  # nothing to leave, but a left call is never suspended (SPEC §2.4.3)
            return
        log.info("%s: leaving (%s)", self.cid, reason)
        await self._close_media()
        self._update(status=CallStatus.IDLE, participants=(), local_participant=None)
        self._reset_suspension()
        self._emit(local_event("call.left", self.cid, reason=reason))
        await self._client._active.removed(self)

    async def _close_media(self) -> None:
        media, self._media = self._media, None
        adm, self._adm = self._adm, None
        if media is not None:
            await media.close()
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
        if self._media is None:
            return
        if state == "reconnecting" and self.state.value.status is CallStatus.JOINED:
            self._update(status=CallStatus.RECONNECTING)
        elif state == "connected":
            if self.state.value.status is CallStatus.RECONNECTING:
                self._update(status=CallStatus.JOINED)
            self._spawn(self._resync_media())

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
        self._spawn(self._on_ended(reason))

    async def _on_ended(self, reason: str = "call_ended") -> None:
        """The call ended remotely (or its media died): it is left and leaves ``active_calls``."""
        join = self._join_task
        if join is not None and join is not asyncio.current_task():
            self._join_cancelled = True  # ended while joining: the join stops and cleans up
            join.cancel()
            await asyncio.wait({join})
        status = self.state.value.status
        if self._media is not None or status in (CallStatus.JOINED, CallStatus.RECONNECTING):
            # state first, so a second report of the same end (REST answer and event) finds nothing to do
            self._update(status=CallStatus.DISCONNECTED, participants=(), local_participant=None)
            self._reset_suspension()
            self._emit(local_event("call.left", self.cid, reason=reason))
            await self._close_media()
        elif status in (CallStatus.INCOMING, CallStatus.OUTGOING):
            self._update(status=CallStatus.IDLE)
        await self._client._active.removed(self)

    # ---------------------------------------------------------------- media: microphone, camera

    async def set_microphone_enabled(self, enabled: bool) -> None:
        """Turn the microphone on or off in this call. While suspended, "on" takes effect at resume."""
        if (
            enabled
            and self._media is not None
            and m.Capability.SEND_AUDIO not in self.state.value.own_capabilities
        ):
            raise PermissionDeniedError(f"cannot unmute in {self.cid}: this user lacks 'send-audio'")
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
        remote = tuple(
            Participant(
                user_id=rp.user_id,
                session_id=rp.session_id,
                audio_enabled="audio" in rp.tracks and not rp.tracks["audio"],
                video_enabled="video" in rp.tracks and not rp.tracks["video"],
                tracks=tuple(
                    TrackInfo(kind, f"{rp.session_id}:{kind}", muted) for kind, muted in rp.tracks.items()
                ),
                audience=rp.audience,
            )
            for rp in media.participants.values()
        )
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
            audience=self._audience,
        )
        self._update(participants=(local, *remote), local_participant=local)
