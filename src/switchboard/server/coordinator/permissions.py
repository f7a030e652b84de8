"""Request-to-speak: per-user grants and revocations of ``send-audio`` / ``send-video`` in a call.

A user asks (``POST .../request_permission``, event ``call.permission_request`` to the call); a
moderator (``update-call-member``) grants or revokes (``POST .../user_permissions``, event
``call.permissions_updated`` with the user's new ``own_capabilities``). A grant adds the capability
to what the user's role gives in this call; a revocation takes it away even when the role gives it.
The SFU applies the new send grants to the user's live sessions at once (a revoked kind stops being
forwarded) and every later SFU token carries them. Kept in the coordinator's memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from switchboard.errors import InvalidRequestError
from switchboard.protocol import coordinator as m
from switchboard.protocol.coordinator import REQUESTABLE_CAPABILITIES, Capability, utcnow

if TYPE_CHECKING:
    from switchboard.server.coordinator.service import Coordinator


def _requestable(permissions: list[Capability], what: str) -> set[Capability]:
    wrong = set(permissions) - REQUESTABLE_CAPABILITIES
    if wrong:
        allowed = ", ".join(sorted(c.value for c in REQUESTABLE_CAPABILITIES))
        raise InvalidRequestError(f"{what}: {sorted(c.value for c in wrong)} cannot be; only {allowed}")
    return set(permissions)


class CallPermissions:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator
        self._granted: dict[tuple[str, str], set[Capability]] = {}
        self._revoked: dict[tuple[str, str], set[Capability]] = {}

    def adjust(self, cid: str, user_id: str, caps: set[Capability]) -> set[Capability]:
        """``caps`` (from the role) with this user's grants added and revocations removed."""
        key = (cid, user_id)
        return (caps | self._granted.get(key, set())) - self._revoked.get(key, set())

    async def request(
        self, user_id: str, call_type: str, call_id: str, request: m.RequestPermissionRequest
    ) -> m.AckResponse:
        """Ask for ``send-audio``/``send-video`` (any user who may read the call)."""
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.READ_CALL)
        wanted = _requestable(request.permissions, "permissions")
        event = m.CallPermissionRequestEvent(
            created_at=utcnow(),
            cid=call.cid,
            call=await c.call_response(call),
            user=await c.user_response(user_id),
            permissions=sorted(wanted, key=list(Capability).index),
        )
        await c.hub.publish(event, users=await c.member_user_ids(call.cid) | {user_id}, watchers_of=call.cid)
        return m.AckResponse()

    async def update(
        self, user_id: str, call_type: str, call_id: str, request: m.UpdateUserPermissionsRequest
    ) -> m.AckResponse:
        """Grant and revoke ``request.user_id``'s send capabilities (``update-call-member``)."""
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.UPDATE_CALL_MEMBER)
        grant = _requestable(request.grant_permissions, "grant_permissions")
        revoke = _requestable(request.revoke_permissions, "revoke_permissions")
        if grant & revoke:
            raise InvalidRequestError(f"both granted and revoked: {sorted(c.value for c in grant & revoke)}")
        key = (call.cid, request.user_id)
        granted = self._granted.setdefault(key, set())
        revoked = self._revoked.setdefault(key, set())
        granted |= grant
        granted -= revoke
        revoked |= revoke
        revoked -= grant
        caps = await c.capabilities(call, request.user_id)
        await c.live_grants.apply(call, "permissions_updated", users=[request.user_id], announce=False)
        event = m.CallPermissionsUpdatedEvent(
            created_at=utcnow(),
            cid=call.cid,
            call=await c.call_response(call),
            user_id=request.user_id,
            own_capabilities=caps,
        )
        await c.hub.publish(
            event, users=await c.member_user_ids(call.cid) | {request.user_id}, watchers_of=call.cid
        )
        return m.AckResponse()
