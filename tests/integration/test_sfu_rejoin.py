"""A call whose SFU dies joins again: ``EmbeddedServer(sfu_process=True)`` restarts its SFU child
process, the coordinator forgets the dead child's sessions, and each client's ``Call`` joins the
call again with a new session, keeping what its user set (suspension, microphone, focus).

What is observed is what users observe: what each speaker plays (tones + FFT), the call's state and
its events. The time from the SIGKILL to audio heard both ways again is printed (not a budget).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest

from switchboard import (
    CallConnectOptions,
    CallState,
    CallStatus,
    ClientOptions,
    MultiCallAudioPolicy,
    TrackOption,
    VideoClient,
)
from switchboard.errors import InvalidRequestError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import coordinator as m
from switchboard.sdk.call import Call
from switchboard.sdk.types import SuspendMode
from switchboard.server import EmbeddedServer
from tests.conftest import (
    AUDIBLE_DBFS,
    SILENT_DBFS,
    ClientFactory,
    named_levels,
    stays_heard,
    until,
    wait_heard,
)

NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())
TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0}
PAIR = {k: TONES[k] for k in ("alice", "bob")}
#: generous: an SFU process restart (a Python interpreter importing aiortc) plus a join, on a shared
#: machine; what it really takes is printed
BACK_WITHIN = 30.0


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(sfu_process=True, reconnect_grace=1.0) as srv:
        yield srv


@pytest.fixture
def make_client(make_client: ClientFactory) -> ClientFactory:
    """Clients that speak their tone (:data:`TONES`) and capture what they hear."""

    async def factory(user: str, **options: object) -> VideoClient:
        return await make_client(
            user, microphone=ToneMicrophone(TONES[user]), speaker=CaptureSpeaker(), **options
        )

    return factory


async def alice_and_bob_in(
    make_client: ClientFactory, call_id: str
) -> tuple[VideoClient, VideoClient, Call, Call]:
    """Alice creates ``call_id`` and both join it (no camera); the clients, then alice's and bob's call."""
    alice, bob = await make_client("alice"), await make_client("bob")
    a_call, b_call = alice.make_call("default", call_id), bob.make_call("default", call_id)
    await a_call.get_or_create()
    await a_call.join(NO_CAMERA)
    await b_call.join(NO_CAMERA)
    return alice, bob, a_call, b_call


async def heard_over(client: VideoClient, seconds: float) -> dict[str, float]:
    """The level (dBFS) of each tone in what ``client``'s speaker plays over the next ``seconds``."""
    speaker = client.capture_speaker
    start = speaker.total_samples
    await asyncio.sleep(seconds)
    return named_levels(speaker.samples_range(start, speaker.total_samples), TONES)


def record(call: Call) -> list[m.Event]:
    """Every event of ``call`` from now on."""
    seen: list[m.Event] = []
    call.on("*", seen.append)
    return seen


def local(events: list[m.Event], event_type: str) -> list[dict[str, object]]:
    """The data of the SDK's own events of ``event_type``."""
    return [dict(e.data) for e in events if e.type == event_type]  # type: ignore[attr-defined]


async def kill_sfu(server: EmbeddedServer) -> float:
    """SIGKILL the SFU child process; the loop time it happened."""
    pid = server.sfu_pid
    assert pid is not None and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    return asyncio.get_running_loop().time()


async def wait_rejoined(before: dict[Call, str | None]) -> None:
    """Until every call is JOINED again on another session than the one it had ``before``."""
    for call, session_id in before.items():

        def rejoined(state: CallState, old: str | None = session_id) -> bool:
            return state.status is CallStatus.JOINED and state.session_id != old

        await call.state.wait_for(rejoined, BACK_WITHIN)


