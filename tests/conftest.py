"""Shared fixtures: a real embedded server and real clients connected to it over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from switchboard import ClientOptions, User, VideoClient
from switchboard.server import EmbeddedServer

ClientFactory = Callable[..., Awaitable[VideoClient]]


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer() as srv:
        yield srv


@pytest.fixture
async def make_client(server: EmbeddedServer) -> AsyncIterator[ClientFactory]:
    clients: list[VideoClient] = []

    async def factory(user_id: str, *, connect: bool = True, **options: object) -> VideoClient:
        client = VideoClient(
            server.api_key,
            user=User.regular(user_id, name=user_id.title()),
            user_token=server.create_token(user_id),
            options=ClientOptions(base_url=server.url, **options),  # type: ignore[arg-type]
        )
        if connect:
            await client.connect()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.disconnect()
