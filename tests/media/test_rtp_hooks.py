"""Tests for switchboard.media.rtp_hooks, mostly with real aiortc peer connections."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import threading
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
import pytest
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc import codecs as aiortc_codecs
from aiortc import rtcrtpreceiver as aiortc_rtcrtpreceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from switchboard.media import rtp_hooks
from switchboard.media.local_ice import IPV4_LOOPBACK, create_peer_connection
from switchboard.media.rtp_hooks import (
    OPUS_CODEC,
    VP8_CODEC,
    EncodedFrame,
    EncodedTrack,
    OpusEncoderSettings,
    OpusFrameEncoder,
    forward_audio_level,
    is_decoding,
    is_keyframe,
    on_keyframe_request,
    opus_toc,
    request_keyframe,
    set_decoding,
    tap_receiver,
)

SAMPLE_RATE = 48000
VIDEO_W, VIDEO_H = 320, 240
Y_LEVEL = 180


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def new_pc() -> RTCPeerConnection:
    return create_peer_connection(loopback_address=IPV4_LOOPBACK)


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def sine(freq: float, start: int, count: int, amplitude: float = 0.3) -> np.ndarray[Any, np.dtype[np.int16]]:
    t = (np.arange(count) + start) / SAMPLE_RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


class Pacer:
    def __init__(self, period: float) -> None:
        self.period = period
        self.start: float | None = None
        self.n = 0

    async def wait(self) -> None:
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.n += 1
            await asyncio.sleep(max(0.0, self.start + self.n * self.period - time.monotonic()))


class SineTrack(MediaStreamTrack):
    """Mono 48 kHz sine tone in real time, 20 ms frames."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self.samples = 0
        self.pacer = Pacer(0.02)

    async def recv(self) -> AudioFrame:
        await self.pacer.wait()
        pcm = sine(self.freq, self.samples, 960).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self.samples += 960
        return frame


class FlatVideoTrack(MediaStreamTrack):
    """320x240 frames with a uniform luma level, 30 fps in real time."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.pacer = Pacer(1 / 30)
        self.n = 0

    async def recv(self) -> VideoFrame:
        await self.pacer.wait()
        yuv = np.full((VIDEO_H * 3 // 2, VIDEO_W), 128, dtype=np.uint8)
        yuv[:VIDEO_H] = Y_LEVEL
        frame = VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self.n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


class Collector:
    """Reads a track until cancelled, keeping frames."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames: list[Any] = []
        self.arrival: list[float] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.frames.append(frame)
                self.arrival.append(time.monotonic())
        except MediaStreamError:
            pass

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def wait_for(cond: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def dominant_frequency(samples: np.ndarray[Any, Any]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    freqs = np.fft.rfftfreq(samples.size, 1 / SAMPLE_RATE)
    return float(freqs[int(np.argmax(spectrum[1:])) + 1])


def audio_channels(frames: list[AudioFrame]) -> np.ndarray[Any, Any]:
    """Decoded aiortc audio frames (packed s16 stereo) -> array of shape (2, n)."""
    data = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    return data.reshape(-1, 2).T


def receiver_for(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    return next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)


def prefer_vp8(transceiver: RTCRtpTransceiver) -> None:
    caps = RTCRtpSender.getCapabilities("video")
    transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType in ("video/VP8", "video/rtx")])


def peek_audio_levels(receiver: RTCRtpReceiver, sink: list[int]) -> None:
    """Test-only: record the RFC 6464 level of every RTP packet reaching ``receiver``."""
    original = receiver._handle_rtp_packet

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        if packet.extensions.audio_level is not None:
            sink.append(-packet.extensions.audio_level[1])
        await original(packet, arrival_time_ms)

    setattr(receiver, "_handle_rtp_packet", handle)  # noqa: B010