async def test_a_killed_sfu_process_comes_back_and_both_clients_hear_each_other_again(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, bob, a_call, b_call = await alice_and_bob_in(make_client, "sigkill")
    await wait_heard(alice, PAIR, audible={"bob"})
    await wait_heard(bob, PAIR, audible={"alice"})
    old = {call: call.state.value.session_id for call in (a_call, b_call)}
    statuses: list[CallStatus] = []
    a_call.state.listen(lambda s: statuses.append(s.status))
    a_events, b_events = record(a_call), record(b_call)
    first_pid = server.sfu_pid

    killed = await kill_sfu(server)
    await wait_heard(alice, PAIR, audible={"bob"}, timeout=BACK_WITHIN)
    await wait_heard(bob, PAIR, audible={"alice"}, timeout=BACK_WITHIN)
    back = asyncio.get_running_loop().time() - killed
    print(f"\naudio back both ways {back * 1000:.0f} ms after the SFU process was killed")

    assert server.sfu_restarts == 1 and server.sfu_pid not in (None, first_pid)
    await wait_rejoined(old)
    assert CallStatus.RECONNECTING in statuses
    for call, events in ((a_call, a_events), (b_call, b_events)):
        reconnecting = local(events, "call.reconnecting")
        assert reconnecting[0] == {"reason": "sfu_disconnected", "migrating": False}
        assert reconnecting[-1]["migrating"] is True
        assert reconnecting[-1]["reason"] in ("sfu_unreachable", "session_lost")
        (reconnected,) = local(events, "call.reconnected")
        assert reconnected["migrated"] is True
        assert reconnected["previous_session_id"] == old[call]
        assert reconnected["session_id"] == call.state.value.session_id != old[call]
        assert local(events, "call.left") == []
    # the same Call objects, still the active calls; each sees the other on its new session
    assert alice.state.active_calls.value == [a_call] and bob.state.active_calls.value == [b_call]
    assert {p.session_id for p in a_call.state.value.participants} == {
        a_call.state.value.session_id,
        b_call.state.value.session_id,
    }
    # the coordinator forgot the dead process's sessions: their tokens cannot come back
    for call in (a_call, b_call):
        session_id = old[call]
        assert session_id is not None
        record_ = await server.coordinator.sfu_sessions.get(session_id)
        assert record_ is not None and record_.left
    # and the new sessions carry on as before: a mute is heard
    await b_call.set_microphone_enabled(False)
    await wait_heard(alice, PAIR, audible=set())


async def test_suspension_focus_and_a_muted_microphone_survive_the_rejoin(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client(
        "alice",
        allow_multiple_active_calls=True,
        multi_call_audio_policy=MultiCallAudioPolicy.SUSPEND_EXISTING,
    )
    bob, carol = await make_client("bob"), await make_client("carol")
    one, two = alice.make_call("default", "one"), alice.make_call("default", "two")
    await one.get_or_create()
    await two.get_or_create()
    await one.join(NO_CAMERA)
    await bob.make_call("default", "one").join(NO_CAMERA)
    await two.join(NO_CAMERA)  # SUSPEND_EXISTING: "one" is suspended, "two" has the focus
    await carol.make_call("default", "two").join(NO_CAMERA)
    await two.set_microphone_enabled(False)
    assert one.state.value.is_audio_suspended and not two.state.value.is_audio_suspended
    await wait_heard(alice, TONES, audible={"carol"})
    await wait_heard(bob, TONES, audible=set())
    await wait_heard(carol, TONES, audible=set())
    calls = [one, two, *bob.state.active_calls.value, *carol.state.active_calls.value]
    old = {call: call.state.value.session_id for call in calls}
    events = {call: record(call) for call in (one, two)}

    killed = await kill_sfu(server)
    await wait_rejoined(old)
    print(f"\nfour calls joined again {asyncio.get_running_loop().time() - killed:.1f} s after the kill")

    # focus untouched: same calls, same order, "one" still suspended (and silent), "two" focused
    assert alice.state.active_calls.value == [one, two]
    assert one.state.value.is_audio_suspended and one.suspend_mode is SuspendMode.SILENT
    assert not two.state.value.is_audio_suspended
    assert not two.microphone_enabled and one.microphone_enabled
    for call in (one, two):
        assert local(events[call], "call.audio_suspended") == []
        assert local(events[call], "call.audio_resumed") == []
    # alice hears carol only; bob hears nothing of alice (suspended); carol nothing (muted)
    await wait_heard(alice, TONES, audible={"carol"}, timeout=BACK_WITHIN)
    alice_hears, *_ = await asyncio.gather(
        heard_over(alice, 1.0),
        stays_heard(bob, TONES, audible=set(), duration=1.0),
        stays_heard(carol, TONES, audible=set(), duration=1.0),
    )
    assert alice_hears["carol"] > AUDIBLE_DBFS and alice_hears["bob"] < SILENT_DBFS, alice_hears

    # the silences were the user's choices, not dead media: undo them and they are heard
    await two.set_microphone_enabled(True)
    await wait_heard(carol, TONES, audible={"alice"})
    await two.suspend_audio()
    await one.resume_audio()
    await wait_heard(bob, TONES, audible={"alice"})
    await wait_heard(alice, TONES, audible={"bob"})


async def test_a_call_ended_while_the_sfu_is_down_does_not_rejoin(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, bob, a_call, b_call = await alice_and_bob_in(make_client, "ended")
    await wait_heard(bob, PAIR, audible={"alice"})
    b_events = record(b_call)

    await kill_sfu(server)
    await a_call.end()  # while the SFU process is down (restarting takes a second or more)
    restarts_when_ended = server.sfu_restarts

    await b_call.state.wait_for(lambda s: s.status is CallStatus.DISCONNECTED, BACK_WITHIN)
    assert [e["reason"] for e in local(b_events, "call.left")] == ["call_ended"]
    assert local(b_events, "call.reconnected") == []
    assert a_call.state.value.status is CallStatus.DISCONNECTED
    await until(
        lambda: alice.state.active_calls.value == bob.state.active_calls.value == [],
        "no active call left",
        BACK_WITHIN,
    )

    # the SFU comes back, and nobody joins it
    await until(lambda: server.sfu_restarts == 1, "the SFU process restarted", BACK_WITHIN)
    assert restarts_when_ended == 0
    await asyncio.sleep(1.0)
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {server.create_admin_token()}"}
        async with http.get(server.sfu_url.replace("ws://", "http://") + "/stats", headers=headers) as resp:
            assert (await resp.json())["participants"] == 0
    assert local(b_events, "call.reconnected") == []


async def test_a_user_removed_while_the_sfu_is_down_does_not_rejoin(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice, _, a_call, b_call = await alice_and_bob_in(make_client, "removed")
    await wait_heard(alice, PAIR, audible={"bob"})
    old = {a_call: a_call.state.value.session_id}
    b_events = record(b_call)

    await kill_sfu(server)
    await a_call.remove_participant("bob")  # the host removes bob while the SFU cannot tell him

    await b_call.state.wait_for(lambda s: s.status is CallStatus.DISCONNECTED, BACK_WITHIN)
    assert [e["reason"] for e in local(b_events, "call.left")] == ["removed"]
    assert local(b_events, "call.removed") == [{"by": "alice", "blocked": False}]
    await wait_rejoined(old)  # alice was not removed: she is back, alone
    assert [p.user_id for p in a_call.state.value.participants] == ["alice"]
    await stays_heard(alice, PAIR, audible=set(), duration=1.0)
    assert local(b_events, "call.reconnected") == []


async def test_with_rejoining_off_a_lost_session_ends_the_call(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    alice = await make_client("alice", rejoin_window=0)
    call = alice.make_call("default", "no-rejoin")
    await call.get_or_create()
    await call.join(NO_CAMERA)
    events = record(call)

    await kill_sfu(server)
    await call.state.wait_for(lambda s: s.status is CallStatus.DISCONNECTED, BACK_WITHIN)
    (left,) = local(events, "call.left")
    assert left["reason"] == "sfu_disconnected" and "rejoining is off" in str(left["detail"])
    assert [e["migrating"] for e in local(events, "call.reconnecting")] == [False]
    await until(lambda: alice.state.active_calls.value == [], "the call left the active calls", BACK_WITHIN)


def test_rejoin_window_is_checked_at_construction() -> None:
    assert ClientOptions().rejoin_window == 30.0
    assert ClientOptions(rejoin_window=0).rejoin_window == 0
    for bad in (-1.0, "30", True, float("nan"), float("inf")):
        with pytest.raises(InvalidRequestError, match=r"ClientOptions\.rejoin_window must be a number"):
            ClientOptions(rejoin_window=bad)  # type: ignore[arg-type]
