"""Drift compensation (``media/drift.py``) and the expected-loss estimate (``media/loss_feedback.py``):
pure logic, no devices."""

from __future__ import annotations

import itertools
from typing import cast

import numpy as np
from aiortc import RTCRtpSender

from switchboard.media.analysis import tone_level_dbfs
from switchboard.media.drift import DEAD_BAND_MS, MAX_RATE_CORRECTION, DriftResampler, FillLevelControl
from switchboard.media.loss_feedback import MAX_EXPECTED_LOSS_PERCENT, ReceiverReportLoss


def chunks(signal: np.ndarray, size: int) -> list[np.ndarray]:
    return [signal[:, i : i + size] for i in range(0, signal.shape[1], size)]


def test_at_ratio_one_the_resampler_passes_audio_through_sample_for_sample() -> None:
    rng = np.random.default_rng(1)
    signal = rng.uniform(-1, 1, (2, 4800)).astype(np.float32)
    resampler = DriftResampler(2)
    out = np.concatenate([resampler.process(c) for c in chunks(signal, 333)], axis=1)
    assert np.array_equal(out, signal)  # no delay, no change
    assert resampler.pending == 0.0


def test_a_ratio_above_one_consumes_faster_and_keeps_the_pitch() -> None:
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)[None, :]
    resampler = DriftResampler(1)
    out = np.concatenate([resampler.process(c, 1.001) for c in chunks(tone, 960)], axis=1)
    assert abs(out.shape[1] - 48000 / 1.001) <= 2  # 0.1 % fewer samples out
    # smooth: no click, the same tone 0.1 % higher (well within one FFT bin)
    assert np.max(np.abs(np.diff(out[0]))) < 0.14
    assert tone_level_dbfs(out[0, :9600], 1001.0) > -3.5  # (-3 dBFS RMS for a full-scale sine)


def test_the_fill_control_ignores_jitter_inside_the_dead_band_and_corrects_beyond_it() -> None:
    control = FillLevelControl(target=2880)
    band = DEAD_BAND_MS * 48
    for fill in (2880 - band + 10, 2880 + band - 10, 2880):
        control.reset()
        assert control.update(fill) == 1.0
    control.reset()
    assert 1.0 < control.update(2880 + band + 480) <= 1.0 + MAX_RATE_CORRECTION  # too full: consume faster
    control.reset()
    assert control.update(0 - 10 * band) == 1.0 - MAX_RATE_CORRECTION  # far too empty: clamped
    control.reset()
    control.update(2880)
    assert control.update(2880 + 10 * band) == 1.0  # one late burst barely moves the smoothed fill


def test_the_expected_loss_starts_at_the_policy_value_and_follows_the_reports() -> None:
    applied: list[int] = []
    loss = ReceiverReportLoss(cast(RTCRtpSender, object()), applied.append, start_percent=10)
    assert loss.percent == 10
    for _ in range(12):
        loss.observe(0.0)
    assert loss.percent <= 1 and applied[0] == 8  # a clean path: the FEC budget goes, slowly
    loss.observe(0.2)
    assert loss.percent == 10  # loss is followed quickly
    for _ in range(8):
        loss.observe(0.2)
    assert 19 <= loss.percent <= 20
    for _ in range(20):
        loss.observe(1.0)
    assert loss.percent == MAX_EXPECTED_LOSS_PERCENT
    assert loss.reports == 41 and applied[-1] == MAX_EXPECTED_LOSS_PERCENT
    assert all(a != b for a, b in itertools.pairwise(applied))  # only changes are applied
