"""The SDK's coordinator half against the real server: connect, calls, state, events, ringing, replay."""

from __future__ import annotations

import asyncio

import pytest

from switchboard import CallStatus, CallType, ClientOptions, MemberRequest, RejectReason, User, VideoClient
from switchboard.errors import (
    AuthenticationError,
    CallStateError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
)
from switchboard.protocol import coordinator as m
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory

FAST_RING = m.CallSettingsRequest(
    ring=m.RingSettingsRequest(incoming_call_timeout_ms=600, auto_cancel_timeout_ms=600)
)


async def test_connect_with_bad_tokens_raises_at_once(server: EmbeddedServer) -> None:
    opts = ClientOptions(base_url=server.url)
    expired = server.create_token("alice", ttl=-5)
    for token, key in [
        (expired, server.api_key),
        ("junk", server.api_key),
        (server.create_token("alice"), "nope"),
    ]:
        client = VideoClient(key, user=User.regular("alice"), user_token=token, options=opts)
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(client.connect(), 5)
    wrong_user = VideoClient(
        server.api_key, user=User.regular("bob"), user_token=server.create_token("alice"), options=opts
    )
    with pytest.raises(AuthenticationError):
        await wrong_user.connect()


async def test_connect_to_nothing_is_network_error() -> None:
    client = VideoClient(
        "k", user=User.regular("a"), user_token="t", options=ClientOptions(base_url="http://127.0.0.1:9")
    )
    with pytest.raises(NetworkError):
        await client.connect()


