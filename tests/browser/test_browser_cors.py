"""CORS as Chromium enforces it: a page on another origin calls the coordinator's REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from playwright.async_api import Browser

from switchboard.server import EmbeddedServer

FETCH = """async ([url, apiKey, token]) => {
  try {
    const r = await fetch(url, {method: "POST", body: "{}", headers: {
      "Content-Type": "application/json", "X-Api-Key": apiKey, "Authorization": "Bearer " + token}});
    return {status: r.status, cid: (await r.json()).call?.cid ?? null};
  } catch (err) {
    return {error: String(err)};
  }
}"""


@asynccontextmanager
async def other_origin() -> AsyncIterator[str]:
    """A plain web site on another port of loopback: another origin than the coordinator."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>elsewhere</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_page_on_another_origin_may_call_the_api(browser: Browser) -> None:
    async with other_origin() as origin, EmbeddedServer() as server:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(origin + "/")
        url = server.url + "/api/v1/calls/default/cross"
        result = await page.evaluate(FETCH, [url, server.api_key, server.create_token("alice")])
        assert result == {"status": 200, "cid": "default:cross"}
        await context.close()


async def test_an_origin_outside_the_list_is_refused(browser: Browser) -> None:
    async with other_origin() as origin, EmbeddedServer(cors_origins=["https://app.example.com"]) as server:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(origin + "/")
        url = server.url + "/api/v1/calls/default/cross"
        result = await page.evaluate(FETCH, [url, server.api_key, server.create_token("alice")])
        assert "error" in result and "Failed to fetch" in result["error"]
        await context.close()
    async with other_origin() as origin, EmbeddedServer(cors_origins=[origin]) as server:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(origin + "/")
        result = await page.evaluate(
            FETCH, [server.url + "/api/v1/calls/default/cross", server.api_key, server.create_token("alice")]
        )
        assert result["status"] == 200
        await context.close()
