"""The call page's multicall in real Chromium: foreground/background rooms and a livestream paused
by a 1:1 ring answered in the page (the seed's two sample apps)."""

from __future__ import annotations

from playwright.async_api import Page

from switchboard import CallConnectOptions, MemberRequest, TrackOption
from switchboard.media import ToneMicrophone
from tests.browser.conftest import BROWSER_TONE_HZ, PageFactory, wait_page_hears
from tests.conftest import ClientFactory, wait_heard

MIC_ONLY = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())


def card(cid: str) -> str:
    return f'article[data-cid="{cid}"]'


async def join_in_page(page: Page, call_type: str, call_id: str) -> None:
    await page.select_option("#call-type", call_type)
    await page.fill("#call-id", call_id)
    await page.click("#join-button")
    await page.wait_for_selector(f"{card(call_type + ':' + call_id)} .badge:not(:text('joining'))")


async def badge(page: Page, cid: str) -> str:
    return await page.inner_text(f"{card(cid)} .badge")


async def test_foreground_and_background_rooms(open_page: PageFactory, make_client: ClientFactory) -> None:
    tones = {"front": 440.0, "back": 550.0, "browser": BROWSER_TONE_HZ}
    bots = {}
    for room in ("front", "back"):
        bot = await make_client(f"bot-{room}", microphone=ToneMicrophone(tones[room]))
        call = bot.make_call("default", room)
        await call.get_or_create()
        await call.join(MIC_ONLY)
        bots[room] = bot

    page = await open_page("alice", policy="suspend_incoming")
    await join_in_page(page, "default", "front")
    await join_in_page(page, "default", "back")
    assert await badge(page, "default:front") == "in focus"
    assert await badge(page, "default:back") == "background"  # SUSPEND_INCOMING: joined in the background
    await wait_page_hears(page, tones, audible={"front"})
    await wait_heard(bots["front"], tones, audible={"browser"})
    await wait_heard(bots["back"], tones, audible=set())  # the background room gets no microphone

    await page.click(f"{card('default:back')} button[data-action=focus]")
    await page.wait_for_selector(f"{card('default:front')} .badge:text('background')")
    assert await badge(page, "default:back") == "in focus"
    await wait_page_hears(page, tones, audible={"back"}, timeout=2.0)
    await wait_heard(bots["back"], tones, audible={"browser"})
    await wait_heard(bots["front"], tones, audible=set())


async def test_livestream_paused_by_a_ring_answered_in_the_page(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    tones = {"host": 440.0, "caller": 770.0, "browser": BROWSER_TONE_HZ}
    host = await make_client("host", microphone=ToneMicrophone(tones["host"]))
    show = host.make_call("livestream", "show")
    await show.get_or_create()
    await show.go_live()
    await show.join(MIC_ONLY)

    page = await open_page("alice", policy="suspend_existing")
    await join_in_page(page, "livestream", "show")
    await wait_page_hears(page, tones, audible={"host"})

    caller = await make_client("caller", microphone=ToneMicrophone(tones["caller"]))
    one2one = caller.make_call("default", "alice-and-caller")
    await one2one.get_or_create(
        members=[MemberRequest(user_id="caller"), MemberRequest(user_id="alice")], ringing=True
    )
    await page.wait_for_selector("#incoming:not([hidden])")
    assert "default:alice-and-caller" in await page.inner_text("#incoming-text")
    await one2one.join(MIC_ONLY)
    await page.click("#accept-button")
    await page.wait_for_selector(f"{card('default:alice-and-caller')} .badge:text('in focus')")
    await page.wait_for_selector(f"{card('livestream:show')} .badge:text('background')")
    await wait_page_hears(page, tones, audible={"caller"}, timeout=3.0)
    await wait_heard(caller, tones, audible={"browser"})

    await page.click(f"{card('default:alice-and-caller')} button[data-action=leave]")
    await page.wait_for_selector(f"{card('livestream:show')} .badge:text('in focus')")
    await wait_page_hears(page, tones, audible={"host"}, timeout=3.0)
