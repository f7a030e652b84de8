"""The SFU in a process of its own (``EmbeddedServer(sfu_process=True)``, ``switchboard serve``).

Calls work as in-process, the coordinator and the SFU keep each other informed over their internal
channel (admission, sessions, call end), and media keeps flowing while the coordinator gets no CPU
at all.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from switchboard import CallConnectOptions, CallStatus, ClientOptions, TrackOption, User, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import create_user_token
from switchboard.server import EmbeddedServer
from tests.conftest import hears_throughout, wait_heard
from tests.integration.test_sfu_trust import raw_sfu, rest_join

NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())
TONES = {"alice": 440.0, "bob": 660.0}


async def _clients(url: str, api_key: str, secret: str) -> list[VideoClient]:
    clients = []
    for user, tone in TONES.items():
        client = VideoClient(
            api_key,
            user=User.regular(user),
            user_token=create_user_token(secret, user),
            options=ClientOptions(base_url=url, microphone=ToneMicrophone(tone), speaker=CaptureSpeaker()),
        )
        await client.connect()
        clients.append(client)
    return clients


@pytest.fixture
async def split_server() -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(sfu_process=True, reconnect_grace=1.0) as server:
        yield server


async def test_a_call_through_an_sfu_process(split_server: EmbeddedServer) -> None:
    server = split_server
    assert server.sfu_pid is not None and server.sfu_pid != os.getpid()
    with pytest.raises(RuntimeError):
        server.sfu  # noqa: B018 (not inspectable in process: its state lives in the child)
    alice, bob = await _clients(server.url, server.api_key, server.api_secret)
    try:
        a_call, b_call = alice.make_call("default", "split"), bob.make_call("default", "split")
        await a_call.get_or_create()
        await a_call.join(NO_CAMERA)
        await b_call.join(NO_CAMERA)
        await wait_heard(alice, TONES, audible={"bob"})
        await wait_heard(bob, TONES, audible={"alice"})
        # sessions joining reached the coordinator over the internal channel
        await b_call.state.wait_for(lambda s: len(s.participants) == 2, timeout=5)

        # the SFU's own counters, over HTTP
        stats_url = server.sfu_url.replace("ws://", "http://") + "/stats"
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {server.create_admin_token()}"}
            async with http.get(stats_url, headers=headers) as resp:
                stats = await resp.json()
        assert stats["participants"] == 2

        # admission asks the coordinator: a token whose session left is refused
        assert b_call.media is not None
        token = b_call.media.credentials.token
        await b_call.leave()
        async with raw_sfu(server.sfu_url) as sfu:
            await sfu.send(p.JoinRequest(token=token))
            assert (await sfu.wait_for("error"))["code"] == "session_ended"
            assert await sfu.closed() == p.CloseCode.UNAUTHENTICATED

        # ending the call reaches the SFU, which tells every session (here a hand-made one)
        joined = await rest_join(bob, "default", "split")
        async with raw_sfu(server.sfu_url) as sfu:
            await sfu.send(p.JoinRequest(token=joined.credentials.token))
            await sfu.wait_for("join_response")
            await a_call.end()
            await sfu.wait_for("call_ended")
    finally:
        await alice.disconnect()
        await bob.disconnect()


async def test_the_sfu_process_internal_routes_answer_one_json_error(split_server: EmbeddedServer) -> None:
    """Every coordinator-only route: 401 without an admin token, 400 for a body that is not its
    message, the SFU's own refusal with its status; a good request does its work."""
    base = split_server.sfu_url.replace("ws://", "http://").removesuffix("/sfu")
    admin = {"Authorization": f"Bearer {split_server.create_admin_token()}"}
    routes = {
        p.INTERNAL_END_CALL_PATH: '{"cid": "default:none"}',
        p.INTERNAL_MODERATE_PATH: p.ModerationCommand(
            cid="default:none", by="carol", action="mute"
        ).model_dump_json(),
        p.INTERNAL_GRANTS_PATH: p.GrantsUpdate(cid="default:none", reason="test", users=[]).model_dump_json(),
        p.INTERNAL_RECORDING_PATH: p.RecordingCommand(cid="default:none", action="list").model_dump_json(),
    }
    async with aiohttp.ClientSession() as http:
        for path, body in routes.items():
            async with http.post(base + path, data=body) as resp:
                assert (resp.status, (await resp.json())["code"]) == (401, "token_invalid"), path
            forged = {"Authorization": f"Bearer {split_server.create_token('alice')}"}
            async with http.post(base + path, data=body, headers=forged) as resp:
                assert (resp.status, (await resp.json())["code"]) == (401, "token_invalid"), path
            async with http.post(base + path, data='{"cid": 1', headers=admin) as resp:
                assert (resp.status, (await resp.json())["code"]) == (400, "invalid_request"), path
            async with http.post(base + path, data=body, headers=admin) as resp:
                assert resp.status in (200, 204), (path, resp.status, await resp.text())
        async with http.post(
            base + p.INTERNAL_GRANTS_PATH, data=routes[p.INTERNAL_GRANTS_PATH], headers=admin
        ) as resp:
            assert p.GrantsReport.model_validate_json(await resp.read()).sessions == 0
        stop = p.RecordingCommand(cid="default:none", action="stop").model_dump_json()
        async with http.post(base + p.INTERNAL_RECORDING_PATH, data=stop, headers=admin) as resp:
            assert (resp.status, (await resp.json())["code"]) == (409, "not_recording")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_media_keeps_flowing_while_switchboard_serves_coordinator_gets_no_cpu() -> None:
    """``switchboard serve`` runs the SFU in its own process: stop the coordinator's process
    outright (SIGSTOP, the limit of any flood) and two participants still hear each other in every
    100 ms window."""
    key, secret = "key_split", "s" * 40
    env = {**os.environ, "SWITCHBOARD_API_KEY": key, "SWITCHBOARD_API_SECRET": secret}
    port, sfu_port = _free_port(), _free_port()
    serve = subprocess.Popen(  # noqa: ASYNC220 (a real server process)
        [sys.executable, "-m", "switchboard.cli", "serve", "--port", str(port), "--sfu-port", str(sfu_port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    clients: list[VideoClient] = []
    try:
        assert serve.stdout is not None
        first = await asyncio.get_running_loop().run_in_executor(None, serve.stdout.readline)
        match = re.search(r"coordinator on (\S+), SFU on (\S+) ", first)
        assert match is not None, first
        clients = await _clients(match.group(1), key, secret)
        alice, bob = clients
        a_call = alice.make_call("default", "frozen")
        await a_call.get_or_create()
        await a_call.join(NO_CAMERA)
        await bob.make_call("default", "frozen").join(NO_CAMERA)
        await wait_heard(alice, TONES, audible={"bob"})
        await wait_heard(bob, TONES, audible={"alice"})

        serve.send_signal(signal.SIGSTOP)  # the coordinator's process gets no CPU at all
        try:
            await asyncio.gather(
                hears_throughout(alice, "bob", TONES["bob"], duration=3.0),
                hears_throughout(bob, "alice", TONES["alice"], duration=3.0),
            )
        finally:
            serve.send_signal(signal.SIGCONT)
        assert a_call.state.value.status is CallStatus.JOINED
    finally:
        for client in clients:
            await client.disconnect()
        serve.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, serve.wait, 15)
    assert serve.returncode == 0
