"""Pure logic, no sockets: tokens, rate limiting, capabilities, the event log, Observable."""

from __future__ import annotations

import asyncio
import time

import pytest

from switchboard import Observable
from switchboard.errors import AuthenticationError
from switchboard.protocol.coordinator import CallSettingsRequest, Capability, RingSettingsRequest
from switchboard.protocol.tokens import (
    SfuGrants,
    create_admin_token,
    create_sfu_token,
    create_user_token,
    verify_admin_token,
    verify_sfu_token,
    verify_user_token,
)
from switchboard.server.coordinator.call_types import CALL_TYPES, apply_override, own_capabilities
from switchboard.server.coordinator.ratelimit import RateLimiter
from switchboard.server.coordinator.store import MemoryStore

SECRET = "a-secret-that-is-long-enough-for-hs256-000"


def test_user_token_round_trip_and_expiry() -> None:
    assert verify_user_token(SECRET, create_user_token(SECRET, "alice")).user_id == "alice"
    with pytest.raises(AuthenticationError, match="expired"):
        verify_user_token(SECRET, create_user_token(SECRET, "alice", ttl=-1))
    with pytest.raises(AuthenticationError):
        verify_user_token(SECRET + "x", create_user_token(SECRET, "alice"))
    with pytest.raises(ValueError):
        create_user_token(SECRET, "")


def test_sfu_and_admin_tokens_are_not_interchangeable() -> None:
    sfu = create_sfu_token(SECRET, user_id="a", call_cid="default:x", session_id="s", grants=SfuGrants())
    assert verify_sfu_token(SECRET, sfu).call_cid == "default:x"
    verify_admin_token(SECRET, create_admin_token(SECRET))
    for wrong in (sfu, create_user_token(SECRET, "a")):
        with pytest.raises(AuthenticationError):
            verify_admin_token(SECRET, wrong)
    with pytest.raises(AuthenticationError):
        verify_sfu_token(SECRET, create_admin_token(SECRET))


def test_rate_limiter_bursts_then_refills() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    assert [limiter.check("u") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.check("u")
    assert 0 < wait <= 0.1
    assert limiter.check("other") == 0.0
    time.sleep(0.11)
    assert limiter.check("u") == 0.0


def test_capabilities_follow_role_type_and_backstage() -> None:
    live = CALL_TYPES["livestream"]
    viewer_live = own_capabilities(live, "user", backstage=False, settings=live.settings)
    assert viewer_live == [Capability.READ_CALL, Capability.JOIN_CALL]
    viewer_backstage = own_capabilities(live, "user", backstage=True, settings=live.settings)
    assert viewer_backstage == [Capability.READ_CALL]
    host = own_capabilities(live, "host", backstage=True, settings=live.settings)
    assert Capability.JOIN_BACKSTAGE in host and Capability.SEND_VIDEO in host
    room = CALL_TYPES["audio_room"]
    assert Capability.SEND_VIDEO not in own_capabilities(
        room, "admin", backstage=False, settings=room.settings
    )


def test_settings_override_changes_only_what_it_names() -> None:
    base = CALL_TYPES["default"].settings
    merged = apply_override(base, CallSettingsRequest(ring=RingSettingsRequest(incoming_call_timeout_ms=500)))
    assert merged.ring.incoming_call_timeout_ms == 500
    assert merged.ring.auto_cancel_timeout_ms == base.ring.auto_cancel_timeout_ms
    assert merged.audio == base.audio
    assert apply_override(base, None) is base


async def test_event_log_replays_in_order_and_reports_gaps() -> None:
    store = MemoryStore(event_buffer=3)
    ids = [(await store.append_event({"type": "x"}, {"u"}, set())).id for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    after_two = await store.events_after(2)
    assert after_two is not None and [e.id for e in after_two] == [3, 4, 5]
    assert await store.events_after(5) == []
    assert await store.events_after(0) is None  # 1 and 2 already left the buffer


async def test_observable_current_value_then_changes() -> None:
    obs: Observable[int] = Observable(1)
    seen: list[int] = []
    unsubscribe = obs.listen(seen.append)
    got: list[int] = []

    async def read() -> None:
        async for value in obs:
            got.append(value)
            if value == 3:
                return

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0)
    obs._set(2)
    obs._set(2)  # no change, no notification
    obs._set(3)
    await reader
    unsubscribe()
    obs._set(4)
    assert got == [1, 2, 3] and seen == [2, 3]
    assert await obs.wait_for(lambda v: v == 4, timeout=1) == 4
