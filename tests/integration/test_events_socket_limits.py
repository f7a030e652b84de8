"""The events WebSocket under hostile and broken clients: limits, close codes, malformed frames.

Every test talks to the real server over real sockets. Close codes are
:class:`switchboard.protocol.close_codes.EventsCloseCode`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp
import pytest

from switchboard import CallConnectOptions, TrackOption
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol.close_codes import EventsCloseCode
from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.limits import CoordinatorLimits
from tests.conftest import ClientFactory, hears_throughout, wait_heard

EVENTS = "/api/v1/events"


async def _open(
    session: aiohttp.ClientSession, server: EmbeddedServer, as_user: str = "mallory", **auth: Any
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(server.url + EVENTS)
    frame = {"type": "auth", "api_key": server.api_key, "token": server.create_token(as_user), **auth}
    await ws.send_json(frame)
    return ws


async def _no_sockets_left(server: EmbeddedServer, user: str) -> None:
    """The server forgets every events socket of ``user`` (it may take a loop turn after the close)."""
    hub = server.coordinator.hub
    for _ in range(500):
        if not hub.connection_count(user):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{user} still has {hub.connection_count(user)} events sockets after 5 s")


async def _until_closed(
    ws: aiohttp.ClientWebSocketResponse,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> tuple[int | None, list[dict[str, Any]]]:
    """The code the server closed the socket with, and every JSON frame it sent before."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                return int(msg.data), frames  # (ws.close_code is 1006 if the server dropped TCP first)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return None, frames
            frames.append(json.loads(msg.data))


async def test_frame_rate_over_the_limit_closes_4029_and_nothing_after_is_answered() -> None:
    limits = CoordinatorLimits(frames_per_second=5, frame_burst=10)
    async with EmbeddedServer(limits=limits) as server, aiohttp.ClientSession() as session:
        ws = await _open(session, server)
        assert (await ws.receive_json(timeout=5))["type"] == "connection.ok"
        for _ in range(200):
            await ws.send_str('{"type": "health.check"}')
        code, frames = await _until_closed(ws)
        assert code == EventsCloseCode.RATE_LIMITED
        answers = [f for f in frames if f["type"] == "health.check"]
        assert len(answers) <= 10  # the burst; what came after the limit was not processed
        await _no_sockets_left(server, "mallory")


async def test_well_behaved_rate_is_never_cut_off() -> None:
    limits = CoordinatorLimits(frames_per_second=20, frame_burst=5)
    async with EmbeddedServer(limits=limits) as server, aiohttp.ClientSession() as session:
        ws = await _open(session, server)
        assert (await ws.receive_json(timeout=5))["type"] == "connection.ok"
        for _ in range(15):  # 10 per second, half the limit
            await ws.send_str('{"type": "health.check"}')
            assert (await ws.receive_json(timeout=5))["type"] == "health.check"
            await asyncio.sleep(0.1)
        assert not ws.closed
        await ws.close()


async def test_too_many_sockets_per_user_closes_4030_other_users_unaffected() -> None:
    limits = CoordinatorLimits(max_sockets_per_user=3)
    async with EmbeddedServer(limits=limits) as server, aiohttp.ClientSession() as session:
        sockets = [await _open(session, server) for _ in range(3)]
        for ws in sockets:
            assert (await ws.receive_json(timeout=5))["type"] == "connection.ok"
        extra = await _open(session, server)
        code, frames = await _until_closed(extra)
        assert code == EventsCloseCode.TOO_MANY_CONNECTIONS
        assert frames[-1]["code"] == "too_many_connections"
        other = await _open(session, server, as_user="bob")
        assert (await other.receive_json(timeout=5))["type"] == "connection.ok"
        # a reconnect naming one of the open sockets replaces it, so it is not over the cap
        first_id = server.coordinator.hub.connections()[0].id
        again = await _open(session, server, previous_connection_id=first_id, last_event_id=0)
        assert (await again.receive_json(timeout=5))["type"] == "connection.ok"
        await sockets[0].close()
        for ws in [*sockets, other, again]:
            await ws.close()


async def test_socket_opens_per_user_are_rate_limited_4029() -> None:
    limits = CoordinatorLimits(socket_opens_per_second=0.5, socket_open_burst=3)
    async with EmbeddedServer(limits=limits) as server, aiohttp.ClientSession() as session:
        for _ in range(3):
            ws = await _open(session, server)
            assert (await ws.receive_json(timeout=5))["type"] == "connection.ok"
            await ws.close()
        ws = await _open(session, server)
        code, frames = await _until_closed(ws)
        assert code == EventsCloseCode.RATE_LIMITED and frames[-1]["code"] == "rate_limited"


