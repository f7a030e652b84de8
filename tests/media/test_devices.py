from __future__ import annotations

import asyncio
import fractions
import itertools
import time
import wave
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.mediastreams import MediaStreamError

from switchboard.media import CaptureSpeaker, FileMicrophone, Microphone, SilentMicrophone, ToneMicrophone
from switchboard.media.analysis import dominant_tones, level_dbfs, tone_level_dbfs
from switchboard.media.audio_format import FRAME_SAMPLES, SAMPLE_RATE
from switchboard.media.camera import SyntheticCamera
from switchboard.media.playout import PlayoutBuffer, SpeakerSource
from switchboard.media.tracks import CameraTrack, MicrophoneTrack

SR = SAMPLE_RATE


def read_seconds(mic: Microphone, seconds: float) -> npt.NDArray[np.float32]:
    frames = [mic.read_frame() for _ in range(round(seconds * 50))]
    for f in frames:
        assert f.shape == (mic.channels, FRAME_SAMPLES)
        assert f.dtype == np.float32
    return np.concatenate(frames, axis=1)


def peak_hz(x: npt.NDArray[np.floating], rate: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * rate / x.size)


def opus_like_frame(pcm: npt.NDArray[np.floating]) -> av.AudioFrame:
    """What aiortc's Opus decoder outputs: packed s16, stereo, 48 kHz."""
    s16 = np.round(np.clip(pcm, -1, 1) * 32767).astype(np.int16)
    inter = np.stack([s16, s16], axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(inter, format="s16", layout="stereo")
    frame.sample_rate = SR
    return frame


def opus_stereo_frame(left: npt.NDArray[np.floating], right: npt.NDArray[np.floating]) -> av.AudioFrame:
    """Packed s16 stereo 48 kHz (the Opus decoder's output) with different L and R."""
    lr = np.round(np.clip(np.stack([left, right], axis=1), -1, 1) * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(lr.reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = SR
    return frame


def s16(x: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """What survives the s16 round trip."""
    out: npt.NDArray[np.float32] = (np.round(np.clip(x, -1, 1) * 32767) / 32768).astype(np.float32)
    return out


class StereoToneSource(SpeakerSource):
    """Deterministic stereo test source: one tone on the left, another on the right."""

    channels = 2

    def __init__(self, left_hz: float, right_hz: float, level: float = -12.0) -> None:
        self.left, self.right = ToneMicrophone(left_hz, level), ToneMicrophone(right_hz, level)

    def pull(self, n: int = FRAME_SAMPLES) -> npt.NDArray[np.float32] | None:
        assert n == FRAME_SAMPLES
        return np.concatenate([self.left.read_frame(), self.right.read_frame()])


class ToneSource(SpeakerSource):
    """Deterministic test source: a continuous tone."""

    def __init__(self, hz: float, level: float = -12.0) -> None:
        self.mic = ToneMicrophone(hz, level)

    def pull(self, n: int = FRAME_SAMPLES) -> npt.NDArray[np.float32] | None:
        assert n == FRAME_SAMPLES
        frame: npt.NDArray[np.float32] = self.mic.read_frame()[0]
        return frame


# --------------------------------------------------------------------------- microphones


def test_tone_microphone_exact_and_phase_continuous() -> None:
    mic = ToneMicrophone(1000.0, level_dbfs=-12.0)
    assert mic.is_virtual and mic.sample_rate == 48000 and mic.channels == 1
    x = read_seconds(mic, 1.0)[0]
    amp = 10 ** (-12 / 20)
    ref = amp * np.sin(2 * np.pi * 1000.0 * np.arange(x.size) / SR)
    # Sample-exact against one long reference sine => no phase jumps at frame joins.
    assert np.max(np.abs(x - ref)) < 1e-6
    assert np.max(np.abs(x)) == pytest.approx(amp, rel=1e-4)
    assert level_dbfs(x) == pytest.approx(-15.01, abs=0.01)
    assert peak_hz(x) == pytest.approx(1000.0, abs=1.0)


def test_tone_microphone_non_integer_period_is_continuous() -> None:
    hz = 441.3  # not an integer number of cycles per frame
    mic = ToneMicrophone(hz, level_dbfs=-6.0)
    x = read_seconds(mic, 2.0)[0].astype(np.float64)
    ref = 10 ** (-6 / 20) * np.sin(2 * np.pi * hz * np.arange(x.size) / SR)
    assert np.max(np.abs(x - ref)) < 1e-5
    diffs = np.abs(np.diff(x))
    joins = diffs[FRAME_SAMPLES - 1 :: FRAME_SAMPLES]
    assert joins.max() <= diffs.max() + 1e-7
    assert tone_level_dbfs(x, hz) == pytest.approx(-9.01, abs=0.05)


def test_tone_microphone_stereo() -> None:
    mic = ToneMicrophone(440.0, channels=2)
    f = mic.read_frame()
    assert f.shape == (2, 960)
    assert np.array_equal(f[0], f[1])


def test_microphone_rejects_bad_channels() -> None:
    with pytest.raises(ValueError):
        ToneMicrophone(440.0, channels=3)


def test_silent_microphone() -> None:
    mic = SilentMicrophone(channels=2)
    f = mic.read_frame()
    assert f.shape == (2, 960) and f.dtype == np.float32 and not f.any()
    assert mic.is_virtual


def write_wav(
    path: Path, rate: int, hz: float, seconds: float, width: int = 2, channels: int = 1, peak: float = 0.5
) -> None:
    n = int(rate * seconds)
    x = peak * np.sin(2 * np.pi * hz * np.arange(n) / rate)
    if width == 1:
        data = np.round(x * 127 + 128).astype(np.uint8).tobytes()
    elif width == 2:
        data = np.round(x * 32767).astype("<i2").tobytes()
    elif width == 3:
        i32 = np.round(x * (2**23 - 1)).astype("<i4")
        data = i32.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        data = np.round(x * (2**31 - 1)).astype("<i4").tobytes()
    if channels == 2:
        data_arr = np.frombuffer(data, dtype=np.uint8).reshape(n, width)
        data = np.concatenate([data_arr, data_arr], axis=1).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)


@pytest.mark.parametrize(
    ("rate", "width", "channels", "hz"),
    [
        (16000, 2, 1, 1000.0),
        (44100, 2, 1, 1000.0),
        (44100, 2, 2, 3000.0),
        (22050, 3, 1, 700.0),
        (8000, 1, 1, 440.0),
        (48000, 4, 2, 1500.0),
    ],
)
def test_file_microphone_resamples(tmp_path: Path, rate: int, width: int, channels: int, hz: float) -> None:
    path = tmp_path / f"tone_{rate}_{width}_{channels}.wav"
    write_wav(path, rate, hz, 1.0, width=width, channels=channels)
    mic = FileMicrophone(path)
    assert mic.is_virtual and mic.channels == channels and mic.source_sample_rate == rate
    assert mic.duration == pytest.approx(1.0, abs=0.005)
    x = read_seconds(mic, 0.8)
    mono = x.mean(axis=0)
    assert peak_hz(mono) == pytest.approx(hz, abs=2.0)
    assert tone_level_dbfs(mono[960:], hz) == pytest.approx(level_dbfs(np.full(1, 0.5 / np.sqrt(2))), abs=0.3)
    if channels == 2:
        assert np.allclose(x[0], x[1])


def test_file_microphone_loops_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    write_wav(path, 16000, 1000.0, 0.05)  # 2.5 frames
    looping = FileMicrophone(path, loop=True)
    x = read_seconds(looping, 0.5)[0]
    assert level_dbfs(x[-960:]) > -10.0
    once = FileMicrophone(str(path), loop=False)
    y = read_seconds(once, 0.5)[0]
    assert once.finished
    assert level_dbfs(y[:960]) > -10.0
    assert not y[3 * 960 :].any()


def test_file_microphone_channel_override(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    write_wav(path, 48000, 1000.0, 0.1)
    mic = FileMicrophone(path, channels=2)
    f = mic.read_frame()
    assert f.shape == (2, 960) and np.array_equal(f[0], f[1])


def test_file_microphone_invalid(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        FileMicrophone(tmp_path / "missing.wav")
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"this is not a wav file at all")
    with pytest.raises(ValueError):
        FileMicrophone(bogus)
    with pytest.raises(ValueError):
        FileMicrophone(tmp_path)  # a directory
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")
    with pytest.raises(ValueError, match="no audio"):
        FileMicrophone(empty)


# --------------------------------------------------------------------------- playout buffer


def test_playout_buffer_fast_path_and_underrun() -> None:
    pb = PlayoutBuffer()
    assert pb.pull() is None  # empty -> underrun
    assert pb.underruns == 1
    tone = ToneMicrophone(1000.0, -12.0).read_frame()[0]
    pb.push(opus_like_frame(tone))
    out = pb.pull()
    assert out is not None and out.shape == (960,) and out.dtype == np.float32
    assert np.max(np.abs(out - tone)) < 1e-4
    assert pb.pull() is None


def test_playout_buffer_mono_and_partial() -> None:
    pb = PlayoutBuffer()
    s16 = np.full((1, 500), 16384, dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(s16, format="s16", layout="mono")
    frame.sample_rate = SR
    pb.push(frame)
    out = pb.pull(960)
    assert out is not None  # partial tail is played zero-padded, not stranded
    assert np.allclose(out[:500], 0.5) and not out[500:].any()
    assert pb.pull() is None


def test_playout_buffer_bounded_drops_oldest() -> None:
    pb = PlayoutBuffer(max_ms=120)
    assert pb.capacity == 5760
    for i in range(20):
        pb.push_pcm(np.full(960, i / 100, dtype=np.float32))
        assert pb.buffered_samples <= 5760
    assert pb.buffered_ms == pytest.approx(120.0)
    assert pb.dropped_samples == 14 * 960
    values = []
    while (out := pb.pull()) is not None:
        values.append(round(float(out[0]) * 100))
    assert values == list(range(14, 20))  # the newest 6 frames survive


def test_playout_buffer_resamples_other_rates() -> None:
    pb = PlayoutBuffer()
    rate, n = 44100, 882
    for k in range(6):
        t = (k * n + np.arange(n)) / rate
        y = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([y, y]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = k * n
        frame.time_base = fractions.Fraction(1, rate)
        pb.push(frame)
    assert 5 * 960 - 200 < pb.buffered_samples <= 5760
    pulled = [pb.pull() for _ in range(4)]
    out = np.concatenate([p for p in pulled if p is not None])
    assert out.shape == (3840,)
    # Same downmix as the fast path: average of L/R, so the level is preserved.
    expected = level_dbfs(np.full(1, 0.5 / np.sqrt(2)))
    assert tone_level_dbfs(out[960:], 1000) == pytest.approx(expected, abs=0.2)


def test_playout_buffer_gain_and_clear() -> None:
    pb = PlayoutBuffer()
    pb.push_pcm(np.full(1920, 0.5, dtype=np.float32))
    pb.gain = 0.5
    out = pb.pull()
    assert out is not None and np.allclose(out, 0.25)
    pb.gain = 0.0
    out = pb.pull()
    assert out is not None and not out.any()  # muted, but consumed
    pb.push_pcm(np.ones(960, dtype=np.float32))
    pb.clear()
    assert pb.pull() is None and len(pb) == 0


# --------------------------------------------------------------------------- capture speaker


def test_capture_speaker_mixes_two_playout_buffers() -> None:
    spk = CaptureSpeaker()
    a, b = PlayoutBuffer(), PlayoutBuffer()
    spk.add_source(a)
    remove_b = spk.add_source(b)
    mic_a, mic_b = ToneMicrophone(440.0, -12.0), ToneMicrophone(1000.0, -12.0)
    for _ in range(25):
        a.push(opus_like_frame(mic_a.read_frame()[0]))
        b.push(opus_like_frame(mic_b.read_frame()[0]))
        spk.tick()
    x = spk.samples(0.5)
    assert x.shape == (24000,) and x.dtype == np.float32
    assert dominant_tones(x, [440.0, 1000.0, 2000.0]) == {440.0, 1000.0}
    assert tone_level_dbfs(x, 440) == pytest.approx(-15.0, abs=0.3)
    assert tone_level_dbfs(x, 1000) == pytest.approx(-15.0, abs=0.3)
    remove_b()
    remove_b()  # idempotent
    for _ in range(25):
        a.push(opus_like_frame(mic_a.read_frame()[0]))
        b.push(opus_like_frame(mic_b.read_frame()[0]))
        spk.tick()
    assert dominant_tones(spk.samples(0.5), [440.0, 1000.0]) == {440.0}


def test_capture_speaker_clips_and_writes_silence() -> None:
    spk = CaptureSpeaker()
    frame = spk.tick()
    assert not frame.any() and spk.frames_written == 1
    loud1, loud2 = PlayoutBuffer(), PlayoutBuffer()
    spk.add_source(loud1)
    spk.add_source(loud2)
    loud1.push_pcm(np.full(960, 0.8, dtype=np.float32))
    loud2.push_pcm(np.full(960, 0.8, dtype=np.float32))
    assert np.all(spk.tick() == 1.0)
    assert not spk.tick().any()  # sources underrun -> silence
    assert level_dbfs(spk.samples(0.02)) == -120.0
    assert spk.total_samples == 3 * 960


def test_capture_speaker_samples_and_ring_bound() -> None:
    spk = CaptureSpeaker(max_seconds=1.0)
    src = ToneSource(1000.0)
    spk.add_source(src)
    for i in range(100):
        spk.tick(t=10.0 + i * 0.02)
    assert spk.total_samples == 96000
    assert spk.samples().shape == (48000,)  # bounded to max_seconds
    assert spk.samples(0.5).shape == (24000,)
    assert spk.samples(10.0).shape == (48000,)
    assert spk.samples(0).shape == (0,)
    assert spk.first_retained_sample == 48000
    assert spk.start_time == 10.0
    assert spk.time_of_sample(96000 - 960) == pytest.approx(10.0 + 99 * 0.02)
    assert spk.time_of_sample(60000) == pytest.approx(10.0 + 60000 / SR)
    assert spk.sample_at_time(10.0 + 60000 / SR) == 60000
    with pytest.raises(ValueError):
        spk.time_of_sample(0)  # evicted
    # the ring is contiguous across the wrap point
    ref = ToneMicrophone(1000.0, -12.0)
    expected = np.concatenate([ref.read_frame()[0] for _ in range(100)])[-48000:]
    assert np.array_equal(spk.samples(), expected)
    assert np.array_equal(spk.samples_range(50000, 51000), expected[2000:3000])


@pytest.mark.asyncio
async def test_capture_speaker_ticks_in_real_time() -> None:
    loop = asyncio.get_running_loop()
    spk = CaptureSpeaker()
    ticks: list[float] = []
    spk.on_tick.append(lambda t, frame: ticks.append(t))
    assert not spk.running
    await spk.start()
    await spk.start()  # idempotent
    assert spk.running
    t_start = loop.time()
    await asyncio.sleep(1.0)
    await spk.stop()
    await spk.stop()  # idempotent
    assert not spk.running
    written = spk.frames_written
    assert abs(written - 50) <= 3
    assert len(ticks) == written
    assert spk.start_time is not None
    assert spk.start_time == pytest.approx(t_start, abs=0.05)
    assert spk.time_of_sample(0) == spk.start_time
    assert spk.time_of_sample(10 * 960) == pytest.approx(spk.start_time + 0.2, abs=1e-9)
    assert spk.samples(0.2).shape == (9600,)
    assert spk.samples().shape == (written * 960,)
    assert level_dbfs(spk.samples()) == -120.0  # no sources -> silence
    await asyncio.sleep(0.1)
    assert spk.frames_written == written  # stopped means stopped


@pytest.mark.asyncio
async def test_capture_speaker_catches_up_stall_with_silence() -> None:
    loop = asyncio.get_running_loop()
    spk = CaptureSpeaker()
    src = ToneSource(1000.0)
    spk.add_source(src)
    t0 = loop.time()
    await spk.start()
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # noqa: ASYNC251 -- deliberately stall the event loop
    await asyncio.sleep(0.1)
    await spk.stop()
    elapsed = loop.time() - t0
    assert spk.frames_caught_up >= 10
    assert abs(spk.frames_written - (elapsed / 0.02 + 1)) <= 3
    levels = [level_dbfs(spk.samples_range(i * 960, (i + 1) * 960)) for i in range(spk.frames_written)]
    assert sum(1 for lv in levels if lv == -120.0) == spk.frames_caught_up


@pytest.mark.asyncio
async def test_capture_speaker_restart_keeps_timeline() -> None:
    spk = CaptureSpeaker()
    await spk.start()
    await asyncio.sleep(0.1)
    await spk.stop()
    first = spk.frames_written
    await asyncio.sleep(0.1)
    await spk.start()
    await asyncio.sleep(0.1)
    await spk.stop()
    assert spk.frames_written > first
    gap = spk.time_of_sample(first * 960) - spk.time_of_sample((first - 1) * 960)
    assert gap > 0.05  # the restart gap is visible in the timestamps


# --------------------------------------------------------------------------- stereo playout


def test_channels_validated() -> None:
    for bad in (0, 3):
        with pytest.raises(ValueError):
            PlayoutBuffer(channels=bad)
        with pytest.raises(ValueError):
            CaptureSpeaker(channels=bad)
    assert PlayoutBuffer().channels == 1 and CaptureSpeaker().channels == 1
    assert PlayoutBuffer(channels=2).channels == 2 and CaptureSpeaker(channels=2).channels == 2


def test_playout_buffer_stereo_keeps_left_and_right() -> None:
    pb = PlayoutBuffer(channels=2)
    assert pb.pull() is None and pb.underruns == 1
    left = ToneMicrophone(440.0, -12.0).read_frame()[0]
    right = ToneMicrophone(660.0, -6.0).read_frame()[0]
    pb.push(opus_stereo_frame(left, right))
    assert pb.buffered_samples == 960 and pb.frames_pushed == 1
    out = pb.pull()
    assert out is not None and out.shape == (2, 960) and out.dtype == np.float32
    assert np.array_equal(out[0], s16(left)) and np.array_equal(out[1], s16(right))
    assert pb.pull() is None and pb.underruns == 2
    # partial tail: zero-padded in both channels
    pb.push(opus_stereo_frame(np.full(500, 0.5), np.full(500, -0.25)))
    out = pb.pull(960)
    assert out is not None and out.shape == (2, 960)
    assert np.allclose(out[0, :500], 0.5, atol=1e-4) and np.allclose(out[1, :500], -0.25, atol=1e-4)
    assert not out[:, 500:].any()


def test_playout_buffer_stereo_duplicates_mono_input() -> None:
    pb = PlayoutBuffer(channels=2)
    frame = av.AudioFrame.from_ndarray(np.full((1, 960), 16384, dtype=np.int16), format="s16", layout="mono")
    frame.sample_rate = SR
    pb.push(frame)
    pb.push_pcm(np.full(960, 0.25, dtype=np.float32))  # (n,) is mono too
    pb.push_pcm(np.stack([np.full(960, 0.1), np.full(960, 0.2)]))  # (2, n) stays stereo
    a, b, c = pb.pull(), pb.pull(), pb.pull()
    assert a is not None and np.all(a == 0.5)
    assert b is not None and np.all(b == 0.25)
    assert c is not None and np.allclose(c[0], 0.1) and np.allclose(c[1], 0.2)


def test_playout_buffer_stereo_bounds_and_gain() -> None:
    pb = PlayoutBuffer(max_ms=120, channels=2)
    for i in range(20):
        pb.push_pcm(np.stack([np.full(960, i / 100), np.full(960, -i / 100)]))
        assert pb.buffered_samples <= 5760
    assert pb.dropped_samples == 14 * 960  # per channel, same as mono
    pb.gain = 0.5
    values = []
    while (out := pb.pull()) is not None:
        assert out.shape == (2, 960)
        values.append((round(float(out[0, 0]) * 200), round(float(out[1, -1]) * 200)))
    assert values == [(i, -i) for i in range(14, 20)]  # the newest 6 frames survive, scaled by gain
    pb.push_pcm(np.ones((2, 7000), dtype=np.float32))  # more than the capacity at once
    assert pb.buffered_samples == 5760
    pb.clear()
    assert pb.pull() is None and len(pb) == 0


@pytest.mark.parametrize("channels", [1, 2])
def test_playout_buffer_matches_a_simple_fifo_model(channels: int) -> None:
    # Irregular pushes and pulls with overflow: compared against a plain list model.
    pb = PlayoutBuffer(max_ms=40, channels=channels)  # 1920 samples
    model: list[float] = []
    dropped = 0
    value = 0
    for step in range(400):
        n = (step * 37) % 1100  # 0..1099, sometimes 0
        chunk = np.arange(value, value + n, dtype=np.float32) / 1e6
        value += n
        pb.push_pcm(chunk if channels == 1 else np.stack([chunk, -chunk]))
        model.extend(chunk.tolist())
        if len(model) > 1920:
            dropped += len(model) - 1920
            del model[: len(model) - 1920]
        assert pb.buffered_samples == len(model) and pb.dropped_samples == dropped
        want = 300 + (step * 53) % 700
        out = pb.pull(want)
        if not model:
            assert out is None
            continue
        assert out is not None
        take = min(want, len(model))
        expected = np.zeros(want, dtype=np.float32)
        expected[:take] = model[:take]
        del model[:take]
        if channels == 1:
            assert out.shape == (want,) and np.array_equal(out, expected)
        else:
            assert (
                out.shape == (2, want)
                and np.array_equal(out[0], expected)
                and np.array_equal(out[1], -expected)
            )


def test_playout_buffer_stereo_resamples_other_rates() -> None:
    pb = PlayoutBuffer(channels=2)
    rate, n = 44100, 882
    for k in range(6):
        t = (k * n + np.arange(n)) / rate
        left = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        right = (0.5 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([left, right]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = k * n
        frame.time_base = fractions.Fraction(1, rate)
        pb.push(frame)
    pulled = [pb.pull() for _ in range(4)]
    out = np.concatenate([p for p in pulled if p is not None], axis=1)
    assert out.shape == (2, 3840)
    assert dominant_tones(out[0, 960:], [440.0, 660.0]) == {440.0}
    assert dominant_tones(out[1, 960:], [440.0, 660.0]) == {660.0}


def play_lr_tones(pb: PlayoutBuffer, spk: CaptureSpeaker, frames: int = 25) -> None:
    """440 Hz on the left, 660 Hz on the right, through ``pb`` into ``spk``."""
    mic_l, mic_r = ToneMicrophone(440.0, -12.0), ToneMicrophone(660.0, -12.0)
    spk.add_source(pb)
    for _ in range(frames):
        pb.push(opus_stereo_frame(mic_l.read_frame()[0], mic_r.read_frame()[0]))
        spk.tick()


def test_stereo_playout_keeps_channels_apart_through_stereo_speaker() -> None:
    spk = CaptureSpeaker(channels=2)
    hooked: list[npt.NDArray[np.float32]] = []
    spk.on_tick.append(lambda t, frame: hooked.append(frame))
    play_lr_tones(PlayoutBuffer(channels=2), spk)
    lr = spk.samples_channels(0.5)
    assert lr.shape == (2, 24000) and lr.dtype == np.float32
    left, right = lr
    assert tone_level_dbfs(left, 440) == pytest.approx(-15.0, abs=0.3)
    assert tone_level_dbfs(left, 660) < -60.0
    assert tone_level_dbfs(right, 660) == pytest.approx(-15.0, abs=0.3)
    assert tone_level_dbfs(right, 440) < -60.0
    # samples() stays mono: the channel average carries both tones at half amplitude
    mono = spk.samples(0.5)
    assert mono.shape == (24000,)
    assert np.array_equal(mono, (left + right) * np.float32(0.5))
    assert dominant_tones(mono, [440.0, 660.0, 1000.0]) == {440.0, 660.0}
    assert tone_level_dbfs(mono, 440) == pytest.approx(-21.0, abs=0.3)
    # hooks (and tick's return value) get the mono mix
    assert len(hooked) == 25 and all(f.shape == (960,) for f in hooked)
    assert np.array_equal(np.concatenate(hooked[-25:])[-24000:], mono)
    assert np.array_equal(spk.samples_range_channels(0, 960), lr[:, :960])
    assert np.array_equal(spk.samples_range(0, 960), mono[:960])


def test_mono_playout_collapses_stereo() -> None:
    spk = CaptureSpeaker(channels=2)
    play_lr_tones(PlayoutBuffer(), spk)  # default: mono buffer averages L/R
    left, right = spk.samples_channels(0.5)
    assert np.array_equal(left, right)
    for ch in (left, right):
        assert dominant_tones(ch, [440.0, 660.0, 1000.0]) == {440.0, 660.0}
        assert tone_level_dbfs(ch, 440) == pytest.approx(-21.0, abs=0.3)
    # and in a mono speaker there is only the one channel, with both tones
    mono_spk = CaptureSpeaker()
    play_lr_tones(PlayoutBuffer(), mono_spk)
    x = mono_spk.samples_channels(0.5)
    assert x.shape == (1, 24000)
    assert dominant_tones(x[0], [440.0, 660.0, 1000.0]) == {440.0, 660.0}


def test_stereo_buffer_in_mono_speaker_matches_mono_buffer() -> None:
    via_stereo, via_mono = CaptureSpeaker(), CaptureSpeaker()
    play_lr_tones(PlayoutBuffer(channels=2), via_stereo)
    play_lr_tones(PlayoutBuffer(), via_mono)
    assert via_stereo.samples().shape == (25 * 960,)
    assert np.array_equal(via_stereo.samples(), via_mono.samples())  # (L + R) / 2, bit-exact


def test_mono_source_into_stereo_speaker_duplicates() -> None:
    spk = CaptureSpeaker(channels=2)
    spk.add_source(ToneSource(1000.0))
    ticked = [spk.tick() for _ in range(10)]
    ref = ToneMicrophone(1000.0, -12.0)
    expected = np.concatenate([ref.read_frame()[0] for _ in range(10)])
    lr = spk.samples_channels()
    assert lr.shape == (2, 9600)
    assert np.array_equal(lr[0], expected) and np.array_equal(lr[1], expected)
    assert np.array_equal(spk.samples(), expected)
    assert np.array_equal(np.concatenate(ticked), expected)


def test_stereo_source_into_mono_speaker_is_averaged() -> None:
    spk = CaptureSpeaker()
    spk.add_source(StereoToneSource(440.0, 660.0))
    spk.add_source(ToneSource(1000.0))
    for _ in range(25):
        frame = spk.tick()
        assert frame.shape == (960,)
    x = spk.samples()
    assert dominant_tones(x, [440.0, 660.0, 1000.0, 2000.0]) == {440.0, 660.0, 1000.0}
    assert tone_level_dbfs(x, 440) == pytest.approx(-21.0, abs=0.3)
    assert tone_level_dbfs(x, 1000) == pytest.approx(-15.0, abs=0.3)


def test_stereo_speaker_mixes_clips_and_wraps() -> None:
    spk = CaptureSpeaker(max_seconds=0.1, channels=2)  # 5 frames
    assert not spk.tick().any()  # nothing playing -> silence
    assert spk.samples_channels().shape == (2, 960) and not spk.samples_channels().any()
    loud = PlayoutBuffer(channels=2)
    spk.add_source(loud)
    spk.add_source(ToneSource(1000.0))
    for i in range(12):
        loud.push_pcm(np.stack([np.full(960, 0.9), np.full(960, -i / 100)]))
        spk.tick(t=1.0 + i * 0.02)
    assert spk.total_samples == 13 * 960 and spk.first_retained_sample == 8 * 960
    lr = spk.samples_channels()
    assert lr.shape == (2, 4800)
    assert lr.max() <= 1.0 and np.any(lr[0] == 1.0)  # 0.9 + tone clipped
    tone = np.concatenate([ToneMicrophone(1000.0, -12.0).read_frame()[0] for _ in range(12)])
    assert np.allclose(lr[1], np.repeat(-np.arange(7, 12) / 100, 960) + tone[-4800:], atol=1e-6)
    # reading across the wrap point is contiguous and agrees between the mono and stereo views
    wrapped = spk.samples_range_channels(9 * 960 + 100, 12 * 960)
    assert np.array_equal(wrapped, lr[:, 960 + 100 : 4 * 960])
    assert np.array_equal(
        spk.samples_range(9 * 960 + 100, 12 * 960), (wrapped[0] + wrapped[1]) * np.float32(0.5)
    )
    assert spk.samples_range_channels(0, 960).shape == (2, 0)  # evicted
    assert spk.samples_channels(0).shape == (2, 0) and spk.samples(0).shape == (0,)


def test_capture_speaker_skips_a_source_with_a_bad_shape() -> None:
    class Bad(SpeakerSource):
        def pull(self, n: int = FRAME_SAMPLES) -> npt.NDArray[np.float32] | None:
            return np.ones(n + 1, dtype=np.float32)

    spk = CaptureSpeaker(channels=2)
    spk.add_source(Bad())
    spk.add_source(ToneSource(1000.0))
    frame = spk.tick()
    assert np.array_equal(frame, ToneMicrophone(1000.0, -12.0).read_frame()[0])


@pytest.mark.asyncio
async def test_stereo_capture_speaker_catches_up_with_silence() -> None:
    spk = CaptureSpeaker(channels=2)
    spk.add_source(StereoToneSource(440.0, 660.0))
    await spk.start()
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # noqa: ASYNC251 -- deliberately stall the event loop
    await asyncio.sleep(0.1)
    await spk.stop()
    assert spk.frames_caught_up >= 10
    frames = [spk.samples_range_channels(i * 960, (i + 1) * 960) for i in range(spk.frames_written)]
    silent = [f for f in frames if not f.any()]
    assert len(silent) == spk.frames_caught_up
    loud = [f for f in frames if f.any()]
    assert loud and all(f[0].any() and f[1].any() for f in loud)


# --------------------------------------------------------------------------- camera


def test_synthetic_camera_frames() -> None:
    cam = SyntheticCamera()
    frames = [cam.next_frame() for _ in range(5)]
    for i, f in enumerate(frames):
        assert (f.width, f.height, f.format.name) == (320, 240, "yuv420p")
        assert f.time_base == fractions.Fraction(1, 90000)
        assert f.pts == i * 6000  # 15 fps
        assert SyntheticCamera.read_counter(f) == i
    a, b = (np.asarray(f.to_ndarray()) for f in frames[:2])
    assert not np.array_equal(a[30:], b[30:])  # the box moves
    cam.frame_count = 0xBEEF
    assert SyntheticCamera.read_counter(cam.next_frame()) == 0xBEEF


# --------------------------------------------------------------------------- tracks


@pytest.mark.asyncio
async def test_microphone_track_queue_is_bounded() -> None:
    track = MicrophoneTrack()
    for i in range(10):
        track.feed(np.full((1, 960), i / 10, dtype=np.float32))
        assert track.queued <= 2
    assert track.frames_dropped == 8
    f1 = await track.recv()
    f2 = await track.recv()
    for f in (f1, f2):
        assert isinstance(f, av.AudioFrame)
        assert (f.format.name, f.layout.name, f.samples, f.sample_rate) == ("s16", "mono", 960, 48000)
        assert f.time_base == fractions.Fraction(1, 48000)
    assert (f1.pts, f2.pts) == (0, 960)
    v1 = np.asarray(f1.to_ndarray())[0] / 32767
    v2 = np.asarray(f2.to_ndarray())[0] / 32767
    assert np.allclose(v1, 0.8, atol=1e-4) and np.allclose(v2, 0.9, atol=1e-4)  # newest two survive
    assert track.queued == 0
    track.stop()


@pytest.mark.asyncio
async def test_microphone_track_follows_feed_and_fills_gaps_with_silence() -> None:
    track = MicrophoneTrack()
    mic = ToneMicrophone(1000.0)

    frames = []
    for _ in range(10):  # each frame fed before it is due: sent as fed, whatever the machine's load
        track.feed(mic.read_frame())
        frames.append(await track.recv())
    frames += [await track.recv() for _ in range(4)]  # nothing fed: silence after the slack
    pts = [f.pts for f in frames]
    assert pts == [i * 960 for i in range(14)]
    pcm = np.concatenate([np.asarray(f.to_ndarray())[0] for f in frames]).astype(np.float32) / 32767
    assert tone_level_dbfs(pcm[: 10 * 960], 1000) == pytest.approx(-15.0, abs=0.3)
    assert not pcm[10 * 960 :].any()
    assert track.silence_frames == 4
    assert track.queued <= 2
    track.stop()


@pytest.mark.asyncio
async def test_microphone_track_disabled_sends_paced_silence() -> None:
    loop = asyncio.get_running_loop()
    track = MicrophoneTrack()
    track.enabled = False
    track.feed(np.ones(960, dtype=np.float32))  # discarded while disabled
    assert track.queued == 0
    t0 = loop.time()
    frames = [await track.recv() for _ in range(6)]
    elapsed = loop.time() - t0
    assert elapsed >= 0.09  # paced: 5 intervals of 20 ms (no burst)
    assert all(not np.asarray(f.to_ndarray()).any() for f in frames)
    assert [f.pts for f in frames] == [i * 960 for i in range(6)]
    track.enabled = True
    track.feed(np.full(960, 0.5, dtype=np.float32))
    f = await track.recv()
    assert f.pts == 6 * 960 and np.asarray(f.to_ndarray()).max() > 16000
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


@pytest.mark.asyncio
async def test_camera_track_paced_and_disabled() -> None:
    loop = asyncio.get_running_loop()
    track = CameraTrack(SyntheticCamera(fps=30.0), disabled_fps=20.0)
    assert track.kind == "video"
    t0 = loop.time()
    frames = [await track.recv() for _ in range(4)]
    assert loop.time() - t0 >= 0.09  # 3 intervals of 1/30 s
    assert [SyntheticCamera.read_counter(f) for f in frames] == [0, 1, 2, 3]
    pts = [f.pts or 0 for f in frames]
    assert pts[0] == 0
    assert all(b - a == pytest.approx(3000, abs=2) for a, b in itertools.pairwise(pts))
    track.enabled = False
    black = await track.recv()
    y = np.asarray(black.to_ndarray())[: black.height]
    assert np.all(y == 16)
    assert black.pts is not None and black.pts > pts[-1]
    assert track.camera.frame_count == 4  # camera not advanced while disabled
    track.enabled = True
    again = await track.recv()
    assert SyntheticCamera.read_counter(again) == 4
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_playout_buffer_trim_drops_the_oldest_audio() -> None:
    buf = PlayoutBuffer()
    ramp = np.arange(4800, dtype=np.float32) / 4800
    buf.push_pcm(ramp)
    assert buf.trim_to(1920) == 4800 - 1920
    assert buf.buffered_samples == 1920 and buf.dropped_samples == 4800 - 1920
    first = buf.pull(960)
    assert first is not None and abs(float(first[0]) - ramp[4800 - 1920]) < 1e-6  # the newest audio stayed
    assert buf.trim_to(5000) == 0
