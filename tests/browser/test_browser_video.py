"""Video between Chromium and a Python client: VP8 both ways, and the page's camera switch."""

from __future__ import annotations

import asyncio

from switchboard import CallConnectOptions, TrackOption, VideoClient
from tests.browser.conftest import PageFactory
from tests.conftest import ClientFactory


async def _wait(predicate, what: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _alice_video(bot: VideoClient, cid: str) -> tuple[bool, int]:
    call_type, _, call_id = cid.partition(":")
    call = bot.make_call(call_type, call_id)
    alice = next((p for p in call.state.value.participants if p.user_id == "alice"), None)
    media = call.media
    remote = next((p for p in media.participants.values() if p.user_id == "alice"), None) if media else None
    return (alice is not None and alice.video_enabled, remote.video_frames if remote else 0)


async def test_camera_both_ways_and_camera_off_is_seen(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    bot = await make_client("bot")
    call = bot.make_call("default", "faces")
    await call.get_or_create()
    await call.join(CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.enabled()))

    page = await open_page("alice")
    await page.fill("#call-id", "faces")
    await page.check("#join-camera")
    await page.click("#join-button")
    await page.wait_for_selector('article[data-cid="default:faces"] .badge:text("in focus")')

    # the Python client decodes the browser's VP8 and sees the camera on
    await _wait(lambda: _alice_video(bot, "default:faces")[0], "alice's camera on at the bot")
    frames_before = _alice_video(bot, "default:faces")[1]
    await _wait(lambda: _alice_video(bot, "default:faces")[1] > frames_before + 10, "frames from alice")

    # the browser plays the Python client's video
    playing = """async () => {
      const video = document.querySelector('article[data-cid="default:faces"] video');
      if (!video) return 0;
      await new Promise(r => setTimeout(r, 300));
      return video.videoWidth;
    }"""
    await page.wait_for_function(playing, timeout=10_000)

    await page.click('article[data-cid="default:faces"] button[data-action=camera]')
    await _wait(lambda: not _alice_video(bot, "default:faces")[0], "alice's camera off at the bot")
