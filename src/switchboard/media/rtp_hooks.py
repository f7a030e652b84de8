"""Every hook into aiortc 1.16.0 internals that the SFU and the SDK need, in one place.

Nothing outside this module may touch aiortc private state. Everything here is written against
aiortc **1.16.0 exactly**: the version and the private attribute layout are verified when this
module is imported (``RuntimeError`` otherwise) and again on first use of each receiver/sender.

What is provided
================

* :class:`EncodedFrame` -- one complete encoded media frame (one Opus packet, one VP8 frame).
* :func:`tap_receiver` -- receive encoded frames from an :class:`~aiortc.RTCRtpReceiver` without
  ever decoding them (SFU ingest). :class:`ReceiverTap` is the handle.
* :func:`set_decoding` / :func:`is_decoding` -- drop frames before the decoder of a normal
  (decoding) receiver and resume later (SDK: suspended calls).
* :class:`EncodedTrack` -- a :class:`~aiortc.mediastreams.MediaStreamTrack` that feeds
  pre-encoded frames to an :class:`~aiortc.RTCRtpSender` (SFU egress, SDK custom Opus),
  bounded, pausable, with RTP timestamp rewriting.
* :func:`on_keyframe_request` / :func:`request_keyframe` -- PLI in both directions;
  :func:`is_keyframe` inspects VP8 / H.264 frames.
* :func:`forward_audio_level` -- put :attr:`EncodedFrame.audio_level` in the RFC 6464 header
  extension of packets sent from an :class:`EncodedTrack`.
* :class:`OpusEncoderSettings`, :class:`OpusFrameEncoder` -- libopus (via PyAV) with per-call
  channels / bitrate / application, producing :class:`EncodedFrame` objects.
* :func:`opus_toc` / :class:`OpusToc` -- RFC 6716 section 3.1 TOC byte parser.
* :func:`negotiate_opus_inband_fec` -- ``useinbandfec=1`` on the Opus line of every SDP offer and
  answer (aiortc's module-level codec table), applied at import.
* :func:`restrict_ice_host_addresses` / :func:`ice_candidate_pairs` -- ICE on chosen host
  addresses only (local media on loopback; aioice 0.13.0, see the last section of this module).

Deviations from the original brief, and why
===========================================

* ``EncodedFrame.payloads: list[bytes]`` became ``EncodedFrame.data: bytes`` (one complete codec
  frame). aiortc's receiver jitter buffer depayloads and concatenates the RTP payloads of a frame
  before anything can see it (VP8 payload descriptors are stripped), and aiortc's sender
  re-packetizes by itself (see next point), so RTP payload lists exist on neither side.
* ``EncodedTrack.recv()`` returns an :class:`av.Packet`, **not** an ``RTCEncodedFrame``. In 1.16.0
  ``RTCRtpSender._next_encoded_frame`` does ``data = await track.recv()``; an ``av.Frame`` is
  encoded, *anything else* is handed to ``encoder.pack(data)``, which requires an ``av.Packet``
  (``bytes(packet)``, ``packet.pts``, ``packet.time_base``). ``RTCEncodedFrame`` is only the
  internal *result* of ``_next_encoded_frame``; a track returning one makes ``pack()`` raise,
  which the sender's RTP loop swallows with a logged warning and then stops sending for good.
  Returning ``av.Packet`` uses the supported pre-encoded path, needs no sender hook, and lets
  aiortc do the packetization (Opus: one RTP packet per frame; VP8: split at 1300 bytes with a
  payload descriptor carrying aiortc's own 15-bit picture id).
* ``tap_receiver`` takes an optional ``on_end`` callback and ``audio_passthrough`` flag (see
  :func:`tap_receiver`); ``EncodedFrame`` has a ``stream_id`` field (timestamp domain); the Opus
  encoder class is called :class:`OpusFrameEncoder` (aiortc already has an ``OpusEncoder``).

aiortc 1.16.0 behaviour the SFU / SDK authors must know
=======================================================

Sender (``RTCRtpSender._run_rtp``):
    RTP timestamp = ``random32() origin + convert_timebase(packet.pts, packet.time_base, clock)``
    (mod 2**32). The sender never looks at wall-clock time: timestamps are exactly what the track
    gives it, so after a pause or a source switch the *track* must keep them monotonic and make
    them advance by the real elapsed time. :class:`EncodedTrack` rewrites timestamps for that.
    The marker bit is set on the last packet of each frame. Audio level (RFC 6464) is only
    computed for ``av.AudioFrame`` input, never for packets (hence :func:`forward_audio_level`).
    The sender creates its codec's ``Encoder`` object even for pre-encoded input (for Opus that
    allocates an unopened libopus context; nothing is ever encoded). When the transceiver
    direction disables sending, the sender still drains the track.

Sender RTCP: PLI/FIR only set a private "force keyframe" flag that is used when *encoding*
    ``av.Frame`` input, so for pre-encoded media keyframe requests are silently ignored unless
    intercepted (:func:`on_keyframe_request`). The RTP router delivers PSFB packets to a sender by
    the ``media_ssrc`` field of the common header; RFC 5104 FIR carries ``media_ssrc = 0`` (the
    target SSRC is in the FCI), so FIR is effectively never delivered -- only PLI. aiortc does not
    advertise ``ccm fir`` so browsers use PLI anyway. REMB from subscribers only updates the
    unused sender-side encoder's target bitrate: there is no per-subscriber congestion control.
    NACKs are answered from a 128-packet history (RTX if negotiated).

Receiver (``RTCRtpReceiver._handle_rtp_packet``):
    Packets go through a jitter buffer that emits one complete frame at a time; the frame's
    timestamp is then rebased by ``TimestampMapper`` (first frame = 0, unwrapped, so it can exceed
    2**32; *any* backwards step is treated as a 32-bit wrap, i.e. a +2**32 jump). Frames go to a
    ``queue.Queue`` consumed by a per-receiver decoder thread, which is started by ``receive()``
    (called by the peer connection *after* the ``track`` event). Decoded frames go to the
    ``RemoteStreamTrack``'s unbounded asyncio queue: a decoding receiver whose track is not read
    grows memory without bound.

    Jitter buffer latency: audio uses ``JitterBuffer(capacity=16, prefetch=4)``: a frame is only
    released when the first packet of the 5th following frame arrives, i.e. **+80 ms** for 20 ms
    Opus, and a single lost packet stalls audio until 16 packets (320 ms) have piled up, then the
    stale frames are discarded. Video uses ``capacity=512, prefetch=0``: a frame is released when
    the first packet of the next frame arrives (one frame interval, ~33 ms at 30 fps); a lost
    packet stalls video until NACK/RTX repairs it (or 512 packets later, with a PLI). Every hop
    through an aiortc receiver pays this again, so an SFU built naively on aiortc adds 80 ms of
    audio latency. :func:`tap_receiver` therefore replaces the audio jitter buffer of tapped
    receivers with a pass-through (every Opus RTP packet is a complete frame): 0 ms added, no
    loss stall, late/duplicate packets dropped (``audio_passthrough=False`` keeps aiortc's).
    The receiver sends PLI itself on jitter buffer overflow/reset and decode errors.

Opus: aiortc negotiates ``opus/48000/2`` with no ``fmtp`` (so no ``stereo=1``); this module adds
    ``minptime=10;useinbandfec=1`` (:func:`negotiate_opus_inband_fec`). aiortc's decoder
    always outputs stereo s16 48 kHz, and a mono Opus stream decodes fine to (duplicated) stereo.
    Browsers only render stereo if the SDP they receive has ``stereo=1``.

Threading: every function here must be called on the event loop thread of the peer connection.
Callbacks (``on_frame``, ``on_end``, keyframe callbacks) are invoked on that thread from inside
aiortc's packet handling; they must be quick and never block. Exceptions they raise are logged
and swallowed (an exception escaping into aiortc's transport loop would kill the connection).
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import logging
import math
import queue
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiortc
import av
import numpy as np
import numpy.typing as npt
from aiortc import codecs as aiortc_codecs
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket
from av.audio.codeccontext import AudioCodecContext
from av.packet import Packet

__all__ = [
    "OPUS_CODEC",
    "OPUS_FMTP",
    "SUPPORTED_AIORTC_VERSION",
    "VP8_CODEC",
    "EncodedFrame",
    "EncodedTrack",
    "EncodedTrackStats",
    "OpusApplication",
    "OpusBandwidth",
    "OpusEncoderSettings",
    "OpusFrameEncoder",
    "OpusMode",
    "OpusToc",
    "ReceiverTap",
    "forward_audio_level",
    "is_decoding",
    "is_keyframe",
    "negotiate_opus_inband_fec",
    "on_keyframe_request",
    "opus_toc",
    "receiver_tap",
    "request_keyframe",
    "set_decoding",
    "tap_receiver",
]

logger = logging.getLogger(__name__)

SUPPORTED_AIORTC_VERSION: Final = "1.16.0"

# ---------------------------------------------------------------------------------------------
# aiortc layout verification (import time + first use of each object)
# ---------------------------------------------------------------------------------------------

_RX: Final = "_RTCRtpReceiver__"
# Private receiver attributes this module reads or replaces.
_RECEIVER_FIELDS: Final = (
    "active_ssrc",
    "codecs",
    "decoder_queue",
    "decoder_thread",
    "jitter_buffer",
    "kind",
    "rtcp_ssrc",
    "rtcp_task",
    "rtx_ssrc",
    "started",
    "transport",
)
# Methods (by name) and the names their bytecode must reference for our hooks to be valid.
_RECEIVER_CODE_EXPECTATIONS: Final[dict[str, frozenset[str]]] = {
    "__init__": frozenset(_RX + f for f in _RECEIVER_FIELDS) | {"_track"},
    # tap_receiver re-implements receive() without the decoder thread: it must do exactly this.
    "receive": frozenset(
        _RX + f for f in ("codecs", "rtx_ssrc", "decoder_thread", "decoder_queue", "rtcp_task", "started")
    )
    | {_RX + "transport", "_register_rtp_receiver", "_run_rtcp", "Thread"},
    "_handle_rtp_packet": frozenset(
        _RX + f for f in ("jitter_buffer", "decoder_queue", "decoder_thread", "active_ssrc", "rtx_ssrc")
    )
    | {"_send_rtcp_pli", "_data", "_enabled"},
    _RX + "stop_decoder": frozenset({_RX + "decoder_queue", _RX + "decoder_thread", "join"}),
    "_send_rtcp_pli": frozenset({_RX + "rtcp_ssrc", "_send_rtcp"}),
}
_SENDER_CODE_EXPECTATIONS: Final[dict[str, frozenset[str]]] = {
    "_run_rtp": frozenset({"_next_encoded_frame", "uint32_add", "audio_level", "payloads", "_ssrc"}),
    "_next_encoded_frame": frozenset({"recv", "pack", "RTCEncodedFrame", "_enabled"}),
    "_handle_rtcp_packet": frozenset({"_send_keyframe"}),
}


def _verify_aiortc(version: str = aiortc.__version__) -> None:
    """Raise ``RuntimeError`` unless aiortc is the exact version/layout this module targets."""
    if version != SUPPORTED_AIORTC_VERSION:
        raise RuntimeError(
            f"switchboard.media.rtp_hooks relies on aiortc {SUPPORTED_AIORTC_VERSION} internals, "
            f"but aiortc {version} is installed; pin aiortc=={SUPPORTED_AIORTC_VERSION} or port "
            "this module (check rtcrtpreceiver.py / rtcrtpsender.py / jitterbuffer.py)."
        )
    problems: list[str] = []
    for cls, expectations in (
        (RTCRtpReceiver, _RECEIVER_CODE_EXPECTATIONS),
        (RTCRtpSender, _SENDER_CODE_EXPECTATIONS),
    ):
        for meth, names in expectations.items():
            fn = getattr(cls, meth, None)
            code = getattr(fn, "__code__", None)
            if code is None:
                problems.append(f"{cls.__name__}.{meth} is missing")
                continue
            missing = names - set(code.co_names)
            if missing:
                problems.append(f"{cls.__name__}.{meth} no longer references {sorted(missing)}")
    if problems:
        raise RuntimeError(
            "aiortc internals differ from what switchboard.media.rtp_hooks expects "
            f"(aiortc {SUPPORTED_AIORTC_VERSION}): " + "; ".join(problems)
        )


_verify_aiortc()

_CHECKED_ATTR: Final = "_switchboard_layout_checked"


def _check_receiver(receiver: RTCRtpReceiver) -> None:
    if not isinstance(receiver, RTCRtpReceiver):
        raise TypeError(f"expected an aiortc RTCRtpReceiver, got {type(receiver).__name__}")
    if getattr(receiver, _CHECKED_ATTR, False):
        return
    missing = [f for f in _RECEIVER_FIELDS if not hasattr(receiver, _RX + f)]
    if missing:
        raise RuntimeError(
            f"RTCRtpReceiver has no private attribute(s) {missing}: the aiortc attribute layout is "
            f"not the one of aiortc {SUPPORTED_AIORTC_VERSION} that rtp_hooks was written for"
        )
    setattr(receiver, _CHECKED_ATTR, True)


def _check_sender(sender: RTCRtpSender) -> None:
    if not isinstance(sender, RTCRtpSender):
        raise TypeError(f"expected an aiortc RTCRtpSender, got {type(sender).__name__}")
    if getattr(sender, _CHECKED_ATTR, False):
        return
    missing = [a for a in ("_ssrc", "_handle_rtcp_packet", "_next_encoded_frame") if not hasattr(sender, a)]
    if missing:
        raise RuntimeError(
            f"RTCRtpSender has no attribute(s) {missing}: the aiortc attribute layout is not the one "
            f"of aiortc {SUPPORTED_AIORTC_VERSION} that rtp_hooks was written for"
        )
    setattr(sender, _CHECKED_ATTR, True)


def _rget(receiver: RTCRtpReceiver, name: str) -> Any:
    return getattr(receiver, _RX + name)


def _rset(receiver: RTCRtpReceiver, name: str, value: object) -> None:
    setattr(receiver, _RX + name, value)


# Our own bookkeeping attributes on aiortc objects.
_TAP_ATTR: Final = "_switchboard_tap"
_GATE_ATTR: Final = "_switchboard_decode_gate"
_LAST_PLI_ATTR: Final = "_switchboard_last_pli"
_KEYFRAME_HOOK_ATTR: Final = "_switchboard_keyframe_hook"
_AUDIO_LEVEL_HOOK_ATTR: Final = "_switchboard_audio_level_hook"

_background_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)


def _safe_call(what: str, fn: Callable[..., None], *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception("rtp_hooks: %s callback raised", what)


# ---------------------------------------------------------------------------------------------
# Encoded frames
# ---------------------------------------------------------------------------------------------

OPUS_CODEC: Final = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
"""aiortc's Opus codec parameters (``opus/48000/2``), used for frames built by this module."""
VP8_CODEC: Final = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)

