"""Helper process: the remote side of the bare-aiortc baseline of the join benchmark.

It plays a tone into a plain aiortc peer connection (aiortc encodes it with its own Opus encoder) and
answers offers sent by the parent: ``{"offer": sdp}`` -> ``{"answer": sdp}``; ``{"close": true}`` closes
that connection -> ``{"closed": true}``. What it receives is decoded and dropped, as a real peer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from benchmarks.common import Json, commands, emit, run_child
from switchboard.media import ToneMicrophone
from switchboard.media.audio_format import FRAME_SAMPLES, SAMPLE_RATE
from switchboard.media.local_ice import IPV4_LOOPBACK, create_peer_connection

TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class ToneTrack(MediaStreamTrack):
    """A real-time tone as ``av.AudioFrame`` s (s16 mono 48 kHz, 20 ms), paced like aiortc's own tracks."""

    kind = "audio"

    def __init__(self, hz: float, level_dbfs: float = -12.0) -> None:
        super().__init__()
        self._mic = ToneMicrophone(hz, level_dbfs)
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / SAMPLE_RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = np.round(np.clip(self._mic.read_frame(), -1.0, 1.0) * 32767.0).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        return frame


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


async def main(config: Json) -> None:
    hz = float(config.get("hz", 600.0))
    pc: RTCPeerConnection | None = None
    tasks: set[asyncio.Task[None]] = set()

    def on_track(track: MediaStreamTrack) -> None:
        task = asyncio.get_running_loop().create_task(_drain(track))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    emit({"ready": True})
    try:
        async for command in commands():
            if "offer" in command:
                pc = create_peer_connection(loopback_address=IPV4_LOOPBACK)
                pc.on("track", on_track)
                await pc.setRemoteDescription(RTCSessionDescription(str(command["offer"]), "offer"))
                pc.addTrack(ToneTrack(hz))
                await pc.setLocalDescription(await pc.createAnswer())
                emit({"answer": pc.localDescription.sdp})
            elif command.get("close"):
                if pc is not None:
                    await pc.close()
                    pc = None
                emit({"closed": True})
    finally:
        if pc is not None:
            await pc.close()
        for task in list(tasks):
            task.cancel()


if __name__ == "__main__":
    run_child(main)