async def test_no_auth_frame_in_time_closes_4001() -> None:
    limits = CoordinatorLimits(auth_timeout=0.3)
    async with EmbeddedServer(limits=limits) as server, aiohttp.ClientSession() as session:
        ws = await session.ws_connect(server.url + EVENTS)
        code, frames = await _until_closed(ws, timeout=5)
        assert code == EventsCloseCode.UNAUTHENTICATED
        assert frames[-1]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("frame", "close_code", "error_code", "words"),
    [
        ({"token": None}, EventsCloseCode.UNAUTHENTICATED, "token_missing", "missing user token"),
        ({"token": 42}, EventsCloseCode.UNAUTHENTICATED, "token_invalid", "not a string"),
        ({"token": "not.a.jwt"}, EventsCloseCode.UNAUTHENTICATED, "token_invalid", "invalid user token"),
        ({"api_key": "nope"}, EventsCloseCode.UNAUTHENTICATED, "invalid_api_key", "unknown API key"),
        ({"last_event_id": True}, EventsCloseCode.BAD_REQUEST, "invalid_request", "last_event_id: "),
        ({"last_event_id": "12"}, EventsCloseCode.BAD_REQUEST, "invalid_request", "last_event_id: "),
        ({"surprise": 1}, EventsCloseCode.BAD_REQUEST, "invalid_request", "surprise: "),
        ({"user": {"id": 5}}, EventsCloseCode.BAD_REQUEST, "invalid_request", "user.id: "),
    ],
)
async def test_malformed_auth_frames(
    server: EmbeddedServer, frame: dict[str, Any], close_code: int, error_code: str, words: str
) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, server, **frame)
        code, frames = await _until_closed(ws)
    assert code == close_code
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == error_code
    assert words in frames[-1]["message"]  # says which field is wrong, not only how many errors


@pytest.mark.parametrize("first", [b"\x00\x01binary", "not json {", "[1, 2]", '"auth"'])
async def test_garbage_first_frame_closes_4000(server: EmbeddedServer, first: str | bytes) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(server.url + EVENTS)
        await (ws.send_bytes(first) if isinstance(first, bytes) else ws.send_str(first))
        code, frames = await _until_closed(ws)
    assert code == EventsCloseCode.BAD_REQUEST
    assert frames[-1]["code"] == "invalid_request"


async def test_malformed_frames_after_auth_are_answered_and_the_socket_keeps_working(
    server: EmbeddedServer,
) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, server)
        assert (await ws.receive_json(timeout=5))["type"] == "connection.ok"
        for bad in ["{garbage", "[]", '{"type": 7}', '{"type": "call.created"}', "null"]:
            await ws.send_str(bad)
            answer = await ws.receive_json(timeout=5)
            assert answer["type"] == "error" and answer["code"] == "invalid_request", bad
        await ws.send_bytes(b"\xff\xfe binary")
        assert (await ws.receive_json(timeout=5))["code"] == "invalid_request"
        await ws.send_str('{"type": "health.check"}')
        assert (await ws.receive_json(timeout=5))["type"] == "health.check"
        await ws.close()


async def test_huge_frame_closes_1009_and_the_server_keeps_serving(server: EmbeddedServer) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, server)
        assert (await ws.receive_json(timeout=5))["type"] == "connection.ok"
        await ws.send_str('{"type": "health.check", "pad": "' + "x" * (1 << 20) + '"}')
        code, _ = await _until_closed(ws)
        assert code == EventsCloseCode.MESSAGE_TOO_BIG
        ok = await _open(session, server, as_user="bob")
        assert (await ok.receive_json(timeout=5))["type"] == "connection.ok"
        await ok.close()


async def test_huge_auth_frame_closes_1009(server: EmbeddedServer) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, server, user={"id": "mallory", "custom": {"blob": "x" * (1 << 20)}})
        code, _ = await _until_closed(ws)
    assert code == EventsCloseCode.MESSAGE_TOO_BIG


TONES = {"alice": 440.0, "bob": 660.0}


FLOOD_SOCKETS = 10  # the default per-user cap: every one is admitted, then cut off


async def test_one_users_flood_leaves_a_call_audible_and_the_flooder_cut_off(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    """Ten sockets of one user send health.check as fast as they can for 2 s (another process) while
    Alice and Bob talk: every 100 ms of what each hears carries the other's tone throughout, and every
    flooder socket is closed by the frame-rate limit (4029)."""
    clients = {
        u: await make_client(u, microphone=ToneMicrophone(hz), speaker=CaptureSpeaker())
        for u, hz in TONES.items()
    }
    for client in clients.values():
        call = client.make_call("default", "flooded")
        await call.get_or_create()
        await call.join(CallConnectOptions(camera=TrackOption.disabled()))
    for user, client in clients.items():
        await wait_heard(client, TONES, audible=set(TONES) - {user})

    flooder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.events_flooder",
        server.url,
        server.api_key,
        server.create_token("mallory"),
        str(FLOOD_SOCKETS),
        "2.0",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert flooder.stdin is not None and flooder.stdout is not None
    assert await asyncio.wait_for(flooder.stdout.readline(), 30) == b"ready\n"
    listening = asyncio.gather(
        hears_throughout(clients["alice"], "bob", TONES["bob"], duration=2.5),
        hears_throughout(clients["bob"], "alice", TONES["alice"], duration=2.5),
    )
    out, _ = await flooder.communicate(b"go\n")
    await listening
    assert flooder.returncode == 0
    report = json.loads(out)
    assert report["sent"] > 10 * report["opens"], report  # it really flooded
    assert len(report["close_codes"]) == FLOOD_SOCKETS, report
    limits = server.config.limits
    # processed: at most each socket's burst plus a second of refill; the rest was never read
    assert report["answered"] <= FLOOD_SOCKETS * (limits.frame_burst + limits.frames_per_second), report
    assert set(report["close_codes"]) == {EventsCloseCode.RATE_LIMITED}, report
    await _no_sockets_left(server, "mallory")
