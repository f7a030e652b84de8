"""libopus through ctypes and the client's jitter buffer: real Opus packets, real decoding."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from switchboard.media.analysis import frame_tone_levels, level_dbfs, share_of_frames_at_level
from switchboard.media.jitter_buffer import MAX_CONCEALED_FRAMES, OpusJitterBuffer
from switchboard.media.opus import (
    DTX_MAX_BYTES,
    OpusDecoder,
    OpusEncoder,
    OpusError,
    libopus_path,
    packet_has_fec,
    packet_samples,
)

HZ = 440.0
TONE_RMS_DBFS = -15.05  # a sine with a -12 dBFS peak


def tone(frames: int, hz: float = HZ) -> npt.NDArray[np.int16]:
    t = np.arange(960 * frames) / 48000
    return (10 ** (-12 / 20) * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)


def voice_like(frames: int) -> npt.NDArray[np.int16]:
    """A gliding harmonic complex with a syllable-rate envelope: libopus codes parts of it as SILK/hybrid."""
    t = np.arange(960 * frames) / 48000
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 0.7 * t)) / 48000
    x = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    noise = np.random.default_rng(1).standard_normal(t.size)
    pcm: npt.NDArray[np.int16] = ((x / np.max(np.abs(x)) * 0.3 + 0.01 * noise) * 32767).astype(np.int16)
    return pcm


def encode(pcm: npt.NDArray[np.int16], **options: object) -> list[bytes]:
    encoder = OpusEncoder(1, 32_000, "voip", **options)  # type: ignore[arg-type]
    return [encoder.encode(pcm[i * 960 : (i + 1) * 960]) for i in range(pcm.size // 960)]


def play(buffer: OpusJitterBuffer, packets: list[bytes], lost: set[int]) -> npt.NDArray[np.float32]:
    """Packet k arrives, then the speaker pulls one 20 ms frame (no jitter)."""
    out = []
    for k, packet in enumerate(packets):
        if k not in lost:
            buffer.push(k * 960, packet)
        frame = buffer.pull(960)
        out.append(np.zeros(960, np.float32) if frame is None else frame)
    return np.concatenate(out)


def test_libopus_is_found_and_round_trips_a_tone() -> None:
    assert "opus" in libopus_path()
    packets = encode(tone(50))
    assert all(packet_samples(p) == 960 for p in packets)
    decoder = OpusDecoder(1)
    pcm = np.concatenate([decoder.decode(p)[0] for p in packets]).astype(np.float32) / 32768
    assert abs(level_dbfs(pcm[9600:]) - TONE_RMS_DBFS) < 1.0


def test_decoder_outputs_are_independent_arrays() -> None:
    decoder = OpusDecoder(2)
    first = decoder.decode(encode(tone(1))[0])
    second = decoder.conceal(960)
    assert first.shape == second.shape == (2, 960)
    assert not np.shares_memory(first, second)


def test_bad_input_raises() -> None:
    with pytest.raises(OpusError):
        OpusDecoder(1).decode(b"")
    with pytest.raises(ValueError):
        OpusDecoder(3)
    with pytest.raises(ValueError):
        OpusEncoder(1, application="karaoke")
    with pytest.raises(ValueError):
        OpusEncoder(1).set_expected_loss(101)


def test_dtx_sends_almost_nothing_for_silence() -> None:
    silent = encode(np.zeros(960 * 50, np.int16), dtx=True)
    assert sum(len(p) <= DTX_MAX_BYTES for p in silent[10:]) >= 30
    assert not any(len(p) <= DTX_MAX_BYTES for p in encode(np.zeros(960 * 50, np.int16), dtx=False))


def test_concealment_hides_losses_that_are_gaps_without_it() -> None:
    packets = encode(tone(300), fec=True, expected_loss_percent=10)
    lost = set(range(20, 300, 10)) | {151, 152}  # ~10 %, one double loss
    heard = play(OpusJitterBuffer(1), packets, lost)[960 * 10 :]
    gaps = play(OpusJitterBuffer(1, conceal=False), packets, lost)[960 * 10 :]
    assert share_of_frames_at_level(heard, HZ, TONE_RMS_DBFS) >= 0.98
    assert share_of_frames_at_level(gaps, HZ, TONE_RMS_DBFS) <= 0.92


def test_a_lost_frame_is_rebuilt_from_the_next_packets_fec() -> None:
    pcm = voice_like(200)
    packets = encode(pcm, fec=True, expected_loss_percent=20)
    k = next(i for i in range(20, 199) if packet_has_fec(packets[i + 1]))
    buffer = OpusJitterBuffer(1)
    for i in range(k):  # frames 0..k-1 played, and packet k+1 already here when frame k is due
        buffer.push(i * 960, packets[i])
        if i == k - 1:
            buffer.push((k + 1) * 960, packets[k + 1])
        buffer.pull(960)
    rebuilt = buffer.pull(960)
    assert rebuilt is not None
    assert buffer.stats.recovered == 1 and buffer.stats.concealed == 0
    original = pcm[k * 960 : (k + 1) * 960].astype(np.float32) / 32768
    assert abs(level_dbfs(rebuilt) - level_dbfs(original)) < 6.0


def test_late_packet_plays_after_its_concealment_and_depth_is_kept() -> None:
    packets = encode(tone(40))
    buffer = OpusJitterBuffer(1)
    for i in range(10):
        buffer.push(i * 960, packets[i])
        assert buffer.pull(960) is not None
    concealed = buffer.pull(960)  # packet 10 is late: concealed, still due
    assert concealed is not None and buffer.stats.concealed == 1
    buffer.push(10 * 960, packets[10])
    buffer.push(11 * 960, packets[11])
    buffer.pull(960)
    assert buffer.stats.late == 0 and buffer.stats.decoded == 11
    assert buffer.buffered_samples == 960  # one frame of depth gained


def test_a_stopped_stream_goes_idle_and_restarts() -> None:
    packets = encode(tone(40))
    buffer = OpusJitterBuffer(1)
    buffer.push(0, packets[0])
    assert buffer.pull(960) is not None
    pulls = [buffer.pull(960) for _ in range(MAX_CONCEALED_FRAMES + 2)]
    assert all(p is not None for p in pulls[:MAX_CONCEALED_FRAMES])
    assert pulls[-1] is None
    buffer.push(30 * 960, packets[30])  # the sender is back, much later
    frame = buffer.pull(960)
    assert frame is not None and buffer.stats.decoded == 2


def test_a_burst_is_trimmed_to_the_target_depth() -> None:
    packets = encode(tone(20))
    buffer = OpusJitterBuffer(1)
    for i in range(8):
        buffer.push(i * 960, packets[i])
    buffer.pull(960)
    assert buffer.stats.trimmed > 0
    assert buffer.buffered_samples <= 48 * 40


def test_stereo_buffer_and_timestamp_wrap() -> None:
    packets = encode(tone(10))
    buffer = OpusJitterBuffer(2)
    base = (1 << 32) - 960 * 3  # RTP timestamps wrap after frame 3
    for i, packet in enumerate(packets):
        buffer.push((base + i * 960) % (1 << 32), packet)
        frame = buffer.pull(960)
        assert frame is not None and frame.shape == (2, 960)
    assert buffer.stats.decoded == 10 and buffer.stats.late == 0
    assert frame is not None
    levels = frame_tone_levels(frame[0], HZ)
    assert abs(float(levels[0]) - TONE_RMS_DBFS) < 1.5
