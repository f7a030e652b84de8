"""A person in Chromium and a Python client in one call hear each other; suspend silences it."""

from __future__ import annotations

from playwright.async_api import Page

from switchboard import CallConnectOptions, TrackOption
from switchboard.media import ToneMicrophone
from tests.browser.conftest import BROWSER_TONE_HZ, PageFactory, wait_page_hears
from tests.conftest import ClientFactory, wait_heard

PYTHON_TONE_HZ = 440.0
TONES = {"browser": BROWSER_TONE_HZ, "python": PYTHON_TONE_HZ}


async def _join_page(page: Page, call_id: str) -> None:
    await page.fill("#call-id", call_id)
    await page.click("#join-button")
    await page.wait_for_selector(f'article[data-cid="default:{call_id}"] .badge:text("in focus")')


async def test_browser_and_python_hear_each_other(open_page: PageFactory, make_client: ClientFactory) -> None:
    bot = await make_client("bot", microphone=ToneMicrophone(PYTHON_TONE_HZ))
    call = bot.make_call("default", "hello")
    await call.get_or_create()
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))

    page = await open_page("alice")
    await _join_page(page, "hello")

    heard_by_page = await wait_page_hears(page, TONES, audible={"python"})
    heard_by_bot = await wait_heard(bot, TONES, audible={"browser"}, timeout=10.0)
    print(f"page hears {heard_by_page}; bot hears {heard_by_bot}")


async def test_python_suspend_silences_it_at_the_browser(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    bot = await make_client("bot", microphone=ToneMicrophone(PYTHON_TONE_HZ))
    call = bot.make_call("default", "hold")
    await call.get_or_create()
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))
    page = await open_page("alice")
    await _join_page(page, "hold")
    await wait_page_hears(page, TONES, audible={"python"})

    await call.suspend_audio()
    await wait_page_hears(page, TONES, audible=set(), timeout=1.0)
    await call.resume_audio()
    await wait_page_hears(page, TONES, audible={"python"}, timeout=2.0)


async def test_a_dropped_sfu_socket_is_resumed(open_page: PageFactory, make_client: ClientFactory) -> None:
    bot = await make_client("bot", microphone=ToneMicrophone(PYTHON_TONE_HZ))
    call = bot.make_call("default", "flaky")
    await call.get_or_create()
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))
    page = await open_page("alice")
    await _join_page(page, "flaky")
    await wait_page_hears(page, TONES, audible={"python"})

    statuses = await page.evaluate(
        """async () => {
          const call = window.switchboardPage.client.makeCall("default", "flaky");
          const seen = [];
          const stop = call.state.listen((s) => seen.push(s.status));
          call._media._ws.close();
          const t0 = performance.now();
          const resumed = () => seen.includes("reconnecting") && call.state.value.status === "joined";
          while (performance.now() - t0 < 5000 && !resumed()) {
            await new Promise((r) => setTimeout(r, 20));
          }
          stop();
          return { seen, reconnects: call._media.reconnects };
        }"""
    )
    assert "reconnecting" in statuses["seen"] and statuses["seen"][-1] == "joined", statuses
    assert statuses["reconnects"] == 1
    # the same session carries on: media both ways, and the SFU still acts on the page's messages
    await wait_page_hears(page, TONES, audible={"python"})
    await wait_heard(bot, TONES, audible={"browser"})
    await page.evaluate("() => window.switchboardPage.client.makeCall('default', 'flaky').suspendAudio()")
    await wait_heard(bot, TONES, audible=set(), timeout=2.0)
    await wait_page_hears(page, TONES, audible=set(), timeout=2.0)
