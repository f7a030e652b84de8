"""Calls whose lifecycle overlaps: leaving while joining, network blips, suspends mid-connect.

Each of these was a real bug once; the scenario is the regression test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from switchboard import CallConnectOptions, CallStatus, MemberRequest, MultiCallAudioPolicy, TrackOption
from switchboard.errors import CallStateError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, wait_heard

NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())
BOB = {"bob": 660.0}


class SlowSignalling:
    """Wraps the client's HTTP session so that opening the SFU socket takes a while."""

    def __init__(self, inner: aiohttp.ClientSession | None, delay: float = 0.5) -> None:
        assert inner is not None
        self.inner, self.delay = inner, delay

    async def ws_connect(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await self.inner.ws_connect(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_leave_while_joining_cancels_the_join(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice")
    call = alice.make_call("default", "quick-exit")
    await call.get_or_create()
    real = alice._session
    alice._session = SlowSignalling(real)  # type: ignore[assignment]
    joining = asyncio.ensure_future(call.join(NO_CAMERA))
    await call.state.wait_for(lambda s: s.status is CallStatus.JOINING, timeout=5)
    await asyncio.sleep(0.1)
    await call.leave()
    with pytest.raises(CallStateError):
        await joining
    alice._session = real
    assert call.state.value.status is CallStatus.IDLE and call.media is None
    assert alice.state.active_calls.value == []
    await asyncio.sleep(0.3)
    assert "default:quick-exit" not in server.sfu.rooms
    await call.join(NO_CAMERA)  # and it can be joined again
    assert call.state.value.status.value == "joined"


async def test_join_while_reconnecting_is_a_no_op(server: EmbeddedServer, make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    call = alice.make_call("default", "blip")
    await call.get_or_create()
    await call.join(NO_CAMERA)
    media = call.media
    assert media is not None and media._ws is not None
    real = alice._session
    alice._session = SlowSignalling(real)  # type: ignore[assignment]
    media._http = alice._session  # type: ignore[assignment]
    await media._ws.close()
    await call.state.wait_for(lambda s: s.status is CallStatus.RECONNECTING, timeout=5)
    await call.join(NO_CAMERA)
    assert call.media is media
    assert len(alice.audio_session.modules) == 1
    await call.state.wait_for(lambda s: s.status is CallStatus.JOINED, timeout=5)
    assert len(server.sfu.rooms["default:blip"].participants) == 1
    alice._session = real


async def test_resume_while_the_sfu_socket_is_down_takes_effect_after_it_is_back(
    make_client: ClientFactory,
) -> None:
    alice = await make_client("alice", speaker=CaptureSpeaker(), allow_multiple_active_calls=True)
    bob = await make_client("bob", microphone=ToneMicrophone(660))
    call = alice.make_call("default", "resume-offline")
    await call.get_or_create()
    await call.join(NO_CAMERA)
    await bob.make_call("default", "resume-offline").join(NO_CAMERA)
    await wait_heard(alice, BOB, audible={"bob"})
    await call.suspend_audio()
    await wait_heard(alice, BOB, audible=set())
    assert call.media is not None and call.media._ws is not None
    await call.media._ws.close()
    await call.resume_audio()  # the socket is down: applied locally, re-sent when the session resumes
    assert not call.state.value.is_audio_suspended
    await call.state.wait_for(lambda s: s.status is CallStatus.JOINED, timeout=5)
    await wait_heard(alice, BOB, audible={"bob"})


async def test_suspend_while_the_sfu_socket_connects_reaches_the_sfu(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client(
        "alice",
        allow_multiple_active_calls=True,
        multi_call_audio_policy=MultiCallAudioPolicy.SUSPEND_EXISTING,
    )
    bob = await make_client("bob", microphone=ToneMicrophone(660))
    await bob.make_call("default", "x").join(NO_CAMERA)
    x, y = alice.make_call("default", "x"), alice.make_call("default", "y")
    real = alice._session
    alice._session = SlowSignalling(real)  # type: ignore[assignment]
    joining = asyncio.ensure_future(x.join(NO_CAMERA))
    await x.state.wait_for(lambda s: s.session_id is not None, timeout=5)  # media exists, socket connecting
    alice._session = real
    await y.join(NO_CAMERA)  # suspends x while x's SFU socket is still connecting
    await joining
    assert x.state.value.is_audio_suspended
    await asyncio.sleep(0.5)
    session = server.sfu.rooms["default:x"].participants[x.state.value.session_id or ""]
    downs = [d for d in session.downtracks if d.kind == "audio"]
    assert downs and all(d.paused for d in downs) and all(d.track.stats.sent == 0 for d in downs)


async def test_sfu_stats_need_an_admin_token(server: EmbeddedServer, make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    await alice.make_call("default", "secret-meeting").join(NO_CAMERA)
    stats_url = server.sfu_url.replace("ws://", "http://") + "/stats"
    async with aiohttp.ClientSession() as http:
        async with http.get(stats_url) as resp:
            assert resp.status == 401
            assert "secret-meeting" not in await resp.text()
        async with http.get(
            stats_url, headers={"Authorization": f"Bearer {server.create_token('alice')}"}
        ) as resp:
            assert resp.status == 401  # a user token is not an admin token
        headers = {"Authorization": f"Bearer {server.create_admin_token()}"}
        async with http.get(stats_url, headers=headers) as resp:
            assert resp.status == 200
            assert "default:secret-meeting" in (await resp.json())["rooms"]


async def test_callers_ring_ends_when_the_last_callee_is_removed_after_the_others_rejected(
    make_client: ClientFactory,
) -> None:
    alice, bob, carol = [await make_client(u) for u in ("alice", "bob", "carol")]
    call = alice.make_call("audio_room", "no-deadline")  # audio rooms ring without a deadline
    await call.get_or_create(members=[MemberRequest("bob"), MemberRequest("carol")], ringing=True)
    incoming = await bob.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    assert incoming is not None
    await incoming.reject()
    await call.update_members(remove=["carol"])
    await carol.state.incoming_call.wait_for(lambda c: c is None, timeout=5)
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    await call.ring()  # not stuck "already ringing"
    await alice.state.outgoing_call.wait_for(lambda c: c is call, timeout=5)
