"""Ring and event state always equal the server's (SPEC §2.6.1): real clients, a real EmbeddedServer.

Each client's ``ringing_calls`` / ``incoming_call`` / ``outgoing_call`` is compared with what the
server itself lists as pending for that user (``GET /api/v1/rings``), across concurrent rings,
disconnects, and server restarts (with the state kept, like a redeploy, and with it lost).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from switchboard import (
    Call,
    CallConnectOptions,
    CallStatus,
    ClientOptions,
    MemberRequest,
    RejectReason,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.errors import CallStateError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, wait_heard

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())


def ring_timeout(ms: int) -> m.CallSettingsRequest:
    return m.CallSettingsRequest(
        ring=m.RingSettingsRequest(incoming_call_timeout_ms=ms, auto_cancel_timeout_ms=ms)
    )


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    # a short SFU reconnect grace, so a media session that vanishes without a word is gone quickly
    async with EmbeddedServer(reconnect_grace=0.5) as srv:
        yield srv


# ---------------------------------------------------------------- helpers


def cids(calls: list[Call]) -> list[str]:
    return [c.cid for c in calls]


async def server_view(server: EmbeddedServer, user_id: str) -> tuple[list[str], list[str]]:
    """(incoming cids oldest first, outgoing cids oldest first) pending for ``user_id`` on the server."""
    response = await server.coordinator.pending_rings(user_id)
    incoming = [r.cid for r in response.rings if not r.outgoing]
    outgoing = [r.cid for r in response.rings if r.outgoing]
    return incoming, outgoing


def client_view(client: VideoClient) -> tuple[list[str], str | None, str | None]:
    incoming = client.state.incoming_call.value
    outgoing = client.state.outgoing_call.value
    return (
        cids(client.state.ringing_calls.value),
        incoming.cid if incoming else None,
        outgoing.cid if outgoing else None,
    )


async def assert_converged(server: EmbeddedServer, *clients: VideoClient, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Every client shows exactly the rings the server has pending for its user."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        mismatches = []
        for client in clients:
            incoming, outgoing = await server_view(server, client.user.id)
            expected = (incoming, incoming[-1] if incoming else None, outgoing[-1] if outgoing else None)
            if client_view(client) != expected:
                mismatches.append(f"{client.user.id}: shows {client_view(client)}, server has {expected}")
        if not mismatches:
            return
        if loop.time() > deadline:
            raise AssertionError("; ".join(mismatches))
        await asyncio.sleep(0.05)


async def restart(server: EmbeddedServer, *clients: VideoClient) -> None:
    """Stop the server and start it again on the same ports with the same store (a redeploy); wait
    until every client has reconnected by itself."""
    before = {client: _socket(client).reconnects for client in clients}
    await server.stop()
    await server.start()
    for client in clients:
        await _reconnected(client, before[client])


def _socket(client: VideoClient) -> Any:
    socket = client.events_connection
    assert socket is not None
    return socket


async def _reconnected(client: VideoClient, reconnects_before: int, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while _socket(client).reconnects <= reconnects_before or client.state.connection.value != "connected":
        assert loop.time() < deadline, f"{client.user.id} did not reconnect"
        await asyncio.sleep(0.05)


async def ring(caller: VideoClient, call_id: str, callees: list[str], **kwargs: Any) -> Call:
    call = caller.make_call("default", call_id)
    await call.get_or_create(members=[MemberRequest(u) for u in callees], ringing=True, **kwargs)
    return call


async def shown(client: VideoClient, expected: list[str], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    await client.state.ringing_calls.wait_for(lambda calls: cids(calls) == expected, timeout=timeout)


# ---------------------------------------------------------------- the failing inputs of the report


async def test_callers_leave_before_any_answer_cancels_the_ring(make_client: ClientFactory) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    call = await ring(alice, "leave-early", ["bob"])
    await shown(bob, ["default:leave-early"])
    await call.join(MIC_ON)
    await asyncio.sleep(0.5)
    await call.leave()
    await shown(bob, [])
    assert bob.state.incoming_call.value is None
    bob_call = bob.make_call("default", "leave-early")
    assert bob_call.state.value.ring_outcome is m.RingOutcome.CANCELLED
    assert bob_call.state.value.status is CallStatus.IDLE
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert call.state.value.ring_outcome is m.RingOutcome.CANCELLED
    with pytest.raises(CallStateError):
        await bob_call.accept()  # nobody can answer into the call alice left


async def test_the_coordinator_cancels_when_the_callers_media_session_vanishes(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    call = await ring(alice, "crash", ["bob"])
    await call.join(MIC_ON)
    await shown(bob, ["default:crash"])
    media = call.media
    assert media is not None
    await media.close(send_leave=False)  # alice's app dies: no leave, no cancel from her SDK
    await shown(bob, [])
    assert bob.make_call("default", "crash").state.value.ring_outcome is m.RingOutcome.CANCELLED
    assert await server_view(server, "alice") == ([], [])


async def test_callers_leave_without_joining_and_end_cancel_too(make_client: ClientFactory) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    first = await ring(alice, "never-joined", ["bob"])
    await shown(bob, ["default:never-joined"])
    await first.leave()
    assert alice.state.outgoing_call.value is None
    await shown(bob, [])
    second = await ring(alice, "ended", ["bob"])
    await shown(bob, ["default:ended"])
    await second.end()
    assert alice.state.outgoing_call.value is None
    await shown(bob, [])
    assert bob.make_call("default", "ended").state.value.ring_outcome is m.RingOutcome.CANCELLED


async def test_a_ring_cancelled_while_the_callee_is_away_is_gone_after_connect(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    call = await ring(alice, "away", ["bob"])
    await shown(bob, ["default:away"])
    await bob.disconnect()
    assert client_view(bob) == ([], None, None)  # disconnect clears ring state
    bob_call = bob.make_call("default", "away")
    assert bob_call.state.value.status is CallStatus.IDLE
    await call.reject()  # alice cancels while bob is away
    await bob.connect()
    assert client_view(bob) == ([], None, None)  # already true when connect() returns
    with pytest.raises(CallStateError):
        await bob_call.accept()
    await assert_converged(server, alice, bob)


async def test_a_ring_that_began_while_the_callee_was_offline_is_shown_after_connect(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob", connect=False)
    call = await ring(alice, "offline", ["bob"])
    await bob.connect()
    assert client_view(bob) == (["default:offline"], "default:offline", None)
    incoming = bob.state.incoming_call.value
    assert incoming is not None and incoming.state.value.status is CallStatus.INCOMING
    assert {mb.user_id for mb in incoming.state.value.members} == {"alice", "bob"}
    await incoming.accept()
    assert client_view(bob) == ([], None, None)
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert call.state.value.ring_outcome is m.RingOutcome.ACCEPTED
    # the caller's side is reloaded too: a second device of alice's shows her pending ring
    other = await ring(alice, "second-device", ["bob"])
    alice_laptop = await make_client("alice")
    assert client_view(alice_laptop) == ([], None, other.cid)
    await other.reject()
    await alice_laptop.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    await assert_converged(server, alice, alice_laptop, bob)


async def test_events_after_a_restart_that_lost_the_servers_state_still_arrive(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    call = alice.make_call("default", "chatty")
    await call.get_or_create(members=[MemberRequest("bob")])
    bob_call = bob.make_call("default", "chatty")
    await bob_call.get()
    for i in range(40):
        await call.update(custom={"n": i})
    await bob_call.state.wait_for(lambda s: s.custom == {"n": 39}, timeout=10)
    assert _socket(bob).last_event_id > 40

    # a redeploy that lost everything: a new server on the same ports with the same key pair
    before = {c: _socket(c).reconnects for c in (alice, bob)}
    await server.stop()
    fresh = EmbeddedServer(
        port=urlsplit(server.url).port or 0,
        sfu_port=urlsplit(server.sfu_url).port or 0,
        api_key=server.api_key,
        api_secret=server.api_secret,
    )
    async with fresh:
        for client in (alice, bob):
            await _reconnected(client, before[client])
        again = await ring(alice, "after-restart", ["bob"])
        await shown(bob, [again.cid])
        await assert_converged(fresh, alice, bob)
        incoming = bob.state.incoming_call.value
        assert incoming is not None
        await incoming.reject()
        await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
        await assert_converged(fresh, alice, bob)


async def test_busy_never_counts_the_rung_call_itself(make_client: ClientFactory) -> None:
    alice = await make_client("alice", reject_call_when_busy=True)
    bob = await make_client("bob")
    alice_call = alice.make_call("default", "a-to-b")
    await alice_call.get_or_create(members=[MemberRequest("bob")])
    await alice_call.join(MIC_ON)
    bob_call = bob.make_call("default", "a-to-b")
    await bob_call.join(MIC_ON)
    seen: list[object] = []
    alice.state.incoming_call.listen(seen.append)
    alice.state.ringing_calls.listen(seen.append)
    await bob_call.ring()
    await bob.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert bob_call.state.value.ring_outcome is m.RingOutcome.ACCEPTED  # accepted at once, not busy
    assert bob_call.state.value.reject_reason is None
    assert seen == []  # never shown
    assert alice_call.state.value.status is CallStatus.JOINED

    # a ring for another call is still answered busy
    carol = await make_client("carol")
    other = await ring(carol, "other", ["alice"])
    await carol.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert other.state.value.reject_reason is RejectReason.BUSY
    assert seen == []


async def test_joining_a_call_that_rings_you_accepts_its_ring(make_client: ClientFactory) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    call = await ring(alice, "join-instead", ["bob"])
    await shown(bob, [call.cid])
    bob_call = bob.make_call("default", "join-instead")
    await bob_call.join(MIC_ON)  # straight in, without accept()
    await shown(bob, [])
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert call.state.value.ring_outcome is m.RingOutcome.ACCEPTED
    assert bob_call.state.value.status is CallStatus.JOINED


# ---------------------------------------------------------------- ringing into an ongoing call


async def test_a_member_rung_into_an_ongoing_call_and_declining_ends_nothing(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice", microphone=ToneMicrophone(440), speaker=CaptureSpeaker())
    bob = await make_client("bob", microphone=ToneMicrophone(660), speaker=CaptureSpeaker())
    carol, dave = await make_client("carol"), await make_client("dave")
    call = await ring(alice, "ongoing", ["bob", "carol"])
    bob_call = bob.make_call("default", "ongoing")
    await shown(bob, [call.cid])
    await bob_call.accept()
    await call.join(MIC_ON)
    await bob_call.join(MIC_ON)
    await wait_heard(alice, {"bob": 660.0}, audible={"bob"})
    await shown(carol, [call.cid])  # the first ring still rings carol

    # bob rings dave into the call while carol's ring still rings
    await call.update_members(update=[MemberRequest("dave")])
    await bob_call.ring(members=["dave"])
    assert bob.state.outgoing_call.value is bob_call
    await shown(dave, [call.cid])
    await assert_converged(server, alice, bob, carol, dave)
    with pytest.raises(CallStateError):
        await bob_call.ring(members=["dave"])  # dave is ringing already
    dave_call = dave.state.incoming_call.value
    assert dave_call is not None
    await dave_call.reject(RejectReason.DECLINE)
    await bob.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert bob_call.state.value.ring_outcome is m.RingOutcome.REJECTED
    carol_call = carol.state.incoming_call.value
    assert carol_call is not None
    await carol_call.reject(RejectReason.DECLINE)
    await assert_converged(server, alice, bob, carol, dave)

    # nobody's decline ended the call: both are still in it and hear each other
    for c in (call, bob_call):
        assert c.state.value.status is CallStatus.JOINED and not c.state.value.is_ended
    await wait_heard(alice, {"bob": 660.0}, audible={"bob"})
    await wait_heard(bob, {"alice": 440.0}, audible={"alice"})


# ---------------------------------------------------------------- two rings at once, every ending

OUTCOMES = ["cancelled", "accepted", "rejected", "missed"]


@pytest.mark.parametrize("first_ends", ["older", "newer"])
@pytest.mark.parametrize("second_outcome", OUTCOMES)
@pytest.mark.parametrize("first_outcome", OUTCOMES)
async def test_two_pending_rings_each_ending_in_every_order(
    server: EmbeddedServer,
    make_client: ClientFactory,
    first_outcome: str,
    second_outcome: str,
    first_ends: str,
) -> None:
    bob = await make_client("bob")
    alice, carol = await make_client("alice"), await make_client("carol")
    order = ["older", "newer"] if first_ends == "older" else ["newer", "older"]
    outcome = {order[0]: first_outcome, order[1]: second_outcome}
    # a missed ring gets a short deadline, the one to be missed first the shorter
    timeouts = {name: 15_000 for name in order}
    missed = [name for name in order if outcome[name] == "missed"]
    for i, name in enumerate(missed):
        timeouts[name] = 2500 + 1500 * i
    callers = {"older": alice, "newer": carol}
    calls = {}
    for name in ("older", "newer"):
        calls[name] = await ring(
            callers[name], f"{name}-ring", ["bob"], settings_override=ring_timeout(timeouts[name])
        )
        await shown(bob, [calls[n].cid for n in ("older", "newer") if n in calls])
    assert bob.state.incoming_call.value is not None
    assert bob.state.incoming_call.value.cid == calls["newer"].cid  # the newest
    await assert_converged(server, alice, bob, carol)

    remaining = ["older", "newer"]
    for name in order:
        bob_call = bob.make_call("default", f"{name}-ring")
        how = outcome[name]
        if how == "cancelled":
            await calls[name].reject()
        elif how == "accepted":
            await bob_call.accept()
        elif how == "rejected":
            await bob_call.reject(RejectReason.DECLINE)
        remaining.remove(name)
        await shown(bob, [calls[n].cid for n in remaining])  # only this ring left the list
        newest = bob.state.incoming_call.value
        assert (newest.cid if newest else None) == (calls[remaining[-1]].cid if remaining else None)
        expected = {
            "cancelled": m.RingOutcome.CANCELLED,
            "accepted": m.RingOutcome.ACCEPTED,
            "rejected": m.RingOutcome.REJECTED,
            "missed": m.RingOutcome.MISSED,
        }[how]
        assert bob_call.state.value.ring_outcome is expected
        assert bob_call.state.value.status is CallStatus.IDLE
        await callers[name].state.outgoing_call.wait_for(lambda c: c is None, timeout=10)
        await assert_converged(server, alice, bob, carol)


# ---------------------------------------------------------------- a server restart between every step


async def _step(flow: str, step: int, calls: dict[str, Call], clients: dict[str, VideoClient]) -> None:
    """Step ``step`` of a ring of ``flow``: 0 rings bob and carol, 1 bob declines, 2 ends it."""
    alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]
    if step == 0:
        timeout = 4000 if flow == "missed" else 60_000
        calls["alice"] = await ring(alice, "steps", ["bob", "carol"], settings_override=ring_timeout(timeout))
        await shown(bob, ["default:steps"])
        await shown(carol, ["default:steps"])
    elif step == 1:
        await bob.make_call("default", "steps").reject(RejectReason.DECLINE)
        await shown(bob, [])
        assert alice.state.outgoing_call.value is calls["alice"]  # carol still rings
    elif flow == "accepted":
        await carol.make_call("default", "steps").accept()
        await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=10)
        assert calls["alice"].state.value.ring_outcome is m.RingOutcome.ACCEPTED
    elif flow == "cancelled":
        await calls["alice"].reject()
        await shown(carol, [])
        carol_call = carol.make_call("default", "steps")
        await carol_call.state.wait_for(lambda s: s.ring_outcome is m.RingOutcome.CANCELLED, timeout=10)
    else:  # missed: the deadline passes (re-armed by the restarted server)
        await shown(carol, [], timeout=15)
        await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=15)
        assert calls["alice"].state.value.reject_reason is RejectReason.TIMEOUT
        carol_call = carol.make_call("default", "steps")
        await carol_call.state.wait_for(lambda s: s.ring_outcome is m.RingOutcome.MISSED, timeout=10)


@pytest.mark.parametrize("restart_after", [0, 1, 2])
@pytest.mark.parametrize("flow", ["accepted", "cancelled", "missed"])
async def test_a_server_restart_between_steps_of_a_ring(
    server: EmbeddedServer, make_client: ClientFactory, flow: str, restart_after: int
) -> None:
    clients = {u: await make_client(u) for u in ("alice", "bob", "carol")}
    calls: dict[str, Call] = {}
    for step in range(3):
        await _step(flow, step, calls, clients)
        await assert_converged(server, *clients.values())
        if step == restart_after:
            await restart(server, *clients.values())
            await assert_converged(server, *clients.values())
    with pytest.raises(CallStateError):
        await clients["carol"].make_call("default", "steps").accept()  # nothing stale to answer


async def test_watched_calls_keep_their_events_across_a_restart(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, eve = await make_client("alice"), await make_client("eve")  # eve only watches the call
    call = alice.make_call("default", "watched-restart")
    await call.get_or_create()
    eve_call = eve.make_call("default", "watched-restart")
    await eve_call.get()
    await restart(server, alice, eve)
    await call.update(custom={"after": "restart"})
    await eve_call.state.wait_for(lambda s: s.custom == {"after": "restart"}, timeout=10)


async def test_calls_known_before_disconnect_are_current_and_watched_after_connect(
    make_client: ClientFactory,
) -> None:
    alice, eve = await make_client("alice"), await make_client("eve")  # eve only watches the call
    call = alice.make_call("default", "watched-reconnect")
    await call.get_or_create()
    eve_call = eve.make_call("default", "watched-reconnect")
    await eve_call.get()
    await eve.disconnect()
    await call.update(custom={"while": "away"})
    await eve.connect()
    assert eve_call.state.value.custom == {"while": "away"}  # current when connect() returns
    await call.update(custom={"after": "connect"})
    await eve_call.state.wait_for(lambda s: s.custom == {"after": "connect"}, timeout=10)


async def test_a_client_with_many_calls_reloads_them_all_under_the_rate_limit() -> None:
    async with EmbeddedServer(rate_limit_per_second=10, rate_limit_burst=4) as server:
        clients = []
        for user in ("alice", "eve"):
            client = VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(base_url=server.url),
            )
            await client.connect()
            clients.append(client)
        alice, eve = clients
        try:
            ids = [f"room-{i}" for i in range(8)]
            for call_id in ids:  # eve only watches these calls: after a restart she must watch again
                await alice.make_call("default", call_id).get_or_create()
                await asyncio.sleep(0.15)
                await eve.make_call("default", call_id).get()
                await asyncio.sleep(0.15)
            await restart(server, alice, eve)  # more calls to reload than the burst allows at once
            for call_id in ids:
                await asyncio.sleep(0.15)
                await alice.make_call("default", call_id).update(custom={"after": "restart"})
            for call_id in ids:
                await eve.make_call("default", call_id).state.wait_for(
                    lambda s: s.custom == {"after": "restart"}, timeout=15
                )
        finally:
            for client in clients:
                await client.disconnect()


# ---------------------------------------------------------------- the events socket's replay answer


async def _auth(server: EmbeddedServer, http: aiohttp.ClientSession, **fields: Any) -> dict[str, Any]:
    url = server.url.replace("http://", "ws://") + "/api/v1/events"
    async with http.ws_connect(url) as ws:
        auth = {"type": "auth", "api_key": server.api_key, "token": server.create_token("bob"), **fields}
        await ws.send_str(json.dumps(auth))
        ok: dict[str, Any] = json.loads((await ws.receive(timeout=5)).data)
        return ok


async def test_replay_complete_is_true_only_when_it_is(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice")
    call = alice.make_call("default", "cursor")
    await call.get_or_create(members=[MemberRequest("bob")])
    await call.update(custom={"x": 1})
    async with aiohttp.ClientSession() as http:
        first = await _auth(server, http)
        epoch, connection = first["epoch"], first["connection_id"]
        assert first["type"] == "connection.ok" and epoch
        good = await _auth(server, http, last_event_id=1, epoch=epoch, previous_connection_id=connection)
        assert good["replay_complete"] is True and good["replayed"] >= 1
        for bad in (
            {"last_event_id": 1, "epoch": "another-epoch"},  # ids of another epoch
            {"last_event_id": 10_000, "epoch": epoch},  # a cursor ahead of the server: ids started over
            {"last_event_id": 10_000},  # the same, from a client that sends no epoch
            {"last_event_id": 1, "epoch": epoch, "previous_connection_id": "not-a-connection"},
        ):
            answer = await _auth(server, http, **bad)
            assert answer["replay_complete"] is False and answer["replayed"] == 0, bad


async def test_pending_rings_endpoint_is_documented_and_lists_both_directions(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    call = await ring(alice, "listed", ["bob"])
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/openapi.json") as resp:
            document = await resp.json()
        assert "get" in document["paths"]["/api/v1/rings"]
        headers = {"X-Api-Key": server.api_key}
        for user, outgoing in (("alice", True), ("bob", False)):
            headers["Authorization"] = f"Bearer {server.create_token(user)}"
            async with http.get(server.url + "/api/v1/rings", headers=headers) as resp:
                assert resp.status == 200
                body = m.PendingRingsResponse.model_validate(await resp.json())
            assert [(r.cid, r.outgoing, r.caller.id) for r in body.rings] == [(call.cid, outgoing, "alice")]
            assert body.rings[0].deadline is not None and body.last_event_id > 0
        async with http.get(server.url + "/api/v1/rings", headers={"X-Api-Key": server.api_key}) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "token_missing"
    await shown(bob, [call.cid])
