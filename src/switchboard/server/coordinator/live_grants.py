"""Grants that shrink (or grow) while users are in a call's media: the coordinator's side.

An SFU token carries the grants a user had when it was minted, and the SFU checks them at admission
and at every resume. What changes afterwards must reach the sessions already connected (SPEC §2.7,
§2.10): after any operation that can change grants in a call (request-to-speak granted or revoked, a
member's role changed or the member removed, ``stop_live``, the call's settings updated),
:meth:`LiveGrants.apply` recomputes the grants of every user with a media session in the call and
sends those that changed to the SFU as one engine-neutral
:class:`~switchboard.protocol.sfu.GrantsUpdate` (``grants: null`` when the user may no longer join).
The SFU stops forwarding what is no longer granted, or removes the session
(``server/sfu/live_grants.py``). The sessions' records are updated too, so a resume with the old
token is refused (``grants_changed``) and the SDK fetches a fresh one with the current grants.

The affected user also gets ``call.permissions_updated`` with their new ``own_capabilities`` (the SDK
turns off a microphone or camera it may no longer use), unless the operation announces it itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from switchboard.errors import CallStateError, PermissionDeniedError
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.protocol.coordinator import Capability, utcnow
from switchboard.protocol.tokens import SfuGrants
from switchboard.server.coordinator.store import CallRecord

if TYPE_CHECKING:
    from switchboard.server.coordinator.service import Coordinator

log = logging.getLogger("switchboard.coordinator.grants")

GrantsHook = Callable[[p.GrantsUpdate], Awaitable[object]]
"""Delivers a grants update to the SFU that hosts the call's media."""


class LiveGrants:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator
        #: where updates go: the SFU in this process, or the channel to the SFU process
        self.sfu_hooks: list[GrantsHook] = []

    async def _current(self, call: CallRecord, user_id: str) -> tuple[list[Capability], SfuGrants | None]:
        """The user's capabilities now, and their send grants (None: they may no longer join)."""
        c = self._c
        try:
            caps = await c.require_join(call, user_id)
        except (PermissionDeniedError, CallStateError):
            return await c.capabilities(call, user_id), None
        return caps, c.sfu_grants(caps)

    async def apply(
        self, call: CallRecord, reason: str, *, users: Iterable[str] = (), announce: bool = True
    ) -> list[p.UserGrants]:
        """Bring the live sessions of ``call`` to their users' current grants; the users sent to the SFU.

        ``reason`` names the operation (``permissions_updated``, ``members_updated``,
        ``live_stopped``, ``call_updated``). The users considered are those the SFU reported in the
        call's media, plus ``users`` (the ones the operation named), whose current grants are always
        sent: a session admitted a moment ago may not be reported yet. ``announce``: send
        ``call.permissions_updated`` to each user in the media whose grants changed and who may still
        join. Errors delivering to the SFU are logged (the coordinator's state is already set, and the
        SFU refuses the old grants at the next resume anyway).
        """
        c = self._c
        changes: list[p.UserGrants] = []
        media = await c.sfu_sessions.media_users(call.cid)
        named = set(users)
        for user_id in sorted(set(media) | named):
            caps, grants = await self._current(call, user_id)
            found = [await c.sfu_sessions.get(sid) for sid in media.get(user_id, ())]
            records = [r for r in found if r is not None]
            changed = grants is None or any(r.grants != grants for r in records)
            if not changed and user_id not in named:
                continue
            if grants is not None and changed:
                for record in records:
                    await c.sfu_sessions.minted(call.cid, user_id, record.session_id, grants, record.expires)
                if announce:
                    await self._announce(call, user_id, caps)
            changes.append(p.UserGrants(user_id=user_id, grants=grants))
        if changes:
            await self.tell_sfu(p.GrantsUpdate(cid=call.cid, reason=reason, users=changes))
        return changes

    async def _announce(self, call: CallRecord, user_id: str, caps: list[Capability]) -> None:
        c = self._c
        event = m.CallPermissionsUpdatedEvent(
            created_at=utcnow(),
            cid=call.cid,
            call=await c.call_response(call),
            user_id=user_id,
            own_capabilities=caps,
        )
        await c.hub.publish(event, users=await c.member_user_ids(call.cid) | {user_id}, watchers_of=call.cid)

    async def tell_sfu(self, update: p.GrantsUpdate) -> None:
        for hook in self.sfu_hooks:
            try:
                await hook(update)
            except Exception:
                log.exception("grants update (%s) for %s failed", update.reason, update.cid)
