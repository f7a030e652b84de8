"""Join latency (SPEC §5): ``call.join()`` -> first 20 ms frame of the remote tone at the speaker.

Baseline, same run: a bare aiortc peer-to-peer connection, from creating the peer connections to the
first frame of the remote tone played out through the same :class:`CaptureSpeaker` (decoded frames
into a :class:`PlayoutBuffer`, detected by the same on-tick analysis).

Topology, identical for both: the measured side runs in this process; the remote side runs in another
process and is already publishing its tone. SDK: a bot (``benchmarks.bots``) in the room and the
server (``benchmarks.server``) in their own processes; each run uses a fresh client (connected before
the clock starts: ``connect()`` and ``get_or_create()`` are not part of ``join()``) and a fresh room.
Baseline: ``benchmarks.p2p_peer`` answers offers over a pipe (signalling costs microseconds). In both,
the measured side also publishes its own tone (the SDK joins with the microphone on; the baseline
connection is send-receive). Runs alternate between the two, after one untimed warm-up of each.

Milestones are recorded per run (ms after the start) to show where the time goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from benchmarks.bots import BotSpec, start_bots
from benchmarks.common import (
    BenchResult,
    Budget,
    Child,
    ServerInfo,
    ToneWatch,
    make_client,
    median,
    start_server,
)
from benchmarks.p2p_peer import ToneTrack
from switchboard import Call, CallConnectOptions, CallState, TrackOption
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.jitter_buffer import OpusJitterBuffer
from switchboard.media.local_ice import IPV4_LOOPBACK, create_peer_connection
from switchboard.media.playout import PlayoutBuffer

REMOTE_HZ = 600.0
LOCAL_HZ = 1000.0
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
TONE_TIMEOUT = 15.0


@dataclass
class JoinRun:
    total_ms: float
    marks: dict[str, float] = field(default_factory=dict)


class _Marks:
    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.marks: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        if name not in self.marks:
            self.marks[name] = (asyncio.get_running_loop().time() - self.t0) * 1000.0


def _mark_first_decoded(buffer: PlayoutBuffer, mark: Callable[[str], None]) -> None:
    """Instrument one playout buffer (instance attribute): mark its first decoded frame."""
    push = buffer.push

    def first_push(frame: av.AudioFrame) -> None:
        mark("first_decoded_frame")
        buffer.push = push  # type: ignore[method-assign]
        push(frame)

    buffer.push = first_push  # type: ignore[method-assign]


def _mark_first_packet(buffer: OpusJitterBuffer, mark: Callable[[str], None]) -> None:
    """Instrument one jitter buffer (instance attribute): mark its first Opus packet."""
    push = buffer.push

    def first_push(timestamp: int, packet: bytes) -> None:
        mark("first_audio_packet")
        buffer.push = push  # type: ignore[method-assign]
        push(timestamp, packet)

    buffer.push = first_push  # type: ignore[method-assign]


def _instrument_sdk(call: Call, mark: _Marks) -> Callable[[], None]:
    """Milestones of an SDK join, observed from the outside (no change to the library).

    The call's media session appears (with its peer connections, not yet connected) when the
    coordinator's ``/join`` answered; the call state changes right then, synchronously.
    """
    attached: list[bool] = []

    def on_state(_: CallState) -> None:
        media, adm = call.media, call.audio_device_module
        if media is None or attached:
            return
        attached.append(True)
        mark("coordinator_join_done")

        def pub_state() -> None:
            if media.publisher.connectionState == "connected":
                mark("publisher_connected")

        def sub_state() -> None:
            if media.subscriber.connectionState == "connected":
                mark("subscriber_connected")

        def on_track(track: MediaStreamTrack) -> None:
            # Runs inside the SDK's own event dispatch: it must never raise into it.
            try:
                mark("remote_track")
                receiver = next(
                    (t.receiver for t in media.subscriber.getTransceivers() if t.receiver.track is track),
                    None,
                )
                for remote in adm.remotes.values() if adm is not None else ():
                    if getattr(remote, "receiver", None) is receiver:
                        _mark_first_packet(remote.buffer, mark)
            except Exception:
                logging.getLogger("benchmarks.join").exception("join instrumentation failed")

        media.publisher.on("connectionstatechange", pub_state)
        media.subscriber.on("connectionstatechange", sub_state)
        media.subscriber.on("track", on_track)  # registered after the SDK's own handler: runs after it

    return call.state.listen(on_state)


async def sdk_join_once(server: ServerInfo, room: str, user: str) -> JoinRun:
    speaker = CaptureSpeaker(max_seconds=10.0)
    client = make_client(server, user, microphone=ToneMicrophone(LOCAL_HZ), speaker=speaker)
    await client.connect()
    watch = ToneWatch(speaker, REMOTE_HZ)
    try:
        call = client.make_call("default", room)
        await call.get_or_create()
        await asyncio.sleep(0.2)  # the speaker clock is ticking steadily
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        mark = _Marks(t0)
        heard = watch.arm(t0)
        unsubscribe = _instrument_sdk(call, mark)
        await call.join(MIC_ON)
        mark("join_returned")
        t_tone = await asyncio.wait_for(heard, TONE_TIMEOUT)
        unsubscribe()
        return JoinRun((t_tone - t0) * 1000.0, dict(mark.marks))
    finally:
        watch.close()
        await client.disconnect()


async def _play(track: MediaStreamTrack, buffer: PlayoutBuffer) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            buffer.push(frame)  # type: ignore[arg-type]


async def p2p_join_once(peer: Child, speaker: CaptureSpeaker, watch: ToneWatch) -> JoinRun:
    loop = asyncio.get_running_loop()
    removers: list[Callable[[], None]] = []
    tasks: list[asyncio.Task[None]] = []
    t0 = loop.time()
    mark = _Marks(t0)
    heard = watch.arm(t0)
    pc = create_peer_connection(loopback_address=IPV4_LOOPBACK)
    try:

        def on_track(track: MediaStreamTrack) -> None:
            mark("remote_track")
            buffer = PlayoutBuffer(name="p2p")
            _mark_first_decoded(buffer, mark)
            removers.append(speaker.add_source(buffer))
            tasks.append(loop.create_task(_play(track, buffer)))

        def on_state() -> None:
            if pc.connectionState == "connected":
                mark("connected")

        pc.on("track", on_track)
        pc.on("connectionstatechange", on_state)
        pc.addTrack(ToneTrack(LOCAL_HZ))
        await pc.setLocalDescription(await pc.createOffer())
        answer = await peer.request({"offer": pc.localDescription.sdp})
        await pc.setRemoteDescription(RTCSessionDescription(str(answer["answer"]), "answer"))
        mark("negotiated")
        t_tone = await asyncio.wait_for(heard, TONE_TIMEOUT)
        return JoinRun((t_tone - t0) * 1000.0, dict(mark.marks))
    finally:
        for remove in removers:
            remove()
        for task in tasks:
            task.cancel()
        await pc.close()
        await peer.request({"close": True})


def _median_marks(runs: list[JoinRun]) -> dict[str, float]:
    names: list[str] = []
    for run in runs:
        names.extend(n for n in run.marks if n not in names)
    out: dict[str, float] = {}
    for name in names:
        values = [r.marks[name] for r in runs if name in r.marks]
        out[name] = round(median(values), 1)
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


async def run(log_dir: Path, runs: int = 7) -> BenchResult:
    result = BenchResult("join")
    server_child, server = await start_server(log_dir, "join-server")
    children: list[Child] = [server_child]
    try:
        rooms = [f"join-{i}" for i in range(runs + 1)]
        children.append(
            await start_bots(
                server,
                [BotSpec(f"join-bot-{i}", room, REMOTE_HZ) for i, room in enumerate(rooms)],
                log_dir,
                "join-bots",
            )
        )
        peer = await Child.start("p2p-peer", "benchmarks.p2p_peer", {"hz": REMOTE_HZ}, log_dir)
        children.append(peer)
        await peer.read(timeout=30)

        speaker = CaptureSpeaker(max_seconds=30.0)
        await speaker.start()
        watch = ToneWatch(speaker, REMOTE_HZ)
        sdk: list[JoinRun] = []
        p2p: list[JoinRun] = []
        try:
            await asyncio.sleep(0.2)
            for i in range(runs + 1):  # run 0 is the warm-up of each
                s = await sdk_join_once(server, rooms[i], f"join-me-{i}")
                await asyncio.sleep(0.3)
                b = await p2p_join_once(peer, speaker, watch)
                await asyncio.sleep(0.3)
                if i > 0:
                    sdk.append(s)
                    p2p.append(b)
        finally:
            watch.close()
            await speaker.stop()
    finally:
        for child in reversed(children):
            await child.stop()

    sdk_ms = [r.total_ms for r in sdk]
    p2p_ms = [r.total_ms for r in p2p]
    join_p50, p2p_p50 = median(sdk_ms), median(p2p_ms)
    result.add(
        "join_ratio_vs_aiortc",
        join_p50 / p2p_p50,
        "x",
        "join() -> first remote tone frame at the speaker, over the same for bare aiortc P2P (medians)",
        Budget("<=", 1.5),
    )
    result.add("join_ms_p50", join_p50, "ms", "SDK: join() -> first remote tone frame at the speaker")
    result.add(
        "aiortc_p2p_ms_p50", p2p_p50, "ms", "bare aiortc P2P: new peer connections -> first tone frame"
    )
    result.details = {
        "runs": runs,
        "sdk_ms": [round(v, 1) for v in sdk_ms],
        "p2p_ms": [round(v, 1) for v in p2p_ms],
        "sdk_milestones_ms_p50": _median_marks(sdk),
        "p2p_milestones_ms_p50": _median_marks(p2p),
    }
    return result
