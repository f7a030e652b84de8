"""User-token lifecycle (SPEC §2.10) with real clients over real sockets: the server closes an events
socket when its token expires, and a ``token_provider`` client carries on across expiries unaware."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from switchboard import ClientOptions, MemberRequest, User, VideoClient
from switchboard.errors import AuthenticationError
from switchboard.protocol import coordinator as m
from switchboard.protocol.close_codes import TOKEN_EXPIRED_REASON, EventsCloseCode
from switchboard.protocol.tokens import verify_user_token
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory

TTL = 2.0  # seconds: tokens are signed with whole-second expiry, so each lives 1-2 s


async def test_events_socket_closes_4001_token_expired_at_expiry(server: EmbeddedServer) -> None:
    token = server.create_token("alice", ttl=TTL)
    exp = verify_user_token(server.api_secret, token).exp
    assert exp is not None
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(server.url + "/api/v1/events")
        await ws.send_json({"type": "auth", "api_key": server.api_key, "token": token})
        ok = await ws.receive_json(timeout=5)
        assert ok["type"] == "connection.ok"
        frames: list[dict[str, object]] = []
        while True:
            msg = await ws.receive(timeout=TTL + 5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frames.append(json.loads(msg.data))
        closed_at = time.time()
    assert ws.close_code == EventsCloseCode.UNAUTHENTICATED
    assert msg.extra == TOKEN_EXPIRED_REASON
    assert frames[-1]["code"] == TOKEN_EXPIRED_REASON
    assert exp - 0.05 <= closed_at < exp + 2.0  # at expiry (never before), not at some later sweep
    hub = server.coordinator.hub
    for _ in range(300):  # the server forgets the socket too (within the close's grace period)
        if not hub.connection_count("alice"):
            break
        await asyncio.sleep(0.01)
    assert hub.connection_count("alice") == 0


async def test_token_provider_client_carries_on_across_expiries(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice")
    provided: list[str] = []

    async def provider() -> str:
        provided.append(token := server.create_token("bob", ttl=TTL))
        return token

    bob = VideoClient(
        server.api_key,
        user=User.regular("bob"),
        token_provider=provider,
        options=ClientOptions(base_url=server.url),
    )
    states: list[str] = []
    bob.state.connection.listen(states.append)
    await bob.connect()  # no token yet: the provider gives the first one
    try:
        assert len(provided) == 1
        call = alice.make_call(id="long")
        await call.get_or_create(members=[MemberRequest("bob")])
        bob_call = bob.make_call(id="long")
        await bob_call.get()
        received: list[m.Event] = []
        bob.on("call.updated", received.append)

        # ~7 s: several token lifetimes. Alice publishes; Bob makes REST calls all along.
        n = 0
        deadline = time.monotonic() + 7.0
        while time.monotonic() < deadline:
            await call.update(custom={"n": n})
            n += 1
            state = await bob_call.get()  # REST with whatever token Bob has now
            assert state.custom.get("n") is not None
            await asyncio.sleep(0.25)
        await bob_call.state.wait_for(lambda s: s.custom == {"n": n - 1}, timeout=5)

        assert len(provided) >= 4, provided  # the first token and at least three refreshes
        updates = [e.call.custom["n"] for e in received if isinstance(e, m.CallUpdatedEvent)]
        assert updates == list(range(n))  # every event, in order, none twice, across the reconnects
        assert "token_expired" not in states and "disconnected" not in states[1:], states
        assert bob.state.connection.value == "connected"
        assert bob.user_token == provided[-1]
    finally:
        await bob.disconnect()


async def test_rest_call_with_expired_token_is_refreshed_and_retried(server: EmbeddedServer) -> None:
    """The provider is called when the server answers 401 token_expired, and the request goes through."""
    tokens = iter([server.create_token("carol", ttl=TTL), server.create_token("carol")])
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return next(tokens)

    carol = VideoClient(
        server.api_key,
        user=User.regular("carol"),
        token_provider=provider,
        options=ClientOptions(base_url=server.url),
    )
    await carol.connect()
    try:
        await asyncio.sleep(TTL + 0.2)  # the first token has expired (the socket too)
        state = await carol.make_call(id="after-expiry").get_or_create()
        assert state.created_by == "carol"
        assert calls == 2
        await carol.state.connection.wait_for(lambda s: s == "connected", timeout=5)
    finally:
        await carol.disconnect()


async def test_without_provider_expiry_is_a_clear_state_and_authentication_errors(
    server: EmbeddedServer,
) -> None:
    dave = VideoClient(
        server.api_key,
        user=User.regular("dave"),
        user_token=server.create_token("dave", ttl=TTL),
        options=ClientOptions(base_url=server.url),
    )
    await dave.connect()
    try:
        await dave.state.connection.wait_for(lambda s: s == "token_expired", timeout=TTL + 5)
        with pytest.raises(AuthenticationError) as info:
            await dave.make_call(id="x").get_or_create()
        assert info.value.code == "token_expired"
        assert "token" in str(info.value)
    finally:
        await dave.disconnect()


async def test_no_token_and_no_provider_fails_connect(server: EmbeddedServer) -> None:
    client = VideoClient(
        server.api_key, user=User.regular("erin"), options=ClientOptions(base_url=server.url)
    )
    with pytest.raises(AuthenticationError) as info:
        await client.connect()
    assert info.value.code == "token_missing"


async def test_failing_provider_is_an_authentication_error_at_connect(server: EmbeddedServer) -> None:
    async def provider() -> str:
        raise RuntimeError("identity service down")

    client = VideoClient(
        server.api_key,
        user=User.regular("frank"),
        token_provider=provider,
        options=ClientOptions(base_url=server.url),
    )
    with pytest.raises(AuthenticationError, match="identity service down"):
        await client.connect()
