"""Ringing (SPEC §2.6, §2.6.1). The server owns every ring's state and deadline.

A ring has one caller and callees (members other than the caller) and an id of its own; a call may
ring several times at once (a member rung into an ongoing call while an earlier ring still rings
others), but one user is never rung twice for the same call at the same time. Each user's side of a
ring ends exactly once, with a ``call.ring_ended`` event to that user's connections saying how:

- a callee accepts: that callee's ring ends ``accepted``, and so does the caller's; other callees
  keep ringing until they answer or the deadline passes;
- a callee rejects: that callee's ring ends ``rejected``; once every callee has rejected, the
  caller's ring ends ``rejected`` too (with the last reason). A rejection never ends the call;
- the caller cancels (``reject`` by the caller), or leaves the call before any callee accepted
  (its last media session leaves, or the SDK's ``leave()``): every pending callee's ring ends
  ``cancelled``;
- the deadline passes: pending callees' rings end ``missed``; the caller's ends ``rejected`` with
  reason ``timeout``. Deadlines are wall-clock times kept with the ring in the store, so a restarted
  server re-arms them (:meth:`Ringer.restore`), and every coordinator sharing the store sweeps for
  overdue rings (:meth:`Store.claim_due_rings` leases each to one sweeper), so a deadline fires
  when the coordinator that started the ring died;
- the call ends, or a callee is removed from the members: their rings end ``cancelled``.

Rings still in progress are listed per user by :meth:`Ringer.pending_for` (``GET /api/v1/rings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard.errors import CallStateError, InvalidRequestError, PermissionDeniedError
from switchboard.protocol import coordinator as m
from switchboard.protocol.coordinator import RejectReason, RingOutcome, utcnow
from switchboard.server.coordinator.store import CallRecord, RingRecord

if TYPE_CHECKING:
    from switchboard.server.coordinator.service import Coordinator

log = logging.getLogger("switchboard.coordinator.ringing")

#: How often each coordinator looks for overdue rings nobody ended (s).
SWEEP_INTERVAL = 0.25
#: How long past its deadline a ring is left to the coordinator that armed a timer for it (s).
SWEEP_GRACE = 0.5
#: How long a claimed overdue ring is leased to the claiming coordinator (s).
SWEEP_LEASE = 10.0


class Ringer:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def _lock(self, cid: str) -> AbstractAsyncContextManager[Any]:
        """Serialises the ring changes of one call, across every coordinator sharing the store."""
        return self._c.store.lock(f"ring:{cid}")

    async def ring(self, call: CallRecord, caller: str, *, video: bool, member_ids: list[str] | None) -> str:
        """Start a ring of ``call`` by ``caller``; returns its ring id.

        Rings the listed members, or every member but the caller. Members already ringing for
        this call (an earlier ring still pending for them) are left to that ring; when nobody is
        left to ring, CallStateError.
        """
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
            rings = await self._c.store.call_rings(call.cid)
            if any(r.caller == caller and r.caller_active for r in rings):
                raise CallStateError(f"call {call.cid} is already ringing: {caller!r} rang it already")
            ringing = {uid for r in rings for uid in r.pending()}
            targets = [uid for uid in targets if uid not in ringing]
            if not targets:
                raise CallStateError(f"call {call.cid} is already ringing for every member asked")
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
                    ring_id=ring.ring_id,
                ),
                users=set(targets),
            )
            self._arm(ring)
            return ring.ring_id

    def _arm(self, ring: RingRecord) -> None:
        if ring.deadline == float("inf"):
            return
        delay = max(0.0, ring.deadline - time.time())
        self._timers[ring.ring_id] = asyncio.get_running_loop().create_task(
            self._deadline(ring.cid, ring.ring_id, delay)
        )

    async def restore(self) -> None:
        """Re-arm the deadline of every ring in the store (a restarted server); overdue ones end now."""
        for ring in await self._c.store.list_rings():
            if ring.ring_id not in self._timers:
                self._arm(ring)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """End rings overdue by more than SWEEP_GRACE s that no timer ended (their coordinator died)."""
        unreachable = False  # the store (Redis) went away: said once in one line, not 4 tracebacks a second
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                due = await self._c.store.claim_due_rings(time.time() - SWEEP_GRACE, SWEEP_LEASE)
                if unreachable:
                    log.warning("sweeping overdue rings again: the store answers")
                    unreachable = False
                for cid, ring_id in due:
                    await self._deadline(cid, ring_id, 0.0)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if not unreachable:
                    log.error("cannot sweep overdue rings: the store is unreachable (%s); retrying", exc)
                unreachable = True
            except Exception:
                log.exception("sweeping overdue rings failed; retrying")

    async def pending_for(self, user_id: str) -> list[tuple[RingRecord, bool]]:
        """The rings still ringing for ``user_id`` or started by them and still active, oldest first.

        Each comes with whether it is outgoing (``user_id`` is its caller).
        """
        found: list[tuple[RingRecord, bool]] = []
        for ring in await self._c.store.list_rings():
            if ring.caller == user_id and ring.caller_active:
                found.append((ring, True))
            elif ring.callees.get(user_id) == "pending":
                found.append((ring, False))
        found.sort(key=lambda item: item[0].created_at)
        return found

    async def _ring_ended(
        self,
        call: CallRecord,
        ring: RingRecord,
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
                ring_id=ring.ring_id,
            ),
            users={user_id},
        )

    async def _finish_if_done(self, ring: RingRecord) -> None:
        if ring.caller_active or ring.pending():
            await self._c.store.save_ring(ring)
            return
        await self._c.store.delete_ring(ring.ring_id)
        timer = self._timers.pop(ring.ring_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _ring_for_callee(self, call: CallRecord, user_id: str) -> RingRecord:
        for ring in await self._c.store.call_rings(call.cid):
            if ring.callees.get(user_id) == "pending":
                return ring
        raise CallStateError(f"call {call.cid} is not ringing for {user_id!r}")

    async def accept(self, call: CallRecord, user_id: str) -> None:
        async with self._lock(call.cid):
            ring = await self._ring_for_callee(call, user_id)
            ring.callees[user_id] = "accepted"
            user = await self._c.user_response(user_id)
            await self._c.broadcast(
                call,
                m.CallAcceptedEvent(
                    created_at=utcnow(), cid=call.cid, call=await self._c.call_response(call), user=user
                ),
            )
            await self._ring_ended(call, ring, user_id, outgoing=False, outcome=RingOutcome.ACCEPTED)
            if ring.caller_active:
                ring.caller_active = False
                await self._ring_ended(call, ring, ring.caller, outgoing=True, outcome=RingOutcome.ACCEPTED)
            await self._finish_if_done(ring)

    async def reject(self, call: CallRecord, user_id: str, reason: RejectReason) -> None:
        """A callee declines its ring (the call goes on for the others); the caller cancels theirs."""
        async with self._lock(call.cid):
            rings = await self._c.store.call_rings(call.cid)
            outgoing = next((r for r in rings if r.caller == user_id and r.caller_active), None)
            incoming = next((r for r in rings if r.callees.get(user_id) == "pending"), None)
            if outgoing is not None and (incoming is None or reason is RejectReason.CANCEL):
                await self._cancel_by_caller(call, outgoing)
                return
            if incoming is None:
                raise CallStateError(f"call {call.cid} is not ringing for {user_id!r}")
            ring = incoming
            ring.callees[user_id] = "rejected"
            await self._c.broadcast(
                call,
                m.CallRejectedEvent(
                    created_at=utcnow(),
                    cid=call.cid,
                    call=await self._c.call_response(call),
                    user=await self._c.user_response(user_id),
                    reason=reason,
                ),
            )
            await self._ring_ended(
                call, ring, user_id, outgoing=False, outcome=RingOutcome.REJECTED, reason=reason
            )
            await self._end_caller_if_nobody_left(call, ring, reason)
            await self._finish_if_done(ring)

    async def _cancel_by_caller(self, call: CallRecord, ring: RingRecord) -> None:
        await self._c.broadcast(
            call,
            m.CallRejectedEvent(
                created_at=utcnow(),
                cid=call.cid,
                call=await self._c.call_response(call),
                user=await self._c.user_response(ring.caller),
                reason=RejectReason.CANCEL,
            ),
        )
        await self._cancel(call, ring)

    async def caller_left(self, call: CallRecord, user_id: str) -> None:
        """``user_id`` left ``call``: a ring they started that nobody accepted yet is cancelled."""
        async with self._lock(call.cid):
            for ring in await self._c.store.call_rings(call.cid):
                if ring.caller == user_id and ring.caller_active and "accepted" not in ring.callees.values():
                    await self._cancel_by_caller(call, ring)

    async def _end_caller_if_nobody_left(
        self, call: CallRecord, ring: RingRecord, reason: RejectReason
    ) -> None:
        """Nobody is still ringing and nobody accepted: the caller's ring ends as rejected."""
        if ring.caller_active and not ring.pending() and "accepted" not in ring.callees.values():
            ring.caller_active = False
            await self._ring_ended(
                call, ring, ring.caller, outgoing=True, outcome=RingOutcome.REJECTED, reason=reason
            )

    async def _cancel(self, call: CallRecord, ring: RingRecord) -> None:
        for callee in ring.pending():
            ring.callees[callee] = "cancelled"
            await self._ring_ended(
                call, ring, callee, outgoing=False, outcome=RingOutcome.CANCELLED, reason=RejectReason.CANCEL
            )
        if ring.caller_active:
            ring.caller_active = False
            await self._ring_ended(
                call,
                ring,
                ring.caller,
                outgoing=True,
                outcome=RingOutcome.CANCELLED,
                reason=RejectReason.CANCEL,
            )
        await self._finish_if_done(ring)

    async def _deadline(self, cid: str, ring_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock(cid):
            ring = next((r for r in await self._c.store.call_rings(cid) if r.ring_id == ring_id), None)
            call = await self._c.store.get_call(cid)
            if ring is None or call is None:
                self._timers.pop(ring_id, None)
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
                await self._ring_ended(call, ring, callee, outgoing=False, outcome=RingOutcome.MISSED)
            if ring.caller_active:
                ring.caller_active = False
                await self._ring_ended(
                    call,
                    ring,
                    ring.caller,
                    outgoing=True,
                    outcome=RingOutcome.REJECTED,
                    reason=RejectReason.TIMEOUT,
                )
            self._timers.pop(ring_id, None)
            await self._finish_if_done(ring)

    async def end_for_call(self, call: CallRecord) -> None:
        async with self._lock(call.cid):
            for ring in await self._c.store.call_rings(call.cid):
                await self._cancel(call, ring)

    async def members_removed(self, call: CallRecord, user_ids: list[str]) -> None:
        async with self._lock(call.cid):
            for ring in await self._c.store.call_rings(call.cid):
                if ring.caller in user_ids:
                    await self._cancel(call, ring)
                    continue
                for uid in user_ids:
                    if ring.callees.get(uid) == "pending":
                        ring.callees[uid] = "cancelled"
                        await self._ring_ended(
                            call,
                            ring,
                            uid,
                            outgoing=False,
                            outcome=RingOutcome.CANCELLED,
                            reason=RejectReason.CANCEL,
                        )
                await self._end_caller_if_nobody_left(call, ring, RejectReason.CANCEL)
                await self._finish_if_done(ring)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for timer in self._timers.values():
            timer.cancel()
        for timer in list(self._timers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        self._timers.clear()
