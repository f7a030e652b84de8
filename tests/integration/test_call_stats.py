"""Call statistics and connection quality: real calls, and real packet loss in a network namespace."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from switchboard import CallConnectOptions, TrackOption
from switchboard.errors import CallStateError
from switchboard.media import CaptureSpeaker, ToneMicrophone
from tests.conftest import ClientFactory, until, wait_heard

REPO = Path(__file__).resolve().parents[2]
NO_CAMERA = CallConnectOptions(camera=TrackOption.disabled())
LOSS_PERCENT = 20


async def test_stats_per_track_and_quality_on_a_clean_path(make_client: ClientFactory) -> None:
    alice = await make_client("alice", microphone=ToneMicrophone(440.0), speaker=CaptureSpeaker())
    bob = await make_client("bob", microphone=ToneMicrophone(660.0), speaker=CaptureSpeaker())
    a_call, b_call = alice.make_call("default", "stats"), bob.make_call("default", "stats")
    with pytest.raises(CallStateError, match="not joined"):
        await a_call.get_stats()
    await a_call.get_or_create()
    await a_call.join(NO_CAMERA)
    await b_call.join(NO_CAMERA)
    await wait_heard(bob, {"alice": 440.0, "bob": 660.0}, audible={"alice"})

    stats = await b_call.get_stats()
    out, inbound = stats.outbound("audio"), stats.inbound("alice", "audio")
    assert out is not None and inbound is not None
    assert out.user_id == "bob" and inbound.session_id == a_call.state.value.session_id
    # Opus voice at the SDK's settings: tens of kbit/s each way, nothing lost on loopback
    assert inbound.bitrate is not None and 10_000 < inbound.bitrate < 200_000
    assert out.bitrate is not None and 10_000 < out.bitrate < 200_000
    assert inbound.packets > 0 and inbound.packets_lost == 0 and inbound.fraction_lost == 0.0
    assert inbound.jitter_ms is not None and inbound.jitter_ms < 50
    # RTCP receiver reports from the SFU arrive within a few seconds: round trip and loss
    await asyncio.sleep(1.0)
    for _ in range(20):
        out = (await b_call.get_stats()).outbound("audio")
        if out is not None and out.round_trip_time_ms is not None:
            break
        await asyncio.sleep(0.5)
    assert out is not None and out.round_trip_time_ms is not None and out.round_trip_time_ms < 100
    assert out.fraction_lost == 0.0

    await until(
        lambda: (
            {q.user_id: q.connection_quality for q in b_call.state.value.participants}
            == {"alice": "excellent", "bob": "excellent"}
        ),
        "both rated excellent",
        timeout=15.0,
        interval=0.05,
    )


def require_lossy_namespace() -> None:
    missing = [tool for tool in ("unshare", "ip", "nft") if shutil.which(tool) is None]
    why = f"missing {missing}" if missing else ""
    if not missing:
        probe = subprocess.run(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && nft add table inet probe"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return
        why = probe.stderr.strip()
    message = f"a private network namespace with nftables is needed (Linux, root, unshare, ip, nft): {why}"
    if os.environ.get("CI") == "true":
        raise RuntimeError(message)
    pytest.skip(message)


def test_stats_and_quality_show_the_loss_injected_on_the_path() -> None:
    require_lossy_namespace()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.lossy_call", str(LOSS_PERCENT)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    def track(phase: str, user: str, direction: str) -> dict[str, Any]:
        return next(t for t in report[phase][user] if t["direction"] == direction)

    for user in ("alice", "bob"):
        for direction in ("inbound", "outbound"):
            assert track("before", user, direction)["fraction_lost"] == 0.0, (user, direction)
    assert report["quality_before"] == "excellent"

    # 20 % of every datagram dropped: each leg (client -> SFU, SFU -> client) loses about that much.
    # Judged on the counters over the whole lossy phase (hundreds of packets); the RTCP fraction lost
    # covers one report interval (a few dozen packets), so it only has to show that loss is happening.
    low, high = 0.08, 0.35
    for user in ("alice", "bob"):
        for direction in ("inbound", "outbound"):
            before, after = track("before", user, direction), track("after", user, direction)
            lost = after["packets_lost"] - before["packets_lost"]
            packets = after["packets"] - before["packets"]
            # inbound counts what arrived (lost ones did not); outbound counts what was sent
            share = lost / (packets + lost) if direction == "inbound" else lost / packets
            assert low < share < high, (user, direction, lost, packets, after)
            assert after["fraction_lost"] > 0.0, (user, direction, after)
    assert report["quality_after"] == "poor"
