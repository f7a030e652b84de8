"""One user floods both of the server's sockets at once: the events socket (coordinator) and the SFU
signalling socket. Two other people in a call keep hearing each other in every 100 ms window, and
every socket of the flooder is cut off with its documented close code (docs/security.md).

The flooders are other processes, as an attacker's would be; the server runs as ``EmbeddedServer``
does by default (coordinator and SFU in this event loop), the harder case for starvation.
"""

from __future__ import annotations

import asyncio
import json
import sys

from switchboard import CallConnectOptions, TrackOption
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.protocol import sfu as p
from switchboard.protocol.close_codes import EventsCloseCode
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory, hears_throughout, wait_heard
from tests.integration.test_sfu_trust import FLOODER, rest_join

TONES = {"alice": 440.0, "bob": 660.0}
EVENT_SOCKETS = 10  # the per-user cap: every one is admitted, then cut off by the frame rate


async def test_one_user_flooding_both_sockets_is_cut_off_and_a_call_stays_audible(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    clients = {
        user: await make_client(user, microphone=ToneMicrophone(hz), speaker=CaptureSpeaker())
        for user, hz in TONES.items()
    }
    for client in clients.values():
        call = client.make_call("default", "both-flooded")
        await call.get_or_create()
        await call.join(CallConnectOptions(camera=TrackOption.disabled()))
    for user, client in clients.items():
        await wait_heard(client, TONES, audible=set(TONES) - {user})

    mallory = await make_client("mallory")
    joined = await rest_join(mallory, "default", "both-flooded")
    events_flooder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.events_flooder",
        server.url, server.api_key, server.create_token("mallory"), str(EVENT_SOCKETS), "2.0",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert events_flooder.stdout is not None
    assert await asyncio.wait_for(events_flooder.stdout.readline(), 30) == b"ready\n"

    listening = asyncio.gather(  # from before both floods start until well after they were cut off
        hears_throughout(clients["alice"], "bob", TONES["bob"], duration=3.0),
        hears_throughout(clients["bob"], "alice", TONES["alice"], duration=3.0),
    )
    sfu_flooder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOODER, joined.credentials.server.url, joined.credentials.token,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    (events_out, _), (sfu_out, _) = await asyncio.wait_for(
        asyncio.gather(events_flooder.communicate(b"go\n"), sfu_flooder.communicate()), 60
    )
    await listening

    events_report = json.loads(events_out)
    assert events_report["sent"] > 10 * events_report["opens"], events_report  # it really flooded
    assert events_report["close_codes"] == [EventsCloseCode.RATE_LIMITED] * EVENT_SOCKETS, events_report
    sfu_report = json.loads(sfu_out.decode().strip().splitlines()[-1])
    assert sfu_report["joined"] and sfu_report["close_code"] == p.CloseCode.RATE_LIMITED, sfu_report
    assert sfu_report["sent"] > server.sfu.config.message_burst, sfu_report
    room = server.sfu.rooms["default:both-flooded"]
    assert joined.session_id not in room.participants and len(room.participants) == 2
    # and afterwards the call goes on as before
    await asyncio.gather(
        hears_throughout(clients["alice"], "bob", TONES["bob"], duration=0.6),
        hears_throughout(clients["bob"], "alice", TONES["alice"], duration=0.6),
    )
