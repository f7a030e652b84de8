"""The coordinator's business logic, free of HTTP: every public method is one API operation.

Handlers in :mod:`switchboard.server.coordinator.app` parse requests, call these, and serialise the
result; the errors raised here (:mod:`switchboard.errors`) become the JSON error answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from switchboard.errors import (
    AuthenticationError,
    CallStateError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from switchboard.protocol import coordinator as m
from switchboard.protocol.coordinator import Capability, utcnow
from switchboard.protocol.tokens import SfuClaims, SfuGrants, create_sfu_token, new_session_id
from switchboard.server.coordinator.call_types import (
    CALL_TYPES,
    CallTypeDefinition,
    apply_override,
    own_capabilities,
)
from switchboard.server.coordinator.custom_events import CustomEvents
from switchboard.server.coordinator.events import EventHub
from switchboard.server.coordinator.ice_servers import IceServerSettings, ice_servers_for
from switchboard.server.coordinator.limits import CoordinatorLimits, check_open_calls
from switchboard.server.coordinator.live_grants import LiveGrants
from switchboard.server.coordinator.moderation import Moderation
from switchboard.server.coordinator.permissions import CallPermissions
from switchboard.server.coordinator.recording import CallRecordings
from switchboard.server.coordinator.sfu_nodes import NoSfuNodeError, SfuNodes
from switchboard.server.coordinator.sfu_sessions import SfuSessions
from switchboard.server.coordinator.store import CallRecord, MemberRecord, Store, UserRecord

log = logging.getLogger("switchboard.coordinator")


@dataclass
class CoordinatorConfig:
    api_key: str
    api_secret: str
    #: where clients reach the SFU; filled in by the server that runs one ("": only registered SFU
    #: nodes, ``server/coordinator/sfu_nodes.py``).
    sfu_url: str = "ws://127.0.0.1:3031/sfu"
    ice_servers: list[m.IceServer] = field(default_factory=list)
    #: STUN/TURN handed out with each SFU credential (TURN with per-user, time-limited credentials)
    ice: IceServerSettings = field(default_factory=IceServerSettings)
    sfu_token_ttl: float = 300.0
    max_body_bytes: int = 64 * 1024
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100
    health_check_interval: float = 10.0
    #: per-connection and per-user limits (timeouts, frame rate and size, sockets per user)
    limits: CoordinatorLimits = field(default_factory=CoordinatorLimits)


CallEndedHook = Callable[[str], Awaitable[None]]
#: ``(cid, user_id, session_id, joined)``, after the coordinator took an SFU's report into account
ParticipantHook = Callable[[str, str, str, bool], Awaitable[None]]


class Coordinator:
    def __init__(
        self, config: CoordinatorConfig, store: Store, hub: EventHub, sfu_sessions: SfuSessions | None = None
    ) -> None:
        from switchboard.server.coordinator.ringing import Ringer

        self.config = config
        self.store = store
        self.hub = hub
        self.ringer = Ringer(self)
        self.call_ended_hooks: list[CallEndedHook] = []
        self.participant_hooks: list[ParticipantHook] = []
        #: minted SFU sessions and the media sessions per call and user (in Redis when shared)
        self.sfu_sessions = sfu_sessions if sfu_sessions is not None else SfuSessions()
        #: registered SFU nodes and the node of each call (in Redis when shared; none: ``config.sfu_url``)
        self.sfu_nodes = SfuNodes()
        self.custom_events = CustomEvents(self)
        self.moderation = Moderation(self)
        self.permissions = CallPermissions(self)
        self.recordings = CallRecordings(self)
        #: grants changed for sessions already in a call's media: told to the SFU (``live_grants.py``)
        self.live_grants = LiveGrants(self)

    async def start(self) -> None:
        """Pick up where the store left off: re-arm the deadlines of rings still in progress."""
        await self.ringer.restore()

    # ---------------------------------------------------------------- views

    async def user_response(self, user_id: str) -> m.UserResponse:
        user = await self.store.get_user(user_id)
        if user is None:
            user = await self.store.upsert_user(UserRecord(id=user_id))
        return m.UserResponse(
            id=user.id,
            name=user.name,
            image=user.image,
            custom=user.custom,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )

    async def call_response(self, call: CallRecord) -> m.CallResponse:
        return m.CallResponse(
            cid=call.cid,
            type=call.type,
            id=call.id,
            created_by=await self.user_response(call.created_by),
            custom=call.custom,
            settings=call.settings,
            backstage=call.backstage,
            created_at=call.created_at,
            updated_at=call.updated_at,
            ended_at=call.ended_at,
        )

    async def member_responses(self, members: list[MemberRecord]) -> list[m.MemberResponse]:
        return [
            m.MemberResponse(
                user_id=member.user_id,
                user=await self.user_response(member.user_id),
                role=member.role,
                custom=member.custom,
                created_at=member.created_at,
            )
            for member in members
        ]

    async def call_state(self, call: CallRecord, user_id: str) -> m.CallStateResponse:
        members = await self.store.list_members(call.cid)
        return m.CallStateResponse(
            call=await self.call_response(call),
            members=await self.member_responses(members),
            own_capabilities=await self.capabilities(call, user_id, members),
        )

    # ---------------------------------------------------------------- lookups and checks

    @staticmethod
    def call_type(name: str) -> CallTypeDefinition:
        definition = CALL_TYPES.get(name)
        if definition is None:
            known = ", ".join(sorted(CALL_TYPES))
            raise NotFoundError(f"call type {name!r} does not exist (known types: {known})")
        return definition

    async def get_call_record(self, call_type: str, call_id: str) -> CallRecord:
        self.call_type(call_type)
        call = await self.store.get_call(f"{call_type}:{call_id}")
        if call is None:
            raise NotFoundError(f"call {call_type}:{call_id} does not exist")
        return call

    async def role_of(self, cid: str, user_id: str, members: list[MemberRecord] | None = None) -> str:
        for member in members if members is not None else await self.store.list_members(cid):
            if member.user_id == user_id:
                return member.role
        return "user"

    async def capabilities(
        self, call: CallRecord, user_id: str, members: list[MemberRecord] | None = None
    ) -> list[Capability]:
        role = await self.role_of(call.cid, user_id, members)
        caps = own_capabilities(
            self.call_type(call.type), role, backstage=call.backstage, settings=call.settings
        )
        adjusted = self.permissions.adjust(call.cid, user_id, set(caps))  # request-to-speak grants
        if not call.settings.video.enabled:
            adjusted.discard(Capability.SEND_VIDEO)
        return sorted(adjusted, key=list(Capability).index)

    async def require(self, call: CallRecord, user_id: str, capability: Capability) -> list[Capability]:
        caps = await self.capabilities(call, user_id)
        if capability not in caps:
            role = await self.role_of(call.cid, user_id)
            raise PermissionDeniedError(
                f"user {user_id!r} (role {role!r}) lacks {capability.value!r} in call {call.cid}"
            )
        return caps

    @staticmethod
    def require_active(call: CallRecord) -> None:
        if call.ended_at is not None:
            raise CallStateError(f"call {call.cid} has ended")

    async def authorized_call(
        self, user_id: str, call_type: str, call_id: str, capability: Capability, *, active: bool = True
    ) -> CallRecord:
        """The call ``call_type:call_id``, for an operation of ``user_id`` that needs ``capability``
        (SPEC §2.7) and, with ``active``, a call that has not ended.

        Raises NotFoundError (404: unknown call type or call), PermissionDeniedError (403: the user's
        capabilities in the call lack ``capability``), CallStateError (409: the call ended), in that
        order.
        """
        call = await self.get_call_record(call_type, call_id)
        await self.require(call, user_id, capability)
        if active:
            self.require_active(call)
        return call

    async def member_user_ids(self, cid: str) -> set[str]:
        return {member.user_id for member in await self.store.list_members(cid)}

    async def broadcast(self, call: CallRecord, event: m.Event) -> None:
        """Send a call event to its members' connections and to every connection watching it."""
        await self.hub.publish(event, users=await self.member_user_ids(call.cid), watchers_of=call.cid)

    async def watch(self, connection_id: str | None, user_id: str, cid: str) -> None:
        conn = self.hub.connection(connection_id, user_id)
        if conn is not None:
            await self.hub.watch_call(conn.id, cid)

    # ---------------------------------------------------------------- users

    async def upsert_user(self, request: m.UserRequest) -> m.UserResponse:
        await self.store.upsert_user(
            UserRecord(id=request.id, name=request.name, image=request.image, custom=request.custom)
        )
        return await self.user_response(request.id)

    # ---------------------------------------------------------------- calls

    async def get_or_create_call(
        self, user_id: str, call_type: str, call_id: str, request: m.GetOrCreateCallRequest
    ) -> m.GetOrCreateCallResponse:
        definition = self.call_type(call_type)
        await check_open_calls(self.store, self.config.limits, user_id, f"{call_type}:{call_id}")
        members = self._members_with_creator(user_id, request.data.members)
        for member in members:
            if await self.store.get_user(member.user_id) is None:
                await self.store.upsert_user(UserRecord(id=member.user_id))
        settings = apply_override(definition.settings, request.data.settings_override)
        record = CallRecord(
            type=call_type,
            id=call_id,
            created_by=user_id,
            settings=settings,
            backstage=settings.backstage.enabled,
            custom=request.data.custom,
        )
        call, created = await self.store.create_call(record, members)
        if created:
            state = await self.call_state(call, user_id)
            await self.broadcast(
                call,
                m.CallCreatedEvent(created_at=utcnow(), cid=call.cid, call=state.call, members=state.members),
            )
        else:
            await self.require(call, user_id, Capability.READ_CALL)
        if request.watch:
            await self.watch(request.connection_id, user_id, call.cid)
        ring_id = None
        if request.ring:
            ring_id = await self.ringer.ring(call, user_id, video=request.video, member_ids=None)
        state = await self.call_state(call, user_id)
        return m.GetOrCreateCallResponse(**state.model_dump(), created=created, ring_id=ring_id)

    @staticmethod
    def _members_with_creator(user_id: str, requested: list[m.MemberRequest]) -> list[MemberRecord]:
        seen: dict[str, MemberRecord] = {}
        for member in requested:
            seen[member.user_id] = MemberRecord(member.user_id, member.role or "call_member", member.custom)
        if user_id not in seen:
            seen[user_id] = MemberRecord(user_id, "host")
        elif not any(r.user_id == user_id and r.role for r in requested):
            seen[user_id].role = "host"
        return list(seen.values())

    async def get_call(
        self, user_id: str, call_type: str, call_id: str, request: m.GetCallRequest
    ) -> m.CallStateResponse:
        call = await self.get_call_record(call_type, call_id)
        await self.require(call, user_id, Capability.READ_CALL)
        if request.watch:
            await self.watch(request.connection_id, user_id, call.cid)
        return await self.call_state(call, user_id)

    async def update_call(
        self, user_id: str, call_type: str, call_id: str, request: m.UpdateCallRequest
    ) -> m.CallStateResponse:
        call = await self.get_call_record(call_type, call_id)
        await self.require(call, user_id, Capability.UPDATE_CALL)
        self.require_active(call)
        if request.custom is not None:
            call.custom = request.custom
        if request.settings_override is not None:
            call.settings = apply_override(call.settings, request.settings_override)
        await self.store.save_call(call)
        response = await self.call_response(call)
        await self.broadcast(call, m.CallUpdatedEvent(created_at=utcnow(), cid=call.cid, call=response))
        await self.live_grants.apply(call, "call_updated")
        return await self.call_state(call, user_id)

    async def end_call(self, user_id: str, call_type: str, call_id: str) -> m.CallStateResponse:
        call = await self.get_call_record(call_type, call_id)
        await self.require(call, user_id, Capability.END_CALL)
        self.require_active(call)
        call.ended_at = utcnow()
        await self.store.save_call(call)
        await self.ringer.end_for_call(call)
        await self.broadcast(
            call,
            m.CallEndedEvent(
                created_at=utcnow(),
                cid=call.cid,
                call=await self.call_response(call),
                user=await self.user_response(user_id),
            ),
        )
        for hook in self.call_ended_hooks:
            try:
                await hook(call.cid)
            except Exception:
                log.exception("call-ended hook failed for %s", call.cid)
        return await self.call_state(call, user_id)

    async def set_live(self, user_id: str, call_type: str, call_id: str, live: bool) -> m.CallStateResponse:
        call = await self.get_call_record(call_type, call_id)
        await self.require(call, user_id, Capability.UPDATE_CALL)
        self.require_active(call)
        if call.backstage == (not live):
            return await self.call_state(call, user_id)  # already there: nothing to do
        call.backstage = not live
        await self.store.save_call(call)
        response = await self.call_response(call)
        event: m.Event = (
            m.CallLiveStartedEvent(created_at=utcnow(), cid=call.cid, call=response)
            if live
            else m.CallLiveStoppedEvent(created_at=utcnow(), cid=call.cid, call=response)
        )
        await self.broadcast(call, event)
        if not live:
            await self.live_grants.apply(call, "live_stopped", users=await self.member_user_ids(call.cid))
        return await self.call_state(call, user_id)

    async def update_members(
        self, user_id: str, call_type: str, call_id: str, request: m.UpdateMembersRequest
    ) -> m.UpdateMembersResponse:
        call = await self.get_call_record(call_type, call_id)
        await self.require(call, user_id, Capability.UPDATE_CALL_MEMBER)
        self.require_active(call)
        overlap = {mr.user_id for mr in request.update_members} & set(request.remove_members)
        if overlap:
            raise InvalidRequestError(f"users both updated and removed: {sorted(overlap)}")
        existing = await self.member_user_ids(call.cid)
        added: list[MemberRecord] = []
        updated: list[MemberRecord] = []
        for mr in request.update_members:
            if await self.store.get_user(mr.user_id) is None:
                await self.store.upsert_user(UserRecord(id=mr.user_id))
            record = MemberRecord(mr.user_id, mr.role or "call_member", mr.custom)
            (updated if mr.user_id in existing else added).append(record)
        await self.store.upsert_members(call.cid, added + updated)
        removed = await self.store.remove_members(call.cid, list(request.remove_members))
        response = await self.call_response(call)
        now = utcnow()
        if added:
            await self.broadcast(
                call,
                m.CallMemberAddedEvent(
                    created_at=now, cid=call.cid, call=response, members=await self.member_responses(added)
                ),
            )
        if updated:
            await self.broadcast(
                call,
                m.CallMemberUpdatedEvent(
                    created_at=now, cid=call.cid, call=response, members=await self.member_responses(updated)
                ),
            )
        if removed:
            event = m.CallMemberRemovedEvent(created_at=now, cid=call.cid, call=response, members=removed)
            await self.hub.publish(
                event, users=await self.member_user_ids(call.cid) | set(removed), watchers_of=call.cid
            )
            await self.ringer.members_removed(call, removed)
        named = [mr.user_id for mr in added + updated] + removed
        await self.live_grants.apply(call, "members_updated", users=named)
        return m.UpdateMembersResponse(
            members=await self.member_responses(await self.store.list_members(call.cid))
        )

    async def join_call(
        self, user_id: str, call_type: str, call_id: str, request: m.JoinCallRequest
    ) -> m.JoinCallResponse:
        if request.create:
            await self.get_or_create_call(
                user_id,
                call_type,
                call_id,
                m.GetOrCreateCallRequest(
                    data=request.data or m.CallDataRequest(), connection_id=request.connection_id
                ),
            )
        call = await self.get_call_record(call_type, call_id)
        caps = await self.require_join(call, user_id)
        await self.watch(request.connection_id, user_id, call.cid)
        session_id = new_session_id()
        credentials = await self._sfu_credentials(call, user_id, session_id, caps)
        state = await self.call_state(call, user_id)
        return m.JoinCallResponse(**state.model_dump(), session_id=session_id, credentials=credentials)

    async def require_join(self, call: CallRecord, user_id: str) -> list[Capability]:
        """``user_id``'s capabilities if they may join ``call`` now; else CallStateError / 403."""
        self.require_active(call)
        self.moderation.check_not_blocked(call, user_id)
        caps = await self.capabilities(call, user_id)
        if call.backstage and Capability.JOIN_BACKSTAGE not in caps:
            raise PermissionDeniedError(
                f"call {call.cid} is backstage: only hosts can join until it goes live"
            )
        if Capability.JOIN_CALL not in caps:
            await self.require(call, user_id, Capability.JOIN_CALL)
        return caps

    @staticmethod
    def sfu_grants(caps: list[Capability]) -> SfuGrants:
        return SfuGrants(send_audio=Capability.SEND_AUDIO in caps, send_video=Capability.SEND_VIDEO in caps)

    async def _sfu_credentials(
        self, call: CallRecord, user_id: str, session_id: str, caps: list[Capability]
    ) -> m.Credentials:
        """Mint an SFU token for ``session_id`` with the grants ``caps`` give, and remember it.

        The SFU is the call's node (``sfu_nodes.py``: placed on the least-loaded live node, sticky,
        moved off a dead one), or ``config.sfu_url`` while no node is registered;
        :class:`NoSfuNodeError` (503) when neither exists.
        """
        placement = await self.sfu_nodes.place(call.cid)  # the call's node; None: no node registered
        if placement is None and not self.config.sfu_url:
            raise NoSfuNodeError(f"no SFU node is live to place call {call.cid} on: try again shortly")
        if placement is not None and placement.moved:
            log.info("call %s moved to SFU node %s (its node stopped)", call.cid, placement.node.id)
            await self._media_lost_with_node(call, user_id)
        grants = self.sfu_grants(caps)
        ttl = self.config.sfu_token_ttl
        token = create_sfu_token(
            self.config.api_secret,
            user_id=user_id,
            call_cid=call.cid,
            session_id=session_id,
            grants=grants,
            ttl=ttl,
        )
        await self.sfu_sessions.minted(call.cid, user_id, session_id, grants, time.time() + ttl)
        return m.Credentials(
            server=m.SfuServer(url=placement.node.url if placement is not None else self.config.sfu_url),
            token=token,
            ice_servers=[*self.config.ice_servers, *ice_servers_for(self.config.ice, user_id)],
        )

    async def _media_lost_with_node(self, call: CallRecord, user_id: str) -> None:
        """The call's SFU node died: the media sessions it held are gone though it never said so.

        Each one is marked left (its tokens are refused) and leaves the call's participants
        (``call.session_participant_left`` to the members); rings are left alone, since the users
        are joining again on the new node. Sessions of users who are neither members nor the
        joining user are not listed by user here: they expire with their records.
        """
        response = await self.call_response(call)  # the record does not change here: read once
        for member in await self.member_user_ids(call.cid) | {user_id}:
            for session_id in await self.sfu_sessions.media_session_ids(call.cid, member):
                await self.sfu_sessions.left(session_id)
                await self.sfu_sessions.media_changed(call.cid, member, session_id, False)
                event = m.ParticipantLeftEvent(
                    created_at=utcnow(),
                    cid=call.cid,
                    call=response,
                    user_id=member,
                    session_id=session_id,
                )
                await self.broadcast(call, event)

    async def refresh_sfu_token(
        self, user_id: str, call_type: str, call_id: str, request: m.SfuTokenRequest
    ) -> m.SfuTokenResponse:
        """A fresh SFU token for the caller's own live session (same checks as ``join``).

        Errors: 404 for a session this user did not join in this call, 409 once it has left
        (join again) or the call ended, 403 when the user may no longer join (e.g. backstage).
        """
        call = await self.get_call_record(call_type, call_id)
        record = await self.sfu_sessions.get(request.session_id)
        if record is None or record.user_id != user_id or record.cid != call.cid:
            raise NotFoundError(f"no SFU session {request.session_id!r} of {user_id!r} in {call.cid}")
        if record.left:
            raise CallStateError("this session has left the call: join again", code="session_ended")
        caps = await self.require_join(call, user_id)
        credentials = await self._sfu_credentials(call, user_id, record.session_id, caps)
        return m.SfuTokenResponse(session_id=record.session_id, credentials=credentials)

    async def admit_sfu_session(self, claims: SfuClaims) -> None:
        """The SFU asks before admitting a verified token (SPEC §2.10).

        Refused (SwitchboardError with the code the SFU passes on): ``call_ended``; the token's
        session unknown, left (``session_ended``) or minted with other grants than the user's
        current ones (``grants_changed``); ``permission_denied`` when the user may no longer join
        (a viewer after ``stop_live``), exactly as the REST ``join`` would answer.
        """
        call = await self.store.get_call(claims.call_cid)
        if call is None or call.ended_at is not None:
            raise CallStateError(f"call {claims.call_cid} does not exist or has ended", code="call_ended")
        await self.sfu_sessions.check(claims)
        caps = await self.require_join(call, claims.user_id)
        if self.sfu_grants(caps) != claims.grants:
            raise AuthenticationError(
                "the session's permissions changed since this SFU token was minted", code="grants_changed"
            )

    # ---------------------------------------------------------------- ringing

    async def ring(
        self, user_id: str, call_type: str, call_id: str, request: m.RingRequest
    ) -> m.RingResponse:
        call = await self.get_call_record(call_type, call_id)
        ring_id = await self.ringer.ring(call, user_id, video=request.video, member_ids=request.member_ids)
        return m.RingResponse(ring_id=ring_id)

    async def pending_rings(self, user_id: str) -> m.PendingRingsResponse:
        """Every ring pending for ``user_id``, incoming and outgoing, oldest first (SPEC §2.6.1).

        The event cursor is read before the rings, so the snapshot reflects at least every event up
        to ``last_event_id``; a client applies later events on top of it.
        """
        last_event_id = await self.store.last_event_id()
        epoch = await self.store.event_epoch()
        rings: list[m.PendingRing] = []
        for ring, outgoing in await self.ringer.pending_for(user_id):
            call = await self.store.get_call(ring.cid)
            if call is None:
                continue
            deadline = None if ring.deadline == float("inf") else datetime.fromtimestamp(ring.deadline, UTC)
            rings.append(
                m.PendingRing(
                    ring_id=ring.ring_id,
                    cid=ring.cid,
                    call=await self.call_response(call),
                    members=await self.member_responses(await self.store.list_members(ring.cid)),
                    caller=await self.user_response(ring.caller),
                    outgoing=outgoing,
                    video=ring.video,
                    created_at=datetime.fromtimestamp(ring.created_at, UTC),
                    deadline=deadline,
                )
            )
        return m.PendingRingsResponse(rings=rings, last_event_id=last_event_id, epoch=epoch)

    async def accept(self, user_id: str, call_type: str, call_id: str) -> m.AckResponse:
        call = await self.get_call_record(call_type, call_id)
        await self.ringer.accept(call, user_id)
        return m.AckResponse()

    async def reject(
        self, user_id: str, call_type: str, call_id: str, request: m.RejectRequest
    ) -> m.AckResponse:
        call = await self.get_call_record(call_type, call_id)
        await self.ringer.reject(call, user_id, request.reason)
        return m.AckResponse()

    async def participant_changed(
        self, cid: str, user_id: str, session_id: str, joined: bool, *, sfu_lost: bool = False
    ) -> None:
        """The SFU reports a session joining or leaving the call's media.

        When a user's last session leaves, a ring they started that nobody accepted is cancelled,
        unless ``sfu_lost``: the session's SFU died, and its client is joining again.
        """
        if joined:
            await self.sfu_sessions.joined(session_id)
        else:
            await self.sfu_sessions.left(session_id)
        remaining = await self.sfu_sessions.media_changed(cid, user_id, session_id, joined)
        for hook in self.participant_hooks:
            await hook(cid, user_id, session_id, joined)
        call = await self.store.get_call(cid)
        if call is None:
            return
        if not joined and not remaining and not sfu_lost:
            await self.ringer.caller_left(call, user_id)
        response = await self.call_response(call)
        now = utcnow()
        event: m.Event = (
            m.ParticipantJoinedEvent(
                created_at=now, cid=cid, call=response, user_id=user_id, session_id=session_id
            )
            if joined
            else m.ParticipantLeftEvent(
                created_at=now, cid=cid, call=response, user_id=user_id, session_id=session_id
            )
        )
        await self.broadcast(call, event)

    async def has_media_session(self, cid: str, user_id: str) -> bool:
        """Whether the SFU reported a session of ``user_id`` in call ``cid`` that has not left."""
        return await self.sfu_sessions.media_sessions(cid, user_id) > 0

    async def close(self) -> None:
        await self.ringer.close()