_stream_ids = itertools.count(1)


def _new_stream_id() -> int:
    return next(_stream_ids)


@dataclass(slots=True)
class EncodedFrame:
    """One complete encoded frame.

    ``data`` is the codec bitstream of the whole frame: one Opus packet, or one VP8 frame with all
    partitions and *without* RTP payload descriptors (what ``av.Packet`` / libvpx use).

    ``timestamp`` is in ``codec.clockRate`` units. For frames from :func:`tap_receiver` it is
    aiortc's *mapped* RTP timestamp: relative to the first frame of the receiver (starts at 0) and
    unwrapped (may exceed 2**32). Only differences between timestamps of the same ``stream_id``
    are meaningful; :class:`EncodedTrack` rewrites them anyway.

    ``audio_level`` is in dBov, ``-127..0`` (0 = loudest), i.e. the negated RFC 6464 value, the
    same convention as aiortc's ``RTCEncodedFrame.audio_level``; ``None`` if unknown.

    ``stream_id`` identifies the timestamp domain (one per tap / encoder). :class:`EncodedTrack`
    never assumes two different ``stream_id`` values share a timeline.
    """

    codec: RTCRtpCodecParameters
    data: bytes
    timestamp: int
    keyframe: bool
    audio_level: int | None = None
    stream_id: int = 0

    @property
    def mime_type(self) -> str:
        return self.codec.mimeType

    @property
    def kind(self) -> str:
        return self.codec.mimeType.split("/", 1)[0].lower()

    @property
    def clock_rate(self) -> int:
        return self.codec.clockRate


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether ``data`` (a depayloaded frame) can be decoded without prior frames.

    VP8: frame tag P bit clear and the ``9d 01 2a`` start code (RFC 6386 section 9.1).
    H.264 (Annex B, as aiortc depayloads it): contains an IDR slice. Audio: always ``True``.
    """
    mime = mime_type.lower()
    if mime == "video/vp8":
        return len(data) >= 10 and (data[0] & 0x01) == 0 and data[3:6] == b"\x9d\x01\x2a"
    if mime == "video/h264":
        i = data.find(b"\x00\x00\x01")
        while i != -1 and i + 3 < len(data):
            if data[i + 3] & 0x1F == 5:
                return True
            i = data.find(b"\x00\x00\x01", i + 3)
        return False
    return not mime.startswith("video/")


# ---------------------------------------------------------------------------------------------
# Receiver tap (SFU ingest: encoded frames, never decoded)
# ---------------------------------------------------------------------------------------------


class _TapJitterFrame(JitterFrame):
    def __init__(self, data: bytes, timestamp: int, audio_level: int | None) -> None:
        super().__init__(data=data, timestamp=timestamp)
        self.audio_level = audio_level


class _PassthroughAudioBuffer:
    """Stands in for the audio ``JitterBuffer`` of a tapped receiver.

    Every audio RTP packet aiortc handles is a complete frame, so each packet is released at once
    (no 80 ms prefetch, no stall on loss). Duplicates and late packets are dropped so frames stay
    in order; a jump back of more than ``_MAX_MISORDER`` or a new SSRC is taken as a stream reset.
    """

    _MAX_MISORDER: Final = 100

    def __init__(self) -> None:
        self._last_seq: int | None = None
        self._last_ssrc: int | None = None
        self.capacity = 1  # attribute of aiortc's JitterBuffer, kept for duck typing

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last_seq is not None and packet.ssrc == self._last_ssrc:
            behind = (self._last_seq - seq) & 0xFFFF  # 0: duplicate, small: late, large: ahead
            if behind < self._MAX_MISORDER:
                return False, None
        self._last_seq = seq
        self._last_ssrc = packet.ssrc
        level = packet.extensions.audio_level
        audio_level = -int(level[1]) if level is not None else None
        data: bytes = getattr(packet, "_data", packet.payload)
        return False, _TapJitterFrame(data=data, timestamp=packet.timestamp, audio_level=audio_level)


class _NoDecoderThread:
    """Stands in for the decoder thread of a tapped receiver; it never runs anything.

    aiortc only enqueues frames ``if self.__decoder_thread`` is truthy, and its stop path calls
    ``queue.put(None)`` then ``thread.join()``.
    """

    name = "switchboard-tap-no-decoder"

    def __bool__(self) -> bool:
        return True

    def join(self, timeout: float | None = None) -> None:
        return None

    def is_alive(self) -> bool:
        return False


class _TapQueue:
    """Replaces ``RTCRtpReceiver.__decoder_queue`` of a tapped receiver (``put`` on loop thread)."""

    def __init__(self, tap: ReceiverTap) -> None:
        self.tap = tap

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None, *_: object) -> None:
        if item is None:
            self.tap._handle_end()
        else:
            self.tap._handle_frame(item[0], item[1])

    def get(self, *_: object) -> None:  # pragma: no cover - nobody consumes a tap queue
        raise RuntimeError("a tapped receiver has no decoder thread")

    def qsize(self) -> int:
        return 0


class ReceiverTap:
    """Handle returned by :func:`tap_receiver`."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_frame: Callable[[EncodedFrame], None],
        on_end: Callable[[], None] | None,
    ) -> None:
        self._receiver = receiver
        self._on_frame: Callable[[EncodedFrame], None] | None = on_frame
        self._on_end = on_end
        self._ended = False
        self.stream_id = _new_stream_id()
        self.frames = 0
        """Number of frames delivered to ``on_frame``."""
        self.bytes = 0
        """Payload bytes of the frames delivered to ``on_frame`` (for bitrates)."""
        self.keyframes = 0

    @property
    def receiver(self) -> RTCRtpReceiver:
        return self._receiver

    @property
    def closed(self) -> bool:
        return self._on_frame is None

    @property
    def ended(self) -> bool:
        """The receiver stopped (``stop()``, RTCP BYE or DTLS disconnect): no more frames."""
        return self._ended

    def close(self) -> None:
        """Detach: frames are dropped from now on. The receiver still never decodes (no decoder
        thread exists); call :func:`tap_receiver` again to attach a new callback."""
        self._on_frame = None
        self._on_end = None

    def _handle_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        on_frame = self._on_frame
        if on_frame is None:
            return
        keyframe = is_keyframe(codec.mimeType, frame.data)
        encoded = EncodedFrame(
            codec=codec,
            data=frame.data,
            timestamp=frame.timestamp,
            keyframe=keyframe,
            audio_level=getattr(frame, "audio_level", None),
            stream_id=self.stream_id,
        )
        self.frames += 1
        self.bytes += len(frame.data)
        self.keyframes += keyframe
        _safe_call("tap on_frame", on_frame, encoded)

    def _handle_end(self) -> None:
        if self._ended:
            return
        self._ended = True
        # Mirror decoder_worker: end the RemoteStreamTrack for anyone awaiting recv().
        track = self._receiver._track
        if track is not None:
            track._queue.put_nowait(None)
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            _safe_call("tap on_end", on_end)


