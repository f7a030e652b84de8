"""The echo canceller's stream delay: any measured delay is handed over, clamped to what it takes."""

from __future__ import annotations

import numpy as np

from switchboard.media.voice_processing import VoiceProcessor


def test_a_long_or_negative_measured_delay_never_stops_voice_processing() -> None:
    processor = VoiceProcessor()
    t = np.arange(960) / 48000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None, :]
    for delay_ms in (0, 120, 800, -5):  # 800: a device queue after a long stall; the module refuses > 500
        processor.stream_delay_ms = delay_ms
        processor.process_render(np.zeros(960, dtype=np.float32))
        out = processor.process_capture(tone)
        assert out.shape == (1, 960) and out.dtype == np.int16
    assert processor.frames_processed == 4
