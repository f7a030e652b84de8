"""The open-calls count behind ``max_open_calls_per_user``, in both stores: created calls count until
they end, per creator."""

from __future__ import annotations

import pytest

from switchboard.protocol.coordinator import utcnow
from switchboard.server.coordinator.call_types import CALL_TYPES
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.store import CallRecord, MemoryStore, Store


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
async def test_open_calls_are_counted_per_creator_until_they_end(
    shared: bool, redis_store: RedisStore
) -> None:
    store: Store = redis_store if shared else MemoryStore()
    settings = CALL_TYPES["default"].settings
    for call_id, creator in [("a", "alice"), ("b", "alice"), ("c", "bob")]:
        _, created = await store.create_call(
            CallRecord("default", call_id, creator, settings, backstage=False), []
        )
        assert created
    _, created = await store.create_call(CallRecord("default", "a", "alice", settings, backstage=False), [])
    assert not created  # getting it again is not another open call
    assert (await store.open_calls_created_by("alice"), await store.open_calls_created_by("bob")) == (2, 1)
    call = await store.get_call("default:a")
    assert call is not None
    call.ended_at = utcnow()
    await store.save_call(call)
    await store.save_call(call)  # saved again once ended: still not counted
    assert await store.open_calls_created_by("alice") == 1
    assert await store.open_calls_created_by("nobody") == 0
