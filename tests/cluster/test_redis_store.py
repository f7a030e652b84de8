"""RedisStore against a real redis-server: records round-trip, ids survive restarts, leases fire once."""

from __future__ import annotations

import asyncio
import time

from switchboard.protocol.coordinator import CallSettings
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.store import CallRecord, MemberRecord, RingRecord, UserRecord


def call_record(call_id: str = "c1") -> CallRecord:
    return CallRecord(
        type="default", id=call_id, created_by="alice", settings=CallSettings(), backstage=False
    )


async def test_users_calls_members_round_trip(redis_store: RedisStore) -> None:
    user = await redis_store.upsert_user(UserRecord(id="alice", name="Alice", custom={"k": [1, 2]}))
    again = await redis_store.upsert_user(UserRecord(id="alice", name="Alice B."))
    assert again.created_at == user.created_at and again.name == "Alice B."
    assert await redis_store.get_user("nobody") is None

    call, created = await redis_store.create_call(
        call_record(), [MemberRecord("alice", "admin"), MemberRecord("bob", "user")]
    )
    assert created
    same, created_again = await redis_store.create_call(call_record(), [])
    assert not created_again and same.created_at == call.created_at
    assert sorted(mb.user_id for mb in await redis_store.list_members(call.cid)) == ["alice", "bob"]
    await redis_store.upsert_members(call.cid, [MemberRecord("bob", "admin"), MemberRecord("carol", "user")])
    roles = {mb.user_id: mb.role for mb in await redis_store.list_members(call.cid)}
    assert roles == {"alice": "admin", "bob": "admin", "carol": "user"}
    assert await redis_store.remove_members(call.cid, ["carol", "zed"]) == ["carol"]

    call.custom = {"topic": "x"}
    await redis_store.save_call(call)
    stored = await redis_store.get_call(call.cid)
    assert stored is not None and stored.custom == {"topic": "x"} and stored.settings == call.settings


async def test_rings_per_call_and_all(redis_store: RedisStore) -> None:
    first = RingRecord("default:c1", "alice", {"bob": "pending"}, deadline=time.time() + 30)
    second = RingRecord("default:c2", "bob", {"carol": "pending"}, deadline=float("inf"))
    await redis_store.save_ring(first)
    await redis_store.save_ring(second)
    first.callees["bob"] = "accepted"
    await redis_store.save_ring(first)
    assert [r.callees for r in await redis_store.call_rings("default:c1")] == [{"bob": "accepted"}]
    assert [r.ring_id for r in await redis_store.list_rings()] == [first.ring_id, second.ring_id]
    assert (await redis_store.call_rings("default:c2"))[0].deadline == float("inf")
    await redis_store.delete_ring(first.ring_id)
    assert [r.ring_id for r in await redis_store.list_rings()] == [second.ring_id]
    assert await redis_store.call_rings("default:c1") == []


async def test_event_ids_and_epoch_survive_a_new_store(redis_url: str) -> None:
    prefix = f"restart{time.monotonic_ns()}:"
    first = RedisStore.from_url(redis_url, prefix=prefix)
    epoch = await first.event_epoch()
    ids = [(await first.append_event({"type": "t", "n": n}, {"alice"}, {"conn1"})).id for n in range(3)]
    assert ids == [1, 2, 3]
    await first.close()

    second = RedisStore.from_url(redis_url, prefix=prefix)  # a coordinator restarted
    assert await second.event_epoch() == epoch
    assert await second.last_event_id() == 3
    assert (await second.append_event({"type": "t"}, set(), set())).id == 4
    replay = await second.events_after(1)
    assert replay is not None
    assert [(e.id, e.payload.get("n"), e.users, e.connections) for e in replay[:2]] == [
        (2, 1, frozenset({"alice"}), frozenset({"conn1"})),
        (3, 2, frozenset({"alice"}), frozenset({"conn1"})),
    ]
    assert replay[0].payload["id"] == 2
    assert await second.events_after(4) == []
    await second.close()


async def test_ids_from_concurrent_writers_are_unique_and_in_stream_order(redis_url: str) -> None:
    prefix = f"concurrent{time.monotonic_ns()}:"
    writers = [RedisStore.from_url(redis_url, prefix=prefix) for _ in range(3)]
    results = await asyncio.gather(
        *(
            w.append_event({"type": "t", "w": i}, set(), set())
            for i, w in enumerate(writers)
            for _ in range(50)
        )
    )
    assert sorted(e.id for e in results) == list(range(1, 151))
    replay = await writers[0].events_after(0)
    assert replay is not None and [e.id for e in replay] == list(range(1, 151))
    for w in writers:
        await w.close()


async def test_events_out_of_the_buffer_cannot_be_replayed(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=f"buffer{time.monotonic_ns()}:", event_buffer=5)
    for n in range(8):
        await store.append_event({"type": "t", "n": n}, set(), set())
    assert await store.events_after(1) is None
    tail = await store.events_after(3)
    assert tail is not None and [e.id for e in tail] == [4, 5, 6, 7, 8]
    await store.close()


async def test_an_overdue_ring_is_claimed_once_until_its_lease_ends(redis_url: str) -> None:
    prefix = f"lease{time.monotonic_ns()}:"
    a = RedisStore.from_url(redis_url, prefix=prefix)
    b = RedisStore.from_url(redis_url, prefix=prefix)
    overdue = RingRecord("default:c1", "alice", {"bob": "pending"}, deadline=time.time() - 1)
    later = RingRecord("default:c2", "alice", {"bob": "pending"}, deadline=time.time() + 60)
    await a.save_ring(overdue)
    await a.save_ring(later)
    claims = await asyncio.gather(*(s.claim_due_rings(time.time(), lease=0.3) for s in (a, b, a, b)))
    assert sorted(pair for claim in claims for pair in claim) == [("default:c1", overdue.ring_id)]
    # saving the ring again keeps the lease; the claimer died without finishing: due again after it
    await b.save_ring(overdue)
    assert await b.claim_due_rings(time.time(), lease=0.3) == []
    await asyncio.sleep(0.4)
    assert await b.claim_due_rings(time.time(), lease=0.3) == [("default:c1", overdue.ring_id)]
    await b.delete_ring(overdue.ring_id)
    await asyncio.sleep(0.4)
    assert await a.claim_due_rings(time.time(), lease=0.3) == []
    await a.close()
    await b.close()


async def test_lock_is_shared_between_clients(redis_url: str) -> None:
    prefix = f"lock{time.monotonic_ns()}:"
    a = RedisStore.from_url(redis_url, prefix=prefix)
    b = RedisStore.from_url(redis_url, prefix=prefix)
    order: list[str] = []

    async def hold(store: RedisStore, name: str) -> None:
        async with store.lock("ring:x"):
            order.append(f"{name} in")
            await asyncio.sleep(0.1)
            order.append(f"{name} out")

    await asyncio.gather(hold(a, "a"), hold(b, "b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    await a.close()
    await b.close()


async def test_a_redis_that_lost_its_data_starts_a_new_epoch(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=f"flush{time.monotonic_ns()}:")
    for _ in range(3):
        await store.append_event({"type": "t"}, set(), set())
    before = await store.event_epoch()
    for key in await store.redis.keys(store.prefix + "*"):  # what a FLUSHALL or a lost Redis does
        await store.redis.delete(key)
    stored = await store.append_event({"type": "t"}, set(), set())
    assert stored.id == 1
    assert await store.event_epoch() != before, "ids start over only under a new epoch"
    await store.close()
