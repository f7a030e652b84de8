"""Real audio devices through PortAudio (``sounddevice``): :class:`DeviceMicrophone`,
:class:`DeviceSpeaker`, :func:`list_audio_devices` (SPEC §2.9).

Threads: PortAudio calls back on its own thread; everything else here runs on the event loop. The
two meet in a small locked FIFO per stream. The microphone's callback appends what it captured and
:meth:`DeviceMicrophone.read_frame` (loop thread, every 20 ms) takes one frame; the speaker mixes on
the loop's 20 ms clock exactly like :class:`~switchboard.media.speakers.CaptureSpeaker` (it *is*
one: it also records what it played) and its callback drains what was mixed.

Clock drift: the device's clock and the loop's never agree exactly. Each FIFO has a target fill
(:data:`MIC_TARGET_MS`, :data:`SPEAKER_TARGET_MS`) and a
:class:`~switchboard.media.drift.FillLevelControl` that turns its smoothed fill, once it strays
from the target, into a rate correction of at most 0.1 %, applied by interpolation
(:class:`~switchboard.media.drift.DriftResampler`): the delay through the FIFO stays near its target
and moves only smoothly, so an echo canceller keeps the echo it has locked on. Only a stray of more
than :data:`RESYNC_MS` (a stalled loop) is corrected in one step, and a FIFO never holds more than
:data:`MAX_QUEUED_MS` (the oldest goes first). An empty FIFO plays or reads as silence. Both devices
report their delay (:attr:`DeviceMicrophone.input_delay_ms`, :attr:`DeviceSpeaker.output_delay_ms`),
which the audio session hands to the echo canceller.

Formats: the pipeline is 48 kHz float32. A device that cannot open at 48 kHz is opened at its
default rate and converted with libswresample (``av.AudioResampler``); channel counts are converted
by averaging (to mono) or duplicating (to stereo).

Failure: when a stream stops on its own (device unplugged, sound server gone), or cannot be opened,
the device reports a :class:`DeviceFailure` to its ``on_error`` callbacks (on the loop thread, from
the next tick) and carries on as silence: the microphone returns silent frames and the speaker keeps
its clock, so every call stays joined. The client turns the report into a ``client.device_error``
event.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any, Final, Literal

import av
import numpy as np

from switchboard.errors import DeviceError
from switchboard.media.audio_format import FRAME_SAMPLES, SAMPLE_RATE, FloatArray, check_channels, layout_for
from switchboard.media.drift import DriftResampler, FillLevelControl
from switchboard.media.microphones import Microphone
from switchboard.media.speakers import CaptureSpeaker

__all__ = [
    "MAX_QUEUED_MS",
    "MIC_TARGET_MS",
    "RESYNC_MS",
    "SPEAKER_TARGET_MS",
    "AudioDevice",
    "DeviceFailure",
    "DeviceMicrophone",
    "DeviceSpeaker",
    "list_audio_devices",
]

log = logging.getLogger(__name__)

#: audio queued between a device's thread and the loop is capped at this (the oldest is dropped)
MAX_QUEUED_MS: Final = 400
#: what the microphone's FIFO holds when a frame is read, frame included (ms)
MIC_TARGET_MS: Final = 60
#: what the speaker's FIFO holds when a frame is mixed, before it goes in (ms)
SPEAKER_TARGET_MS: Final = 60
#: a fill this far from its target (a stalled loop, a device that paused) is corrected in one step (ms)
RESYNC_MS: Final = 200
#: the latency asked of PortAudio for each stream (seconds): enough that a busy machine's late
#: callback finds audio queued rather than an underrun (which would move the echo path)
DEVICE_LATENCY_S: Final = 0.05
#: a running stream whose callback has not run for this long has failed (seconds)
STALL_S: Final = 2.0
Direction = Literal["input", "output"]


def _sounddevice() -> ModuleType:
    try:
        import sounddevice  # type: ignore[import-untyped]  # 0.5.6 ships no type information
    except OSError as exc:  # the wheel is there, the PortAudio library is not
        raise DeviceError(
            f"PortAudio is not available ({exc}); on Debian: apt-get install libportaudio2 "
            "(scripts/install-system-deps.sh installs it)"
        ) from exc
    module: ModuleType = sounddevice
    return module


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device as :func:`list_audio_devices` reports it (rates in Hz)."""

    index: int
    name: str
    input_channels: int
    output_channels: int
    default_sample_rate: float
    is_default_input: bool
    is_default_output: bool


