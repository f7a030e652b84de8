"""The client's one audio session (its microphone and speaker) and each call's audio device module.

:class:`AudioSession` owns the physical devices, shared by every call. Its clock is the speaker's
20 ms playout tick: each tick reads one microphone frame and hands it to every
:class:`AudioDeviceModule` that is capturing; nobody capturing means the frame is dropped, so a
resumed call never plays stale audio.

:class:`AudioDeviceModule` (ADM) is one call's hold on those devices, built from the call's
:class:`AudioConfigurationPolicy`: it encodes the microphone with libopus at the policy's channels,
bitrate and application, and plays the call's remote audio through the speaker. Suspending the ADM
releases both holds: remote audio leaves the speaker within one tick and is no longer decoded, and
the microphone is neither encoded nor sent. Resuming restores exactly what suspension took away.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from aiortc import RTCRtpReceiver, RTCRtpSender

from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.media.audio_format import FloatArray
from switchboard.media.devices import DeviceFailure, DeviceMicrophone, DeviceSpeaker
from switchboard.media.jitter_buffer import OpusJitterBuffer
from switchboard.media.loss_feedback import ReceiverReportLoss
from switchboard.media.microphones import Microphone, SilentMicrophone
from switchboard.media.opus import DTX_MAX_BYTES, OpusEncoder
from switchboard.media.playout_shaping import ShapedSource, db_to_gain
from switchboard.media.rtp_hooks import (
    OPUS_CODEC,
    EncodedFrame,
    EncodedTrack,
    OpusEncoderSettings,
    ReceiverTap,
    tap_receiver,
)
from switchboard.media.speakers import CaptureSpeaker, Speaker
from switchboard.media.voice_processing import VoiceProcessor

log = logging.getLogger("switchboard.media")


class AudioSession:
    def __init__(self, microphone: Microphone | None = None, speaker: Speaker | None = None) -> None:
        self.microphone: Microphone = microphone if microphone is not None else SilentMicrophone()
        self.speaker: Speaker = speaker if speaker is not None else CaptureSpeaker()
        self._modules: list[AudioDeviceModule] = []
        self.frames_read = 0
        #: called (on the loop thread) when the microphone or speaker fails; it goes on as silence
        self.on_device_error: list[Callable[[DeviceFailure], None]] = []
        for device in (self.microphone, self.speaker):
            if isinstance(device, DeviceMicrophone | DeviceSpeaker):
                device.on_error.append(self._device_failed)

    def _device_failed(self, failure: DeviceFailure) -> None:
        for hook in list(self.on_device_error):
            hook(failure)

    async def start(self) -> None:
        if self._tick not in self.speaker.on_tick:
            self.speaker.on_tick.append(self._tick)
        self.microphone.start()
        await self.speaker.start()

    async def stop(self) -> None:
        if self._tick in self.speaker.on_tick:
            self.speaker.on_tick.remove(self._tick)
        await self.speaker.stop()
        self.microphone.stop()

    def create_module(self, policy: AudioConfigurationPolicy, name: str) -> AudioDeviceModule:
        module = AudioDeviceModule(self, policy, name)
        self._modules.append(module)
        return module

    def _release(self, module: AudioDeviceModule) -> None:
        if module in self._modules:
            self._modules.remove(module)

    @property
    def modules(self) -> tuple[AudioDeviceModule, ...]:
        return tuple(self._modules)

    def _tick(self, t: float, played: FloatArray) -> None:
        pcm = self.microphone.read_frame()
        self.frames_read += 1
        own: dict[int, FloatArray] = {}
        for module in self._modules:
            mic = module.microphone
            if module.voice_processor is not None:
                module.voice_processor.process_render(played)
                module.voice_processor.stream_delay_ms = round(
                    self.speaker.output_delay_ms
                    + (mic if mic is not None else self.microphone).input_delay_ms
                )
            if mic is not None and id(mic) not in own:
                own[id(mic)] = mic.read_frame()  # a call's own microphone runs in real time too
            if module.capturing:
                module._capture(own[id(mic)] if mic is not None else pcm)
            elif module.holding and module.hold is not None:
                hold = module.hold
                if id(hold) not in own:
                    own[id(hold)] = hold.read_frame()
                module._capture(own[id(hold)], hold=True)


#: capture streams get their own ids, apart from the ones rtp_hooks hands out
_capture_streams = itertools.count(1 << 30)


def _audio_level_dbov(pcm: npt.NDArray[np.int16]) -> int:
    """RFC 6465 appendix A level of int16 PCM in dBov (-127..0), for the RFC 6464 header extension."""
    if pcm.size == 0:
        return -127
    rms = float(np.sqrt(np.mean(np.square(pcm.astype(np.float64) / 32767.0))))
    return -127 if rms <= 0.0 else round(min(max(20.0 * math.log10(rms), -127.0), 0.0))


@dataclass(eq=False)
class RemoteAudio:
    """One remote audio track as played by one ADM: tapped encoded, decoded here, mixed by the speaker.

    The receiver is tapped (no aiortc decoder thread, no aiortc jitter buffer: that buffer holds four
    frames, adding 80 ms and replaying them as stale audio after a pause); each Opus packet goes into
    an :class:`OpusJitterBuffer`, decoded when the speaker pulls it, with lost frames rebuilt from
    in-band FEC or concealed (when the policy's ``loss_concealment`` is on).
    """

    key: str
    receiver: RTCRtpReceiver
    buffer: OpusJitterBuffer
    shaped: ShapedSource | None = None
    tap: ReceiverTap | None = None
    remove_from_speaker: Callable[[], None] | None = None
    frames: int = 0
    dropped_while_suspended: int = 0


class AudioDeviceModule:
    def __init__(self, session: AudioSession, policy: AudioConfigurationPolicy, name: str) -> None:
        self.session = session
        self.policy = policy
        self.name = name
        self.capture_track = EncodedTrack("audio")
        self._encoder: OpusEncoder | None = None
        self._capture_samples = 0  # RTP timestamp of the next captured frame (48 kHz samples)
        self._stream_id = next(_capture_streams)
        self.microphone_enabled = False
        #: this call's own microphone (TrackOption.provided); None: the session's
        self.microphone: Microphone | None = None
        #: while suspended: the source the others hear instead of silence (SPEC §2.8 hold audio)
        self.hold: Microphone | None = None
        self.suspended = False
        #: while suspended DUCKED: the gain (dB) the call's remote audio keeps playing at; None = silent
        self.duck_gain_db: float | None = None
        #: this call's playout gain (dB) and pan (-1 left .. +1 right) at the speaker (SPEC §2.8)
        self.playout_gain_db = 0.0
        self.playout_pan = 0.0
        self.started = False
        self.closed = False
        self.remotes: dict[str, RemoteAudio] = {}
        self.frames_encoded = 0
        #: frames libopus coded as DTX silence (not sent: discontinuous transmission, RFC 6716 2.1.9)
        self.frames_dtx = 0
        #: WebRTC voice processing, created on first capture when the policy and microphone call for it
        self.voice_processor: VoiceProcessor | None = None
        self._expected_loss_percent = policy.opus_expected_loss_percent
        #: follows the RTCP receiver reports of the published audio (see :meth:`watch_receiver_reports`)
        self.loss_feedback: ReceiverReportLoss | None = None

    # ---------------------------------------------------------------- configuration

    @property
    def capture_channels(self) -> int:
        return self.policy.capture_channels

    @property
    def playout_channels(self) -> int:
        return self.policy.playout_channels

    @property
    def opus_settings(self) -> OpusEncoderSettings:
        return OpusEncoderSettings(
            channels=self.policy.capture_channels,
            bitrate=self.policy.opus_bitrate,
            application=self.policy.opus_application,
            fec=self.policy.opus_fec,
            expected_loss_percent=self._expected_loss_percent,
        )

    @property
    def expected_loss_percent(self) -> int:
        """The packet loss (%) the Opus encoder sizes its FEC for now: the policy's
        ``opus_expected_loss_percent`` until RTCP receiver reports say otherwise (read back from the
        encoder once there is one)."""
        if self._encoder is not None:
            return self._encoder.expected_loss_percent
        return self._expected_loss_percent

    def set_expected_loss(self, percent: int) -> None:
        """Tell the encoder to expect ``percent`` (0..100) packet loss from the next frame on."""
        self._expected_loss_percent = percent
        if self._encoder is not None:
            self._encoder.set_expected_loss(percent)

    def watch_receiver_reports(self, sender: RTCRtpSender) -> None:
        """Set the expected loss from the RTCP receiver reports ``sender`` (this ADM's published audio)
        gets, until :meth:`close` (see :mod:`switchboard.media.loss_feedback`)."""
        if self.loss_feedback is not None:
            self.loss_feedback.close()
        self.loss_feedback = ReceiverReportLoss(sender, self.set_expected_loss, self._expected_loss_percent)
        self.loss_feedback.start()

    @property
    def voice_processing_active(self) -> bool:
        """Voice processing runs only when the policy asks for it *and* the microphone is a real one.

        Virtual microphones (tones, files) are never processed: noise suppression would eat a tone.
        """
        mic = self.microphone if self.microphone is not None else self.session.microphone
        return self.policy.voice_processing and not mic.is_virtual

    # ---------------------------------------------------------------- capture

    @property
    def capturing(self) -> bool:
        """Effective microphone: the user wants it on, the call is not suspended, the ADM is started."""
        return self.started and self.microphone_enabled and not self.suspended and not self.closed

    @property
    def holding(self) -> bool:
        """Suspended with a hold source: the hold source is encoded in place of the microphone."""
        return self.started and self.suspended and self.hold is not None and not self.closed

    def _capture(self, pcm: FloatArray, *, hold: bool = False) -> None:
        if self._encoder is None:
            settings = self.opus_settings
            self._encoder = OpusEncoder(
                settings.channels,
                settings.bitrate,
                settings.application,
                fec=settings.fec,
                expected_loss_percent=settings.expected_loss_percent,
                dtx=self.policy.opus_dtx,
            )
        channels = self.policy.capture_channels
        if pcm.shape[0] != channels:
            pcm = (
                np.repeat(pcm.mean(axis=0, keepdims=True), channels, axis=0)
                if channels == 2
                else pcm.mean(axis=0, keepdims=True)
            )
        samples = np.clip(pcm * 32767.0, -32768, 32767).astype(np.int16)
        if self.voice_processing_active and not hold:  # hold audio is no voice: never processed
            if self.voice_processor is None:
                self.voice_processor = VoiceProcessor(
                    channels, auto_gain_control=self.policy.auto_gain_control
                )
            samples = self.voice_processor.process_capture(samples)
        packet = self._encoder.encode(samples)
        timestamp = self._capture_samples
        self._capture_samples += samples.shape[1]
        self.frames_encoded += 1
        if len(packet) <= DTX_MAX_BYTES:
            self.frames_dtx += 1  # silence under DTX: nothing to send, the far end conceals
            return
        self.capture_track.push(
            EncodedFrame(
                codec=OPUS_CODEC,
                data=packet,
                timestamp=timestamp,
                keyframe=True,
                audio_level=_audio_level_dbov(samples),
                stream_id=self._stream_id,
            )
        )

    # ---------------------------------------------------------------- playout

    def add_remote(self, key: str, receiver: RTCRtpReceiver) -> RemoteAudio:
        """Play a remote audio track. Call from the peer connection's ``track`` event (before media flows)."""
        self.remove_remote(key)
        buffer = OpusJitterBuffer(
            self.policy.playout_channels, conceal=self.policy.loss_concealment, name=f"{self.name}/{key}"
        )
        remote = RemoteAudio(key, receiver, buffer, shaped=ShapedSource(buffer))
        self._shape(remote)
        remote.tap = tap_receiver(
            receiver, lambda frame: self._on_frame(remote, frame), audio_passthrough=True
        )
        self.remotes[key] = remote
        self._apply_suspension(remote)
        return remote

    def _on_frame(self, remote: RemoteAudio, frame: EncodedFrame) -> None:
        if remote.remove_from_speaker is None:  # suspended (or not started): no decode at all
            remote.dropped_while_suspended += 1
            return
        remote.buffer.push(frame.timestamp, frame.data)
        remote.frames += 1

    def remove_remote(self, key: str) -> None:
        remote = self.remotes.pop(key, None)
        if remote is None:
            return
        if remote.tap is not None:
            remote.tap.close()
            remote.tap = None
        if remote.remove_from_speaker is not None:
            remote.remove_from_speaker()
            remote.remove_from_speaker = None

    @property
    def playing(self) -> bool:
        """Remote audio reaches the speaker: started, not closed, and not suspended (or suspended ducked)."""
        return self.started and not self.closed and (not self.suspended or self.duck_gain_db is not None)

    def _shape(self, remote: RemoteAudio) -> None:
        if remote.shaped is None:
            return
        gain_db = self.playout_gain_db
        if self.suspended and self.duck_gain_db is not None:
            gain_db += self.duck_gain_db
        remote.shaped.gain = db_to_gain(gain_db)
        remote.shaped.pan = self.playout_pan

    def set_playout(self, *, gain_db: float | None = None, pan: float | None = None) -> None:
        """Set this call's playout gain (dB) and/or pan (-1 .. +1); takes effect from the next tick."""
        if gain_db is not None:
            self.playout_gain_db = gain_db
        if pan is not None:
            self.playout_pan = pan
        for remote in self.remotes.values():
            self._shape(remote)

    def _apply_suspension(self, remote: RemoteAudio) -> None:
        self._shape(remote)
        if self.playing:
            if remote.remove_from_speaker is None:
                remote.buffer.reset()  # no packet or decoder state from before the pause: no click
                source = remote.shaped if remote.shaped is not None else remote.buffer
                remote.remove_from_speaker = self.session.speaker.add_source(source)
        elif remote.remove_from_speaker is not None:
            remote.remove_from_speaker()  # out of the mix from the next tick
            remote.remove_from_speaker = None
            remote.buffer.reset()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.started = True
        for remote in self.remotes.values():
            self._apply_suspension(remote)

    def suspend(self, duck_gain_db: float | None = None) -> None:
        """Release the microphone, and the speaker unless ducked: from the next tick nothing is encoded.

        ``duck_gain_db`` None (SILENT): nothing is decoded or played either. A number (DUCKED, SPEC
        §2.8): the remote audio keeps playing, attenuated by that many dB on top of the playout gain.
        """
        self.suspended = True
        self.duck_gain_db = duck_gain_db
        for remote in self.remotes.values():
            self._apply_suspension(remote)

    def resume(self) -> None:
        self.suspended = False
        self.duck_gain_db = None
        for remote in self.remotes.values():
            self._apply_suspension(remote)

    def close(self) -> None:
        self.closed = True
        if self.loss_feedback is not None:
            self.loss_feedback.close()
        for key in list(self.remotes):
            self.remove_remote(key)
        self.capture_track.stop()
        self.session._release(self)
