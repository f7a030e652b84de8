"""The SFU node registry and call placement, in memory and on a real redis-server.

Nodes register with their load and heartbeat; the first join of a call places it on the
least-loaded live node, later joins (from any coordinator) get the same node, and a call whose node
stopped heartbeating is placed again on a live one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from switchboard.server.coordinator.redis_sfu_nodes import RedisSfuNodes
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_nodes import SfuNode, SfuNodes
from switchboard.server.sfu.registration import NodeRegistration, SessionCounter

TTL = 0.4


def node(name: str, sessions: int = 0, down_tracks: int = 0) -> SfuNode:
    return SfuNode(
        id=name,
        url=f"ws://127.0.0.1:1/{name}/sfu",
        internal_url=f"http://127.0.0.1:1/{name}",
        sessions=sessions,
        down_tracks=down_tracks,
    )


@pytest.fixture(params=["memory", "redis"])
async def registries(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Callable[[], SfuNodes]]:
    """Makes registries that share one state: the view of each coordinator of a deployment."""
    if request.param == "memory":
        shared = SfuNodes(ttl=TTL)
        yield lambda: shared
        return
    prefix = f"n{uuid.uuid4().hex[:8]}:"
    stores: list[RedisStore] = []

    def make() -> SfuNodes:
        store = RedisStore.from_url(redis_url, prefix=prefix)
        stores.append(store)
        return RedisSfuNodes(store, ttl=TTL)

    yield make
    for store in stores:
        await store.close()


async def test_nodes_register_and_a_clean_stop_deregisters(registries: Callable[[], SfuNodes]) -> None:
    nodes = registries()
    assert await nodes.live() == []
    assert await nodes.place("default:nobody") is None, "no node: the coordinator's own SFU URL"
    await nodes.heartbeat(node("a", sessions=5, down_tracks=20))
    await nodes.heartbeat(node("b", sessions=1, down_tracks=2))
    assert [n.id for n in await nodes.live()] == ["b", "a"], "least-loaded first"
    assert (await nodes.live())[1].load == 25
    await nodes.deregister("b")
    assert [n.id for n in await nodes.live()] == ["a"]


async def test_new_calls_go_to_the_least_loaded_node_and_spread(registries: Callable[[], SfuNodes]) -> None:
    nodes = registries()
    await nodes.heartbeat(node("a", sessions=2, down_tracks=2))
    await nodes.heartbeat(node("b", sessions=1, down_tracks=0))
    placed = [await nodes.place(f"default:c{i}") for i in range(6)]
    assert all(p is not None and not p.moved for p in placed)
    ids = [p.node.id for p in placed if p is not None]
    # b starts 3 lighter; each placement counts until the next heartbeat, so the calls alternate after
    assert ids[:3] == ["b", "b", "b"]
    assert sorted(ids[3:]) == ["a", "a", "b"]


async def test_a_call_sticks_to_its_node_across_coordinators(registries: Callable[[], SfuNodes]) -> None:
    first, second = registries(), registries()
    await first.heartbeat(node("a"))
    await first.heartbeat(node("b"))
    placed = await first.place("default:sticky")
    assert placed is not None
    # b becomes much lighter: the call stays where its participants are
    await first.heartbeat(node(placed.node.id, sessions=50, down_tracks=100))
    again = await second.place("default:sticky")
    assert again is not None and again.node.id == placed.node.id and not again.moved
    on = await second.node_of("default:sticky")
    assert on is not None and on.id == placed.node.id


async def test_concurrent_first_joins_on_many_coordinators_agree(registries: Callable[[], SfuNodes]) -> None:
    coordinators = [registries() for _ in range(8)]
    for name in "abcd":
        await coordinators[0].heartbeat(node(name))
    for i in range(5):
        placed = await asyncio.gather(*(c.place(f"default:race{i}") for c in coordinators))
        assert len({p.node.id for p in placed if p is not None}) == 1, placed


async def test_a_node_that_stops_heartbeating_expires_and_its_calls_move(
    registries: Callable[[], SfuNodes],
) -> None:
    nodes = registries()
    await nodes.heartbeat(node("a"))
    await nodes.heartbeat(node("b", sessions=10))
    placed = await nodes.place("default:moving")
    assert placed is not None and placed.node.id == "a"
    # a dies (no more heartbeats); b keeps beating
    for _ in range(int(2.5 * TTL / 0.1)):
        await asyncio.sleep(0.1)
        await nodes.heartbeat(node("b", sessions=10))
    assert [n.id for n in await nodes.live()] == ["b"]
    assert await nodes.node_of("default:moving") is None
    moved = await nodes.place("default:moving")
    assert moved is not None and moved.node.id == "b" and moved.moved
    fresh = await nodes.place("default:new")
    assert fresh is not None and fresh.node.id == "b"
    # once all nodes are gone there is nowhere to place a call
    await nodes.deregister("b")
    assert await nodes.place("default:moving") is None


async def test_an_sfu_node_registration_heartbeats_its_load(redis_url: str) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}:"
    counter = SessionCounter(None)
    registration = NodeRegistration(
        redis_url,
        url="ws://127.0.0.1:4000/sfu",
        probe=counter.load,
        prefix=prefix,
        node_id="node-1",
        interval=0.05,
        ttl=1.0,
    )
    store = RedisStore.from_url(redis_url, prefix=prefix)
    nodes = RedisSfuNodes(store)
    try:
        await registration.start()
        [registered] = await nodes.live()
        assert (registered.id, registered.url, registered.internal_url, registered.load) == (
            "node-1",
            "ws://127.0.0.1:4000/sfu",
            "http://127.0.0.1:4000",
            0,
        )
        for session in ("s1", "s2", "s3"):
            await counter.participant_changed("default:x", "u", session, True)
        await asyncio.sleep(0.3)
        [registered] = await nodes.live()
        assert (registered.sessions, registered.down_tracks) == (3, 6), "3 sessions hearing 2 others each"
        await registration.stop()
        assert await nodes.live() == []
    finally:
        await registration.stop()
        await store.close()


async def test_a_node_without_redis_fails_to_start_with_one_line() -> None:
    registration = NodeRegistration(
        "unix:///nonexistent/redis.sock", url="ws://127.0.0.1:4000/sfu", probe=lambda: (0, 0)
    )
    with pytest.raises(RuntimeError, match="cannot register the SFU node in Redis"):
        await registration.start()
