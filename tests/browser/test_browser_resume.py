"""The page resumes its SFU session with a fresh SFU token once the first one has expired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from switchboard import CallConnectOptions, TrackOption
from switchboard.media import ToneMicrophone
from switchboard.server import EmbeddedServer
from tests.browser.conftest import BROWSER_TONE_HZ, PageFactory, wait_page_hears
from tests.conftest import ClientFactory, wait_heard

PYTHON_TONE_HZ = 440.0
TONES = {"browser": BROWSER_TONE_HZ, "python": PYTHON_TONE_HZ}
SFU_TOKEN_TTL = 2.0


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    """The embedded server with SFU tokens that expire after 2 s."""
    async with EmbeddedServer(development_tokens=True, sfu_token_ttl=SFU_TOKEN_TTL) as srv:
        yield srv


async def test_resume_after_the_sfu_token_expired_takes_a_fresh_one(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    bot = await make_client("bot", microphone=ToneMicrophone(PYTHON_TONE_HZ))
    call = bot.make_call("default", "long")
    await call.get_or_create()
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))
    page = await open_page("alice")
    await page.fill("#call-id", "long")
    await page.click("#join-button")
    await page.wait_for_selector('article[data-cid="default:long"] .badge:text("in focus")')
    await wait_page_hears(page, TONES, audible={"python"})

    await asyncio.sleep(SFU_TOKEN_TTL + 1.0)  # the token the page joined with has expired
    result = await page.evaluate(
        """async () => {
          const call = window.switchboardPage.client.makeCall("default", "long");
          const first = call._media.credentials.token;
          call._media._ws.close();
          const t0 = performance.now();
          while (performance.now() - t0 < 5000 && !(call._media?.reconnects === 1
                 && call.state.value.status === "joined")) {
            await new Promise((r) => setTimeout(r, 20));
          }
          return { status: call.state.value.status, reconnects: call._media?.reconnects ?? null,
                   fresh: call._media?.credentials.token !== first };
        }"""
    )
    assert result == {"status": "joined", "reconnects": 1, "fresh": True}, result
    # the resumed session still carries media both ways and obeys the page
    await wait_heard(bot, TONES, audible={"browser"})
    await page.evaluate("() => window.switchboardPage.client.makeCall('default', 'long').suspendAudio()")
    await wait_page_hears(page, TONES, audible=set(), timeout=2.0)
