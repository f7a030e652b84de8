"""Voice processing: WebRTC's audio processing module (echo cancellation, noise suppression,
automatic gain control, high-pass filter), from the libwebrtc that the ``livekit`` package bundles.
The audio device module turns gain control on only when its policy's ``auto_gain_control`` says so.

An :class:`~switchboard.media.audio_session.AudioDeviceModule` whose policy asks for voice
processing runs its microphone through a :class:`VoiceProcessor` before encoding, and feeds it what
the speaker plays (the reverse stream the echo canceller needs). Virtual microphones (tones, files)
are never processed: noise suppression would eat a steady tone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48000
APM_FRAME = 480  # the module works on 10 ms frames
#: the largest stream delay the module accepts (ms; it refuses more, and its echo canceller looks
#: for the echo itself within about that range anyway)
MAX_STREAM_DELAY_MS = 500


class VoiceProcessor:
    def __init__(
        self,
        channels: int = 1,
        *,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        auto_gain_control: bool = True,
        high_pass_filter: bool = True,
    ) -> None:
        from livekit import rtc  # imported only when some call really processes its voice

        self._rtc: Any = rtc
        self.channels = channels
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=echo_cancellation,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=auto_gain_control,
        )
        self.frames_processed = 0
        #: the render-to-capture delay (ms) handed to the echo canceller before each capture frame:
        #: from a frame's arrival at :meth:`process_render` to its echo's arrival at
        #: :meth:`process_capture`, outside the acoustic path (device FIFOs and stream latencies);
        #: clamped to 0..:data:`MAX_STREAM_DELAY_MS` when handed over
        self.stream_delay_ms = 0

    def _frame(self, interleaved: npt.NDArray[np.int16], channels: int) -> Any:
        return self._rtc.AudioFrame(
            data=interleaved.tobytes(),
            sample_rate=SAMPLE_RATE,
            num_channels=channels,
            samples_per_channel=APM_FRAME,
        )

    def process_capture(self, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Process one 20 ms capture frame, shape (channels, 960) int16; returns the processed frame."""
        channels = pcm.shape[0]
        out = np.empty_like(pcm)
        for half in (0, APM_FRAME):
            chunk = np.ascontiguousarray(pcm[:, half : half + APM_FRAME].T).reshape(-1)
            frame = self._frame(chunk, channels)
            self._apm.set_stream_delay_ms(min(max(self.stream_delay_ms, 0), MAX_STREAM_DELAY_MS))
            self._apm.process_stream(frame)
            processed = np.frombuffer(bytes(frame.data), dtype=np.int16).reshape(APM_FRAME, channels).T
            out[:, half : half + APM_FRAME] = processed
        self.frames_processed += 1
        return out

    def process_render(self, played: npt.NDArray[np.float32]) -> None:
        """Tell the echo canceller what the speaker just played (mono float frame of 960 samples)."""
        samples = np.clip(played * 32767.0, -32768, 32767).astype(np.int16)
        for half in (0, APM_FRAME):
            self._apm.process_reverse_stream(self._frame(samples[half : half + APM_FRAME], 1))
