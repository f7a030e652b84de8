"""Real audio devices through PortAudio (``sounddevice``): :class:`DeviceMicrophone`,
:class:`DeviceSpeaker`, :func:`list_audio_devices` (SPEC §2.9).

Threads: PortAudio calls back on its own thread; everything else here runs on the event loop. The
two meet in a small locked FIFO per stream. The microphone's callback appends what it captured and
:meth:`DeviceMicrophone.read_frame` (loop thread, every 20 ms) takes one frame; the speaker mixes on
the loop's 20 ms clock exactly like :class:`~switchboard.media.speakers.CaptureSpeaker` (it *is*
one: it also records what it played) and its callback drains what was mixed. Each FIFO keeps at
most :data:`MAX_QUEUED_MS` of audio (the oldest goes first), so clock drift between the device and
the loop never builds latency; an empty FIFO plays or reads as silence.

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
from switchboard.media.microphones import Microphone
from switchboard.media.speakers import CaptureSpeaker

__all__ = [
    "MAX_QUEUED_MS",
    "AudioDevice",
    "DeviceFailure",
    "DeviceMicrophone",
    "DeviceSpeaker",
    "list_audio_devices",
]

log = logging.getLogger(__name__)

#: audio queued between a device's thread and the loop is capped at this (the oldest is dropped)
MAX_QUEUED_MS: Final = 100
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

    def alive(self) -> None:  # PortAudio thread, every callback
        self.last_callback = time.monotonic()

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

    def opened(self, stream: Any) -> None:
        self.stream = stream
        self._closing = False
        self.last_callback = time.monotonic()

    def close(self) -> None:
        stream, self.stream = self.stream, None
        self._closing = True
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # a dead device may refuse to stop: it is gone anyway
                log.debug("closing %s: %s", self.name, exc)


class DeviceMicrophone(Microphone):
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
        self.frames_read = 0
        self.silent_frames = 0

    @property
    def failure(self) -> DeviceFailure | None:
        return self._io.failure

    def start(self) -> None:
        if self._io.stream is not None or self._io.failure is not None:
            return
        try:
            sd = _sounddevice()
            self.device_rate = _open_rate(sd, self.device, self.device_channels, "input")
            self._fifo.capacity = self.device_rate * MAX_QUEUED_MS // 1000
            self._resample = _Resampler(self.device_channels, self.device_rate, SAMPLE_RATE)

            def callback(indata: Any, frames: int, when: Any, status: Any) -> None:
                self._io.alive()
                self._fifo.put(np.ascontiguousarray(indata.T, dtype=np.float32))

            stream = sd.InputStream(
                device=self.device.index,
                channels=self.device_channels,
                samplerate=self.device_rate,
                dtype="float32",
                blocksize=self.device_rate // 50,
                latency="low",
                callback=callback,
                finished_callback=self._io.on_finished,
            )
            self._io.opened(stream)
            stream.start()
        except Exception as exc:
            self._io.fail(f"cannot open the input stream: {exc}")

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
        pending = np.concatenate([self._pending, captured], axis=1)
        frame = np.zeros((self.channels, FRAME_SAMPLES), dtype=np.float32)
        take = min(FRAME_SAMPLES, pending.shape[1])
        frame[:, :take] = pending[:, :take]
        if take < FRAME_SAMPLES:
            self.silent_frames += 1
        # keep at most two frames for the next reads: a microphone never builds latency
        self._pending = pending[:, take:][:, -2 * FRAME_SAMPLES :]
        return frame


class DeviceSpeaker(CaptureSpeaker):
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
        self.underruns = 0

    @property
    def failure(self) -> DeviceFailure | None:
        return self._io.failure

    async def start(self) -> None:
        if self._io.stream is None and self._io.failure is None:
            self._open()
        await super().start()

    def _open(self) -> None:
        try:
            sd = _sounddevice()
            self.device_rate = _open_rate(sd, self.device, self.device_channels, "output")
            self._fifo = _Fifo(self.device_channels, self.device_rate * MAX_QUEUED_MS // 1000)
            self._resample = _Resampler(self.device_channels, SAMPLE_RATE, self.device_rate)

            def callback(outdata: Any, frames: int, when: Any, status: Any) -> None:
                self._io.alive()
                pcm = self._fifo.take(frames)
                outdata[: pcm.shape[1]] = pcm.T
                if pcm.shape[1] < frames:
                    outdata[pcm.shape[1] :] = 0.0
                    self.underruns += 1

            stream = sd.OutputStream(
                device=self.device.index,
                channels=self.device_channels,
                samplerate=self.device_rate,
                dtype="float32",
                blocksize=self.device_rate // 50,
                latency="low",
                callback=callback,
                finished_callback=self._io.on_finished,
            )
            self._io.opened(stream)
            stream.start()
        except Exception as exc:
            self._io.fail(f"cannot open the output stream: {exc}")

    async def stop(self) -> None:
        await super().stop()
        self._io.close()

    def tick(self, t: float | None = None) -> FloatArray:
        mono = super().tick(t)
        self._io.report()
        if self._io.stream is not None and self._io.failure is None and self._resample is not None:
            frame = self.samples_range_channels(self.total_samples - FRAME_SAMPLES)
            self._fifo.put(self._resample(_convert_channels(frame, self.device_channels)))
        return mono
