"""SFU (SPEC §5): audio down-tracks forwarded per core at under 1 % loss, and mouth-to-ear latency.

The server runs in its own process; its CPU is read from ``/proc/<pid>/stat``.

**Mouth-to-ear** (idle server): an SDK publisher whose microphone is a gated tone, and six SDK
listeners (joined at different moments, so their 20 ms speaker clocks have different phases), all in
this process, on one clock. For each burst: mouth = the loop time the first tone frame was read from
the microphone (handed to the encoder); ear = the time the first 20 ms frame carrying the tone was
played by a listener's :class:`CaptureSpeaker`. A real microphone would add its own capture buffer
(one frame) before "mouth".

**Down-tracks per core**: load generators (``benchmarks.loadgen``: raw protocol clients, no decoding,
at a lower CPU priority than the SFU) in other processes fill rooms of 2 publishers + 10 listeners
(20 forwarded audio down-tracks per room; publishers listen to nobody). The load is ramped room by
room. At each level, once every listener receives every track, the publishers send exactly N frames
each (one per 20 ms); counters are compared while nothing flows, so they are exact:

* end-to-end loss = 1 - frames the listeners received / (N x down-tracks), with where frames were lost
  (load generator, publishers -> SFU, inside the SFU, SFU -> listeners);
* SFU cores = SFU CPU seconds from the first frame until the last one was delivered, minus the idle
  rate (measured just before) for the time after the publishers stopped, over the send duration;
* real time: a probe (one gated-tone SDK publisher and one SDK listener in their own room) measures
  mouth-to-ear latency through the loaded SFU during the send.

A level *holds* when loss < 1 % and the probe's mouth-to-ear p95 stays under 150 ms (ITU-T G.114's
limit for good interactivity: a saturated SFU keeps forwarding everything, late, before it drops).
``sfu_audio_downtracks_per_core`` = down-tracks / SFU cores at the highest level that holds. The load
generators share the 2-core machine with the SFU: where frames were lost says whose fault it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.common import (
    BenchResult,
    Child,
    ChildError,
    Json,
    ServerInfo,
    ToneSource,
    ToneWatch,
    machine_cpu_seconds,
    make_client,
    median,
    percentile,
    proc_cpu_seconds,
    start_server,
    udp_counters,
)
from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.errors import SwitchboardError
from switchboard.media import CaptureSpeaker

PROBE_HZ = 700.0
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
LISTEN = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())
ROOM_PUBLISHERS = 2
ROOM_LISTENERS = 10
LEVELS = (1, 2, 4, 6, 8, 10, 12, 15, 18, 22, 26, 30, 35, 40)
LOSS_LIMIT = 0.01
#: mouth-to-ear p95 through the loaded SFU above which forwarding no longer counts as real time
REALTIME_M2E_MS = 150.0
#: the load generators run at a lower priority so that the SFU gets a core when it needs one
LOADGEN_NICE = 10
log = logging.getLogger("benchmarks.sfu")


# ---------------------------------------------------------------------------------------------
# Mouth to ear
# ---------------------------------------------------------------------------------------------


def _playout_depth_ms(client: VideoClient) -> float:
    depths = [
        remote.buffer.buffered_samples * 1000.0 / 48000
        for call in client.state.active_calls.value
        if call.audio_device_module is not None
        for remote in call.audio_device_module.remotes.values()
    ]
    return max(depths, default=0.0)


@dataclass
class Probe:
    """A gated-tone SDK publisher and SDK listeners in their own room, all in this process."""

    server: ServerInfo
    room: str
    listeners: int
    mic: ToneSource = field(default_factory=lambda: ToneSource(PROBE_HZ, on=False))
    clients: list[VideoClient] = field(default_factory=list)
    watches: list[ToneWatch] = field(default_factory=list)

    async def start(self) -> None:
        publisher = make_client(
            self.server, f"{self.room}-pub", microphone=self.mic, speaker=CaptureSpeaker(max_seconds=2.0)
        )
        self.clients.append(publisher)
        await publisher.connect()
        call = publisher.make_call("default", self.room)
        await call.get_or_create()
        await call.join(MIC_ON)
        for i in range(self.listeners):
            speaker = CaptureSpeaker(max_seconds=30.0)
            listener = make_client(self.server, f"{self.room}-ear-{i}", speaker=speaker)
            self.clients.append(listener)
            await listener.connect()
            await asyncio.sleep(0.007 * i)  # spread the speaker clocks' phases
            await listener.make_call("default", self.room).join(LISTEN)  # the call exists by now
            self.watches.append(ToneWatch(speaker, PROBE_HZ))
        await asyncio.sleep(1.5)  # every listener receives the (silent) stream

    async def measure(
        self,
        bursts: int,
        on_s: float = 0.25,
        off_s: float = 0.3,
        timeout: float = 3.0,  # noqa: ASYNC109
    ) -> tuple[list[list[float]], list[list[float]]]:
        """Per listener: mouth-to-ear of each burst (ms; inf if not heard) and playout depth at onset."""
        loop = asyncio.get_running_loop()
        m2e: list[list[float]] = [[] for _ in self.watches]
        depth: list[list[float]] = [[] for _ in self.watches]
        for _ in range(bursts):
            heard = [w.arm(loop.time()) for w in self.watches]
            onset = self.mic.start_burst()
            for i, listener in enumerate(self.clients[1:]):
                depth[i].append(_playout_depth_ms(listener))
            t_mouth = await asyncio.wait_for(onset, 5.0)
            for i, future in enumerate(heard):
                try:
                    ms = (await asyncio.wait_for(future, timeout) - t_mouth) * 1000.0
                except TimeoutError:
                    ms = float("inf")
                # Heard before it was spoken: the previous burst is still playing, i.e. the latency
                # exceeds the pause between bursts (off_s): count it as late, not as a small number.
                m2e[i].append(ms if ms >= 0.0 else float("inf"))
            await asyncio.sleep(on_s)
            self.mic.stop_burst()
            await asyncio.sleep(off_s)
        return m2e, depth

    async def close(self) -> None:
        for watch in self.watches:
            watch.close()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.disconnect()


# ---------------------------------------------------------------------------------------------
# Down-tracks per core
# ---------------------------------------------------------------------------------------------


@dataclass
class LevelResult:
    rooms: int
    downtracks: int
    frames_per_publisher: int
    send_s: float
    sfu_idle_cores: float  # before the send: every session connected, nothing flowing
    sfu_cpu_s: float
    sfu_cores: float
    downtracks_per_core: float
    loss_e2e: float
    #: where frames were lost: stage -> fraction of what that stage was given
    loss_stages: dict[str, float]
    lost_at: str  # the stage that lost the most ("" when nothing was lost)
    probe_m2e_ms_p50: float
    probe_m2e_ms_p95: float
    probe_playout_buffer_ms_p50: float  # the probe listener's playout-buffer depth (part of its m2e)
    holds: bool  # loss < 1 % and probe p95 <= REALTIME_M2E_MS
    drain_s: float  # after the last frame was sent, until the listeners' counts stopped moving
    received: int
    expected: int
    udp_rcvbuf_errors: int  # datagrams the kernel dropped: receive buffer full (system-wide)
    loadgen_cpu_cores: float
    machine_busy_cores: float  # every process on the machine, including the load generators


def us_per_packet(level: LevelResult) -> float:
    """SFU CPU per forwarded packet at ``level`` (idle tail removed), microseconds."""
    return 1e6 * level.sfu_cpu_s / max(1, level.frames_per_publisher * level.downtracks)


async def _sfu_counters(http: aiohttp.ClientSession, server: ServerInfo) -> Json:
    """Forwarding counters of the load rooms (not the probe's)."""
    stats = await server.sfu_stats(http)
    frames_in = downtracks = pushed = sent = 0
    for cid, room in stats["rooms"].items():
        if not str(cid).startswith("default:load-"):
            continue
        for part in room.values():
            audio = part["published"].get("audio")
            if audio is not None:
                frames_in += int(audio.get("frames_in", 0))  # (Janus's engine has no such counters)
            for d in part["downtracks"]:
                if d["kind"] == "audio" and d["source"] is not None and not d["paused"]:
                    downtracks += 1
                    pushed += int(d.get("pushed", 0))
                    sent += int(d.get("sent", 0))
    return {"frames_in": frames_in, "downtracks": downtracks, "pushed": pushed, "sent": sent}


async def _loadgen(workers: list[Child]) -> tuple[int, int]:
    """(frames received by listeners, frames taken by publishers' senders), over all workers."""
    answers = await asyncio.gather(*(w.request({"cmd": "stats"}) for w in workers))
    return sum(int(a["received"]) for a in answers), sum(int(a["sender_took"]) for a in answers)


async def _drain(workers: list[Child], quiet_s: float = 0.3, limit_s: float = 15.0) -> tuple[int, int, float]:
    """Wait until the listeners' counts stop moving; also returns when they last moved (monotonic)."""
    last, moved = await _loadgen(workers), time.monotonic()
    deadline = moved + limit_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = await _loadgen(workers)
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved >= quiet_s:
            break
    return last[0], last[1], moved


@dataclass
class _Load:
    server: ServerInfo
    http: aiohttp.ClientSession
    pub_worker: Child
    sub_workers: list[Child]
    probe: Probe | None

    @property
    def workers(self) -> list[Child]:
        return [self.pub_worker, *self.sub_workers]

    async def add_rooms(self, first: int, last: int) -> str | None:
        """Join rooms ``first .. last - 1``; publishers first. An error message if any join failed."""
        rooms = range(first, last)
        pubs = [
            {"user": f"pub-{r}-{j}", "room": f"load-{r}", "publish": True}
            for r in rooms
            for j in range(ROOM_PUBLISHERS)
        ]
        subs = [
            {"user": f"sub-{r}-{j}", "room": f"load-{r}", "expect": ROOM_PUBLISHERS}
            for r in rooms
            for j in range(ROOM_LISTENERS)
        ]
        answers = [await self.pub_worker.request({"cmd": "join", "participants": pubs}, timeout=180)]
        n = len(self.sub_workers)
        answers += await asyncio.gather(
            *(
                w.request({"cmd": "join", "participants": subs[i::n]}, timeout=180)
                for i, w in enumerate(self.sub_workers)
            )
        )
        failed = [a for a in answers if a.get("failed")]
        if not failed:
            return None
        return f"{sum(int(a['failed']) for a in failed)} joins failed at {last} rooms: {failed[0]['errors']}"

    async def measure(self, rooms: int, frames: int) -> LevelResult:
        """Publishers send ``frames`` frames each; compare quiescent counters before and after."""
        server, workers = self.server, self.workers
        before, (received0, took0) = await _sfu_counters(self.http, server), await _loadgen(workers)
        idle0, t_idle = server.cpu_seconds(), time.monotonic()
        await asyncio.sleep(1.0)
        udp0 = udp_counters()
        gen0 = sum(proc_cpu_seconds(w.pid) for w in workers)
        busy0, _, _ = machine_cpu_seconds()
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        idle_cores = (cpu0 - idle0) / (t0 - t_idle)
        bursts = max(1, int(frames * 0.02 / 0.55) - 1)
        probing = asyncio.ensure_future(self.probe.measure(bursts)) if self.probe else None
        await self.pub_worker.request({"cmd": "go", "frames": frames}, timeout=frames * 0.02 + 60)
        t1 = time.monotonic()
        gen1 = sum(proc_cpu_seconds(w.pid) for w in workers)
        busy1, _, _ = machine_cpu_seconds()
        received1, took1, t_last = await _drain(workers)
        cpu2 = server.cpu_seconds()
        t2 = time.monotonic()
        probe_ms: list[float] = []
        probe_depth: list[float] = []
        if probing is not None:
            m2e_per, depth_per = await probing
            probe_ms = [v for per in m2e_per for v in per]
            probe_depth = [v for per in depth_per for v in per]
        udp1 = udp_counters()
        after = await _sfu_counters(self.http, server)
        downtracks = int(after["downtracks"])
        expected = frames * downtracks
        received, took = received1 - received0, took1 - took0
        sent = after["sent"] - before["sent"]
        send_s = t1 - t0
        sfu_cpu = (cpu2 - cpu0) - idle_cores * (t2 - t1)
        cores = sfu_cpu / send_s
        stages = {"load generator (publishers)": 1.0 - took / (frames * ROOM_PUBLISHERS * rooms)}
        if after["pushed"]:  # an engine with forwarding counters (the embedded SFU)
            stages["publishers -> SFU"] = 1.0 - (after["frames_in"] - before["frames_in"]) / max(1, took)
            stages["inside the SFU"] = 1.0 - sent / max(1, after["pushed"] - before["pushed"])
            stages["SFU -> listeners"] = 1.0 - received / max(1, sent)
        else:
            stages["publishers -> listeners"] = 1.0 - received / max(1, took * ROOM_LISTENERS)
        worst = max(stages, key=lambda k: stages[k])
        loss = 1.0 - received / expected if expected else 1.0
        p95 = percentile(probe_ms, 95) if probe_ms else float("nan")
        return LevelResult(
            rooms=rooms,
            downtracks=downtracks,
            frames_per_publisher=frames,
            send_s=round(send_s, 3),
            sfu_idle_cores=round(idle_cores, 4),
            sfu_cpu_s=round(sfu_cpu, 3),
            sfu_cores=round(cores, 4),
            downtracks_per_core=round(downtracks / cores, 1) if cores > 0 else float("inf"),
            loss_e2e=round(loss, 5),
            loss_stages={k: round(v, 5) for k, v in stages.items()},
            lost_at=worst if stages[worst] > 0 else "",
            probe_m2e_ms_p50=round(percentile(probe_ms, 50), 1) if probe_ms else float("nan"),
            probe_m2e_ms_p95=round(p95, 1),
            probe_playout_buffer_ms_p50=round(percentile(probe_depth, 50), 1)
            if probe_depth
            else float("nan"),
            holds=loss < LOSS_LIMIT and (not probe_ms or p95 <= REALTIME_M2E_MS),
            drain_s=round(max(0.0, t_last - t1), 2),
            received=received,
            expected=expected,
            udp_rcvbuf_errors=udp1["RcvbufErrors"] - udp0["RcvbufErrors"],
            loadgen_cpu_cores=round((gen1 - gen0) / send_s, 3),
            machine_busy_cores=round((busy1 - busy0) / send_s, 3),
        )


async def ramp(
    server: ServerInfo,
    log_dir: Path,
    frames: int,
    budget_s: float,
    levels: tuple[int, ...] = LEVELS,
    nice: int = LOADGEN_NICE,
    probe: Probe | None = None,
) -> tuple[list[LevelResult], str]:
    """Measure each level (a number of rooms) in turn; returns the levels and why the ramp stopped."""
    started = time.monotonic()
    config = {"server": server.to_json(), "nice": nice}
    workers = [await Child.start("loadgen-pub", "benchmarks.loadgen", config, log_dir)]
    workers += [
        await Child.start(f"loadgen-sub-{i}", "benchmarks.loadgen", config, log_dir) for i in range(2)
    ]
    results: list[LevelResult] = []
    stop = "the last level"
    try:
        for w in workers:
            await w.read(timeout=30)
        async with aiohttp.ClientSession() as http:
            load = _Load(server, http, workers[0], workers[1:], probe)
            rooms = 0
            for level in levels:
                level_s = 6.0 + frames * 0.02 + 0.4 * (level - rooms)  # rough: joins + send + drain
                if results and time.monotonic() - started + level_s > budget_s:
                    stop = "the time budget"
                    break
                try:
                    failure = await load.add_rooms(rooms, level)
                    if failure is not None:
                        stop = failure
                        break
                    rooms = level
                    result = await load.measure(rooms, frames)
                except (ChildError, TimeoutError, RuntimeError, aiohttp.ClientError) as exc:
                    stop = f"an error at {level} rooms: {type(exc).__name__}: {exc}"
                    break
                results.append(result)
                if not result.holds:
                    why = (
                        f"{100 * result.loss_e2e:.1f} % loss (lost {result.lost_at})"
                        if result.loss_e2e >= LOSS_LIMIT
                        else f"probe mouth-to-ear p95 {result.probe_m2e_ms_p95:.0f} ms"
                    )
                    stop = (
                        f"{why} at {result.downtracks} down-tracks (SFU {result.sfu_cores:.2f} cores; "
                        f"machine {result.machine_busy_cores:.2f} of {os.cpu_count()} cores busy)"
                    )
                    break
    finally:
        for w in workers:
            await w.stop(timeout=30)
    return results, stop


async def run(
    log_dir: Path,
    frames: int = 400,
    bursts: int = 20,
    ramp_budget_s: float = 150.0,
    levels: tuple[int, ...] = LEVELS,
) -> BenchResult:
    result = BenchResult("sfu")
    server_child, server = await start_server(log_dir, "sfu-server")
    m2e_error: str | None = None
    per: list[list[float]] = []
    depth: list[list[float]] = []
    try:
        idle_probe = Probe(server, "m2e", listeners=6)
        try:
            await idle_probe.start()
            per, depth = await idle_probe.measure(bursts)
        except (TimeoutError, RuntimeError, SwitchboardError) as exc:  # the ramp still runs
            log.exception("mouth-to-ear failed")
            m2e_error = f"{type(exc).__name__}: {exc}"
        finally:
            await idle_probe.close()
        load_probe = Probe(server, "probe", listeners=1)
        await load_probe.start()
        try:
            measured, stopped_by = await ramp(
                server, log_dir, frames, ramp_budget_s, levels, probe=load_probe
            )
        finally:
            await load_probe.close()
    finally:
        await server_child.stop(timeout=30)

    samples = [v for values in per for v in values]
    holding = [lv for lv in measured if lv.holds]
    best = holding[-1] if holding else None
    result.add(
        "sfu_audio_downtracks_per_core",
        best.downtracks_per_core if best else None,
        "tracks/core",
        "audio down-tracks forwarded per core of SFU CPU at the highest load with < 1 % loss (in real time)",
        note=(
            f"{best.downtracks} down-tracks on {best.sfu_cores:.2f} cores, loss {100 * best.loss_e2e:.2f} %, "
            f"probe mouth-to-ear p95 {best.probe_m2e_ms_p95:.0f} ms; ramp stopped by {stopped_by}"
            if best
            else f"no level held; ramp stopped by {stopped_by}"
        ),
    )
    result.add(
        "sfu_downtracks_at_that_load", float(best.downtracks) if best else None, "tracks", "that level"
    )
    result.add(
        "sfu_us_per_packet",
        round(us_per_packet(best), 1) if best else None,
        "us",
        "SFU CPU per forwarded audio packet at that level",
    )
    result.add(
        "mouth_to_ear_ms_p50",
        percentile(samples, 50),
        "ms",
        "tone onset at mic -> at speaker via the idle SFU",
    )
    result.add(
        "mouth_to_ear_ms_p95",
        percentile(samples, 95),
        "ms",
        "tone onset at mic -> at speaker via the idle SFU",
    )
    if best:
        result.add(
            "mouth_to_ear_ms_p95_at_that_load",
            best.probe_m2e_ms_p95,
            "ms",
            "the probe's mouth-to-ear through the SFU at that load",
        )
    result.details = {
        "mouth_to_ear_error": m2e_error,
        "mouth_to_ear_ms": [round(v, 1) for v in samples],
        "per_listener_m2e_ms_p50": [round(median(p), 1) for p in per],
        "per_listener_playout_buffer_ms_p50": [round(median(d), 1) for d in depth],
        "room_shape": {"publishers": ROOM_PUBLISHERS, "listeners": ROOM_LISTENERS},
        "ramp_stopped_by": stopped_by,
        "levels": [asdict(lv) for lv in measured],
    }
    return result
