"""Recording a call's audio on the SFU: Opus packets into Ogg as sent, and a mix at stop.

While a recording runs, every published audio track of the room (including tracks published later)
is written to its own Ogg file exactly as the sender encoded it: each RTP payload becomes one Ogg
packet, never decoded or re-encoded (RFC 7845 encapsulation; granule positions from the RTP
timestamps, so a pause in sending stays a pause). Tracks muted by a moderator are not recorded. At
stop the files are closed and a mixed-down ``mixed.ogg`` is made (the only place anything is
decoded and encoded): each file placed at the wall-clock time its first packet arrived, summed,
encoded as mono Opus. Files live under ``SfuConfig.recordings_dir`` /
``<call type>_<call id>/<recording id>/``; the SFU keeps the list for as long as it runs.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import struct
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt

from switchboard.errors import CallStateError
from switchboard.media.rtp_hooks import EncodedFrame
from switchboard.protocol import sfu as p
from switchboard.server.sfu.forwarding import PublishedTrack
from switchboard.server.sfu.room import Room

log = logging.getLogger("switchboard.sfu.recording")

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
#: the Opus pre-skip written in each file's header (RFC 7845 §4.2: what libopus encoders use)
PRE_SKIP = 312
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


def opus_head(channels: int = 1) -> bytes:
    """The RFC 7845 §5.1 identification header (mapping family 0)."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, PRE_SKIP, SAMPLE_RATE, 0, 0)


class AudioSource(Protocol):
    """Whose audio a :class:`TrackWriter` records."""

    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...


class TrackWriter:
    """One published audio track's packets into one Ogg file, as they arrive."""

    def __init__(self, track: AudioSource, path: Path, started: float) -> None:
        self.user_id = track.user_id
        self.session_id = track.session_id
        self.path = path
        self._recording_started = started
        #: seconds after the recording started when the first packet arrived (None: none yet)
        self.offset: float | None = None
        self._first_ts: int | None = None
        self._last_pts = 0
        self.packets = 0
        self._container = av.open(str(path), "w", format="ogg")
        self._stream = self._container.add_stream("libopus", rate=SAMPLE_RATE)
        self._stream.codec_context.extradata = opus_head()
        self._stream.time_base = _TIME_BASE
        self.closed = False

    def write(self, frame: EncodedFrame) -> None:
        if self.closed or not frame.data:
            return
        if self._first_ts is None:
            self._first_ts = frame.timestamp
            self.offset = time.monotonic() - self._recording_started
        pts = (frame.timestamp - self._first_ts) % (1 << 32)
        if self.packets and pts <= self._last_pts:
            return  # a late or repeated packet: Ogg granules only go forward
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.duration = FRAME_SAMPLES
        packet.time_base = _TIME_BASE
        packet.stream = self._stream
        try:
            self._container.mux(packet)
        except av.error.FFmpegError:
            log.exception("cannot write to %s; stopping this file", self.path)
            self.close()
            return
        self._last_pts = pts
        self.packets += 1

    @property
    def duration_ms(self) -> float:
        return 0.0 if not self.packets else (self._last_pts + FRAME_SAMPLES) * 1000 / SAMPLE_RATE

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._container.close()


class RoomRecorder:
    """One running recording of one room."""

    def __init__(self, room: Room, directory: Path) -> None:
        self.room = room
        self.info = p.RecordingInfo(recording_id=uuid.uuid4().hex[:12], cid=room.cid, started_at=time.time())
        self.directory = directory / room.cid.replace(":", "_") / self.info.recording_id
        self.directory.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        self.writers: list[TrackWriter] = []
        self._attached: list[tuple[PublishedTrack, TrackWriter]] = []

    def start(self) -> None:
        _ACTIVE[self.room] = self
        for participant in list(self.room.participants.values()):
            track = participant.published.get("audio")
            if track is not None:
                self.track_published(track)

    def track_published(self, track: PublishedTrack) -> None:
        if track.kind != "audio":
            return
        name = f"{track.user_id}-{track.session_id[:8]}"
        index = sum(w.session_id == track.session_id for w in self.writers)
        path = self.directory / (f"{name}.ogg" if index == 0 else f"{name}-{index + 1}.ogg")
        writer = TrackWriter(track, path, self._started)
        self.writers.append(writer)
        track.sinks.append(writer.write)
        self._attached.append((track, writer))

    async def stop(self) -> p.RecordingInfo:
        _ACTIVE.pop(self.room, None)
        for track, writer in self._attached:
            if writer.write in track.sinks:
                track.sinks.remove(writer.write)
            writer.close()
        self._attached.clear()
        return await finish(self.info, self.writers, self.directory)


