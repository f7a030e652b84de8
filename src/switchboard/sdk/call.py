"""``Call``: one call as this client sees it: its coordinator operations, state and events."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from switchboard.errors import CallStateError
from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.protocol import coordinator as m
from switchboard.sdk.emitter import EventEmitter
from switchboard.sdk.observable import Observable
from switchboard.sdk.types import CallPreferences, CallStatus, CallType, MemberRequest, RejectReason

if TYPE_CHECKING:
    from switchboard.sdk.client import VideoClient


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


@dataclass(frozen=True)
class CallState:
    """A frozen snapshot of a call; ``call.state`` publishes a new one on every change."""

    cid: str
    call_type: str
    id: str
    status: CallStatus = CallStatus.IDLE
    is_audio_suspended: bool = False
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
        members: list[MemberRequest] | None = None,
        *,
        ringing: bool = False,
        video: bool = False,
        custom: dict[str, Any] | None = None,
        settings_override: m.CallSettingsRequest | None = None,
    ) -> CallState:
        """Get the call, creating it when new (an existing call is returned unchanged); may ring."""
        api = self._client._require_api()
        request = m.GetOrCreateCallRequest(
            data=m.CallDataRequest(
                members=[
                    m.MemberRequest(user_id=mr.user_id, role=mr.role, custom=mr.custom)
                    for mr in members or []
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
            self._client._set_outgoing(self)
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
        self, *, update: list[MemberRequest] | None = None, remove: list[str] | None = None
    ) -> CallState:
        api = self._client._require_api()
        body = m.UpdateMembersRequest(
            update_members=[
                m.MemberRequest(user_id=mr.user_id, role=mr.role, custom=mr.custom) for mr in update or []
            ],
            remove_members=list(remove or []),
        )
        response = await api.request("POST", self._path("/members"), m.UpdateMembersResponse, body)
        self._apply_members(response.members)
        return self.state.value

    async def ring(self, members: list[str] | None = None, *, video: bool = False) -> None:
        """Ring the members other than this user (or just ``members``)."""
        api = self._client._require_api()
        await api.request(
            "POST", self._path("/ring"), m.AckResponse, m.RingRequest(video=video, member_ids=members)
        )
        self._client._set_outgoing(self)

    async def accept(self) -> None:
        """Accept the ring. Does not join: call :meth:`join` next; moves no audio focus."""
        api = self._client._require_api()
        await api.request("POST", self._path("/accept"), m.AckResponse, m.EmptyRequest())
        self._client._ring_ended(self, m.RingOutcome.ACCEPTED, None, outgoing=False)

    async def reject(self, reason: RejectReason = RejectReason.DECLINE) -> None:
        """Reject a ring; by the caller, cancel it (every callee's ring ends)."""
        api = self._client._require_api()
        outgoing = self._client.state.outgoing_call.value is self
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

    def _require_not_ended(self) -> None:
        if self.state.value.is_ended:
            raise CallStateError(f"call {self.cid} has ended")