def list_audio_devices() -> list[AudioDevice]:
    """Every audio device PortAudio sees.

    Raises :class:`~switchboard.errors.DeviceError` when PortAudio is missing.
    """
    sd = _sounddevice()
    default_in, default_out = (int(i) for i in sd.default.device)
    return [
        AudioDevice(
            index=int(info["index"]),
            name=str(info["name"]),
            input_channels=int(info["max_input_channels"]),
            output_channels=int(info["max_output_channels"]),
            default_sample_rate=float(info["default_samplerate"]),
            is_default_input=int(info["index"]) == default_in,
            is_default_output=int(info["index"]) == default_out,
        )
        for info in sd.query_devices()
    ]


def _resolve(device: int | str | None, direction: Direction) -> AudioDevice:
    """The device for an index, a case-insensitive name substring (exact names win) or None (default)."""
    devices = list_audio_devices()
    usable = [d for d in devices if (d.input_channels if direction == "input" else d.output_channels) > 0]
    if device is None:
        default = next(
            (d for d in usable if (d.is_default_input if direction == "input" else d.is_default_output)), None
        )
        found = default or (usable[0] if usable else None)
    elif isinstance(device, int):
        found = next((d for d in usable if d.index == device), None)
    else:
        wanted = device.lower()
        found = next((d for d in usable if d.name.lower() == wanted), None) or next(
            (d for d in usable if wanted in d.name.lower()), None
        )
    if found is None:
        names = ", ".join(f"{d.index}: {d.name}" for d in usable) or "none"
        raise DeviceError(
            f"no {direction} audio device matches {device!r} (available {direction} devices: {names})"
        )
    return found


@dataclass(frozen=True)
class DeviceFailure:
    """What a device reports when it fails: its name, ``input`` or ``output``, and why."""

    device: str
    direction: Direction
    message: str

    def as_data(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


ErrorHook = Callable[[DeviceFailure], None]
#: PortAudio's stream callback: ``(data, frames, time, status)``, on PortAudio's thread
StreamCallback = Callable[[Any, int, Any, Any], None]


class _Fifo:
    """Float32 ``(channels, n)`` audio handed between threads; bounded to ``capacity`` samples."""

    def __init__(self, channels: int, capacity: int) -> None:
        self._lock = threading.Lock()
        self._buf = np.zeros((channels, 0), dtype=np.float32)
        self.capacity = capacity
        self.dropped = 0

    def put(self, pcm: FloatArray) -> None:
        with self._lock:
            buf = np.concatenate([self._buf, pcm], axis=1)
            excess = buf.shape[1] - self.capacity
            if excess > 0:
                buf = buf[:, excess:]
                self.dropped += excess
            self._buf = buf

    def take(self, n: int) -> FloatArray:
        """Up to ``n`` samples (fewer when fewer are queued)."""
        with self._lock:
            out, self._buf = self._buf[:, :n], self._buf[:, n:]
        return out

    def __len__(self) -> int:
        return int(self._buf.shape[1])


def _convert_channels(pcm: FloatArray, channels: int) -> FloatArray:
    if pcm.shape[0] == channels:
        return pcm
    if channels == 1:
        return np.asarray(pcm.mean(axis=0, keepdims=True), dtype=np.float32)
    return np.repeat(pcm[:1], channels, axis=0)


class _Resampler:
    """Streaming rate conversion of ``(channels, n)`` float32 with libswresample (identity at equal rates)."""

    def __init__(self, channels: int, from_rate: int, to_rate: int) -> None:
        self.channels = channels
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._layout = layout_for(channels)
        self._resampler = (
            av.AudioResampler(format="fltp", layout=self._layout, rate=to_rate)
            if from_rate != to_rate
            else None
        )
        self._pts = 0

    def __call__(self, pcm: FloatArray) -> FloatArray:
        if self._resampler is None or pcm.shape[1] == 0:
            return pcm
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format="fltp", layout=self._layout)
        frame.sample_rate = self.from_rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.from_rate)
        self._pts += pcm.shape[1]
        parts = [np.asarray(f.to_ndarray(), dtype=np.float32) for f in self._resampler.resample(frame)]
        if not parts:
            return np.zeros((self.channels, 0), dtype=np.float32)
        return np.concatenate(parts, axis=1).reshape(self.channels, -1)


