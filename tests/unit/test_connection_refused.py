"""``connection_refused``: how the SDK tells "nothing listens there" (an SFU or server that is gone)
from other network failures, through the exception chains of its own errors. Real sockets."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from switchboard.errors import NetworkError
from switchboard.sdk.session import connection_refused


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection_is_recognised_through_the_sdks_own_error() -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            await http.ws_connect(f"ws://127.0.0.1:{closed_port()}/sfu")
    assert connection_refused(raised.value)
    try:
        raise NetworkError("cannot reach the SFU") from raised.value
    except NetworkError as wrapped:
        assert connection_refused(wrapped)


async def test_other_failures_are_not_refusals() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
    port = listener.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as http:
            with pytest.raises(TimeoutError) as raised:
                await http.ws_connect(f"ws://127.0.0.1:{port}/sfu")
    finally:
        listener.close()
        await listener.wait_closed()
    assert not connection_refused(raised.value)
    assert not connection_refused(NetworkError("the SFU connection dropped"))
    assert not connection_refused(ConnectionResetError())
