"""Real Chromium (Debian's ``chromium``) driven by Playwright against the real embedded server.

Chromium runs headless with fake devices: its microphone plays a WAV with a known tone that the test
writes (``--use-file-for-fake-audio-capture``), its camera a generated pattern. What the page hears is
measured in the page (the client's WebAudio speaker meter, ``toneLevels``); what a Python client hears
by FFT on its ``CaptureSpeaker``.

Without ``/usr/bin/chromium`` these tests are skipped with a reason locally and FAIL under ``CI=true``
(install it with ``scripts/install-system-deps.sh`` or ``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from switchboard.server import EmbeddedServer

CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
SAMPLE_RATE = 48000
BROWSER_TONE_HZ = 660.0
AUDIBLE_DBFS = -40.0
SILENT_DBFS = -60.0

#: Chromium flags for an unattended, offline, fake-device run, and nothing that changes its ICE
#: (``.local`` mDNS host candidates are the SFU's business: it resolves them or falls back to
#: peer-reflexive ones). ``--allow-loopback-in-peer-connection`` lets it gather loopback candidates.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]


def write_tone_wav(path: Path, hz: float, *, seconds: float = 2.0, peak_dbfs: float = -12.0) -> Path:
    """A mono 16-bit 48 kHz WAV of a sine at ``hz`` (a whole number of periods, so it loops cleanly)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    samples = (10 ** (peak_dbfs / 20)) * np.sin(2 * np.pi * hz * t)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def chromium_or_fail() -> str:
    """The Chromium binary; a loud failure on CI when it is missing, a skip with the reason elsewhere."""
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is not None:
        return path
    message = (
        f"Chromium not found at {CHROMIUM}: run scripts/install-system-deps.sh (apt-get install chromium)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    """The real embedded server, with the call page's development tokens on (overrides the root one)."""
    async with EmbeddedServer(development_tokens=True) as srv:
        yield srv


PageFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """One headless Chromium whose fake microphone plays ``BROWSER_TONE_HZ``."""
    executable = chromium_or_fail()
    wav = write_tone_wav(tmp_path / "browser-tone.wav", BROWSER_TONE_HZ)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def open_page(browser: Browser, server: EmbeddedServer) -> AsyncIterator[PageFactory]:
    """Open the call page signed in as ``user`` (development token), with the given audio policy and
    suspend mode (what the policy's automatic suspends use: "silent" or "ducked")."""
    contexts: list[BrowserContext] = []

    async def factory(user: str, *, policy: str = "suspend_existing", suspend: str = "silent") -> Page:
        context = await browser.new_context()
        contexts.append(context)
        page = await context.new_page()
        page.on("console", lambda msg: print(f"[{user} console.{msg.type}] {msg.text}"))
        page.on("pageerror", lambda exc: print(f"[{user} pageerror] {exc}"))
        await page.goto(f"{server.url}/?user={user}&policy={policy}&suspend={suspend}&autologin=1")
        await page.wait_for_function("window.switchboardPage && window.switchboardPage.client !== null")
        return page

    yield factory
    for context in contexts:
        await context.close()


async def page_tone_levels(page: Page, tones: dict[str, float]) -> dict[str, float]:
    """Level (dBFS) of each named tone in what the page's speaker plays right now (~0.34 s)."""
    levels = await page.evaluate(
        "tones => window.switchboardPage.client.audioSession.speaker.toneLevels(tones)", list(tones.values())
    )
    return dict(zip(tones, levels, strict=True))


async def wait_page_hears(
    page: Page,
    tones: dict[str, float],
    *,
    audible: set[str],
    timeout: float = 10.0,  # noqa: ASYNC109
) -> dict[str, float]:
    """Wait until the page's speaker carries exactly the ``audible`` tones (> -40 dBFS), others < -60."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    levels: dict[str, float] = {}
    while loop.time() < deadline:
        levels = await page_tone_levels(page, tones)
        if all((levels[n] > AUDIBLE_DBFS) if n in audible else (levels[n] < SILENT_DBFS) for n in levels):
            return levels
        await asyncio.sleep(0.05)
    rounded = {k: round(v, 1) for k, v in levels.items()}
    raise AssertionError(f"the page hears {rounded}; expected audible={sorted(audible)}")
