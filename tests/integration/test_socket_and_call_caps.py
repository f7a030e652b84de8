"""Caps on what an address or a user can hold open: sockets that have not authenticated yet (events
socket and SFU socket, per remote address) and calls a user created and has not ended.

Real server, real sockets; the second address is another loopback address (127.0.0.2).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from switchboard import ClientOptions, User, VideoClient
from switchboard.errors import RateLimitedError
from switchboard.protocol import sfu as p
from switchboard.protocol.close_codes import EventsCloseCode
from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.limits import CoordinatorLimits
from tests.conftest import until as wait_until

#: these waits fail after 5 s, polling every 10 ms
until = functools.partial(wait_until, timeout=5.0, interval=0.01)

EVENTS = "/api/v1/events"
HOME, OTHER = "127.0.0.1", "127.0.0.2"


@asynccontextmanager
async def from_address(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections leave from ``address``."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as session:
        yield session


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, list[dict[str, Any]]]:
    """The close code the server sent, and the JSON frames before it."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                return int(msg.data), frames
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frames.append(json.loads(msg.data))


def auth_frame(server: EmbeddedServer, user: str) -> dict[str, Any]:
    return {"type": "auth", "api_key": server.api_key, "token": server.create_token(user)}


async def test_events_sockets_waiting_for_auth_are_capped_per_address() -> None:
    limits = CoordinatorLimits(max_unauthenticated_sockets_per_address=3, auth_timeout=30.0)
    async with (
        EmbeddedServer(limits=limits) as server,
        from_address(HOME) as home,
        from_address(OTHER) as other,
    ):
        slots = server.coordinator.hub.unauthenticated
        silent = [await home.ws_connect(server.url + EVENTS) for _ in range(3)]
        await until(lambda: slots.count(HOME) == 3, "three sockets waiting for their auth frame")
        extra = await home.ws_connect(server.url + EVENTS)
        code, frames = await closed_with(extra)
        assert code == EventsCloseCode.TOO_MANY_CONNECTIONS
        assert frames[-1]["code"] == "too_many_connections"

        # another address is not affected
        elsewhere = await other.ws_connect(server.url + EVENTS)
        await elsewhere.send_json(auth_frame(server, "bob"))
        assert (await elsewhere.receive_json(timeout=5))["type"] == "connection.ok"

        # a socket that authenticates gives its slot back
        await silent[0].send_json(auth_frame(server, "alice"))
        assert (await silent[0].receive_json(timeout=5))["type"] == "connection.ok"
        await until(lambda: slots.count(HOME) == 2, "the slot given back")
        again = await home.ws_connect(server.url + EVENTS)
        await again.send_json(auth_frame(server, "carol"))
        assert (await again.receive_json(timeout=5))["type"] == "connection.ok"
        for ws in [*silent, elsewhere, again]:
            await ws.close()
        await until(lambda: slots.total == 0, "every slot given back")


async def test_sfu_sockets_waiting_to_join_are_capped_per_address(server: EmbeddedServer) -> None:
    server.sfu.config.max_unjoined_sockets_per_address = 2
    async with from_address(HOME) as home, from_address(OTHER) as other:
        waiting = [await home.ws_connect(server.sfu_url) for _ in range(2)]
        for ws in waiting:  # answered: these two are being served
            await ws.send_str(p.HealthCheckRequest().model_dump_json())
            assert (await ws.receive_json(timeout=5))["code"] == "not_joined"
        extra = await home.ws_connect(server.sfu_url)
        code, frames = await closed_with(extra)
        assert code == p.CloseCode.TRY_AGAIN_LATER
        assert frames[-1]["code"] == "too_many_connections" and frames[-1]["fatal"] is True

        elsewhere = await other.ws_connect(server.sfu_url)
        await elsewhere.send_str(p.HealthCheckRequest().model_dump_json())
        assert (await elsewhere.receive_json(timeout=5))["code"] == "not_joined"

        await waiting[0].close()
        await until(lambda: server.sfu.unjoined_sockets == 2, "the closed socket's slot given back")
        later = await home.ws_connect(server.sfu_url)
        await later.send_str(p.HealthCheckRequest().model_dump_json())
        assert (await later.receive_json(timeout=5))["code"] == "not_joined"
        for ws in [waiting[1], elsewhere, later]:
            await ws.close()


async def test_a_user_may_hold_only_so_many_open_calls() -> None:
    limits = CoordinatorLimits(max_open_calls_per_user=2)
    async with EmbeddedServer(limits=limits) as server:
        clients = {
            user: VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(base_url=server.url),
            )
            for user in ("alice", "bob")
        }
        try:
            for client in clients.values():
                await client.connect()
            alice = clients["alice"]
            first, second = alice.make_call("default", "one"), alice.make_call("default", "two")
            await first.get_or_create()
            await second.get_or_create(members=["bob"])
            with pytest.raises(RateLimitedError) as refused:
                await alice.make_call("default", "three").get_or_create()
            assert refused.value.code == "too_many_calls"
            with pytest.raises(RateLimitedError):  # join(create) creates too
                await alice.make_call("default", "four").join()
            # getting a call that exists is not creating one; other users have their own count
            await alice.make_call("default", "two").get_or_create()
            await clients["bob"].make_call("default", "bobs").get_or_create()
            await clients["bob"].make_call("default", "two").get_or_create()

            # an ended call no longer counts
            await first.end()
            await alice.make_call("default", "three").get_or_create()
        finally:
            for client in clients.values():
                await client.disconnect()