def receiver_tap(receiver: RTCRtpReceiver) -> ReceiverTap | None:
    """The open tap on ``receiver`` (:func:`tap_receiver`), else None."""
    tap = getattr(receiver, _TAP_ATTR, None)
    return tap if isinstance(tap, ReceiverTap) and not tap.closed else None


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_frame: Callable[[EncodedFrame], None],
    *,
    on_end: Callable[[], None] | None = None,
    audio_passthrough: bool = True,
) -> ReceiverTap:
    """Deliver the receiver's encoded frames to ``on_frame`` and never decode them.

    Call it in the ``pc.on("track")`` handler: the peer connection calls ``receiver.receive()``
    afterwards, and for a tapped receiver that starts RTCP and packet routing but **no decoder
    thread** (``decoder_worker`` / ``get_decoder`` are never called). The ``RemoteStreamTrack``
    gets nothing (except a final ``None`` so a pending ``recv()`` raises ``MediaStreamError``
    when the receiver stops); nobody needs to read it.

    If the receiver is already decoding, its decoder thread is stopped (after it drains its queue;
    its track then ends) and the tap takes over.

    ``on_frame`` is called synchronously on the event loop thread from aiortc's RTP handling, for
    every frame in RTP order; it must not block. NACK, PLI on jitter buffer trouble, REMB and RTCP
    receiver reports keep working as for a normal receiver. Video frames go through aiortc's
    jitter buffer (assembly, reordering, NACK repair). With ``audio_passthrough`` (default) audio
    bypasses aiortc's jitter buffer (see the module docstring: saves 80 ms and the loss stall) and
    carries the sender's RFC 6464 audio level; with ``False`` aiortc's buffer is kept and
    ``audio_level`` is always ``None``.

    ``on_end`` is called once when the receiver stops (``stop()``, RTCP BYE, DTLS disconnect).
    """
    _check_receiver(receiver)
    existing = getattr(receiver, _TAP_ATTR, None)
    if isinstance(existing, ReceiverTap) and not existing.closed:
        raise RuntimeError("receiver is already tapped; close() the existing tap first")

    tap = ReceiverTap(receiver, on_frame, on_end)
    sink = _TapQueue(tap)

    if existing is None:
        if _rget(receiver, "started"):
            thread = _rget(receiver, "decoder_thread")
            if thread is not None:
                # Stop the running decoder thread; it puts None on the track queue when done.
                _rget(receiver, "decoder_queue").put(None)
                thread.join()
                _rset(receiver, "decoder_thread", _NoDecoderThread())
            else:
                tap._ended = True  # receiver already stopped: nothing will ever arrive
        else:
            setattr(receiver, "receive", _make_tapped_receive(receiver))  # noqa: B010
        if hasattr(receiver, _GATE_ATTR):
            delattr(receiver, _GATE_ATTR)
        if _rget(receiver, "kind") == "audio" and audio_passthrough:
            _rset(receiver, "jitter_buffer", _PassthroughAudioBuffer())
    else:
        tap._ended = existing.ended

    _rset(receiver, "decoder_queue", sink)
    setattr(receiver, _TAP_ATTR, tap)
    return tap


def _make_tapped_receive(receiver: RTCRtpReceiver) -> Callable[[RTCRtpReceiveParameters], Any]:
    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        # Exactly RTCRtpReceiver.receive() of aiortc 1.16.0 minus the decoder thread
        # (_verify_aiortc checks that receive() still touches precisely these names).
        if _rget(receiver, "started"):
            return
        codecs: dict[int | None, RTCRtpCodecParameters] = _rget(receiver, "codecs")
        for codec in parameters.codecs:
            codecs[codec.payloadType] = codec
        rtx_ssrc: dict[int, int] = _rget(receiver, "rtx_ssrc")
        for encoding in parameters.encodings:
            if encoding.rtx:
                rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        _rset(receiver, "decoder_thread", _NoDecoderThread())
        _rget(receiver, "transport")._register_rtp_receiver(receiver, parameters)
        _rset(receiver, "rtcp_task", asyncio.ensure_future(receiver._run_rtcp()))
        _rset(receiver, "started", True)

    return receive


# ---------------------------------------------------------------------------------------------
# Decoding gate (SDK: suspended calls)
# ---------------------------------------------------------------------------------------------

_KEYFRAME_RETRY_S: Final = 1.0


class _DecodeGate:
    """Wraps ``RTCRtpReceiver.__decoder_queue``: ``put`` (loop thread) filters, ``get`` (decoder
    thread) delegates to the original queue."""

    def __init__(self, receiver: RTCRtpReceiver, inner: queue.Queue[Any]) -> None:
        self.receiver = receiver
        self.inner = inner
        self.enabled = True
        self.waiting_for_keyframe = False
        self.dropped = 0
        self._last_request = -math.inf

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # stop sentinel: always passes
            self.inner.put(None)
            return
        if not self.enabled:
            self.dropped += 1
            return
        if self.waiting_for_keyframe:
            codec, frame = item
            if not is_keyframe(codec.mimeType, frame.data):
                self.dropped += 1
                self.request_keyframe()
                return
            self.waiting_for_keyframe = False
        self.inner.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.inner.get(block, timeout)

    def qsize(self) -> int:
        return self.inner.qsize()

    def drain(self) -> None:
        stop = False
        while True:
            try:
                item = self.inner.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
            else:
                self.dropped += 1
        if stop:
            self.inner.put(None)

    def request_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._last_request >= _KEYFRAME_RETRY_S:
            self._last_request = now
            request_keyframe(self.receiver)


def set_decoding(receiver: RTCRtpReceiver, enabled: bool) -> None:
    """Stop (``False``) or resume (``True``) decoding on a normal, decoding receiver.

    While disabled, complete encoded frames are dropped before the decoder queue (frames already
    queued are discarded too), so the decoder thread idles and the track gets no frames; RTP/RTCP
    (reports, NACK, REMB) continue, so the publisher sees a healthy receiver. On resume, video
    frames are dropped until a keyframe arrives and a PLI is sent (repeated every second while
    waiting), so the decoder never sees a delta frame whose references it lacks. Works before or
    after ``receive()``; idempotent. Not allowed on tapped receivers (they never decode).
    """
    _check_receiver(receiver)
    if isinstance(getattr(receiver, _TAP_ATTR, None), ReceiverTap):
        raise ValueError("receiver is tapped: it never decodes")
    gate = getattr(receiver, _GATE_ATTR, None)
    if not isinstance(gate, _DecodeGate):
        gate = _DecodeGate(receiver, _rget(receiver, "decoder_queue"))
        _rset(receiver, "decoder_queue", gate)
        setattr(receiver, _GATE_ATTR, gate)
    if enabled == gate.enabled:
        return
    gate.enabled = enabled
    if not enabled:
        gate.waiting_for_keyframe = False
        gate.drain()
    elif _rget(receiver, "kind") == "video":
        gate.waiting_for_keyframe = True
        gate.request_keyframe()


def is_decoding(receiver: RTCRtpReceiver) -> bool:
    """``False`` if decoding was disabled with :func:`set_decoding` or the receiver is tapped."""
    _check_receiver(receiver)
    if isinstance(getattr(receiver, _TAP_ATTR, None), ReceiverTap):
        return False
    gate = getattr(receiver, _GATE_ATTR, None)
    return not isinstance(gate, _DecodeGate) or gate.enabled


