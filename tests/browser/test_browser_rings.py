"""The page's rings follow the server: rings that started before it connected, concurrent rings,
and a ring cancelled while its events socket was down."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page

from switchboard import VideoClient
from tests.browser.conftest import PageFactory
from tests.conftest import ClientFactory

RINGING = """() => {
  const state = window.switchboardPage.client.state;
  return { ringing: state.ringingCalls.value.map((c) => c.cid),
           incoming: state.incomingCall.value?.cid ?? null };
}"""


async def _wait_rings(page: Page, expected: dict[str, object], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: dict[str, object] = {}
    while loop.time() < deadline:
        seen = await page.evaluate(RINGING)
        if seen == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the page shows {seen}; expected {expected}")


async def _ring(client: VideoClient, call_id: str) -> None:
    await client.make_call("default", call_id).get_or_create([client.user.id, "alice"], ringing=True)


async def test_the_page_shows_rings_that_started_before_it_connected(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    first, second = await make_client("first"), await make_client("second")
    await _ring(first, "one")
    await _ring(second, "two")

    page = await open_page("alice")  # never received the call.ring events: the snapshot has them
    await _wait_rings(page, {"ringing": ["default:one", "default:two"], "incoming": "default:two"})
    status = await page.evaluate(
        "() => window.switchboardPage.client.makeCall('default', 'two').state.value.status"
    )
    assert status == "incoming"

    # the newest ring is cancelled while the page's events socket is down: it catches up on reconnect
    await page.evaluate("() => window.switchboardPage.client._socket._ws.close()")
    await second.make_call("default", "two").reject()
    await _wait_rings(page, {"ringing": ["default:one"], "incoming": "default:one"})
    # and a ring after the reconnect arrives as an event on top of the snapshot
    third = await make_client("third")
    await _ring(third, "three")
    await _wait_rings(page, {"ringing": ["default:one", "default:three"], "incoming": "default:three"})
