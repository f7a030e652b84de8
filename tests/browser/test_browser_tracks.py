"""Whose track is whose, in Chromium: per-publisher streams, reused transceivers, removed cameras."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from playwright.async_api import Page

from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.media import ToneMicrophone
from tests.browser.conftest import PageFactory, wait_page_hears
from tests.conftest import ClientFactory

FIRST_HZ, SECOND_HZ = 440.0, 880.0
TONES = {"first": FIRST_HZ, "second": SECOND_HZ}

TRACK_EVENTS = """(cid) => {
  const [type, id] = cid.split(":");
  const session = window.switchboardPage.client.makeCall(type, id)._media;
  const owners = Object.fromEntries([...session.participants.values()].map((p) => [p.userId, p.sessionId]));
  return { events: session.trackEvents, owners };
}"""


async def _wait(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _join_page(page: Page, call_id: str, *, camera: bool = False) -> None:
    await page.fill("#call-id", call_id)
    if camera:
        await page.check("#join-camera")
    await page.click("#join-button")
    await page.wait_for_selector(f'article[data-cid="default:{call_id}"] .badge:text("in focus")')


async def _join_bot(make_client: ClientFactory, user: str, hz: float, call_id: str) -> VideoClient:
    bot = await make_client(user, microphone=ToneMicrophone(hz))
    call = bot.make_call("default", call_id)
    await call.get_or_create()
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))
    return bot


async def test_a_reused_transceiver_fires_track_again_with_the_new_publishers_stream(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    page = await open_page("alice")
    await _join_page(page, "reuse")
    first = await _join_bot(make_client, "first", FIRST_HZ, "reuse")
    await wait_page_hears(page, TONES, audible={"first"})
    seen = await page.evaluate(TRACK_EVENTS, "default:reuse")
    audio = [e for e in seen["events"] if e["kind"] == "audio"]
    assert [e["streamId"] for e in audio] == [seen["owners"]["first"]], seen

    await first.make_call("default", "reuse").leave()
    await wait_page_hears(page, TONES, audible=set())
    await _join_bot(make_client, "second", SECOND_HZ, "reuse")
    await wait_page_hears(page, TONES, audible={"second"})

    seen = await page.evaluate(TRACK_EVENTS, "default:reuse")
    audio = [e for e in seen["events"] if e["kind"] == "audio"]
    # the same transceiver (mid) carries the second participant, and the page was told so
    assert len(audio) == 2 and audio[0]["mid"] == audio[1]["mid"], seen
    assert audio[1]["streamId"] == seen["owners"]["second"], seen


async def test_a_browser_removing_its_camera_is_seen_as_camera_off(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    bot = await make_client("bot")
    call = bot.make_call("default", "camoff")
    await call.get_or_create()
    await call.join(CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled()))
    page = await open_page("alice")
    await _join_page(page, "camoff", camera=True)

    def alice_video() -> bool:
        alice = next((p for p in call.state.value.participants if p.user_id == "alice"), None)
        return alice is not None and alice.video_enabled

    await _wait(alice_video, "alice's camera on at the bot")
    await page.evaluate("() => window.switchboardPage.client.makeCall('default', 'camoff').removeCamera()")
    await _wait(lambda: not alice_video(), "alice's camera off at the bot after she removed it")
    # unpublished, not muted: the video track is gone and her microphone is still published
    media = call.media
    assert media is not None
    remote = next(p for p in media.participants.values() if p.user_id == "alice")
    assert set(remote.tracks) == {"audio"}, remote.tracks