# ---------------------------------------------------------------------------------------------
# Keyframe requests (PLI)
# ---------------------------------------------------------------------------------------------


def request_keyframe(receiver: RTCRtpReceiver, *, min_interval: float = 0.0) -> bool:
    """Send an RTCP PLI to the remote sender of ``receiver`` (asynchronously, on the loop).

    The media SSRC is the most recently active non-RTX SSRC seen by the receiver. Returns
    ``False`` (nothing sent) if no media has been received yet, the receiver has no RTCP SSRC, or
    a PLI was sent less than ``min_interval`` seconds ago (use it to coalesce requests from many
    subscribers). Must be called on the event loop thread.
    """
    _check_receiver(receiver)
    if _rget(receiver, "rtcp_ssrc") is None:
        return False
    active: dict[int, Any] = _rget(receiver, "active_ssrc")
    rtx: dict[int, int] = _rget(receiver, "rtx_ssrc")
    candidates = [(seen, ssrc) for ssrc, seen in active.items() if ssrc not in rtx]
    if not candidates:
        return False
    now = time.monotonic()
    last: float = getattr(receiver, _LAST_PLI_ATTR, -math.inf)
    if now - last < min_interval:
        return False
    setattr(receiver, _LAST_PLI_ATTR, now)
    media_ssrc = max(candidates)[1]
    _spawn(receiver._send_rtcp_pli(media_ssrc))
    return True


