"""Helper process: the client measured by the held-calls benchmark (nothing else runs in it).

Config: ``{"server": ServerInfo, "user": ..., "rooms": [...], "window_s": 30, "settle_s": 3, "hz": ...}``.
Joins ``rooms[0]`` with the microphone on (the active call), measures its own CPU time with
``getrusage(RUSAGE_SELF)`` over ``window_s``; then joins every other room under ``SUSPEND_INCOMING``
(they start suspended, in ``suspend_mode``: "silent" by default, or "ducked" so they keep
playing at the duck gain), waits ``settle_s`` and measures again. Prints one JSON line with both windows
and the evidence that the suspended calls cost nothing: frames decoded, frames encoded, and what the
SFU sent to their sessions (from ``/sfu/stats``) during the window.
"""

from __future__ import annotations

import asyncio
import resource
import threading
import time

import aiohttp

from benchmarks.common import Json, ServerInfo, emit, make_client, run_child, self_cpu_seconds, wait_audible
from switchboard import Call, CallConnectOptions, MultiCallAudioPolicy, SuspendMode, TrackOption
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_level_dbfs

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
ME_HZ = 1000.0


def _decoded(calls: list[Call]) -> tuple[int, int]:
    """(frames decoded and played, packets dropped undecoded while suspended) of the calls' remote audio."""
    played = dropped = 0
    for call in calls:
        adm = call.audio_device_module
        if adm is None:
            continue
        for remote in adm.remotes.values():
            played += remote.frames
            dropped += int(getattr(remote, "dropped_while_suspended", 0))  # diagnostics only
    return played, dropped


def _encoded(calls: list[Call]) -> int:
    return sum(c.audio_device_module.frames_encoded for c in calls if c.audio_device_module is not None)


async def _sfu_sent(http: aiohttp.ClientSession, server: ServerInfo, calls: list[Call]) -> int:
    """Audio frames the SFU has sent to these calls' sessions (all down-tracks)."""
    stats = await server.sfu_stats(http)
    total = 0
    for call in calls:
        room = stats["rooms"].get(call.cid, {})
        session = room.get(call.state.value.session_id or "", {})
        total += sum(int(d["sent"]) for d in session.get("downtracks", []) if d["kind"] == "audio")
    return total


async def _window(
    http: aiohttp.ClientSession,
    server: ServerInfo,
    speaker: CaptureSpeaker,
    active: Call,
    held: list[Call],
    seconds: float,
    hz: float,
) -> Json:
    sfu0 = await _sfu_sent(http, server, held)
    played0, dropped0 = _decoded(held)
    active_played0, _ = _decoded([active])
    enc0, enc_active0 = _encoded(held), _encoded([active])
    wall0, cpu0 = time.monotonic(), self_cpu_seconds()
    await asyncio.sleep(seconds)
    cpu1, wall1 = self_cpu_seconds(), time.monotonic()
    played1, dropped1 = _decoded(held)
    active_played1, _ = _decoded([active])
    sfu1 = await _sfu_sent(http, server, held)
    cpu, wall = cpu1 - cpu0, wall1 - wall0
    return {
        "calls": 1 + len(held),
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 4),
        "cpu_pct": round(100.0 * cpu / wall, 3),
        "active_frames_played": active_played1 - active_played0,
        "active_frames_encoded": _encoded([active]) - enc_active0,
        "active_tone_dbfs": round(tone_level_dbfs(speaker.samples(min(seconds, 5.0)), hz), 1),
        "suspended_frames_played": played1 - played0,
        "suspended_packets_dropped_undecoded": dropped1 - dropped0,
        "suspended_frames_encoded": _encoded(held) - enc0,
        "sfu_frames_sent_to_suspended": sfu1 - sfu0,
        "threads": threading.active_count(),
        "asyncio_tasks": len(asyncio.all_tasks()),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def main(config: Json) -> None:
    server = ServerInfo.from_json(config["server"])
    rooms = [str(r) for r in config["rooms"]]
    window, settle, hz = float(config["window_s"]), float(config["settle_s"]), float(config["hz"])
    speaker = CaptureSpeaker(max_seconds=10.0)
    me = make_client(
        server,
        str(config["user"]),
        microphone=ToneMicrophone(ME_HZ),
        speaker=speaker,
        multi=True,
        policy=MultiCallAudioPolicy.SUSPEND_INCOMING,
        suspend_mode=SuspendMode(str(config.get("suspend_mode", "silent"))),
    )
    await me.connect()
    try:
        async with aiohttp.ClientSession() as http:
            active = me.make_call("default", rooms[0])
            await active.get_or_create()
            await active.join(MIC_ON)
            if not await wait_audible(speaker, hz):
                raise RuntimeError("the active call's tone never reached the speaker")
            await asyncio.sleep(settle)
            alone = await _window(http, server, speaker, active, [], window, hz)

            held = [me.make_call("default", room) for room in rooms[1:]]
            t_join = time.monotonic()
            for call in held:  # one after another, as a user would
                await call.get_or_create()
                await call.join(MIC_ON)
            join_s = time.monotonic() - t_join
            not_suspended = [c.cid for c in held if not c.state.value.is_audio_suspended]
            if not_suspended:
                raise RuntimeError(f"SUSPEND_INCOMING left these calls unsuspended: {not_suspended}")
            await asyncio.sleep(settle)
            with_held = await _window(http, server, speaker, active, held, window, hz)
            emit({"alone": alone, "held": with_held, "join_suspended_s": round(join_s, 2)})
    finally:
        await me.disconnect()


if __name__ == "__main__":
    run_child(main)
