"""The coordinator's HTTP server against slow, half-sent and ill-typed requests, over real sockets."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from typing import Any

import aiohttp

from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.call_types import CALL_TYPES
from switchboard.server.coordinator.limits import CoordinatorLimits

HALF_SENT = 1000


def _host_port(server: EmbeddedServer) -> tuple[str, int]:
    host, _, port = server.url.removeprefix("http://").rpartition(":")
    return host, int(port)


def _fds_for(n: int) -> None:
    """Enough file descriptors for ``n`` client sockets plus the server's ends (fails loudly if not)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n + 256
    if soft < need:
        assert hard == resource.RLIM_INFINITY or hard >= need, f"RLIMIT_NOFILE hard limit {hard} < {need}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:  # noqa: ASYNC109
    """True when the server closes the connection (EOF or reset) within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def test_a_thousand_half_sent_request_heads_are_closed() -> None:
    _fds_for(HALF_SENT)
    limits = CoordinatorLimits(header_timeout=1.0)
    async with EmbeddedServer(limits=limits) as server:
        host, port = _host_port(server)
        streams = []
        for i in range(HALF_SENT):
            reader, writer = await asyncio.open_connection(host, port)
            # a request line and part of a header, never the blank line that ends the head
            writer.write(f"GET /api/v1/calls/default/c{i} HTTP/1.1\r\nHost: x\r\nX-Api-Key: ".encode())
            streams.append((reader, writer))
        opened = time.monotonic()
        closed = await asyncio.gather(*(_closed_by_server(r, 10.0) for r, _ in streams))
        took = time.monotonic() - opened
        assert sum(closed) == HALF_SENT, (
            f"{HALF_SENT - sum(closed)} half-sent requests still open after {took:.1f}s"
        )
        for _, writer in streams:
            writer.close()
        # and the server still answers a whole request
        async with aiohttp.ClientSession() as session, session.get(server.url + "/health") as resp:
            assert resp.status == 200


async def test_an_idle_connection_that_never_sends_is_closed() -> None:
    async with EmbeddedServer(limits=CoordinatorLimits(header_timeout=0.5)) as server:
        reader, writer = await asyncio.open_connection(*_host_port(server))
        assert await _closed_by_server(reader, 5.0)
        writer.close()


async def test_a_half_sent_body_is_408_and_the_connection_closed() -> None:
    async with EmbeddedServer(limits=CoordinatorLimits(body_timeout=0.5)) as server:
        reader, writer = await asyncio.open_connection(*_host_port(server))
        head = (
            "POST /api/v1/calls/default/slow HTTP/1.1\r\nHost: x\r\n"
            f"X-Api-Key: {server.api_key}\r\nAuthorization: Bearer {server.create_token('alice')}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        writer.write(head.encode() + b'{"data": ')  # 9 of the 100 bytes promised
        async with asyncio.timeout(5):
            answer = await reader.read()  # until the server closes
        writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 408"), answer[:200]
        body = json.loads(rest.partition(b"\r\n\r\n")[2])
        assert body["code"] == "request_timeout"
        async with aiohttp.ClientSession() as session:
            headers = {"X-Api-Key": server.api_key, "Authorization": f"Bearer {server.create_token('alice')}"}
            async with session.get(server.url + "/api/v1/calls/default/slow", headers=headers) as resp:
                assert resp.status == 404  # the half-sent request created nothing


async def _rest(
    server: EmbeddedServer, method: str, path: str, body: Any = None, user: str = "alice"
) -> tuple[int, dict[str, str], Any]:
    headers = {"X-Api-Key": server.api_key, "Authorization": f"Bearer {server.create_token(user)}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json()


async def test_booleans_are_refused_where_integers_are_expected(server: EmbeddedServer) -> None:
    for value in (True, False):
        override = {"ring": {"incoming_call_timeout_ms": value}}
        status, _, body = await _rest(
            server, "POST", "/api/v1/calls/default/typed", {"data": {"settings_override": override}}
        )
        assert status == 400 and body["code"] == "invalid_request", body
    status, _, body = await _rest(
        server,
        "POST",
        "/api/v1/calls/default/typed",
        {"data": {"settings_override": {"ring": {"incoming_call_timeout_ms": 5000}}}},
    )
    assert status == 200 and body["call"]["settings"]["ring"]["incoming_call_timeout_ms"] == 5000


async def test_405_names_the_allowed_methods(server: EmbeddedServer) -> None:
    status, headers, body = await _rest(server, "DELETE", "/api/v1/calls/default/x")
    assert status == 405 and body["code"] == "method_not_allowed"
    assert set(headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "PATCH"}
    status, headers, _ = await _rest(server, "GET", "/api/v1/calls/default/x/join")
    assert status == 405 and headers["Allow"] == "POST"


async def test_upserting_another_user_is_403(server: EmbeddedServer) -> None:
    status, _, body = await _rest(server, "POST", "/api/v1/users", {"id": "bob", "name": "Not Bob"})
    assert status == 403 and body["code"] == "permission_denied"


async def test_openapi_has_the_call_id_pattern_and_the_call_types(server: EmbeddedServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(server.url + "/openapi.json") as resp:
        doc = await resp.json()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/calls/{type}/{id}"]["get"]["parameters"]}
    assert params["type"]["enum"] == sorted(CALL_TYPES)
    assert params["id"]["pattern"] == r"^[A-Za-z0-9_\-.@]+$"
    assert params["id"]["minLength"] == 1 and params["id"]["maxLength"] == 64
    assert "408" in doc["paths"]["/api/v1/calls/{type}/{id}"]["post"]["responses"]
