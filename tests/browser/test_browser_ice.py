"""Trickle ICE from the page: descriptions go out at once, candidates follow and reach the SFU."""

from __future__ import annotations

from switchboard import CallConnectOptions, TrackOption
from switchboard.media import ToneMicrophone
from switchboard.server import EmbeddedServer
from tests.browser.conftest import BROWSER_TONE_HZ, PageFactory, wait_page_hears
from tests.conftest import ClientFactory, wait_heard

PYTHON_TONE_HZ = 440.0
TONES = {"browser": BROWSER_TONE_HZ, "python": PYTHON_TONE_HZ}

#: record what the page sends on its SFU socket (installed before the page's scripts run)
RECORD_SENT = """(() => {
  window.sentToSfu = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (this.url.endsWith("/sfu")) window.sentToSfu.push(JSON.parse(data));
    return send.call(this, data);
  };
})();"""


async def test_the_page_trickles_its_candidates_and_media_flows(
    open_page: PageFactory, make_client: ClientFactory, server: EmbeddedServer
) -> None:
    bot = await make_client("bot", microphone=ToneMicrophone(PYTHON_TONE_HZ))
    call = bot.make_call("default", "trickle")
    await call.get_or_create()
    await call.join(CallConnectOptions(camera=TrackOption.disabled()))

    page = await open_page("alice")
    await page.evaluate(RECORD_SENT)
    await page.fill("#call-id", "trickle")
    await page.click("#join-button")
    await page.wait_for_selector('article[data-cid="default:trickle"] .badge:text("in focus")')
    await wait_page_hears(page, TONES, audible={"python"})
    await wait_heard(bot, TONES, audible={"browser"})

    sent = await page.evaluate("window.sentToSfu")
    kinds = [m["type"] for m in sent]
    trickled = {
        target: [m["candidate"] for m in sent if m["type"] == "ice_candidate" and m["target"] == target]
        for target in ("publisher", "subscriber")
    }
    for target, candidates in trickled.items():
        # some candidates, then end-of-candidates (null), each after its description
        assert candidates and candidates[-1] is None, (target, candidates)
    for target, description in (("publisher", "publisher_offer"), ("subscriber", "subscriber_answer")):
        first = next(i for i, m in enumerate(sent) if m["type"] == "ice_candidate" and m["target"] == target)
        assert kinds.index(description) < first, (target, kinds)

    # the SFU applied them: its ICE transport for alice's publisher knows her candidates
    room = server.sfu.rooms["default:trickle"]
    alice = next(q for q in room.participants.values() if q.user_id == "alice")
    transport = alice.publisher.getTransceivers()[0].receiver.transport.transport
    remote = transport.getRemoteCandidates()
    assert remote, "no remote candidates at the SFU"
    assert {c.type for c in remote} >= {"host"}, remote