async def test_calls_state_and_events(make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    call = alice.make_call(CallType.default(), id="standup")
    assert call.cid == "default:standup"
    assert alice.make_call(CallType.default(), id="standup") is call
    with pytest.raises(NotFoundError):
        await call.get()
    state = await call.get_or_create(members=[MemberRequest("bob")], custom={"topic": "daily"})
    assert {(mb.user_id, mb.role) for mb in state.members} == {("alice", "host"), ("bob", "call_member")}
    assert m.Capability.END_CALL in state.own_capabilities

    bob_call = bob.make_call("default", "standup")
    seen: list[str] = []
    bob_call.on("*", lambda e: seen.append(e.type))
    await bob_call.get()
    assert bob_call.state.value.custom == {"topic": "daily"}
    assert m.Capability.END_CALL not in bob_call.state.value.own_capabilities
    with pytest.raises(PermissionDeniedError):
        await bob_call.end()

    await call.update(custom={"topic": "retro"})
    await bob_call.state.wait_for(lambda s: s.custom == {"topic": "retro"}, timeout=5)
    await call.update_members(update=[MemberRequest("carol", role="admin")])
    await bob_call.state.wait_for(lambda s: any(mb.user_id == "carol" for mb in s.members), timeout=5)
    await call.end()
    ended = await bob_call.state.wait_for(lambda s: s.is_ended, timeout=5)
    assert ended.ended_at is not None
    assert {"call.updated", "call.member_added", "call.ended"} <= set(seen)
    with pytest.raises(CallStateError):
        await call.update(custom={})


async def test_ring_accept(make_client: ClientFactory) -> None:
    alice, bob, carol = [await make_client(u) for u in ("alice", "bob", "carol")]
    call = alice.make_call(id="ring1")
    await call.get_or_create(members=[MemberRequest("bob"), MemberRequest("carol")], ringing=True)
    assert alice.state.outgoing_call.value is call
    assert call.state.value.status is CallStatus.OUTGOING
    bob_in = await bob.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    carol_in = await carol.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    assert bob_in is not None and carol_in is not None
    assert bob_in.cid == call.cid and bob_in.state.value.status is CallStatus.INCOMING
    await bob_in.accept()
    assert bob.state.incoming_call.value is None  # cleared when accept() returns
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert call.state.value.ring_outcome is m.RingOutcome.ACCEPTED
    await asyncio.sleep(0.2)
    assert carol.state.incoming_call.value is carol_in  # still ringing for carol
    await carol_in.reject(RejectReason.DECLINE)
    assert carol.state.incoming_call.value is None
    assert carol_in.state.value.ring_outcome is m.RingOutcome.REJECTED


async def test_ring_all_rejected_ends_callers_ring(make_client: ClientFactory) -> None:
    alice, bob, carol = [await make_client(u) for u in ("alice", "bob", "carol")]
    call = alice.make_call(id="ring2")
    await call.get_or_create(members=[MemberRequest("bob"), MemberRequest("carol")], ringing=True)
    for client in (bob, carol):
        incoming = await client.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
        assert incoming is not None
        await incoming.reject(RejectReason.BUSY)
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert call.state.value.ring_outcome is m.RingOutcome.REJECTED
    assert call.state.value.reject_reason is RejectReason.BUSY
    assert call.state.value.status is CallStatus.IDLE


async def test_ring_timeout(make_client: ClientFactory) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    call = alice.make_call(id="ring3")
    await call.get_or_create(members=[MemberRequest("bob")], ringing=True, settings_override=FAST_RING)
    incoming = await bob.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    assert incoming is not None
    await bob.state.incoming_call.wait_for(lambda c: c is None, timeout=5)
    assert incoming.state.value.ring_outcome is m.RingOutcome.MISSED
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert call.state.value.ring_outcome is m.RingOutcome.REJECTED
    assert call.state.value.reject_reason is RejectReason.TIMEOUT
    with pytest.raises(CallStateError):
        await incoming.accept()


async def test_caller_cancel_ends_every_callee_ring(make_client: ClientFactory) -> None:
    alice, bob, carol = [await make_client(u) for u in ("alice", "bob", "carol")]
    call = alice.make_call(id="ring4")
    await call.get_or_create(members=[MemberRequest("bob"), MemberRequest("carol")], ringing=True)
    for client in (bob, carol):
        await client.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    await call.reject()
    assert alice.state.outgoing_call.value is None
    for client in (bob, carol):
        await client.state.incoming_call.wait_for(lambda c: c is None, timeout=5)
    assert bob.make_call(id="ring4").state.value.ring_outcome is m.RingOutcome.CANCELLED


async def test_busy_client_auto_rejects_and_never_shows_ring(make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob", reject_call_when_busy=True)
    other = bob.make_call(id="bobs-own")
    bob.state.active_calls._set([other])  # bob is in a call (join() fills this in the media layer)
    shown: list[object] = []
    bob.state.incoming_call.listen(shown.append)
    call = alice.make_call(id="ring5")
    await call.get_or_create(members=[MemberRequest("bob")], ringing=True)
    await alice.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
    assert call.state.value.reject_reason is RejectReason.BUSY
    assert shown == []
    bob.state.active_calls._set([])


async def test_two_connections_of_one_user_both_ring_and_both_clear(make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    bob_phone, bob_laptop = await make_client("bob"), await make_client("bob")
    call = alice.make_call(id="ring6")
    await call.get_or_create(members=[MemberRequest("bob")], ringing=True)
    phone_in = await bob_phone.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    await bob_laptop.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
    assert phone_in is not None
    await phone_in.accept()
    await bob_laptop.state.incoming_call.wait_for(lambda c: c is None, timeout=5)


async def test_events_replayed_after_dropped_socket(make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    call = alice.make_call(id="replay")
    await call.get_or_create(members=[MemberRequest("bob")])
    bob_call = bob.make_call(id="replay")
    await bob_call.get()
    received: list[m.Event] = []
    bob.on("*", received.append)
    socket = bob.events_connection
    assert socket is not None
    old_connection = socket.connection_id

    # Drop bob's socket and publish while he is away.
    reconnected = asyncio.Event()
    bob.state.connection.listen(lambda s: reconnected.set() if s == "connected" else None)
    await socket.drop()
    for i in range(10):
        await call.update(custom={"n": i})
    await asyncio.wait_for(reconnected.wait(), 10)
    await bob_call.state.wait_for(lambda s: s.custom == {"n": 9}, timeout=5)
    for i in range(10, 13):
        await call.update(custom={"n": i})
    await bob_call.state.wait_for(lambda s: s.custom == {"n": 12}, timeout=5)

    assert socket.connection_id != old_connection
    updates = [e for e in received if e.type == "call.updated"]
    assert [e.call.custom["n"] for e in updates if isinstance(e, m.CallUpdatedEvent)] == list(range(13))
    ids = [e.id for e in received]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


async def test_calls_watched_by_connection_survive_reconnect(make_client: ClientFactory) -> None:
    alice = await make_client("alice")
    eve = await make_client("eve")  # not a member: gets events only by watching
    call = alice.make_call(id="watched")
    await call.get_or_create()
    eve_call = eve.make_call(id="watched")
    await eve_call.get()
    socket = eve.events_connection
    assert socket is not None
    await socket.drop()
    await call.update(custom={"while": "away"})
    await eve_call.state.wait_for(lambda s: s.custom == {"while": "away"}, timeout=10)
    await call.update(custom={"after": "reconnect"})
    await eve_call.state.wait_for(lambda s: s.custom == {"after": "reconnect"}, timeout=10)


async def test_operations_before_connect_are_call_state_errors(server: EmbeddedServer) -> None:
    client = VideoClient(
        server.api_key,
        user=User.regular("a"),
        user_token=server.create_token("a"),
        options=ClientOptions(base_url=server.url),
    )
    with pytest.raises(CallStateError):
        await client.make_call(id="x").get_or_create()
