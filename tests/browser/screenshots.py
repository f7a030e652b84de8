"""Regenerate the screenshots in docs/browser.md: ``.venv/bin/python -m tests.browser.screenshots``.

Runs the real embedded server with development tokens, Python bots speaking tones in two rooms and a
livestream, and the call page in headless Chromium; writes PNGs to ``docs/img/``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import ViewportSize, async_playwright

from switchboard import CallConnectOptions, ClientOptions, MemberRequest, TrackOption, User, VideoClient
from switchboard.media import ToneMicrophone
from switchboard.server import EmbeddedServer
from tests.browser.conftest import BROWSER_TONE_HZ, CHROMIUM_FLAGS, chromium_or_fail, write_tone_wav

OUT = Path(__file__).resolve().parents[2] / "docs" / "img"
VIEWPORT = ViewportSize(width=1000, height=620)


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    wav = write_tone_wav(Path(tempfile.mkdtemp()) / "tone.wav", BROWSER_TONE_HZ)
    async with EmbeddedServer(development_tokens=True) as server:
        bots: list[VideoClient] = []

        async def bot(
            user: str, hz: float, call_type: str, call_id: str, camera: bool, ring: str | None = None
        ) -> VideoClient:
            client = VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(base_url=server.url, microphone=ToneMicrophone(hz)),
            )
            await client.connect()
            bots.append(client)
            call = client.make_call(call_type, call_id)
            if ring is not None:
                members = [MemberRequest(user_id=user), MemberRequest(user_id=ring)]
                await call.get_or_create(members=members, ringing=True)
            else:
                await call.get_or_create()
            if call_type == "livestream":
                await call.go_live()
            await call.join(
                CallConnectOptions(
                    microphone=TrackOption.enabled(),
                    camera=TrackOption.enabled() if camera else TrackOption.disabled(),
                )
            )
            return client

        await bot("maria", 440.0, "default", "standup", camera=True)
        await bot("support-bot", 550.0, "default", "queue", camera=False)
        await bot("host", 500.0, "livestream", "show", camera=True)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium_or_fail(),
                headless=True,
                args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
            )
            page = await browser.new_page(viewport=VIEWPORT)
            await page.goto(server.url + "/")
            await page.fill("#user-id", "alice")
            await page.screenshot(path=str(OUT / "browser-signin.png"))

            await page.select_option("#policy", "suspend_incoming")
            await page.click("#signin-button")
            await page.wait_for_selector("#lobby:not([hidden])")
            for call_id, camera in (("standup", True), ("queue", False)):
                await page.fill("#call-id", call_id)
                await page.set_checked("#join-camera", camera)
                await page.click("#join-button")
                await page.wait_for_selector(
                    f'article[data-cid="default:{call_id}"] .badge:not(:text("joining"))'
                )
            await page.wait_for_selector('article[data-cid="default:standup"] .dot.speaking')
            await page.wait_for_selector('article[data-cid="default:standup"] video')
            await asyncio.sleep(1.0)
            await page.screenshot(path=str(OUT / "browser-foreground-background.png"))

            page2 = await browser.new_page(viewport=VIEWPORT)
            await page2.goto(server.url + "/?user=viewer&autologin=1")
            await page2.wait_for_selector("#lobby:not([hidden])")
            await page2.select_option("#call-type", "livestream")
            await page2.fill("#call-id", "show")
            await page2.click("#join-button")
            await page2.wait_for_selector('article[data-cid="livestream:show"] .badge:text("in focus")')
            await bot("fan", 770.0, "default", "fan-call", camera=False, ring="viewer")
            await page2.wait_for_selector("#incoming:not([hidden])")
            await asyncio.sleep(0.5)
            await page2.screenshot(path=str(OUT / "browser-ring.png"))
            await page2.click("#accept-button")
            await page2.wait_for_selector('article[data-cid="livestream:show"] .badge:text("background")')
            await asyncio.sleep(1.0)
            await page2.screenshot(path=str(OUT / "browser-livestream-paused.png"))

            # a supervisor: the standup in focus, whispering to maria; the queue quietly in the background
            page3 = await browser.new_page(viewport=VIEWPORT)
            await page3.goto(server.url + "/?user=lead&policy=suspend_incoming&suspend=ducked&autologin=1")
            await page3.wait_for_selector("#lobby:not([hidden])")
            for call_id in ("standup", "queue"):
                await page3.fill("#call-id", call_id)
                await page3.click("#join-button")
                await page3.wait_for_selector(
                    f'article[data-cid="default:{call_id}"] .badge:not(:text("joining"))'
                )
            standup = 'article[data-cid="default:standup"]'
            await page3.click(f"{standup} .audio-controls summary")
            await page3.select_option(f"{standup} select[data-control=audience]", "maria")
            await page3.wait_for_selector(f"{standup} .tag:text('whispering to maria')")
            await asyncio.sleep(1.0)
            await page3.screenshot(path=str(OUT / "browser-supervisor.png"), full_page=True)
            await browser.close()
        for client in bots:
            await client.disconnect()
        await asyncio.sleep(0.3)
    for png in sorted(OUT.glob("browser-*.png")):
        print(f"{png} ({png.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    asyncio.run(main())
