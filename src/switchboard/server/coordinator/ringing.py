"""Ringing (SPEC §2.6). The server owns every ring's deadline.

A ring has one caller and callees (the members other than the caller). Each user's ring ends
exactly once, with a ``call.ring_ended`` event to that user's connections saying how:

- a callee accepts: that callee's ring ends ``accepted``, and so does the caller's; other callees
  keep ringing until they answer or the deadline passes;
- a callee rejects: that callee's ring ends ``rejected``; once every callee has rejected, the
  caller's ring ends ``rejected`` too (with the last reason);
- the caller cancels (``reject`` by the caller): every pending callee's ring ends ``cancelled``;
- the deadline passes: pending callees' rings end ``missed``; the caller's ends ``rejected`` with
  reason ``timeout``;
- the call ends, or a callee is removed from the members: their rings end ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from switchboard.errors import CallStateError, InvalidRequestError, PermissionDeniedError
from switchboard.protocol import coordinator as m
from switchboard.protocol.coordinator import RejectReason, RingOutcome, utcnow
from switchboard.server.coordinator.store import CallRecord, RingRecord

if TYPE_CHECKING:
    from switchboard.server.coordinator.service import Coordinator


class Ringer:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    async def ring(self, call: CallRecord, caller: str, *, video: bool, member_ids: list[str] | None) -> None:
        self._c.require_active(call)
        members = await self._c.store.list_members(call.cid)
        member_ids_all = {member.user_id for member in members}
        if caller not in member_ids_all:
            raise PermissionDeniedError(f"only members of {call.cid} can ring it; {caller!r} is not one")
        if member_ids is not None:
            unknown = set(member_ids) - member_ids_all
            if unknown:
                raise InvalidRequestError(f"not members of {call.cid}: {sorted(unknown)}")
        targets = [uid for uid in (member_ids or [mb.user_id for mb in members]) if uid != caller]
        if not targets:
            raise InvalidRequestError(f"call {call.cid} has no members to ring besides the caller")
        async with self._lock(call.cid):
            existing = await self._c.store.get_ring(call.cid)
            if existing is not None:
                raise CallStateError(f"call {call.cid} is already ringing")
            timeout_ms = call.settings.ring.incoming_call_timeout_ms
            deadline = time.time() + timeout_ms / 1000 if timeout_ms > 0 else float("inf")
            ring = RingRecord(call.cid, caller, dict.fromkeys(targets, "pending"), deadline, video)
            await self._c.store.save_ring(ring)
            state = await self._c.call_state(call, caller)
            await self._c.hub.publish(
                m.CallRingEvent(
                    created_at=utcnow(),
                    cid=call.cid,
                    call=state.call,
                    user=await self._c.user_response(caller),
                    members=state.members,
                    video=video,
                ),
                users=set(targets),
            )
            if timeout_ms > 0:
                self._timers[call.cid] = asyncio.get_running_loop().create_task(
                    self._deadline(call, timeout_ms / 1000)
                )

    async def _ring_ended(
        self,
        call: CallRecord,
        user_id: str,
        *,
        outgoing: bool,
        outcome: RingOutcome,
        reason: RejectReason | None = None,
    ) -> None:
        await self._c.hub.publish(
            m.CallRingEndedEvent(
                created_at=utcnow(),
                cid=call.cid,
                call=await self._c.call_response(call),
                user_id=user_id,
                outgoing=outgoing,
                outcome=outcome,
                reason=reason,
            ),
            users={user_id},
        )

    async def _finish_if_done(self, ring: RingRecord) -> None:
        if ring.caller_active or ring.pending():
            await self._c.store.save_ring(ring)
            return
        await self._c.store.delete_ring(ring.cid)
        timer = self._timers.pop(ring.cid, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _active_ring(self, call: CallRecord) -> RingRecord:
        ring = await self._c.store.get_ring(call.cid)
        if ring is None:
            raise CallStateError(f"call {call.cid} is not ringing")
        return ring

    async def accept(self, call: CallRecord, user_id: str) -> None:
        async with self._lock(call.cid):
            ring = await self._active_ring(call)
            if ring.callees.get(user_id) != "pending":
                raise CallStateError(f"call {call.cid} is not ringing for {user_id!r}")
            ring.callees[user_id] = "accepted"
            user = await self._c.user_response(user_id)
            await self._c.broadcast(
                call,
                m.CallAcceptedEvent(
                    created_at=utcnow(), cid=call.cid, call=await self._c.call_response(call), user=user
                ),
            )
            await self._ring_ended(call, user_id, outgoing=False, outcome=RingOutcome.ACCEPTED)
            if ring.caller_active:
                ring.caller_active = False
                await self._ring_ended(call, ring.caller, outgoing=True, outcome=RingOutcome.ACCEPTED)
            await self._finish_if_done(ring)

    async def reject(self, call: CallRecord, user_id: str, reason: RejectReason) -> None:
        async with self._lock(call.cid):
            ring = await self._active_ring(call)
            user = await self._c.user_response(user_id)
            response = await self._c.call_response(call)
            if user_id == ring.caller:
                if not ring.caller_active:
                    raise CallStateError(f"your ring of {call.cid} has already ended")
                await self._c.broadcast(
                    call,
                    m.CallRejectedEvent(
                        created_at=utcnow(),
                        cid=call.cid,
                        call=response,
                        user=user,
                        reason=RejectReason.CANCEL,
                    ),
                )
                await self._cancel(call, ring)
                return
            if ring.callees.get(user_id) != "pending":
                raise CallStateError(f"call {call.cid} is not ringing for {user_id!r}")
            ring.callees[user_id] = "rejected"
            await self._c.broadcast(
                call,
                m.CallRejectedEvent(
                    created_at=utcnow(), cid=call.cid, call=response, user=user, reason=reason
                ),
            )
            await self._ring_ended(call, user_id, outgoing=False, outcome=RingOutcome.REJECTED, reason=reason)
            await self._end_caller_if_nobody_left(call, ring, reason)
            await self._finish_if_done(ring)

    async def _end_caller_if_nobody_left(
        self, call: CallRecord, ring: RingRecord, reason: RejectReason
    ) -> None:
        """Nobody is still ringing and nobody accepted: the caller's ring ends as rejected."""
        if ring.caller_active and not ring.pending() and "accepted" not in ring.callees.values():
            ring.caller_active = False
            await self._ring_ended(
                call, ring.caller, outgoing=True, outcome=RingOutcome.REJECTED, reason=reason
            )

    async def _cancel(self, call: CallRecord, ring: RingRecord) -> None:
        for callee in ring.pending():
            ring.callees[callee] = "cancelled"
            await self._ring_ended(
                call, callee, outgoing=False, outcome=RingOutcome.CANCELLED, reason=RejectReason.CANCEL
            )
        if ring.caller_active:
            ring.caller_active = False
            await self._ring_ended(
                call, ring.caller, outgoing=True, outcome=RingOutcome.CANCELLED, reason=RejectReason.CANCEL
            )
        await self._finish_if_done(ring)

    async def _deadline(self, call: CallRecord, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock(call.cid):
            ring = await self._c.store.get_ring(call.cid)
            if ring is None:
                return
            missed = ring.pending()
            for callee in missed:
                ring.callees[callee] = "missed"
            if missed:
                await self._c.broadcast(
                    call,
                    m.CallMissedEvent(
                        created_at=utcnow(),
                        cid=call.cid,
                        call=await self._c.call_response(call),
                        user_ids=missed,
                    ),
                )
            for callee in missed:
                await self._ring_ended(call, callee, outgoing=False, outcome=RingOutcome.MISSED)
            if ring.caller_active:
                ring.caller_active = False
                await self._ring_ended(
                    call,
                    ring.caller,
                    outgoing=True,
                    outcome=RingOutcome.REJECTED,
                    reason=RejectReason.TIMEOUT,
                )
            self._timers.pop(call.cid, None)
            await self._finish_if_done(ring)

    async def end_for_call(self, call: CallRecord) -> None:
        async with self._lock(call.cid):
            ring = await self._c.store.get_ring(call.cid)
            if ring is not None:
                await self._cancel(call, ring)

    async def members_removed(self, call: CallRecord, user_ids: list[str]) -> None:
        async with self._lock(call.cid):
            ring = await self._c.store.get_ring(call.cid)
            if ring is None:
                return
            if ring.caller in user_ids:
                await self._cancel(call, ring)
                return
            for uid in user_ids:
                if ring.callees.get(uid) == "pending":
                    ring.callees[uid] = "cancelled"
                    await self._ring_ended(
                        call, uid, outgoing=False, outcome=RingOutcome.CANCELLED, reason=RejectReason.CANCEL
                    )
            await self._end_caller_if_nobody_left(call, ring, RejectReason.CANCEL)
            await self._finish_if_done(ring)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for timer in list(self._timers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        self._timers.clear()
