"""A browser preferring codecs the SFU cannot forward (H.264, PCMU) is steered to VP8 and Opus.

The page's own codec preference is overridden before it loads: every
``RTCRtpTransceiver.setCodecPreferences`` call puts H.264 (video) and PCMU (audio) first, with
everything else the browser supports after them, as a page preferring those codecs would. The Python
client must still hear the browser's tone and decode its VP8 frames.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page

from switchboard import CallConnectOptions, TrackOption
from tests.browser.conftest import BROWSER_TONE_HZ, PageFactory
from tests.conftest import ClientFactory, wait_heard

TONES = {"browser": BROWSER_TONE_HZ, "other": 440.0}

PREFER = """([first]) => {
  const original = RTCRtpTransceiver.prototype.setCodecPreferences;
  RTCRtpTransceiver.prototype.setCodecPreferences = function (codecs) {
    const kind = codecs.length ? codecs[0].mimeType.split("/")[0] : "audio";
    const all = RTCRtpReceiver.getCapabilities(kind).codecs;
    const rank = (c) => (first.includes(c.mimeType.toLowerCase()) ? 0 : 1);
    return original.call(this, [...all].sort((a, b) => rank(a) - rank(b)));
  };
}"""

SENT_CODECS = """async (cid) => {
  const [type, id] = cid.split(":");
  const session = window.switchboardPage.client.makeCall(type, id)._media;
  const stats = await session.publisher.getStats();
  const sent = {};
  stats.forEach((r) => {
    if (r.type === "outbound-rtp" && r.codecId) sent[r.kind] = stats.get(r.codecId).mimeType;
  });
  return sent;
}"""


async def _wait(predicate, what: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _prefer(page: Page, mime_types: list[str]) -> None:
    await page.evaluate(PREFER, [mime_types])


@pytest.mark.parametrize("preferred", [["video/h264", "audio/pcmu"], ["audio/pcmu", "audio/pcma"]])
async def test_a_browser_preferring_h264_or_pcmu_still_sends_vp8_and_opus(
    open_page: PageFactory, make_client: ClientFactory, preferred: list[str]
) -> None:
    bot = await make_client("bot")
    call = bot.make_call("default", "codecs")
    await call.get_or_create()
    await call.join(CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled()))

    page = await open_page("alice")
    await _prefer(page, preferred)
    await page.fill("#call-id", "codecs")
    await page.check("#join-camera")
    await page.click("#join-button")
    await page.wait_for_selector('article[data-cid="default:codecs"] .badge:text("in focus")')

    # the browser sends what the SFU answered: Opus and VP8, whatever it preferred
    sent: dict[str, str] = {}
    for _ in range(100):
        sent = await page.evaluate(SENT_CODECS, "default:codecs")
        if len(sent) == 2:
            break
        await asyncio.sleep(0.1)
    assert {k: v.lower() for k, v in sent.items()} == {"audio": "audio/opus", "video": "video/vp8"}

    # and the Python client hears the tone and decodes the video
    await wait_heard(bot, TONES, audible={"browser"}, timeout=10.0)

    def frames() -> int:
        media = call.media
        remote = (
            next((p for p in media.participants.values() if p.user_id == "alice"), None) if media else None
        )
        return remote.video_frames if remote else 0

    await _wait(lambda: frames() > 10, "VP8 frames from alice decoded by the bot")
    start = frames()
    await _wait(lambda: frames() > start + 20, "a steady stream of decoded frames")