class _KeyframeHook:
    def __init__(self, sender: RTCRtpSender) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.requests = 0
        original = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.requests += 1
                for callback in list(self.callbacks):
                    _safe_call("keyframe request", callback)
            await original(packet)

        setattr(sender, "_handle_rtcp_packet", handle_rtcp_packet)  # noqa: B010


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` whenever the remote peer sends a PLI (or a FIR that aiortc routes to
    this sender, see module docstring) for ``sender``'s SSRC. Returns a function that removes the
    callback. Several callbacks may be registered; they run on the loop thread, in order."""
    _check_sender(sender)
    hook = getattr(sender, _KEYFRAME_HOOK_ATTR, None)
    if not isinstance(hook, _KeyframeHook):
        hook = _KeyframeHook(sender)
        setattr(sender, _KEYFRAME_HOOK_ATTR, hook)
    hook.callbacks.append(callback)
    registered = hook

    def remove() -> None:
        if callback in registered.callbacks:
            registered.callbacks.remove(callback)

    return remove


def forward_audio_level(sender: RTCRtpSender) -> None:
    """Make ``sender`` put each :class:`EncodedTrack` frame's ``audio_level`` into the RFC 6464
    header extension (aiortc computes it only for raw ``av.AudioFrame`` input). Idempotent; no
    effect for other tracks or frames without a level. The extension is only written if it was
    negotiated (aiortc offers ``ssrc-audio-level`` for audio)."""
    _check_sender(sender)
    if getattr(sender, _AUDIO_LEVEL_HOOK_ATTR, False):
        return
    original = sender._next_encoded_frame

    async def next_encoded_frame(codec: RTCRtpCodecParameters) -> RTCEncodedFrame | None:
        encoded = await original(codec)
        if encoded is not None and encoded.audio_level is None:
            track = sender.track
            if isinstance(track, EncodedTrack) and track.last_audio_level is not None:
                encoded.audio_level = track.last_audio_level
        return encoded

    setattr(sender, "_next_encoded_frame", next_encoded_frame)  # noqa: B010
    setattr(sender, _AUDIO_LEVEL_HOOK_ATTR, True)


# ---------------------------------------------------------------------------------------------
# EncodedTrack (feeds pre-encoded frames to an RTCRtpSender)
# ---------------------------------------------------------------------------------------------

_DEFAULT_MAX_QUEUE: Final = {"audio": 10, "video": 60}
_MIN_STEP_S: Final = {"audio": 0.020, "video": 1 / 30}
# A source whose timestamps disagree with the wall clock by more than this is a new timeline.
_MAX_TIMESTAMP_DRIFT_S: Final = 1.0


@dataclass
class EncodedTrackStats:
    pushed: int = 0
    sent: int = 0
    dropped_paused: int = 0
    dropped_overflow: int = 0
    dropped_waiting_keyframe: int = 0
    keyframe_requests: int = 0
    discontinuities: int = 0
    #: packets sent again in answer to a NACK (:class:`DirectRtpSender`)
    retransmitted: int = 0


class EncodedTrack(MediaStreamTrack):
    """Track of pre-encoded frames for ``pc.addTrack()`` / ``sender.replaceTrack()``.

    :meth:`push` (sync, loop thread) enqueues an :class:`EncodedFrame`; aiortc's sender calls
    :meth:`recv`, which returns an ``av.Packet`` (see module docstring for why not an
    ``RTCEncodedFrame``) that the sender packetizes itself. The frames' codec must be the codec
    negotiated for the sender (aiortc packs by the *negotiated* codec); restrict negotiation with
    ``transceiver.setCodecPreferences`` (Opus / VP8) -- the track only checks the media kind.

    Bounded: audio keeps the newest ``max_queue`` (default 10) frames, dropping the oldest. Video
    (default 60): on overflow the queue is flushed and frames are dropped until the next
    keyframe, and ``on_keyframe_needed`` is called. Video also starts in that state (a new
    subscriber needs a keyframe), and ``on_keyframe_needed`` is repeated at most once per second
    while waiting.

    Timestamps: output timestamps are rewritten to one continuous timeline, in the clock of the
    frames' codec. Consecutive frames of the same source (``stream_id``) keep their original
    spacing; after :meth:`resume`, a ``stream_id`` change, a backwards step, or a jump that
    disagrees with the wall clock by more than 1 s, the timeline advances by the wall-clock time
    elapsed since the previous frame (at least one frame duration). So receivers always see
    monotonic RTP timestamps that track real time across pauses and source switches.

    Pause: while :attr:`paused`, pushed frames are discarded (and the queue is flushed on
    :meth:`pause`); :meth:`resume` on video waits for a keyframe and calls ``on_keyframe_needed``.

    Use one track per sender for the sender's whole life and switch sources by pushing frames of
    another ``stream_id`` into it: a *new* track's timestamps restart at 0, so
    ``sender.replaceTrack(EncodedTrack(...))`` makes the sender's RTP timestamps jump backwards.
    aiortc's sender calls :meth:`stop` on its track when it stops (e.g. ``pc.close()``); pushes
    into a stopped track are ignored.
    """

    def __init__(
        self,
        kind: Literal["audio", "video"],
        *,
        max_queue: int | None = None,
        on_keyframe_needed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be 'audio' or 'video', not {kind!r}")
        self.kind = kind
        self._max_queue = max_queue if max_queue is not None else _DEFAULT_MAX_QUEUE[kind]
        if self._max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.on_keyframe_needed = on_keyframe_needed
        self._queue: deque[tuple[EncodedFrame, int]] = deque()
        self._wakeup = asyncio.Event()
        self._paused = False
        self._waiting_for_keyframe = kind == "video"
        self._last_keyframe_request = -math.inf
        # timestamp rewriting state
        self._out_ts: int | None = None
        self._clock: int | None = None
        self._src_ts = 0
        self._src_stream: int | None = None
        self._last_wall = 0.0
        self._discontinuity = False
        self.last_audio_level: int | None = None
        """``audio_level`` of the frame most recently returned by :meth:`recv`."""
        self.stats = EncodedTrackStats()

    # -- control ------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._waiting_for_keyframe

    def pause(self) -> None:
        """Discard pushed frames until :meth:`resume` (per-subscriber forwarding pause)."""
        if self._paused:
            return
        self._paused = True
        self.stats.dropped_paused += len(self._queue)
        self._queue.clear()

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self._discontinuity = True
        if self.kind == "video":
            self._waiting_for_keyframe = True
            self._request_keyframe(force=True)

    def stop(self) -> None:
        self._queue.clear()
        super().stop()
        self._wakeup.set()

    # -- producer side ------------------------------------------------------------------------

    def push(self, frame: EncodedFrame) -> None:
        """Enqueue a frame (event loop thread). Never blocks; see class docs for dropping rules."""
        if self.readyState != "live":
            return
        if frame.kind != self.kind:
            raise ValueError(f"cannot push a {frame.codec.mimeType} frame into a {self.kind} track")
        self.stats.pushed += 1
        if self._paused:
            self.stats.dropped_paused += 1
            return
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                self.stats.dropped_waiting_keyframe += 1
                self._request_keyframe()
                return
            self._waiting_for_keyframe = False
        if len(self._queue) >= self._max_queue:
            if self.kind == "audio":
                self._queue.popleft()
                self.stats.dropped_overflow += 1
            else:
                self.stats.dropped_overflow += len(self._queue)
                self._queue.clear()
                if not frame.keyframe:
                    self.stats.dropped_overflow += 1
                    self._waiting_for_keyframe = True
                    self._request_keyframe(force=True)
                    return
        self._queue.append((frame, self._rewrite_timestamp(frame)))
        self._wakeup.set()

    def _request_keyframe(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_keyframe_request < _KEYFRAME_RETRY_S:
            return
        self._last_keyframe_request = now
        self.stats.keyframe_requests += 1
        if self.on_keyframe_needed is not None:
            _safe_call("on_keyframe_needed", self.on_keyframe_needed)

    def _rewrite_timestamp(self, frame: EncodedFrame) -> int:
        now = time.monotonic()
        clock = frame.clock_rate
        if self._out_ts is None or self._clock is None:
            out = 0
        else:
            last_out = self._out_ts
            if clock != self._clock:
                last_out = last_out * clock // self._clock
                self._discontinuity = True
            elapsed = max(now - self._last_wall, 0.0)
            delta = frame.timestamp - self._src_ts
            if (
                self._discontinuity
                or frame.stream_id != self._src_stream
                or delta <= 0
                or abs(delta / clock - elapsed) > _MAX_TIMESTAMP_DRIFT_S
            ):
                self.stats.discontinuities += 1
                delta = max(round(elapsed * clock), round(_MIN_STEP_S[self.kind] * clock))
            out = last_out + delta
        self._out_ts = out
        self._clock = clock
        self._src_ts = frame.timestamp
        self._src_stream = frame.stream_id
        self._last_wall = now
        self._discontinuity = False
        return out

    # -- consumer side (aiortc's RTCRtpSender) --------------------------------------------------

    async def recv(self) -> Packet[Any]:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.readyState != "live":
            raise MediaStreamError
        if self.kind == "audio" and self.stats.sent == 0 and len(self._queue) > 1:
            # The sender just started (its connection came up): audio queued before that is old.
            # Sending it all at once would sit as standing latency in the listener's playout buffer.
            self.stats.dropped_overflow += len(self._queue) - 1
            while len(self._queue) > 1:
                self._queue.popleft()
        frame, timestamp = self._queue.popleft()
        packet = Packet(frame.data)
        packet.pts = timestamp
        packet.time_base = fractions.Fraction(1, frame.clock_rate)
        self.last_audio_level = frame.audio_level
        self.stats.sent += 1
        return packet


# ---------------------------------------------------------------------------------------------
# Opus in-band FEC in the SDP (aiortc's codec table)
# ---------------------------------------------------------------------------------------------

#: Opus format parameters every switchboard peer connection offers and answers (RFC 7587 section 6.1):
#: ``useinbandfec=1`` says this end decodes in-band FEC, so the far end should send it.
OPUS_FMTP: Final[dict[str, int | str | None]] = {"minptime": 10, "useinbandfec": 1}


def negotiate_opus_inband_fec() -> None:
    """Make every aiortc peer connection in this process put :data:`OPUS_FMTP` on its Opus line.

    aiortc 1.16.0 builds offers (``RTCRtpSender.getCapabilities``) and answers
    (``find_common_codecs``) from the Opus entry of its module-level ``aiortc.codecs.CODECS`` table,
    whose ``parameters`` are empty; filling them in is the one change needed, on both the SDK's and
    the SFU's connections. Idempotent; done when this module is imported.
    """
    for codec in aiortc_codecs.CODECS["audio"]:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters = {**codec.parameters, **OPUS_FMTP}
            return
    raise RuntimeError(f"aiortc {aiortc.__version__} has no Opus entry in aiortc.codecs.CODECS")


negotiate_opus_inband_fec()


# ---------------------------------------------------------------------------------------------
# Opus
# ---------------------------------------------------------------------------------------------

OpusApplication = Literal["voip", "audio", "lowdelay"]
OPUS_SAMPLE_RATE: Final = 48000
OPUS_FRAME_SAMPLES: Final = 960  # 20 ms at 48 kHz


@dataclass(frozen=True, slots=True)
class OpusEncoderSettings:
    """libopus settings: ``channels`` 1 or 2, ``bitrate`` in b/s (6000..510000), ``application``
    (``voip`` speech-tuned, ``audio`` music, ``lowdelay`` CELT only), ``fec`` (in-band FEC: each
    packet carries a low-bitrate copy of the previous frame, RFC 6716 section 2.1.7; libopus only
    adds it in SILK and hybrid modes, so it steers music away from CELT) and
    ``expected_loss_percent`` (0..100, libopus's ``OPUS_SET_PACKET_LOSS_PERC``: how much FEC to
    spend; fixed for the encoder's life)."""

    channels: int = 1
    bitrate: int = 32000
    application: OpusApplication = "voip"
    fec: bool = False
    expected_loss_percent: int = 10

    def __post_init__(self) -> None:
        if self.channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        if not 6000 <= self.bitrate <= 510000:
            raise ValueError("bitrate must be within 6000..510000 b/s")
        if self.application not in ("voip", "audio", "lowdelay"):
            raise ValueError("application must be 'voip', 'audio' or 'lowdelay'")
        if not 0 <= self.expected_loss_percent <= 100:
            raise ValueError("expected_loss_percent must be within 0..100")


def _audio_level_dbov(pcm: npt.NDArray[np.int16]) -> int:
    """RFC 6465 appendix A level of int16 PCM, in dBov (-127..0)."""
    if pcm.size == 0:
        return -127
    samples = pcm.astype(np.float64) / 32767.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    if rms <= 0.0:
        return -127
    return round(min(max(20.0 * math.log10(rms), -127.0), 0.0))


class OpusFrameEncoder:
    """Encode 20 ms frames of 48 kHz int16 PCM with libopus (PyAV) into :class:`EncodedFrame`.

    PCM layout: ``numpy.int16`` of shape ``(channels, 960)`` (planar, one row per channel) or, for
    mono, ``(960,)``. Each :meth:`encode` returns exactly one Opus packet (libopus's 312-sample
    look-ahead shows up only as a constant delay). Frame timestamps count input samples, starting
    at 0, in one ``stream_id``; :meth:`reconfigure` keeps both, so the receiver sees one stream.
    The output is for aiortc's ``opus/48000/2`` (:data:`OPUS_CODEC`): mono packets are valid and
    aiortc's decoder (always stereo s16 48 kHz) plays them on both channels.
    """

    def __init__(self, settings: OpusEncoderSettings | None = None) -> None:
        self._settings = settings or OpusEncoderSettings()
        self._context = self._open(self._settings)
        self._samples = 0
        self.stream_id = _new_stream_id()

    @property
    def settings(self) -> OpusEncoderSettings:
        return self._settings

    @staticmethod
    def _open(settings: OpusEncoderSettings) -> AudioCodecContext:
        context = av.CodecContext.create("libopus", "w")
        if not isinstance(context, AudioCodecContext):  # pragma: no cover
            raise RuntimeError("libopus is not an audio codec in this PyAV build")
        context.sample_rate = OPUS_SAMPLE_RATE
        context.layout = "mono" if settings.channels == 1 else "stereo"
        context.format = "s16"
        context.bit_rate = settings.bitrate
        context.time_base = fractions.Fraction(1, OPUS_SAMPLE_RATE)
        options = {"application": settings.application, "frame_duration": "20"}
        if settings.fec:
            options |= {"fec": "1", "packet_loss": str(settings.expected_loss_percent)}
        context.options = options
        return context

    def reconfigure(self, settings: OpusEncoderSettings) -> None:
        """Switch settings from the next frame on (a new libopus encoder, same stream)."""
        if settings != self._settings:
            self._settings = settings
            self._context = self._open(settings)

    def encode(self, pcm: npt.NDArray[np.int16]) -> EncodedFrame:
        channels = self._settings.channels
        if pcm.dtype != np.int16:
            raise ValueError(f"PCM must be int16, got {pcm.dtype}")
        if pcm.ndim == 1 and channels == 1:
            pcm = pcm.reshape(1, -1)
        if pcm.shape != (channels, OPUS_FRAME_SAMPLES):
            raise ValueError(f"PCM must have shape ({channels}, {OPUS_FRAME_SAMPLES}), got {pcm.shape}")
        interleaved = np.ascontiguousarray(pcm.T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=self._context.layout.name)
        frame.sample_rate = OPUS_SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, OPUS_SAMPLE_RATE)
        frame.pts = self._samples
        packets = self._context.encode(frame)
        if len(packets) != 1:  # pragma: no cover - libopus emits one packet per 20 ms frame
            raise RuntimeError(f"libopus returned {len(packets)} packets for one 20 ms frame")
        encoded = EncodedFrame(
            codec=OPUS_CODEC,
            data=bytes(packets[0]),
            timestamp=self._samples,
            keyframe=True,
            audio_level=_audio_level_dbov(pcm),
            stream_id=self.stream_id,
        )
        self._samples += OPUS_FRAME_SAMPLES
        return encoded


OpusMode = Literal["silk", "hybrid", "celt"]
OpusBandwidth = Literal["narrowband", "mediumband", "wideband", "superwideband", "fullband"]


@dataclass(frozen=True, slots=True)
class OpusToc:
    """Decoded Opus TOC byte (RFC 6716 section 3.1)."""

    config: int
    mode: OpusMode
    bandwidth: OpusBandwidth
    stereo: bool
    frame_ms: float
    """Duration of each frame in the packet."""
    frame_count: int
    """Frames in the packet (code 0: 1, codes 1/2: 2, code 3: from the frame count byte)."""


def _toc_table() -> tuple[tuple[OpusMode, OpusBandwidth, float], ...]:
    table: list[tuple[OpusMode, OpusBandwidth, float]] = []
    silk: tuple[OpusBandwidth, ...] = ("narrowband", "mediumband", "wideband")
    for bw in silk:
        table += [("silk", bw, ms) for ms in (10.0, 20.0, 40.0, 60.0)]
    hybrid: tuple[OpusBandwidth, ...] = ("superwideband", "fullband")
    for bw in hybrid:
        table += [("hybrid", bw, ms) for ms in (10.0, 20.0)]
    celt: tuple[OpusBandwidth, ...] = ("narrowband", "wideband", "superwideband", "fullband")
    for bw in celt:
        table += [("celt", bw, ms) for ms in (2.5, 5.0, 10.0, 20.0)]
    return tuple(table)


_OPUS_CONFIGS: Final = _toc_table()


def opus_toc(packet: bytes) -> OpusToc:
    """Parse the TOC byte of an Opus packet. Raises ``ValueError`` on an empty/truncated packet."""
    if not packet:
        raise ValueError("empty Opus packet")
    toc = packet[0]
    config = toc >> 3
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            raise ValueError("Opus code 3 packet without frame count byte")
        count = packet[1] & 0x3F
    mode, bandwidth, frame_ms = _OPUS_CONFIGS[config]
    return OpusToc(
        config=config,
        mode=mode,
        bandwidth=bandwidth,
        stereo=bool(toc & 0x04),
        frame_ms=frame_ms,
        frame_count=count,
    )


# ---------------------------------------------------------------------------------------------
# ICE host addresses (local media on loopback) -- hooks into aioice 0.13.0 through aiortc 1.16.0
# ---------------------------------------------------------------------------------------------
#
# Why a hook: aioice gathers host candidates on every interface address *except* loopback
# (``aioice.ice.get_host_addresses`` skips 127.0.0.1 and ::1), and aiortc exposes no setting for
# the addresses to gather on. So a call between a client and an SFU on the same machine sends its
# media to the machine's network address. :func:`restrict_ice_host_addresses` makes one peer
# connection gather host candidates on exactly the addresses given (for local media: one loopback
# address) and nothing else: no server-reflexive or relayed candidates, no STUN/TURN traffic.
#
# How (per peer connection, never global): aiortc creates one ``RTCIceGatherer`` (wrapping one
# ``aioice.Connection``) per transport in the name-mangled ``RTCPeerConnection.__createDtlsTransport``.
# The hook wraps that method *on the instance*; every ``aioice.Connection`` it creates gets an
# instance-level ``get_component_candidates`` that replaces the address list aioice computed with
# ours (``gather_candidates`` calls it once per component with ``addresses=get_host_addresses()``),
# and its ``stun_server`` / ``turn_server`` cleared. Peer connections without the hook behave as
# stock aiortc. The aioice version and the code shape relied on are verified at import.
#
# :func:`ice_candidate_pairs` reads the pairs ICE checked and selected (aioice keeps them private),
# for tests and diagnostics.

import inspect  # noqa: E402
import ipaddress  # noqa: E402
import types  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import aioice  # noqa: E402
import aioice.ice  # noqa: E402
from aiortc import RTCIceTransport, RTCPeerConnection  # noqa: E402
from aiortc.rtcdtlstransport import RTCDtlsTransport  # noqa: E402
from aiortc.rtcicetransport import RTCIceGatherer  # noqa: E402

__all__ += [
    "SUPPORTED_AIOICE_VERSION",
    "IceCandidatePair",
    "ice_candidate_pairs",
    "restrict_ice_host_addresses",
]

SUPPORTED_AIOICE_VERSION: Final = "0.13.0"

_PC_CREATE_DTLS: Final = "_RTCPeerConnection__createDtlsTransport"
_ICE_ADDRESSES_ATTR: Final = "_switchboard_ice_host_addresses"
# Functions (by owner and name) and the names their bytecode must reference for the hook to be valid.
_ICE_CODE_EXPECTATIONS: Final[tuple[tuple[type, str, frozenset[str]], ...]] = (
    (
        RTCPeerConnection,
        _PC_CREATE_DTLS,
        frozenset({"RTCIceGatherer", "RTCIceTransport", "RTCDtlsTransport"}),
    ),
    (RTCIceGatherer, "__init__", frozenset({"Connection", "_connection"})),
    (RTCIceGatherer, "gather", frozenset({"_connection", "gather_candidates"})),
    (aioice.Connection, "__init__", frozenset({"stun_server", "turn_server", "_check_list", "_nominated"})),
    (aioice.Connection, "gather_candidates", frozenset({"get_host_addresses", "get_component_candidates"})),
    (aioice.Connection, "get_component_candidates", frozenset({"stun_server", "turn_server"})),
)


def _all_names(code: types.CodeType) -> set[str]:
    """Names referenced by ``code`` and the code objects nested in it (comprehensions, closures)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _all_names(const)
    return names


def _code_problems(expectations: Iterable[tuple[type, str, frozenset[str]]]) -> list[str]:
    """For each ``(owner, function name, names)``: "missing" when ``owner`` has no such function, or
    the ``names`` its code (nested code included) no longer references."""
    problems: list[str] = []
    for owner, name, names in expectations:
        code = getattr(getattr(owner, name, None), "__code__", None)
        if code is None:
            problems.append(f"{owner.__name__}.{name} is missing")
        elif missing := names - _all_names(code):
            problems.append(f"{owner.__name__}.{name} no longer references {sorted(missing)}")
    return problems


def _verify_aioice(version: str = aioice.__version__) -> None:
    """Raise ``RuntimeError`` unless aioice is the exact version/code shape the ICE hooks target."""
    if version != SUPPORTED_AIOICE_VERSION:
        raise RuntimeError(
            f"switchboard.media.rtp_hooks relies on aioice {SUPPORTED_AIOICE_VERSION} internals, but "
            f"aioice {version} is installed; pin aioice=={SUPPORTED_AIOICE_VERSION} or port the ICE "
            "section of this module (check aioice/ice.py and aiortc/rtcicetransport.py)."
        )
    problems = _code_problems(_ICE_CODE_EXPECTATIONS)
    parameters = list(inspect.signature(aioice.Connection.get_component_candidates).parameters)
    if parameters != ["self", "component", "addresses", "timeout"]:
        problems.append(f"Connection.get_component_candidates takes {parameters}")
    if problems:
        raise RuntimeError(
            "aioice/aiortc internals differ from what switchboard.media.rtp_hooks expects "
            f"(aioice {SUPPORTED_AIOICE_VERSION}, aiortc {SUPPORTED_AIORTC_VERSION}): " + "; ".join(problems)
        )


_verify_aioice()


def _ice_connection(gatherer: RTCIceGatherer) -> aioice.Connection:
    connection = getattr(gatherer, "_connection", None)
    if not isinstance(connection, aioice.Connection):
        raise RuntimeError(
            f"RTCIceGatherer has no aioice Connection in _connection: the aiortc layout is not the one "
            f"of aiortc {SUPPORTED_AIORTC_VERSION} that rtp_hooks was written for"
        )
    return connection


def _restrict_gatherer(gatherer: RTCIceGatherer, host_addresses: tuple[str, ...]) -> None:
    connection = _ice_connection(gatherer)
    connection.stun_server = None
    connection.turn_server = None
    gather_on = connection.get_component_candidates

    # Same signature as aioice's method (it is called with keywords); ``addresses`` is what aioice
    # computed from the interfaces (never loopback) and is replaced by ``host_addresses``.
    async def get_component_candidates(
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109
    ) -> list[aioice.Candidate]:
        return await gather_on(component=component, addresses=list(host_addresses), timeout=timeout)

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


def restrict_ice_host_addresses(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Make ``pc`` gather ICE host candidates on exactly ``addresses`` and no other candidate.

    ``addresses`` are IP address literals (IPv4 or IPv6), for example ``["127.0.0.1"]`` to keep a
    call between two processes on one machine on loopback. Every transport ``pc`` creates then has
    one UDP host candidate per address (a random port each), no server-reflexive or relayed
    candidate (STUN/TURN servers in the configuration are ignored, so no packet goes to them), and
    aioice's usual interface enumeration (which skips loopback) is not used. Peer connections that
    were not passed here are unaffected.

    Call it right after creating ``pc``, before any transceiver, data channel or description:
    ``RuntimeError`` otherwise. ``ValueError`` if ``addresses`` is empty or holds a non-IP string.
    Calling it again with the same addresses is a no-op; with different ones, ``RuntimeError``.
    """
    wanted = tuple(addresses)
    if not wanted:
        raise ValueError("restrict_ice_host_addresses needs at least one address")
    for address in wanted:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"not an IP address literal: {address!r}") from None
    current = getattr(pc, _ICE_ADDRESSES_ATTR, None)
    if current is not None:
        if current != wanted:
            raise RuntimeError(f"ICE host addresses of this peer connection are already {list(current)}")
        return
    if pc.getTransceivers() or pc.sctp is not None:
        raise RuntimeError(
            "restrict_ice_host_addresses must be called before the peer connection has transports"
        )
    create_dtls_transport = getattr(pc, _PC_CREATE_DTLS)

    def create_restricted_dtls_transport() -> RTCDtlsTransport:
        dtls: RTCDtlsTransport = create_dtls_transport()
        _restrict_gatherer(dtls.transport.iceGatherer, wanted)
        return dtls

    setattr(pc, _PC_CREATE_DTLS, create_restricted_dtls_transport)
    setattr(pc, _ICE_ADDRESSES_ATTR, wanted)


@dataclass(frozen=True)
class IceCandidatePair:
    """One ICE candidate pair of a peer connection: ``(host, port)`` on each side, as used on the wire."""

    local: tuple[str, int]
    remote: tuple[str, int]
    #: True for the pair ICE selected (nominated) to carry the media
    selected: bool


def _ice_transports(pc: RTCPeerConnection) -> list[RTCIceTransport]:
    transports: list[RTCIceTransport] = []
    dtls_transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls_transports.append(pc.sctp.transport)
    for dtls in dtls_transports:
        if dtls is not None and all(dtls.transport is not t for t in transports):
            transports.append(dtls.transport)
    return transports


def ice_candidate_pairs(pc: RTCPeerConnection) -> list[IceCandidatePair]:
    """Every candidate pair of ``pc``'s transports: the ones ICE checked and the selected ones.

    The checked pairs are every pair aioice sent or answered a connectivity check on (RFC 8445
    section 6.1.2 check list); the selected pair of each component carries all RTP/RTCP/DTLS
    after ICE completes. Empty before ICE starts. Call on the peer connection's event loop.
    """
    pairs: list[IceCandidatePair] = []
    for transport in _ice_transports(pc):
        connection = _ice_connection(transport.iceGatherer)
        nominated: dict[int, aioice.ice.CandidatePair] = connection._nominated
        selected = {id(pair) for pair in nominated.values()}
        check_list: list[aioice.ice.CandidatePair] = connection._check_list
        for pair in [*check_list, *(p for p in nominated.values() if p not in check_list)]:
            pairs.append(
                IceCandidatePair(
                    local=pair.local_addr, remote=pair.remote_addr, selected=id(pair) in selected
                )
            )
    return pairs


# ---------------------------------------------------------------------------------------------
# Direct RTP egress (SFU audio fan-out) -- hooks into aiortc 1.16.0 senders and DTLS transports
# ---------------------------------------------------------------------------------------------
#
# Why a hook: an aiortc sender runs one task per track and wakes once per frame: ``track.recv()``,
# an ``av.Packet`` and a ``Fraction``, the codec's ``pack()``, an ``RtpPacket`` object, header
# serialisation, then ``await transport._send_rtp()`` through three coroutine layers. For an SFU
# that is the whole per-packet cost of a down-track (profiled: ~50 us per forwarded packet, most of
# it there). :class:`DirectRtpSender` writes the packet itself, synchronously, from the ingest
# callback: a 12-byte header packed with ``struct`` in front of the header extensions serialised
# once, SRTP with the DTLS transport's own libsrtp session, ``sendto`` on the ICE pair's socket.
#
# What stays aiortc's: the ``RTCRtpSender`` still exists, is negotiated, started and stopped by the
# peer connection as usual, routes the subscriber's RTCP to itself (receiver reports, PLI/FIR, REMB)
# and sends the RTCP sender reports, SDES and BYE. Its RTP task waits on a track nobody feeds. The
# hook (per sender, never global) captures the ``RTCRtpSendParameters`` aiortc passes to
# ``send()`` (payload type, MID, header extension ids) and keeps the sender's private counters
# (packets, octets, last RTP/NTP timestamps: what its sender reports and ``getStats()`` say) and
# the DTLS transport's (packets/bytes sent) up to date. NACKs are answered from a 128-packet history
# of what was sent, kept whether or not NACK was negotiated, as aiortc does: as RTX (RFC 4588) when
# negotiated; without RTX, aiortc's SRTP policy (no ``allow_repeat_tx``) makes libsrtp refuse a
# sequence number a second time, so nothing is resent, for aiortc's own sender as for this one.
#
# Layout relied on, verified at import: ``RTCRtpSender.__init__`` sets the four counters and
# ``send()`` registers with the transport and starts ``_run_rtp``; ``RTCDtlsTransport._send_rtp``
# protects with ``_tx_srtp`` and sends with ``transport._send``; ``RTCIceTransport`` wraps an aioice
# ``Connection`` in ``_connection`` whose ``sendto`` uses ``_nominated`` pairs and
# ``protocol.send_data``, which is ``transport.sendto``.

import random  # noqa: E402
import struct  # noqa: E402

import pylibsrtp  # noqa: E402
from aiortc import clock as aiortc_clock  # noqa: E402
from aiortc.rtcdtlstransport import State as DtlsState  # noqa: E402
from aiortc.rtcrtpparameters import RTCRtpSendParameters  # noqa: E402
from aiortc.rtp import (  # noqa: E402
    RTCP_RTPFB_NACK,
    RTP_HISTORY_SIZE,
    HeaderExtensionsMap,
    RtcpRtpfbPacket,
)

__all__ += ["DirectRtpSender", "ntp_now"]

_TX: Final = "_RTCRtpSender__"
#: the sender's private counters its RTCP sender reports and ``getStats()`` read
_SENDER_COUNTERS: Final = ("packet_count", "octet_count", "ntp_timestamp", "rtp_timestamp")
_DTLS_COUNTERS: Final = ("_RTCDtlsTransport__tx_packets", "_RTCDtlsTransport__tx_bytes")
_DIRECT_CODE_EXPECTATIONS: Final[tuple[tuple[type, str, frozenset[str]], ...]] = (
    (RTCRtpSender, "__init__", frozenset(_TX + c for c in _SENDER_COUNTERS) | {"_ssrc", "_enabled"}),
    (RTCRtpSender, "send", frozenset({"_register_rtp_sender", "_run_rtp", "codecs", "muxId"})),
    (RTCRtpSender, "_run_rtcp", frozenset(_TX + c for c in _SENDER_COUNTERS) | {"_ssrc"}),
    (RTCRtpSender, "_handle_rtcp_packet", frozenset({"_retransmit", "lost"})),
    (RTCDtlsTransport, "__init__", frozenset({"_tx_srtp", "_state", *_DTLS_COUNTERS})),
    (RTCDtlsTransport, "_send_rtp", frozenset({"_tx_srtp", "protect", "_send", "_state", "CONNECTED"})),
    (RTCIceTransport, "__init__", frozenset({"_connection", "_send"})),
    (aioice.Connection, "sendto", frozenset({"_nominated", "send_data", "protocol", "remote_addr"})),
    (aioice.ice.StunProtocol, "send_data", frozenset({"transport", "sendto"})),
)


def _verify_direct_egress() -> None:
    """Raise ``RuntimeError`` unless the sender/DTLS/ICE code has the shape :class:`DirectRtpSender`
    relies on (aiortc 1.16.0, aioice 0.13.0; the versions themselves are checked above)."""
    problems = _code_problems(_DIRECT_CODE_EXPECTATIONS)
    if RTP_HISTORY_SIZE != 128:
        problems.append(f"aiortc.rtp.RTP_HISTORY_SIZE is {RTP_HISTORY_SIZE}, not 128")
    if problems:
        raise RuntimeError(
            "aiortc internals differ from what switchboard.media.rtp_hooks' direct RTP egress expects "
            f"(aiortc {SUPPORTED_AIORTC_VERSION}): " + "; ".join(problems)
        )


_verify_direct_egress()

_RTP_HEADER: Final = struct.Struct("!BBHII")
_RTP_SEQ_TS: Final = struct.Struct("!HI")
_DIRECT_ATTR: Final = "_switchboard_direct_sender"
_HISTORY_MASK: Final = RTP_HISTORY_SIZE - 1


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp (RFC 3550 section 4), as aiortc's senders use it."""
    return aiortc_clock.current_ntp_time()


class DirectRtpSender:
    """Sends pre-encoded frames for one :class:`~aiortc.RTCRtpSender`, one RTP packet each, straight
    to its SRTP transport: no task, no queue, no per-packet objects (see this section's comment).

    Create it right after ``addTransceiver`` (before negotiation): it hooks the sender's ``send()``
    to learn the negotiated payload type, MID and header extension ids. :meth:`send` takes one
    frame: the codec payload (one Opus packet), its RTP timestamp in the codec's clock (48 kHz for
    Opus), its timestamp domain (``stream_id``, as :class:`EncodedFrame`), the wall time
    (``time.monotonic()``, seconds) and the NTP time (:func:`ntp_now`); callers fanning one frame
    out compute the last two once. Frames before the sender started (DTLS up, description applied),
    while the transceiver does not send (direction), or after the transport closed are dropped and
    counted. One packet per frame: only for codecs whose frames fit a packet (Opus, RFC 7587).

    Sequence numbers start at random below 2**15 and count every packet sent; timestamps start at
    a random origin and are rewritten exactly as :class:`EncodedTrack` does it (consecutive frames
    of one ``stream_id`` keep their spacing; after :meth:`resume`, a source switch, a backwards
    step or a jump more than 1 s off the wall clock, the timeline advances by the wall time elapsed,
    at least 20 ms). The marker bit is set on every packet, as aiortc's sender does for audio.
    Counters go to ``stats`` (an :class:`EncodedTrackStats`, usually the idle track's own).
    """

    __slots__ = (
        "_abs_send_time_at",
        "_addr",
        "_clock",
        "_discontinuity",
        "_dtls",
        "_dtls_vars",
        "_first_byte",
        "_history",
        "_ice",
        "_last_wall",
        "_min_step",
        "_out_ts",
        "_pair",
        "_payload_type",
        "_rtx_payload_type",
        "_rtx_seq",
        "_sender",
        "_sender_vars",
        "_sendto",
        "_seq",
        "_src_stream",
        "_src_ts",
        "_srtp",
        "_ssrc",
        "_suffix",
        "_ts_origin",
        "paused",
        "stats",
    )

    def __init__(self, sender: RTCRtpSender, stats: EncodedTrackStats | None = None) -> None:
        _check_sender(sender)
        if getattr(sender, _DIRECT_ATTR, None) is not None:
            raise RuntimeError("this sender already has a DirectRtpSender")
        self._sender = sender
        self._sender_vars = vars(sender)
        for counter in _SENDER_COUNTERS:
            if _TX + counter not in self._sender_vars:
                raise RuntimeError(f"RTCRtpSender has no {_TX + counter}: not the aiortc 1.16.0 layout")
        self.stats = stats if stats is not None else EncodedTrackStats()
        self.paused = False
        self._ssrc: int = sender._ssrc
        self._seq = random.getrandbits(16) % 32768  # aiortc: the lower half, away from SRTP's wrap
        self._ts_origin = random.getrandbits(32)
        self._rtx_seq = random.getrandbits(16) % 32768
        self._history: list[bytes | None] = [None] * RTP_HISTORY_SIZE
        # negotiated (set by the hooked send())
        self._payload_type: int | None = None
        self._rtx_payload_type: int | None = None
        self._first_byte = 0x80
        self._suffix = b""  # header extensions, after the 12-byte fixed header
        self._abs_send_time_at = -1
        self._clock = 48000
        self._min_step = 960
        # transport (resolved on the first packet after the DTLS transport connected)
        self._dtls: RTCDtlsTransport | None = None
        self._dtls_vars: dict[str, Any] = {}
        self._srtp: pylibsrtp.Session | None = None
        self._ice: dict[int, Any] = {}
        self._pair: Any = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] | None = None
        self._addr: tuple[str, int] = ("", 0)
        # timestamp rewriting
        self._out_ts: int | None = None
        self._src_ts = 0
        self._src_stream: int | None = None
        self._last_wall = 0.0
        self._discontinuity = False
        original_send = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            self._configure(parameters)
            await original_send(parameters)

        setattr(sender, "send", send)  # noqa: B010
        original_rtcp = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: Any) -> None:
            if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                for seq in packet.lost:
                    self._retransmit(seq)
                return
            await original_rtcp(packet)

        setattr(sender, "_handle_rtcp_packet", handle_rtcp_packet)  # noqa: B010
        setattr(sender, _DIRECT_ATTR, self)

    @property
    def ready(self) -> bool:
        """Negotiated and started: frames are sent (unless paused or the transport is down)."""
        return self._payload_type is not None

    @property
    def ssrc(self) -> int:
        return self._ssrc

    @property
    def sequence_number(self) -> int:
        """The RTP sequence number the next packet will carry (0..65535)."""
        return self._seq

    def _configure(self, parameters: RTCRtpSendParameters) -> None:
        if self._payload_type is not None or not parameters.codecs:
            return
        codec = parameters.codecs[0]
        assert codec.payloadType is not None  # negotiated codecs always have one
        extensions = HeaderExtensionsMap()
        extensions.configure(parameters)
        template = RtpPacket(payload_type=codec.payloadType, marker=1)
        template.extensions.mid = parameters.muxId
        plain = template.serialize(extensions)
        template.extensions.abs_send_time = 0xFFFFFF
        with_abs = template.serialize(extensions)
        if with_abs != plain:  # abs-send-time negotiated: find its 3 bytes (0 in the first copy)
            template.extensions.abs_send_time = 0
            plain = template.serialize(extensions)
            self._abs_send_time_at = next(
                i for i in range(12, len(plain)) if plain[i : i + 3] != with_abs[i : i + 3]
            )
        self._first_byte = plain[0]
        self._suffix = bytes(plain[12:])
        self._clock = codec.clockRate
        self._min_step = round(_MIN_STEP_S["audio"] * codec.clockRate)
        for rtx in parameters.codecs:
            if rtx.mimeType.lower().endswith("/rtx") and rtx.parameters.get("apt") == codec.payloadType:
                self._rtx_payload_type = rtx.payloadType
                break
        self._payload_type = codec.payloadType

    def _resolve_transport(self) -> bool:
        """Look up the SRTP session and the socket of the ICE pair in use; False if not connected."""
        dtls = self._sender.transport
        if dtls._state is not DtlsState.CONNECTED or dtls._tx_srtp is None:
            return False
        ice = _ice_connection(dtls.transport.iceGatherer)._nominated
        pair = ice.get(1)
        if pair is None:
            return False
        self._dtls = dtls
        self._dtls_vars = vars(dtls)
        self._srtp = dtls._tx_srtp
        self._ice = ice
        self._pair = pair
        self._sendto = pair.protocol.transport.sendto
        self._addr = pair.remote_addr
        return True

    def pause(self) -> None:
        """Drop frames until :meth:`resume`."""
        self.paused = True

    def resume(self) -> None:
        """Send again; the timeline jumps by the wall time elapsed (receivers see the gap)."""
        if self.paused:
            self.paused = False
            self._discontinuity = True

    def send(self, payload: bytes, timestamp: int, stream_id: int, now: float, ntp: int) -> None:
        """Send one frame as one RTP packet (synchronous; on the event loop thread)."""
        stats = self.stats
        stats.pushed += 1
        if self.paused:
            stats.dropped_paused += 1
            return
        payload_type = self._payload_type
        if payload_type is None or not self._sender._enabled:
            stats.dropped_overflow += 1  # not negotiated yet / the transceiver does not send
            return
        dtls = self._dtls
        stale = dtls is None or dtls._state is not DtlsState.CONNECTED or self._ice.get(1) is not self._pair
        if stale and not self._resolve_transport():
            stats.dropped_overflow += 1  # the transport is not (or no longer) connected
            return
        # timestamp rewriting (see EncodedTrack._rewrite_timestamp)
        clock = self._clock
        if self._out_ts is None:
            out = 0
        else:
            delta = (timestamp - self._src_ts) & 0xFFFFFFFF
            elapsed = now - self._last_wall
            if (
                self._discontinuity
                or stream_id != self._src_stream
                or delta == 0
                or delta >= 0x80000000
                or abs(delta / clock - elapsed) > _MAX_TIMESTAMP_DRIFT_S
            ):
                stats.discontinuities += 1
                delta = max(round(max(elapsed, 0.0) * clock), self._min_step)
            out = self._out_ts + delta
        self._out_ts = out
        self._src_ts = timestamp
        self._src_stream = stream_id
        self._last_wall = now
        self._discontinuity = False
        rtp_timestamp = (self._ts_origin + out) & 0xFFFFFFFF
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        packet = _RTP_HEADER.pack(self._first_byte, 0x80 | payload_type, seq, rtp_timestamp, self._ssrc)
        packet += self._suffix
        if self._abs_send_time_at >= 0:
            at = self._abs_send_time_at
            packet = packet[:at] + ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big") + packet[at + 3 :]
        packet += payload
        self._history[seq & _HISTORY_MASK] = packet  # kept whatever was negotiated, as aiortc does
        try:
            protected = self._srtp.protect(packet)  # type: ignore[union-attr]
        except pylibsrtp.Error:
            stats.dropped_overflow += 1
            return
        self._sendto(protected, self._addr)  # type: ignore[misc]
        stats.sent += 1
        counters = self._sender_vars
        counters["_RTCRtpSender__ntp_timestamp"] = ntp
        counters["_RTCRtpSender__rtp_timestamp"] = rtp_timestamp
        counters["_RTCRtpSender__octet_count"] += len(payload)
        counters["_RTCRtpSender__packet_count"] += 1
        transport = self._dtls_vars
        transport["_RTCDtlsTransport__tx_packets"] += 1
        transport["_RTCDtlsTransport__tx_bytes"] += len(protected)

    def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK (RFC 4585 section 6.2.1) from the history, as RTX (RFC 4588) if negotiated."""
        packet = self._history[sequence_number & _HISTORY_MASK]
        if packet is None or _RTP_SEQ_TS.unpack_from(packet, 2)[0] != sequence_number:
            return
        if self._rtx_payload_type is not None:
            rtx_ssrc: int = self._sender._rtx_ssrc
            head = _RTP_HEADER.pack(packet[0], 0x80 | self._rtx_payload_type, self._rtx_seq, 0, rtx_ssrc)
            header_length = 12 + len(self._suffix)
            timestamp = packet[4:8]
            packet = (
                head[:4]
                + timestamp
                + head[8:12]
                + packet[12:header_length]
                + sequence_number.to_bytes(2, "big")
                + packet[header_length:]
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        if self._srtp is None or self._sendto is None or self._dtls is None:
            return
        if self._dtls._state is not DtlsState.CONNECTED:
            return
        try:
            self._sendto(self._srtp.protect(packet), self._addr)
        except pylibsrtp.Error:
            return
        self.stats.retransmitted += 1


def direct_sender(sender: RTCRtpSender) -> DirectRtpSender | None:
    """The :class:`DirectRtpSender` of ``sender``, if it has one."""
    found = getattr(sender, _DIRECT_ATTR, None)
    return found if isinstance(found, DirectRtpSender) else None


__all__ += ["direct_sender"]
# Receivers whose m-line changes source (aiortc 1.16.0 RTCDtlsTransport RTP router)
# ---------------------------------------------------------------------------------------------

from aiortc.sdp import SessionDescription  # noqa: E402


def route_remote_ssrcs(pc: RTCPeerConnection) -> int:
    """Route every SSRC ``pc``'s remote description announces to its m-line's started receiver.

    aiortc 1.16.0 enters a receiver's SSRCs in its transport's RTP router once, when the receiver
    starts (``RTCRtpReceiver.receive``); a later description announcing another SSRC on the same
    m-line changes nothing, and packets of that SSRC are then routed by payload type alone, which
    drops them as soon as two receivers share it (two remote audio tracks). An SFU that reuses an
    m-line for another source with a new SSRC (Janus's multistream subscriptions do, RFC 8843
    allows it) would go silent on that m-line. Call after each remote description is applied;
    returns how many SSRCs were newly routed (receivers not started yet are left to ``receive``).
    """
    description = pc.remoteDescription
    if description is None:
        return 0
    by_mid = {t.mid: t.receiver for t in pc.getTransceivers() if t.mid is not None}
    routed = 0
    for media in SessionDescription.parse(description.sdp).media:
        receiver = by_mid.get(media.rtp.muxId)
        if receiver is None or not media.ssrc:
            continue
        router = getattr(receiver.transport, "_rtp_router", None)
        table = getattr(router, "ssrc_table", None)
        receivers = getattr(router, "receivers", None)
        if not isinstance(table, dict) or not isinstance(receivers, set):
            raise RuntimeError(
                "RTCDtlsTransport has no _rtp_router with ssrc_table/receivers: the aiortc layout is "
                f"not the one of aiortc {SUPPORTED_AIORTC_VERSION} that rtp_hooks was written for"
            )
        if receiver not in receivers:
            continue
        for info in media.ssrc:
            if table.get(info.ssrc) is not receiver:
                table[info.ssrc] = receiver
                routed += 1
    return routed
