"""Moderation in a call: mute others, remove a participant, block and unblock a user.

The coordinator checks the capability, records what must outlive the SFU session (blocks), sends
the event to the call (members, watchers, and the user acted on) and tells the SFU, which enforces
it on the media (``server/sfu/moderation.py``). Capabilities: muting needs ``mute-users``; removing
and blocking need ``update-call-member`` (they change who is in the call). Ending the call for
everyone is ``POST .../mark_ended`` (``end-call``).

A blocked user cannot join (403 ``blocked``), get a fresh SFU token or resume an SFU session until
unblocked. Blocks live in this coordinator's memory: they last as long as the process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from switchboard.errors import InvalidRequestError, PermissionDeniedError
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.protocol.coordinator import Capability, utcnow
from switchboard.server.coordinator.store import CallRecord

if TYPE_CHECKING:
    from switchboard.server.coordinator.service import Coordinator

log = logging.getLogger("switchboard.coordinator.moderation")

ModerationHook = Callable[[p.ModerationCommand], Awaitable[object]]
"""Delivers a moderation command to the SFU that hosts the call's media."""


class BlockedError(PermissionDeniedError):
    """The user is blocked from this call."""

    code = "blocked"


class Moderation:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator
        self._blocked: dict[str, set[str]] = {}
        #: where commands go: the SFU in this process, or the channel to the SFU process
        self.sfu_hooks: list[ModerationHook] = []

    # ---------------------------------------------------------------- checks

    def is_blocked(self, cid: str, user_id: str) -> bool:
        return user_id in self._blocked.get(cid, set())

    def check_not_blocked(self, call: CallRecord, user_id: str) -> None:
        """BlockedError (403 ``blocked``) when ``user_id`` is blocked from ``call``."""
        if self.is_blocked(call.cid, user_id):
            raise BlockedError(f"user {user_id!r} is blocked from call {call.cid}")

    def blocked_users(self, cid: str) -> list[str]:
        return sorted(self._blocked.get(cid, set()))

    # ---------------------------------------------------------------- operations

    async def mute_users(
        self, user_id: str, call_type: str, call_id: str, request: m.MuteUsersRequest
    ) -> m.AckResponse:
        """Mute others' audio and/or video (``mute-users``); the SFU stops forwarding it at once."""
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.MUTE_USERS)
        if not request.mute_all_users and not request.user_ids:
            raise InvalidRequestError("name user_ids, or set mute_all_users")
        kinds: list[p.TrackKind] = []
        if request.audio:
            kinds.append("audio")
        if request.video:
            kinds.append("video")
        if not kinds:
            raise InvalidRequestError("nothing to mute: set audio and/or video")
        user_ids = None if request.mute_all_users else list(request.user_ids)
        event = m.CallUserMutedEvent(
            created_at=utcnow(),
            cid=call.cid,
            call=await c.call_response(call),
            from_user_id=user_id,
            muted_user_ids=user_ids or [],
            audio=request.audio,
            video=request.video,
        )
        await self.tell_sfu(
            p.ModerationCommand(cid=call.cid, action="mute", by=user_id, user_ids=user_ids, kinds=kinds)
        )
        await self._publish(call, event, set(user_ids or []))
        return m.AckResponse()

    async def remove_participant(
        self, user_id: str, call_type: str, call_id: str, request: m.RemoveParticipantRequest
    ) -> m.AckResponse:
        """Remove ``request.user_id``'s sessions from the call now; optionally block them too."""
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.UPDATE_CALL_MEMBER)
        self._not_self(user_id, request.user_id, "remove")
        if request.block:
            await self._block(call, user_id, request.user_id)
        event = m.CallParticipantRemovedEvent(
            created_at=utcnow(),
            cid=call.cid,
            call=await c.call_response(call),
            user_id=request.user_id,
            by=user_id,
            blocked=request.block,
        )
        await self.tell_sfu(
            p.ModerationCommand(
                cid=call.cid, action="remove", by=user_id, user_ids=[request.user_id], blocked=request.block
            )
        )
        await self._publish(call, event, {request.user_id})
        return m.AckResponse()

    async def block(
        self, user_id: str, call_type: str, call_id: str, request: m.BlockUserRequest
    ) -> m.AckResponse:
        """Block ``request.user_id`` from the call: removed from its media now, cannot join again."""
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.UPDATE_CALL_MEMBER)
        self._not_self(user_id, request.user_id, "block")
        await self._block(call, user_id, request.user_id)
        await self.tell_sfu(
            p.ModerationCommand(
                cid=call.cid, action="remove", by=user_id, user_ids=[request.user_id], blocked=True
            )
        )
        return m.AckResponse()

    async def unblock(
        self, user_id: str, call_type: str, call_id: str, request: m.BlockUserRequest
    ) -> m.AckResponse:
        c = self._c
        call = await c.authorized_call(
            user_id, call_type, call_id, Capability.UPDATE_CALL_MEMBER, active=False
        )
        blocked = self._blocked.get(call.cid, set())
        if request.user_id in blocked:
            blocked.discard(request.user_id)
            event = m.CallUnblockedUserEvent(
                created_at=utcnow(),
                cid=call.cid,
                call=await c.call_response(call),
                user_id=request.user_id,
                by=user_id,
            )
            await self._publish(call, event, {request.user_id})
        return m.AckResponse()

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _not_self(user_id: str, target: str, what: str) -> None:
        if user_id == target:
            raise InvalidRequestError(f"a user cannot {what} themselves; leave the call instead")

    async def _block(self, call: CallRecord, by: str, target: str) -> None:
        blocked = self._blocked.setdefault(call.cid, set())
        if target in blocked:
            return
        blocked.add(target)
        event = m.CallBlockedUserEvent(
            created_at=utcnow(), cid=call.cid, call=await self._c.call_response(call), user_id=target, by=by
        )
        await self._publish(call, event, {target})

    async def _publish(self, call: CallRecord, event: m.Event, affected: set[str]) -> None:
        users = await self._c.member_user_ids(call.cid) | affected
        await self._c.hub.publish(event, users=users, watchers_of=call.cid)

    async def tell_sfu(self, command: p.ModerationCommand) -> None:
        """Deliver ``command`` to the SFU (errors are logged: the coordinator's state is already set)."""
        for hook in self.sfu_hooks:
            try:
                await hook(command)
            except Exception:
                log.exception("moderation command %s for %s failed", command.action, command.cid)
