"""Custom events: an application's own JSON sent to everyone in a call through the coordinator.

``POST /api/v1/calls/{type}/{id}/event`` with ``{"custom": {...}}``. The event (``type: "custom"``)
goes through the event log like every call event: it gets an id, reaches the call's members and
every connection watching the call (each joined participant watches it), and is replayed to a
client that reconnects. For low-latency messages between joined participants, see the SFU's
``send_message`` (``docs/protocol.md``).

Limits: ``custom`` up to :data:`switchboard.protocol.coordinator.MAX_CUSTOM_EVENT_BYTES` bytes of
compact JSON (else 413 ``payload_too_large``); per user and call, ``rate`` events per second with
bursts of ``burst`` (else 429 ``rate_limited`` with ``Retry-After``), on top of the per-user request
rate every route has.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from switchboard.errors import PayloadTooLargeError, PermissionDeniedError, RateLimitedError
from switchboard.protocol import coordinator as m
from switchboard.protocol.coordinator import Capability, utcnow
from switchboard.server.coordinator.ratelimit import RateLimiter

if TYPE_CHECKING:
    from switchboard.server.coordinator.service import Coordinator

#: custom events one user may send to one call: per second on average, and at once
CUSTOM_EVENT_RATE = 10.0
CUSTOM_EVENT_BURST = 20


def custom_payload_bytes(custom: dict[str, object]) -> int:
    """The size the limit applies to: compact JSON, UTF-8, bytes."""
    return len(json.dumps(custom, separators=(",", ":"), ensure_ascii=False).encode())


class CustomEvents:
    """Sends custom events for one coordinator (and holds their per-user-and-call rate limit)."""

    def __init__(
        self, coordinator: Coordinator, *, rate: float = CUSTOM_EVENT_RATE, burst: int = CUSTOM_EVENT_BURST
    ) -> None:
        self._coordinator = coordinator
        self._limiter = RateLimiter(rate, burst)

    async def send(
        self, user_id: str, call_type: str, call_id: str, request: m.SendCustomEventRequest
    ) -> m.SendCustomEventResponse:
        """Store and send a ``custom`` event from ``user_id`` to the call.

        The sender must be able to read the call and be in it: a member, or a user with a media
        session in it. Errors: 404 unknown call, 409 ended call, 403 not in the call, 413 payload
        over the limit, 429 over the rate.
        """
        c = self._coordinator
        call = await c.authorized_call(user_id, call_type, call_id, Capability.READ_CALL)
        if user_id not in await c.member_user_ids(call.cid) and not await c.has_media_session(
            call.cid, user_id
        ):
            raise PermissionDeniedError(
                f"user {user_id!r} is neither a member of {call.cid} nor joined to it: cannot send events"
            )
        size = custom_payload_bytes(request.custom)
        if size > m.MAX_CUSTOM_EVENT_BYTES:
            raise PayloadTooLargeError(
                f"custom event is {size} bytes of JSON; the limit is {m.MAX_CUSTOM_EVENT_BYTES}"
            )
        retry_after = self._limiter.check(f"{user_id}\n{call.cid}")
        if retry_after:
            raise RateLimitedError(
                f"too many custom events to {call.cid}; retry in {retry_after:.2f}s", retry_after=retry_after
            )
        event = m.CustomEvent(
            created_at=utcnow(), cid=call.cid, user=await c.user_response(user_id), custom=request.custom
        )
        stored = await c.hub.publish(event, users=await c.member_user_ids(call.cid), watchers_of=call.cid)
        return m.SendCustomEventResponse(event_id=stored.id)