def _open_rate(sd: ModuleType, device: AudioDevice, channels: int, direction: Direction) -> int:
    """48 kHz when the device takes it, else its default rate (converted on the loop thread)."""
    check = sd.check_input_settings if direction == "input" else sd.check_output_settings
    try:
        check(device=device.index, channels=channels, samplerate=SAMPLE_RATE, dtype="float32")
    except Exception:
        return int(device.default_sample_rate)
    return SAMPLE_RATE


def _abort(stream: Any) -> None:
    try:
        stream.abort()
        stream.close()
    except Exception as exc:
        log.debug("aborting a failed stream: %s", exc)


class _Stream:
    """The PortAudio side shared by both devices: open, watch for a stream that ends on its own, close."""

    def __init__(self, name: str, direction: Direction) -> None:
        self.name = name
        self.direction = direction
        self.stream: Any = None
        self.failure: DeviceFailure | None = None
        self._reported = False
        self._closing = False
        self.on_error: list[ErrorHook] = []
        self.last_callback = 0.0  # time.monotonic() of the last PortAudio callback
        #: callbacks that PortAudio flagged with an underflow or overflow
        self.xruns = 0

    def alive(self, status: Any = None) -> None:  # PortAudio thread, every callback
        self.last_callback = time.monotonic()
        if status:  # PortAudio's under/overflow flags: the device side lost or invented audio
            self.xruns += 1

    def fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = DeviceFailure(self.name, self.direction, message)

    def on_finished(self) -> None:  # PortAudio thread
        if not self._closing:
            self.fail("the device stopped (unplugged, or the sound server went away)")

    def report(self) -> None:
        """Loop thread: notice a stalled stream; hand a failure to the ``on_error`` hooks, once."""
        if (
            self.stream is not None
            and self.failure is None
            and time.monotonic() - self.last_callback > STALL_S
        ):
            # Some failures leave PortAudio's thread polling a dead device without ever calling back
            # or finishing (seen with ALSA's pulse plugin): abort it off the loop thread.
            self.fail("the device stopped delivering audio (unplugged, or the sound server went away)")
            stream, self.stream = self.stream, None
            self._closing = True
            threading.Thread(
                target=_abort, args=(stream,), name="switchboard-abort-stream", daemon=True
            ).start()
        if self.failure is None or self._reported:
            return
        self._reported = True
        log.warning(
            "audio %s device %r failed: %s; using silence", self.direction, self.name, self.failure.message
        )
        for hook in list(self.on_error):
            try:
                hook(self.failure)
            except Exception:
                log.exception("device error hook failed")

    def latency(self) -> float:
        """The stream's own latency as PortAudio reports it (seconds; 0 when not open)."""
        stream = self.stream
        if stream is None:
            return 0.0
        try:
            return float(stream.latency)
        except Exception:
            return 0.0

    def start(self, device: AudioDevice, channels: int, prepare: Callable[[int], StreamCallback]) -> None:
        """Open and start the PortAudio stream; a failure becomes :attr:`failure` (reported later).

        ``prepare(rate)`` gets the rate the device opens at (48 kHz when it takes it, else its
        default rate, in Hz), sets up the owner's conversion for it and returns the stream's callback.
        """
        try:
            sd = _sounddevice()
            rate = _open_rate(sd, device, channels, self.direction)
            callback = prepare(rate)
            open_stream = sd.InputStream if self.direction == "input" else sd.OutputStream
            stream = open_stream(
                device=device.index,
                channels=channels,
                samplerate=rate,
                dtype="float32",
                blocksize=rate // 50,
                latency=DEVICE_LATENCY_S,
                callback=callback,
                finished_callback=self.on_finished,
            )
            self.opened(stream)
            stream.start()
        except Exception as exc:
            self.fail(f"cannot open the {self.direction} stream: {exc}")

    def opened(self, stream: Any) -> None:
        self.stream = stream
        self._closing = False
        self.last_callback = time.monotonic()

    def delay_ms(self, queued: float | None) -> float:
        """Delay (ms) through ``queued`` samples at 48 kHz (None: nothing yet) plus the stream latency."""
        return 1000.0 * ((queued or 0.0) / SAMPLE_RATE + self.latency())

    def close(self) -> None:
        stream, self.stream = self.stream, None
        self._closing = True
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # a dead device may refuse to stop: it is gone anyway
                log.debug("closing %s: %s", self.name, exc)


