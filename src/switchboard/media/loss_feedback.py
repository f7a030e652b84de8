"""The Opus encoder's expected loss, from the RTCP receiver reports its stream gets back.

libopus sizes its in-band FEC (and how much bitrate it takes from the primary frame) by the packet
loss it is told to expect (``OPUS_SET_PACKET_LOSS_PERC``). A fixed figure wastes bitrate on a clean
path and under-protects a bad one. :class:`ReceiverReportLoss` reads the RTCP receiver reports
(RFC 3550 §6.4.2) that arrive for one published audio stream, through aiortc's public
``RTCRtpSender.getStats()`` (``remote-inbound-rtp``, whose ``fractionLost`` is the report's 8-bit
fixed-point fraction, RFC 3550 §6.4.1), smooths them and hands the result to the encoder.

Rules: the policy's ``opus_expected_loss_percent`` is the *start* value (used until the first
report); each new report moves the estimate a share of the way to what it says (:data:`ATTACK`
up, :data:`RELEASE` down: quick to protect, slow to drop protection);
the estimate is clamped to 0..:data:`MAX_EXPECTED_LOSS_PERCENT`. Reports come from the SFU, so they
describe the uplink (this client to the SFU), not each listener's downlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final

from aiortc import RTCRtpSender
from aiortc.stats import RTCRemoteInboundRtpStreamStats

__all__ = ["ATTACK", "MAX_EXPECTED_LOSS_PERCENT", "POLL_INTERVAL_S", "RELEASE", "ReceiverReportLoss"]

log = logging.getLogger(__name__)

#: how often the sender's statistics are read (s); aiortc's receivers report every 0.5-1.5 s
POLL_INTERVAL_S: Final = 0.5
#: share of the way a report moves the estimate up: loss is followed within a report or two, since
#: an encoder expecting too little loss codes with more inter-frame prediction (CELT's energy
#: prediction, SILK without LBRR) and the frames after a loss then suffer
ATTACK: Final = 0.5
#: share of the way a report moves it down: a clean stretch frees the FEC budget over ~5 reports
RELEASE: Final = 0.2
#: above this, more FEC buys nothing: libopus's FEC only covers one lost packet in a row (percent)
MAX_EXPECTED_LOSS_PERCENT: Final = 40


class ReceiverReportLoss:
    """Follows the fraction lost that RTCP receiver reports give for ``sender``'s stream.

    ``apply`` is called (on the loop) with the new expected loss in percent (an int, 0..40) whenever
    the rounded estimate changes. ``start_percent`` is the estimate before the first report.
    """

    def __init__(self, sender: RTCRtpSender, apply: Callable[[int], None], start_percent: int) -> None:
        self.sender = sender
        self._apply = apply
        self.estimate = start_percent / 100.0
        self.percent = start_percent
        #: receiver reports taken into account
        self.reports = 0
        self._last_report: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="switchboard-rtcp-loss")

    def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    def observe(self, fraction_lost: float) -> int:
        """Take one report's fraction lost (0..1) into the estimate; returns the expected loss in %."""
        self.reports += 1
        error = min(max(fraction_lost, 0.0), 1.0) - self.estimate
        self.estimate += (ATTACK if error > 0 else RELEASE) * error
        percent = min(max(round(self.estimate * 100), 0), MAX_EXPECTED_LOSS_PERCENT)
        if percent != self.percent:
            self.percent = percent
            self._apply(percent)
        return percent

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            try:
                report = await self.sender.getStats()
            except Exception as exc:  # a closing sender: its stream is gone, and so is this
                log.debug("reading the sender's statistics: %s", exc)
                continue
            remote = next((s for s in report.values() if isinstance(s, RTCRemoteInboundRtpStreamStats)), None)
            if remote is None or remote.timestamp == self._last_report:
                continue  # no receiver report yet, or none since the last look
            self._last_report = remote.timestamp
            with contextlib.suppress(ValueError):
                self.observe(remote.fractionLost / 256)
