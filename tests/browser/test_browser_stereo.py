"""A hi-fi (stereo) Python publisher reaches the browser in stereo.

The Python client sends 440 Hz on the left and 1000 Hz on the right (``AudioConfigurationPolicy.
hi_fi()``: two-channel Opus). The page measures each channel of what it plays separately (a
``ChannelSplitter`` with one analyser per channel, discrete channels: a mono decode would put both
tones on the left and nothing on the right).
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
from playwright.async_api import Page

from switchboard import AudioConfigurationPolicy, CallConnectOptions, TrackOption
from switchboard.media import Microphone, ToneMicrophone
from tests.browser.conftest import AUDIBLE_DBFS, PageFactory
from tests.conftest import ClientFactory

LEFT_HZ, RIGHT_HZ = 440.0, 1000.0
#: crosstalk allowed between channels (the Python SDK's own stereo test uses the same bound)
CROSSTALK_DBFS = -50.0

CHANNEL_LEVELS = """async ([left, right]) => {
  const { toneLevelDbfs } = await import("/sdk/audio.js");
  const session = window.switchboardPage.client.audioSession;
  const context = session.context;
  if (!window.stereoProbe) {
    const splitter = context.createChannelSplitter(2);
    session.speakerInput.connect(splitter);
    window.stereoProbe = [0, 1].map((channel) => {
      const analyser = context.createAnalyser();
      analyser.fftSize = 16384;
      splitter.connect(analyser, channel);
      return analyser;
    });
  }
  await new Promise((r) => setTimeout(r, 400));
  return window.stereoProbe.map((analyser) => {
    const samples = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(samples);
    return [left, right].map((hz) => toneLevelDbfs(samples, hz, context.sampleRate));
  });
}"""


class StereoToneMicrophone(Microphone):
    """``LEFT_HZ`` on the left channel, ``RIGHT_HZ`` on the right."""

    def __init__(self) -> None:
        super().__init__("stereo-tones", 2)
        self._left, self._right = ToneMicrophone(LEFT_HZ), ToneMicrophone(RIGHT_HZ)

    def read_frame(self) -> npt.NDArray[np.float32]:
        return np.vstack([self._left.read_frame(), self._right.read_frame()])


async def _channel_levels(page: Page) -> list[list[float]]:
    levels: list[list[float]] = await page.evaluate(CHANNEL_LEVELS, [LEFT_HZ, RIGHT_HZ])
    return levels


async def test_a_stereo_python_publisher_plays_in_stereo_in_the_browser(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    bot = await make_client(
        "musician",
        microphone=StereoToneMicrophone(),
        audio_configuration_policy=AudioConfigurationPolicy.hi_fi(),
    )
    call = bot.make_call("default", "concert")
    await call.get_or_create()
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))

    page = await open_page("alice")
    await page.fill("#call-id", "concert")
    await page.click("#join-button")
    await page.wait_for_selector('article[data-cid="default:concert"] .badge:text("in focus")')

    levels: list[list[float]] = []
    for _ in range(30):
        levels = await _channel_levels(page)
        (l_left, l_right), (r_left, r_right) = levels
        if l_left > AUDIBLE_DBFS and r_right > AUDIBLE_DBFS:
            break
        await asyncio.sleep(0.1)
    (l_left, l_right), (r_left, r_right) = levels
    rounded = [[round(x, 1) for x in ch] for ch in levels]
    assert l_left > AUDIBLE_DBFS and r_right > AUDIBLE_DBFS, f"[[L440, L1000], [R440, R1000]] = {rounded}"
    assert l_right < CROSSTALK_DBFS and r_left < CROSSTALK_DBFS, f"[[L440, L1000], [R440, R1000]] = {rounded}"
