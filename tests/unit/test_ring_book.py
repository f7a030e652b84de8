"""RingBook: the client's copy of the server's pending rings (pure logic, no server)."""

from __future__ import annotations

from switchboard import Call, User, VideoClient
from switchboard.sdk.rings import PendingRing, RingBook


def _setup() -> tuple[VideoClient, RingBook, Call, Call]:
    client = VideoClient("key", user=User.regular("bob"), user_token="unused")
    book = RingBook(client.state.ringing_calls, client.state.incoming_call, client.state.outgoing_call)
    return client, book, client.make_call("default", "x"), client.make_call("default", "y")


def test_every_pending_ring_is_listed_oldest_first_and_an_ending_removes_only_itself() -> None:
    client, book, x, y = _setup()
    assert book.add(PendingRing("r1", x, outgoing=False))
    assert book.add(PendingRing("r2", y, outgoing=False))
    assert client.state.ringing_calls.value == [x, y]
    assert client.state.incoming_call.value is y
    book.end("r2", y.cid, outgoing=False)
    assert client.state.ringing_calls.value == [x]
    assert client.state.incoming_call.value is x
    book.end(None, x.cid, outgoing=False)  # by call, when the id is not known
    assert client.state.ringing_calls.value == [] and client.state.incoming_call.value is None


def test_an_ended_ring_is_never_shown_again_whatever_arrives_late() -> None:
    client, book, x, _ = _setup()
    book.end("r1", x.cid, outgoing=True)  # its end arrived before the answer that started it
    assert not book.add(PendingRing("r1", x, outgoing=True))
    assert client.state.outgoing_call.value is None
    book.replace([PendingRing("r1", x, outgoing=True)], cursor=5)  # an older snapshot still has it
    assert client.state.outgoing_call.value is None


def test_a_snapshot_replaces_everything_and_marks_older_events_as_already_applied() -> None:
    client, book, x, y = _setup()
    book.add(PendingRing("gone", x, outgoing=False))
    added, removed = book.replace([PendingRing("new", y, outgoing=False)], cursor=42)
    assert [r.ring_id for r in added] == ["new"] and [r.ring_id for r in removed] == ["gone"]
    assert client.state.ringing_calls.value == [y]
    assert book.is_stale(42) and book.is_stale(1) and not book.is_stale(43) and not book.is_stale(0)
    assert not book.add(PendingRing("gone", x, outgoing=False))  # ended on the server
    assert [r.call for r in book.clear()] == [y]
    assert client.state.ringing_calls.value == [] and not book.is_stale(42)


def test_end_call_ends_both_directions() -> None:
    client, book, x, y = _setup()
    book.add(PendingRing("in", x, outgoing=False))
    book.add(PendingRing("out", x, outgoing=True))
    book.add(PendingRing("other", y, outgoing=False))
    assert {r.ring_id for r in book.end_call(x.cid)} == {"in", "out"}
    assert client.state.ringing_calls.value == [y] and client.state.outgoing_call.value is None