async def finish(info: p.RecordingInfo, writers: list[TrackWriter], directory: Path) -> p.RecordingInfo:
    """``info`` completed with the (closed) writers' files and their mix (``directory/mixed.ogg``)."""
    files = [
        p.RecordingFileInfo(
            path=str(w.path),
            mixed=False,
            user_id=w.user_id,
            session_id=w.session_id,
            duration_ms=round(w.duration_ms, 1),
        )
        for w in writers
        if w.packets
    ]
    parts = [(str(w.path), w.offset or 0.0) for w in writers if w.packets]
    mixed = directory / "mixed.ogg"
    duration = await asyncio.to_thread(mix_down, parts, mixed)
    files.append(p.RecordingFileInfo(path=str(mixed), mixed=True, duration_ms=round(duration, 1)))
    info.stopped_at = time.time()
    info.files = files
    return info


def decode_ogg(path: str) -> npt.NDArray[np.float32]:
    """A mono Ogg/Opus file as float32 samples at 48 kHz, pauses kept (from the granule positions)."""
    pieces: list[tuple[int, npt.NDArray[np.float32]]] = []
    with av.open(path) as container:
        first: int | None = None
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray().astype(np.float32)
            mono = samples.mean(axis=0) if samples.ndim == 2 else samples
            pts = int(frame.pts or 0)
            first = pts if first is None else first
            pieces.append((pts - first, mono))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    out = np.zeros(max(start + len(s) for start, s in pieces), dtype=np.float32)
    for start, samples in pieces:
        out[start : start + len(samples)] = samples
    return out


def mix_down(parts: list[tuple[str, float]], path: Path) -> float:
    """Mix the files (each at its offset, s) into a mono Ogg/Opus file; its duration (ms)."""
    tracks = [(round(offset * SAMPLE_RATE), decode_ogg(file)) for file, offset in parts]
    length = max((start + len(samples) for start, samples in tracks), default=0)
    length = -(-length // FRAME_SAMPLES) * FRAME_SAMPLES
    mix = np.zeros(length, dtype=np.float32)
    for start, samples in tracks:
        mix[start : start + len(samples)] += samples
    pcm = (np.clip(mix, -1.0, 1.0) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        for index in range(0, length, FRAME_SAMPLES):
            frame = av.AudioFrame.from_ndarray(
                pcm[index : index + FRAME_SAMPLES].reshape(1, -1), "s16", "mono"
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = index
            frame.time_base = _TIME_BASE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return length * 1000 / SAMPLE_RATE


_ACTIVE: weakref.WeakKeyDictionary[Room, RoomRecorder] = weakref.WeakKeyDictionary()


def recorder_of(room: Room) -> RoomRecorder | None:
    """The room's running recording, if any (the room tells it about new tracks)."""
    return _ACTIVE.get(room)


class Recorder(Protocol):
    """One running recording of one call, of either engine."""

    info: p.RecordingInfo

    def start(self) -> None: ...
    async def stop(self) -> p.RecordingInfo: ...


class Recordings:
    """Every recording of one SFU: start, stop and list per call.

    ``new_recorder(room, directory)`` makes the recorder of a call's room (the embedded engine's
    :class:`RoomRecorder` unless given).
    """

    def __init__(self, directory: Path, new_recorder: Callable[[Any, Path], Recorder] = RoomRecorder) -> None:
        self.directory = directory
        self._new_recorder = new_recorder
        self._running: dict[str, Recorder] = {}
        self._done: dict[str, list[p.RecordingInfo]] = {}

    async def command(self, rooms: Mapping[str, Any], command: p.RecordingCommand) -> p.RecordingsReport:
        """Apply ``command``. Errors: CallStateError (409) starting a recording that runs, or with
        nobody in the call's media; stopping one that does not run."""
        running = self._running.get(command.cid)
        if command.action == "start":
            if running is not None:
                raise CallStateError(
                    f"call {command.cid} is already being recorded", code="already_recording"
                )
            room = rooms.get(command.cid)
            if room is None:
                raise CallStateError(f"nobody is in the media of {command.cid}: join before recording")
            recorder = self._running[command.cid] = self._new_recorder(room, self.directory)
            recorder.start()
            return p.RecordingsReport(recordings=[recorder.info])
        if command.action == "stop":
            if running is None:
                raise CallStateError(f"call {command.cid} is not being recorded", code="not_recording")
            return p.RecordingsReport(recordings=[await self._stop(command.cid)])
        recordings = list(self._done.get(command.cid, []))
        if running is not None:
            recordings.append(running.info)
        return p.RecordingsReport(recordings=recordings)

    async def _stop(self, cid: str) -> p.RecordingInfo:
        recorder = self._running.pop(cid)
        info = await recorder.stop()
        self._done.setdefault(cid, []).append(info)
        return info

    async def call_ended(self, cid: str) -> None:
        """The call ended: a running recording is stopped (and kept in the list)."""
        if cid in self._running:
            await self._stop(cid)


__all__ = [
    "Recorder",
    "Recordings",
    "RoomRecorder",
    "TrackWriter",
    "decode_ogg",
    "finish",
    "mix_down",
    "recorder_of",
]