class DecoderSpy:
    """Records which RemoteStreamTrack queues got a decoder thread, and get_decoder() calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.output_queues: list[Any] = []
        self.get_decoder_calls = 0
        self._lock = threading.Lock()
        real_worker = aiortc_rtcrtpreceiver.decoder_worker
        real_get_decoder = aiortc_codecs.get_decoder

        def worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
            self.output_queues.append(output_q)
            real_worker(loop, input_q, output_q, decode_error)

        def get_decoder(codec: Any) -> Any:
            with self._lock:
                self.get_decoder_calls += 1
            return real_get_decoder(codec)

        monkeypatch.setattr(aiortc_rtcrtpreceiver, "decoder_worker", worker)
        monkeypatch.setattr(aiortc_rtcrtpreceiver, "get_decoder", get_decoder)

    def decoded(self, receiver: RTCRtpReceiver) -> bool:
        track: Any = receiver.track
        return any(q is track._queue for q in self.output_queues)


class Topology:
    """publisher --(aiortc encodes)--> middle_in [tapped] ==EncodedTrack==> middle_out --> subscriber"""

    def __init__(self) -> None:
        self.publisher = new_pc()
        self.middle_in = new_pc()
        self.middle_out = new_pc()
        self.subscriber = new_pc()
        self.pcs = [self.publisher, self.middle_in, self.middle_out, self.subscriber]
        self.publisher.addTrack(SineTrack(440.0))
        prefer_vp8(self.publisher.addTransceiver(FlatVideoTrack(), direction="sendonly"))

        self.in_receivers: dict[str, RTCRtpReceiver] = {}
        self.taps: dict[str, rtp_hooks.ReceiverTap] = {}
        self.tapped_frames: dict[str, list[EncodedFrame]] = {"audio": [], "video": []}
        self.out_tracks = {
            "audio": EncodedTrack("audio"),
            "video": EncodedTrack("video", on_keyframe_needed=lambda: self.keyframe_to_publisher()),
        }
        self.keyframe_requests_from_subscriber = 0
        self.tap_ended: list[str] = []

        @self.middle_in.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            receiver = receiver_for(self.middle_in, track)
            self.in_receivers[track.kind] = receiver
            out = self.out_tracks[track.kind]

            def on_frame(frame: EncodedFrame) -> None:
                self.tapped_frames[frame.kind].append(frame)
                out.push(frame)

            self.taps[track.kind] = tap_receiver(
                receiver, on_frame, on_end=lambda: self.tap_ended.append(track.kind)
            )

        self.out_senders = {
            "audio": self.middle_out.addTrack(self.out_tracks["audio"]),
        }
        video_tx = self.middle_out.addTransceiver(self.out_tracks["video"], direction="sendonly")
        prefer_vp8(video_tx)
        self.out_senders["video"] = video_tx.sender
        forward_audio_level(self.out_senders["audio"])

        def on_subscriber_pli() -> None:
            self.keyframe_requests_from_subscriber += 1
            self.keyframe_to_publisher()

        on_keyframe_request(self.out_senders["video"], on_subscriber_pli)

        self.sub_receivers: dict[str, RTCRtpReceiver] = {}
        self.collectors: dict[str, Collector] = {}
        self.subscriber_levels: list[int] = []

        @self.subscriber.on("track")
        def on_sub_track(track: MediaStreamTrack) -> None:
            receiver = receiver_for(self.subscriber, track)
            self.sub_receivers[track.kind] = receiver
            if track.kind == "audio":
                peek_audio_levels(receiver, self.subscriber_levels)
            self.collectors[track.kind] = Collector(track)

    def keyframe_to_publisher(self) -> None:
        receiver = self.in_receivers.get("video")
        if receiver is not None:
            request_keyframe(receiver, min_interval=0.2)

    async def start(self) -> None:
        await negotiate(self.publisher, self.middle_in)
        await negotiate(self.middle_out, self.subscriber)
        await wait_for(
            lambda: (
                set(self.collectors) == {"audio", "video"}
                and len(self.collectors["audio"].frames) >= 25
                and len(self.collectors["video"].frames) >= 5
            ),
            10.0,
            "media at the subscriber",
        )

    async def close(self) -> None:
        for collector in self.collectors.values():
            await collector.stop()
        for pc in self.pcs:
            await pc.close()


async def with_topology(test: Callable[[Topology], Awaitable[None]]) -> None:
    topo = Topology()
    try:
        await topo.start()
        await test(topo)
    finally:
        await topo.close()


# ---------------------------------------------------------------------------------------------
# real peer connection tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_forwarding_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = DecoderSpy(monkeypatch)

    async def body(topo: Topology) -> None:
        audio = topo.collectors["audio"]
        video = topo.collectors["video"]
        await wait_for(lambda: len(audio.frames) >= 75 and len(video.frames) >= 20, 10.0, "1.5 s of media")

        # Subscriber decodes the forwarded Opus: stereo s16 48 kHz carrying the 440 Hz tone.
        frames = audio.frames[-40:]
        assert all(f.format.name == "s16" and f.layout.name == "stereo" for f in frames)
        assert all(f.sample_rate == SAMPLE_RATE for f in frames)
        left, right = audio_channels(frames)
        assert abs(dominant_frequency(left) - 440.0) < 5
        assert abs(dominant_frequency(right) - 440.0) < 5
        assert np.abs(left).max() > 3000

        # ... and the forwarded VP8.
        last: VideoFrame = video.frames[-1]
        assert (last.width, last.height) == (VIDEO_W, VIDEO_H)
        luma = last.to_ndarray(format="yuv420p")[:VIDEO_H]
        assert abs(float(luma.mean()) - Y_LEVEL) < 10

        # The middle receivers never decoded: no decoder thread, no decoder object.
        for kind in ("audio", "video"):
            assert not spy.decoded(topo.in_receivers[kind])
            assert spy.decoded(topo.sub_receivers[kind])
            assert not is_decoding(topo.in_receivers[kind])
        assert spy.get_decoder_calls == 2  # the subscriber's two decoders only

        # Nobody reads the middle RemoteStreamTracks, and they do not grow.
        for kind in ("audio", "video"):
            track: Any = topo.in_receivers[kind].track
            assert track._queue.qsize() == 0
            assert topo.out_tracks[kind].queued <= 2

        # Tap output: ordered frames, keyframes flagged, audio level of the publisher's sine.
        tapped_audio = topo.tapped_frames["audio"]
        tapped_video = topo.tapped_frames["video"]
        assert topo.taps["audio"].frames == len(tapped_audio) > 50
        assert all(f.codec.mimeType.lower() == "audio/opus" for f in tapped_audio)
        steps = {b.timestamp - a.timestamp for a, b in itertools.pairwise(tapped_audio)}
        assert steps <= {960, 1920, 2880}
        levels = [f.audio_level for f in tapped_audio[5:]]
        assert all(level is not None and -17 <= level <= -11 for level in levels)
        assert tapped_video[0].codec.mimeType == "video/VP8"
        assert any(f.keyframe for f in tapped_video)
        assert all(is_keyframe("video/VP8", f.data) == f.keyframe for f in tapped_video)

        # forward_audio_level: the levels made it to the subscriber's RTP packets.
        assert len(topo.subscriber_levels) > 20
        assert all(-17 <= level <= -11 for level in topo.subscriber_levels[-20:])

        # The publisher leaving (RTCP BYE) ends the taps, once each.
        await topo.publisher.close()
        await wait_for(lambda: sorted(topo.tap_ended) == ["audio", "video"], 3.0, "tap on_end")
        assert topo.taps["audio"].ended and topo.taps["video"].ended

    await with_topology(body)


@pytest.mark.asyncio
async def test_tap_takes_over_a_decoding_receiver() -> None:
    async def body(topo: Topology) -> None:
        receiver = topo.sub_receivers["audio"]
        collector = topo.collectors["audio"]
        frames: list[EncodedFrame] = []
        tap = tap_receiver(receiver, frames.append)
        # The decoder thread was stopped: its track ends, frames now go to the tap.
        await asyncio.wait_for(collector.task, 2.0)
        assert receiver.track.readyState == "ended"
        await wait_for(lambda: len(frames) >= 10, 2.0, "tapped frames")
        assert not is_decoding(receiver)
        with pytest.raises(ValueError):
            set_decoding(receiver, True)
        with pytest.raises(RuntimeError):
            tap_receiver(receiver, frames.append)
        tap.close()
        await asyncio.sleep(0.1)
        count = len(frames)
        await asyncio.sleep(0.2)
        assert len(frames) == count  # detached
        again: list[EncodedFrame] = []
        tap_receiver(receiver, again.append)  # re-attach after close
        await wait_for(lambda: len(again) >= 5, 2.0, "frames after re-tap")

    await with_topology(body)


@pytest.mark.asyncio
async def test_set_decoding_toggles_decoding_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = DecoderSpy(monkeypatch)

    async def body(topo: Topology) -> None:
        audio = topo.collectors["audio"]
        video = topo.collectors["video"]
        for kind in ("audio", "video"):
            set_decoding(topo.sub_receivers[kind], False)
            assert not is_decoding(topo.sub_receivers[kind])
        await asyncio.sleep(0.3)  # frames already inside the decoder may still come out
        counts = (len(audio.frames), len(video.frames))
        await asyncio.sleep(0.8)
        assert (len(audio.frames), len(video.frames)) == counts
        taps_before = topo.taps["audio"].frames
        assert taps_before > 0  # media still flows to the subscriber, it is just not decoded

        plis_before = topo.keyframe_requests_from_subscriber
        resumed_at = time.monotonic()
        for kind in ("audio", "video"):
            set_decoding(topo.sub_receivers[kind], True)
            assert is_decoding(topo.sub_receivers[kind])
        await wait_for(
            lambda: len(audio.frames) > counts[0] + 10 and len(video.frames) > counts[1] + 3,
            4.0,
            "decoding to resume",
        )
        # Video resumed via a keyframe requested with a PLI on resume.
        assert topo.keyframe_requests_from_subscriber > plis_before
        assert video.arrival[counts[1]] >= resumed_at
        assert spy.get_decoder_calls == 2  # same decoder threads, nothing re-created

    await with_topology(body)


@pytest.mark.asyncio
async def test_keyframe_request_round_trip() -> None:
    async def body(topo: Topology) -> None:
        await asyncio.sleep(0.3)
        before = topo.keyframe_requests_from_subscriber
        keyframes_before = topo.taps["video"].keyframes
        # Subscriber -> middle_out sender (on_keyframe_request) -> request_keyframe(middle_in
        # receiver) -> publisher's aiortc encoder -> keyframe observed by the tap.
        assert request_keyframe(topo.sub_receivers["video"])
        await wait_for(lambda: topo.keyframe_requests_from_subscriber > before, 2.0, "PLI at sender")
        await wait_for(lambda: topo.taps["video"].keyframes > keyframes_before, 2.0, "publisher keyframe")
        # min_interval throttles, a receiver that has seen no media cannot send a PLI.
        assert request_keyframe(topo.sub_receivers["video"], min_interval=0.0)
        assert not request_keyframe(topo.sub_receivers["video"], min_interval=10.0)

    await with_topology(body)


@pytest.mark.asyncio
async def test_mono_opus_encoder_plays_on_aiortc_receiver() -> None:
    sender_pc, receiver_pc = new_pc(), new_pc()
    track = EncodedTrack("audio")
    sender = sender_pc.addTrack(track)
    forward_audio_level(sender)
    encoder = OpusFrameEncoder(OpusEncoderSettings(channels=1, bitrate=24000, application="voip"))
    collectors: list[Collector] = []
    levels: list[int] = []

    @receiver_pc.on("track")
    def on_track(t: MediaStreamTrack) -> None:
        peek_audio_levels(receiver_for(receiver_pc, t), levels)
        collectors.append(Collector(t))

    async def feed() -> None:
        pacer = Pacer(0.02)
        n = 0
        while True:
            await pacer.wait()
            track.push(encoder.encode(sine(660.0, n * 960, 960)))
            n += 1

    feeder = asyncio.ensure_future(feed())
    try:
        await negotiate(sender_pc, receiver_pc)
        await wait_for(lambda: bool(collectors) and len(collectors[0].frames) >= 60, 10.0, "decoded audio")
        frames = collectors[0].frames[-40:]
        assert all(f.layout.name == "stereo" and f.format.name == "s16" for f in frames)
        assert all(f.sample_rate == SAMPLE_RATE for f in frames)
        left, right = audio_channels(frames)
        assert abs(dominant_frequency(left) - 660.0) < 5
        assert np.array_equal(left, right)  # mono decoded to both channels
        assert len(levels) > 20 and all(-17 <= level <= -11 for level in levels[-20:])
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        for c in collectors:
            await c.stop()
        await sender_pc.close()
        await receiver_pc.close()


# ---------------------------------------------------------------------------------------------
# EncodedTrack unit tests
# ---------------------------------------------------------------------------------------------


def audio_frame(ts: int, stream_id: int = 1, level: int | None = None) -> EncodedFrame:
    return EncodedFrame(OPUS_CODEC, b"\xfc" + bytes(40), ts, True, level, stream_id)


def video_frame(ts: int, keyframe: bool, stream_id: int = 1) -> EncodedFrame:
    return EncodedFrame(VP8_CODEC, b"vp8-frame", ts, keyframe, None, stream_id)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(rtp_hooks, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def test_encoded_track_audio_is_bounded_when_nobody_reads() -> None:
    track = EncodedTrack("audio")
    for i in range(1000):
        track.push(audio_frame(i * 960))
    assert track.queued == 10
    assert track.stats.dropped_overflow == 990
    with pytest.raises(ValueError):
        track.push(video_frame(0, True))


@pytest.mark.asyncio
async def test_encoded_track_audio_starts_with_the_newest_frame() -> None:
    """Audio queued before the sender starts is stale: the first recv() skips to the newest frame."""
    track = EncodedTrack("audio")
    for i in range(5):
        track.push(audio_frame(i * 960))
    first = await track.recv()
    assert track.queued == 0 and track.stats.dropped_overflow == 4
    track.push(audio_frame(5 * 960))
    track.push(audio_frame(6 * 960))
    second, third = await track.recv(), await track.recv()  # once running, nothing is skipped
    assert first.pts is not None and second.pts is not None and third.pts is not None
    assert first.pts < second.pts < third.pts


@pytest.mark.asyncio
async def test_encoded_track_video_overflow_drops_until_keyframe() -> None:
    requests: list[float] = []
    track = EncodedTrack("video", max_queue=5, on_keyframe_needed=lambda: requests.append(1))
    track.push(video_frame(0, keyframe=False))  # a new subscriber must start on a keyframe
    assert track.queued == 0 and track.waiting_for_keyframe and len(requests) == 1
    track.push(video_frame(3000, keyframe=True))
    for i in range(2, 6):
        track.push(video_frame(i * 3000, keyframe=False))
    assert track.queued == 5
    track.push(video_frame(6 * 3000, keyframe=False))  # overflow: flush, wait for keyframe
    assert track.queued == 0 and track.waiting_for_keyframe and len(requests) == 2
    for i in range(7, 100):
        track.push(video_frame(i * 3000, keyframe=False))
    assert track.queued == 0
    track.push(video_frame(100 * 3000, keyframe=True))
    track.push(video_frame(101 * 3000, keyframe=False))
    assert track.queued == 2
    packet = await track.recv()
    assert isinstance(packet, av.Packet) and bytes(packet) == b"vp8-frame"
    assert packet.time_base == fractions.Fraction(1, 90000)


@pytest.mark.asyncio
async def test_encoded_track_pause_resume_and_timestamps(clock: FakeClock) -> None:
    requests: list[int] = []
    track = EncodedTrack("video", on_keyframe_needed=lambda: requests.append(1))
    # Continuous source: spacing preserved.
    for i in range(3):
        track.push(video_frame(500_000 + i * 3000, keyframe=i == 0))
        clock.now += 1 / 30
    pts = [(await track.recv()).pts for _ in range(3)]
    assert pts == [0, 3000, 6000]

    # Pause: frames discarded; resume: waits for a keyframe, requests one, and the timeline
    # advances by the wall-clock time of the pause.
    track.pause()
    assert track.paused
    for i in range(3, 60):
        track.push(video_frame(500_000 + i * 3000, keyframe=i % 10 == 0))
        clock.now += 1 / 30
    assert track.queued == 0
    clock.now += 3.0
    track.resume()
    assert requests and track.waiting_for_keyframe
    track.push(video_frame(500_000 + 200 * 3000, keyframe=False))
    assert track.queued == 0
    track.push(video_frame(500_000 + 201 * 3000, keyframe=True))
    pts_resume = (await track.recv()).pts
    elapsed = 3.0 + 58 / 30  # since the last accepted frame: 1 frame + 57 paused frames + 3 s
    assert pts_resume is not None and abs(pts_resume - (6000 + round(elapsed * 90000))) <= 1

    # Source switch (new stream_id, unrelated timestamps): continue from the wall clock.
    clock.now += 0.040
    track.push(video_frame(7, keyframe=True, stream_id=2))
    clock.now += 1 / 30
    track.push(video_frame(7 + 3000, keyframe=False, stream_id=2))
    a, b = (await track.recv()).pts, (await track.recv()).pts
    assert a is not None and b is not None and pts_resume is not None
    assert a - pts_resume == round(0.040 * 90000)
    assert b - a == 3000

    # Same stream, but a timestamp jump that disagrees with the wall clock: treated as a reset.
    clock.now += 1 / 30
    track.push(video_frame(7 + 3000 + 90000 * 3600, keyframe=False, stream_id=2))
    c = (await track.recv()).pts
    assert c is not None and c - b == 3000
    assert track.stats.discontinuities == 3


@pytest.mark.asyncio
async def test_encoded_track_audio_pause_and_stop() -> None:
    track = EncodedTrack("audio")
    track.push(audio_frame(0, level=-20))
    packet = await track.recv()
    assert packet.pts == 0 and track.last_audio_level == -20
    track.pause()
    track.push(audio_frame(960))
    assert track.queued == 0 and track.stats.dropped_paused == 1
    track.resume()
    track.push(audio_frame(1920))
    assert track.queued == 1

    waiter = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert waiter.done()
    waiter2 = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.01)
    assert not waiter2.done()
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiter2
    track.push(audio_frame(2880))  # ignored after stop
    assert track.queued == 0


# ---------------------------------------------------------------------------------------------
# Opus
# ---------------------------------------------------------------------------------------------


def encode_seconds(settings: OpusEncoderSettings, seconds: float = 1.0) -> list[EncodedFrame]:
    encoder = OpusFrameEncoder(settings)
    rng = np.random.default_rng(1)
    out = []
    for i in range(int(seconds * 50)):
        left = sine(440.0, i * 960, 960, 0.25) + (rng.standard_normal(960) * 1500).astype(np.int16)
        right = sine(660.0, i * 960, 960, 0.25) + (rng.standard_normal(960) * 1500).astype(np.int16)
        pcm = np.stack([left, right])[: settings.channels]
        out.append(encoder.encode(pcm))
    return out


def test_opus_encoder_settings_are_observable() -> None:
    voip = encode_seconds(OpusEncoderSettings(channels=1, bitrate=24000, application="voip"))
    music = encode_seconds(OpusEncoderSettings(channels=2, bitrate=128000, application="audio"))

    voip_tocs = [opus_toc(f.data) for f in voip]
    music_tocs = [opus_toc(f.data) for f in music]
    assert not any(t.stereo for t in voip_tocs)
    assert all(t.stereo for t in music_tocs)
    assert all(t.mode in ("silk", "hybrid") for t in voip_tocs[5:])
    assert all(t.mode == "celt" and t.bandwidth == "fullband" for t in music_tocs[5:])
    assert all(t.frame_ms == 20.0 and t.frame_count == 1 for t in voip_tocs + music_tocs)

    # Packet sizes follow the bitrate (20 ms frames: bytes = bitrate / 8 / 50).
    voip_size = np.mean([len(f.data) for f in voip[5:]])
    music_size = np.mean([len(f.data) for f in music[5:]])
    assert 24000 / 400 * 0.65 < voip_size < 24000 / 400 * 1.35
    assert 128000 / 400 * 0.65 < music_size < 128000 / 400 * 1.35

    assert [f.timestamp for f in voip[:3]] == [0, 960, 1920]
    assert all(f.keyframe and f.codec is OPUS_CODEC for f in voip)
    assert len({f.stream_id for f in voip}) == 1
    assert all(f.audio_level is not None and -20 < f.audio_level < -5 for f in voip)


def test_opus_encoder_reconfigure_and_validation() -> None:
    encoder = OpusFrameEncoder(OpusEncoderSettings(channels=1, bitrate=16000, application="voip"))
    first = encoder.encode(sine(440.0, 0, 960))
    assert not opus_toc(first.data).stereo
    encoder.reconfigure(OpusEncoderSettings(channels=2, bitrate=96000, application="audio"))
    second = encoder.encode(np.stack([sine(440.0, 960, 960), sine(550.0, 960, 960)]))
    assert opus_toc(second.data).stereo
    assert second.timestamp == 960 and second.stream_id == first.stream_id

    with pytest.raises(ValueError):
        encoder.encode(sine(440.0, 0, 960))  # mono PCM into a stereo encoder
    with pytest.raises(ValueError):
        encoder.encode(np.zeros((2, 960), dtype=np.float32))
    with pytest.raises(ValueError):
        OpusEncoderSettings(channels=3)
    with pytest.raises(ValueError):
        OpusEncoderSettings(bitrate=1000)
    silent = OpusFrameEncoder().encode(np.zeros(960, dtype=np.int16))
    assert silent.audio_level == -127


def test_opus_toc_parsing() -> None:
    toc = opus_toc(bytes([0x00]))
    assert (toc.config, toc.mode, toc.bandwidth, toc.stereo, toc.frame_ms, toc.frame_count) == (
        0,
        "silk",
        "narrowband",
        False,
        10.0,
        1,
    )
    toc = opus_toc(bytes([(15 << 3) | 0x04]))
    assert (toc.mode, toc.bandwidth, toc.stereo, toc.frame_ms) == ("hybrid", "fullband", True, 20.0)
    toc = opus_toc(bytes([(11 << 3) | 0x01]))
    assert (toc.mode, toc.bandwidth, toc.frame_ms, toc.frame_count) == ("silk", "wideband", 60.0, 2)
    toc = opus_toc(bytes([(16 << 3) | 0x03, 0x05]))
    assert (toc.mode, toc.bandwidth, toc.frame_ms, toc.frame_count) == ("celt", "narrowband", 2.5, 5)
    toc = opus_toc(bytes([(31 << 3) | 0x02]))
    assert (toc.mode, toc.bandwidth, toc.frame_ms, toc.frame_count) == ("celt", "fullband", 20.0, 2)
    with pytest.raises(ValueError):
        opus_toc(b"")
    with pytest.raises(ValueError):
        opus_toc(bytes([0x03]))


# ---------------------------------------------------------------------------------------------
# misc
# ---------------------------------------------------------------------------------------------


def test_keyframe_detection() -> None:
    key = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00])
    delta = bytes([0x11, 0x02, 0x00]) + bytes(20)
    assert is_keyframe("video/VP8", key)
    assert not is_keyframe("video/VP8", delta)
    assert not is_keyframe("video/VP8", b"")
    assert is_keyframe("video/H264", b"\x00\x00\x00\x01\x67\x42\x00\x00\x00\x01\x65\x88")
    assert not is_keyframe("video/H264", b"\x00\x00\x00\x01\x41\x9a")
    assert is_keyframe("audio/opus", b"\x78")


def test_version_and_layout_checks() -> None:
    with pytest.raises(RuntimeError, match=r"aiortc 1\.15\.0 is installed"):
        rtp_hooks._verify_aiortc("1.15.0")
    rtp_hooks._verify_aiortc()  # the installed version is the supported one

    bare = object.__new__(RTCRtpReceiver)  # an instance without aiortc 1.16.0's attributes
    with pytest.raises(RuntimeError, match="attribute layout"):
        tap_receiver(bare, lambda frame: None)
    with pytest.raises(RuntimeError, match="attribute layout"):
        set_decoding(bare, False)
    with pytest.raises(TypeError):
        tap_receiver(object(), lambda frame: None)  # type: ignore[arg-type]
    bare_sender = object.__new__(RTCRtpSender)
    with pytest.raises(RuntimeError, match="attribute layout"):
        on_keyframe_request(bare_sender, lambda: None)