class _PortAudioDevice:
    """What both devices report about their PortAudio stream."""

    _io: _Stream

    @property
    def failure(self) -> DeviceFailure | None:
        """Why the device stopped (it carries on as silence), or None while it works."""
        return self._io.failure

    @property
    def xruns(self) -> int:
        """Callbacks PortAudio flagged with an under- or overflow (the device lost or invented audio)."""
        return self._io.xruns


class DeviceMicrophone(_PortAudioDevice, Microphone):
    """The operating system's microphone through PortAudio (SPEC §2.9).

    ``device``: an index, a name substring (see :func:`list_audio_devices`) or None for the default
    input. ``channels`` (1 or 2) is what :meth:`read_frame` returns. Raises
    :class:`~switchboard.errors.DeviceError` at construction when PortAudio or the device is missing.
    The stream opens on :meth:`start` (or the first :meth:`read_frame`). Not virtual: calls whose
    policy asks for voice processing run it on this microphone.
    """

    is_virtual = False

    def __init__(self, device: int | str | None = None, channels: int = 1) -> None:
        self.device = _resolve(device, "input")
        super().__init__(self.device.name, check_channels(channels))
        self._io = _Stream(self.device.name, "input")
        self.on_error = self._io.on_error
        self.device_channels = min(self.channels, self.device.input_channels)
        self.device_rate = SAMPLE_RATE
        self._fifo = _Fifo(self.device_channels, SAMPLE_RATE * MAX_QUEUED_MS // 1000)
        self._resample: _Resampler | None = None
        self._pending = np.zeros((self.channels, 0), dtype=np.float32)  # 48 kHz, not yet read
        self._drift = DriftResampler(self.channels)
        self._control = FillLevelControl(SAMPLE_RATE * MIC_TARGET_MS // 1000)
        self.frames_read = 0
        self.silent_frames = 0
        #: one-step corrections of the FIFO (a stalled loop); drift alone never causes one
        self.resyncs = 0

    def start(self) -> None:
        if self._io.stream is not None or self._io.failure is not None:
            return
        self._io.start(self.device, self.device_channels, self._prepare)

    def _prepare(self, rate: int) -> StreamCallback:
        self.device_rate = rate
        self._fifo.capacity = rate * MAX_QUEUED_MS // 1000
        self._resample = _Resampler(self.device_channels, rate, SAMPLE_RATE)
        return self._captured

    def _captured(self, indata: Any, frames: int, when: Any, status: Any) -> None:  # PortAudio thread
        self._io.alive(status)
        self._fifo.put(np.ascontiguousarray(indata.T, dtype=np.float32))

    def stop(self) -> None:
        self._io.close()

    def read_frame(self) -> FloatArray:
        if self._io.stream is None and self._io.failure is None:
            self.start()
        self._io.report()
        self.frames_read += 1
        if self._io.failure is not None or self._resample is None:
            self.silent_frames += 1
            return np.zeros((self.channels, FRAME_SAMPLES), dtype=np.float32)
        captured = _convert_channels(self._resample(self._fifo.take(len(self._fifo))), self.channels)
        fill = self._pending.shape[1] + self._drift.pending + captured.shape[1]
        target = self._control.target
        first = self._control.smoothed is None
        if (first and fill > 0) or abs(fill - target) > SAMPLE_RATE * RESYNC_MS // 1000:
            # the first audio, or far off (the loop stalled): the newest audio, at the target fill
            everything = np.concatenate([self._pending, self._drift.process(captured)], axis=1)
            self._drift.reset()
            self._control.reset()
            lead = np.zeros((self.channels, max(target - everything.shape[1], 0)), dtype=np.float32)
            self._pending = np.concatenate([lead, everything[:, -target:]], axis=1)
            self.resyncs += 0 if first else 1
            captured = captured[:, :0]
            fill = self._pending.shape[1]
        ratio = self._control.update(fill) if fill > 0 or not first else 1.0
        pending = np.concatenate([self._pending, self._drift.process(captured, ratio)], axis=1)
        frame = np.zeros((self.channels, FRAME_SAMPLES), dtype=np.float32)
        take = min(FRAME_SAMPLES, pending.shape[1])
        frame[:, :take] = pending[:, :take]
        if take < FRAME_SAMPLES:
            self.silent_frames += 1
        self._pending = pending[:, take:]
        return frame

    @property
    def rate_ratio(self) -> float:
        """The drift correction applied now: device samples consumed per 48 kHz sample read (≈ 1)."""
        return self._control.ratio

    @property
    def input_delay_ms(self) -> float:
        """Capture delay (ms): from the device's converter to :meth:`read_frame` (stream latency + FIFO)."""
        return self._io.delay_ms(self._control.smoothed)


class DeviceSpeaker(_PortAudioDevice, CaptureSpeaker):
    """The operating system's speaker through PortAudio (SPEC §2.9).

    ``device``: an index, a name substring or None for the default output; ``channels`` (1 or 2,
    default 2) is what it mixes and plays. It keeps the 20 ms clock and the recording of a
    :class:`~switchboard.media.speakers.CaptureSpeaker` (``max_seconds`` of it, default 10 s), and
    sends every mixed frame to the device. Raises :class:`~switchboard.errors.DeviceError` at
    construction when PortAudio or the device is missing.
    """

    is_virtual = False

    def __init__(
        self, device: int | str | None = None, channels: int = 2, *, max_seconds: float = 10.0
    ) -> None:
        self.device = _resolve(device, "output")
        super().__init__(max_seconds=max_seconds, name=self.device.name, channels=check_channels(channels))
        self._io = _Stream(self.device.name, "output")
        self.on_error = self._io.on_error
        self.device_channels = min(self.channels, self.device.output_channels)
        self.device_rate = SAMPLE_RATE
        self._fifo = _Fifo(self.device_channels, SAMPLE_RATE * MAX_QUEUED_MS // 1000)
        self._resample: _Resampler | None = None
        self._drift = DriftResampler(self.device_channels)
        self._control = FillLevelControl(SAMPLE_RATE * SPEAKER_TARGET_MS // 1000)
        self.underruns = 0
        #: one-step corrections of the FIFO (a stalled loop); drift alone never causes one
        self.resyncs = 0

    async def start(self) -> None:
        if self._io.stream is None and self._io.failure is None:
            self._open()
        await super().start()

    def _open(self) -> None:
        self._io.start(self.device, self.device_channels, self._prepare)

    def _prepare(self, rate: int) -> StreamCallback:
        self.device_rate = rate
        self._fifo = _Fifo(self.device_channels, rate * MAX_QUEUED_MS // 1000)
        self._resample = _Resampler(self.device_channels, SAMPLE_RATE, rate)
        return self._play

    def _play(self, outdata: Any, frames: int, when: Any, status: Any) -> None:  # PortAudio thread
        self._io.alive(status)
        pcm = self._fifo.take(frames)
        outdata[: pcm.shape[1]] = pcm.T
        if pcm.shape[1] < frames:
            outdata[pcm.shape[1] :] = 0.0
            if self._control.smoothed is not None:  # (not before the first frame is mixed)
                self.underruns += 1

    async def stop(self) -> None:
        await super().stop()
        self._io.close()

    def tick(self, t: float | None = None) -> FloatArray:
        mono = super().tick(t)
        self._io.report()
        if self._io.stream is not None and self._io.failure is None and self._resample is not None:
            frame = _convert_channels(
                self.samples_range_channels(self.total_samples - FRAME_SAMPLES), self.device_channels
            )
            fill = len(self._fifo) * SAMPLE_RATE / self.device_rate + self._drift.pending
            target = self._control.target
            first = self._control.smoothed is None
            if first or abs(fill - target) > SAMPLE_RATE * RESYNC_MS // 1000:
                # the first frame, or far off (the loop stalled, the device paused): one step to the target
                if fill < target:
                    gap = np.zeros((self.device_channels, int(target - fill)), dtype=np.float32)
                    self._fifo.put(self._resample(gap))
                else:
                    self._fifo.take(int((fill - target) * self.device_rate / SAMPLE_RATE))
                self._control.reset()
                self.resyncs += 0 if first else 1
                fill = target
            ratio = self._control.update(fill)
            self._fifo.put(self._resample(self._drift.process(frame, ratio)))
        return mono

    @property
    def rate_ratio(self) -> float:
        """The drift correction applied now: 48 kHz samples mixed per sample sent to the device (≈ 1)."""
        return self._control.ratio

    @property
    def output_delay_ms(self) -> float:
        """Render delay (ms): from the mix to the device's converter (FIFO + stream latency)."""
        return self._io.delay_ms(self._control.smoothed)
