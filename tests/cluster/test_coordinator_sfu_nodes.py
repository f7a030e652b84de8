"""Coordinators on Redis that start their own SFU process (``switchboard coordinator --redis``
without ``--sfu-url``): each SFU process registers as a node, calls spread over both nodes, and a
call's end reaches its node whichever coordinator ended it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from switchboard.protocol import coordinator as m
from switchboard.protocol.tokens import create_admin_token, create_user_token, generate_key_pair
from switchboard.server.coordinator.redis_sfu_nodes import RedisSfuNodes
from switchboard.server.coordinator.sfu_nodes import SfuNode
from switchboard.server.coordinator.standalone import CoordinatorServer

API_KEY, API_SECRET = generate_key_pair()


@pytest.fixture
async def coordinators(redis_url: str) -> AsyncIterator[list[CoordinatorServer]]:
    prefix = f"cn{uuid.uuid4().hex[:8]}:"
    servers = [
        CoordinatorServer(redis_url=redis_url, api_key=API_KEY, api_secret=API_SECRET, prefix=prefix)
        for _ in range(2)
    ]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        yield servers
    finally:
        await asyncio.gather(*(s.stop() for s in servers))


async def post(http: aiohttp.ClientSession, url: str, user_id: str, body: object) -> str:
    headers = {"Authorization": f"Bearer {create_user_token(API_SECRET, user_id)}", "X-Api-Key": API_KEY}
    async with http.post(url, json=body, headers=headers) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        return text


async def sfu_rooms(http: aiohttp.ClientSession, sfu_url: str) -> dict[str, object]:
    stats_url = sfu_url.replace("ws://", "http://", 1) + "/stats"
    headers = {"Authorization": f"Bearer {create_admin_token(API_SECRET)}"}
    async with http.get(stats_url, headers=headers) as resp:
        assert resp.status == 200
        rooms: dict[str, object] = (await resp.json())["rooms"]
        return rooms


async def test_own_sfu_processes_are_nodes_and_end_call_reaches_the_calls_node(
    coordinators: list[CoordinatorServer],
) -> None:
    first, second = coordinators
    async with aiohttp.ClientSession() as http:
        urls = {}
        for server, call_id in ((first, "on-one"), (second, "on-two")):
            text = await post(
                http, f"{server.url}/api/v1/calls/default/{call_id}/join", "alice", {"create": True}
            )
            urls[call_id] = m.JoinCallResponse.model_validate_json(text).credentials.server.url
        assert set(urls.values()) == {first.sfu_url, second.sfu_url}, "one call on each node"

        # open the call's room on its node with a real session, then end it from the coordinator
        # whose own SFU it is not on
        call_id = "on-one"
        node_url = urls[call_id]
        other = first if node_url == second.sfu_url else second
        async with http.ws_connect(node_url) as ws:
            joined = await post(http, f"{other.url}/api/v1/calls/default/{call_id}/join", "bob", {})
            token = m.JoinCallResponse.model_validate_json(joined).credentials.token
            await ws.send_json({"type": "join", "token": token})
            while (await ws.receive_json()).get("type") != "join_response":
                pass
            assert f"default:{call_id}" in await sfu_rooms(http, node_url)
            await post(http, f"{other.url}/api/v1/calls/default/{call_id}/mark_ended", "alice", {})
            for _ in range(50):
                if f"default:{call_id}" not in await sfu_rooms(http, node_url):
                    break
                await asyncio.sleep(0.1)
            assert f"default:{call_id}" not in await sfu_rooms(http, node_url), "the node closed the room"


async def test_without_a_live_node_join_answers_503_and_then_uses_the_node_that_registers(
    redis_url: str,
) -> None:
    prefix = f"cz{uuid.uuid4().hex[:8]}:"
    server = CoordinatorServer(
        redis_url=redis_url, api_key=API_KEY, api_secret=API_SECRET, prefix=prefix, own_sfu=False
    )
    await server.start()
    try:
        headers = {"Authorization": f"Bearer {create_user_token(API_SECRET, 'alice')}", "X-Api-Key": API_KEY}
        join_url = f"{server.url}/api/v1/calls/default/nowhere/join"
        async with aiohttp.ClientSession() as http:
            async with http.post(join_url, json={"create": True}, headers=headers) as resp:
                assert resp.status == 503
                body = await resp.json()
                assert body["code"] == "sfu_unavailable" and set(body) == {"code", "message"}
            assert server.store is not None
            await RedisSfuNodes(server.store).heartbeat(
                SfuNode("late", "ws://127.0.0.1:9/sfu", "http://127.0.0.1:9")
            )
            text = await post(http, join_url, "alice", {"create": True})
            assert (
                m.JoinCallResponse.model_validate_json(text).credentials.server.url == "ws://127.0.0.1:9/sfu"
            )
    finally:
        await server.stop()
