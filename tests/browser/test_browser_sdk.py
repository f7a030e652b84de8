"""The browser client's API in Chromium, driven by script: single-call mode and the MANUAL policy."""

from __future__ import annotations

from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.media import ToneMicrophone
from tests.browser.conftest import BROWSER_TONE_HZ, PageFactory, wait_page_hears
from tests.conftest import ClientFactory, wait_heard

MIC_ONLY = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())

#: a second VideoClient in the page with the given options, joined to the given calls in order
JOIN_JS = """async ([options, callIds]) => {
  const { sdk, client: pageClient } = window.switchboardPage;
  const token = pageClient.token;
  const client = new sdk.VideoClient(pageClient.apiKey, { user: { id: pageClient.user.id }, token, options });
  await client.connect();
  window.scripted = client;
  for (const id of callIds) {
    const call = client.makeCall("default", id);
    await call.getOrCreate();
    await call.join({ microphone: true, camera: false });
  }
  return client.state.activeCalls.value.map(
    (c) => [c.cid, c.state.value.status, c.state.value.isAudioSuspended]);
}"""

TONES = {"a": 440.0, "b": 550.0, "browser": BROWSER_TONE_HZ}


async def _bots(make_client: ClientFactory) -> dict[str, VideoClient]:
    bots = {}
    for room in ("a", "b"):
        bot = await make_client(f"bot-{room}", microphone=ToneMicrophone(TONES[room]))
        call = bot.make_call("default", room)
        await call.get_or_create()
        await call.join(MIC_ONLY)
        bots[room] = bot
    return bots


async def test_single_call_mode_replaces_the_call(open_page: PageFactory, make_client: ClientFactory) -> None:
    bots = await _bots(make_client)
    page = await open_page("alice")
    await page.evaluate("() => window.switchboardPage.client.disconnect()")  # the page's own client idles
    active = await page.evaluate(JOIN_JS, [{"allowMultipleActiveCalls": False}, ["a", "b"]])
    assert active == [["default:b", "joined", False]]
    status_a = await page.evaluate("() => window.scripted.makeCall('default', 'a').state.value.status")
    assert status_a == "idle"
    await wait_heard(bots["b"], TONES, audible={"browser"})
    await wait_heard(bots["a"], TONES, audible=set())
    levels = await page.evaluate("(t) => window.scripted.audioSession.speaker.toneLevels(t)", [440.0, 550.0])
    assert levels[1] > -40 and levels[0] < -60, levels


async def test_manual_policy_leaves_both_calls_unsuspended(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    bots = await _bots(make_client)
    page = await open_page("alice")
    await page.evaluate("() => window.switchboardPage.client.disconnect()")
    options = {"allowMultipleActiveCalls": True, "multiCallAudioPolicy": "manual"}
    active = await page.evaluate(JOIN_JS, [options, ["a", "b"]])
    assert active == [["default:a", "joined", False], ["default:b", "joined", False]]
    await wait_heard(bots["a"], TONES, audible={"browser"})
    await wait_heard(bots["b"], TONES, audible={"browser"})
    # both rooms reach the speaker; suspending one by hand silences just that one
    await page.evaluate("() => { window.switchboardPage.client = window.scripted; }")
    await wait_page_hears(page, TONES, audible={"a", "b"})
    await page.evaluate("() => window.scripted.makeCall('default', 'a').suspendAudio()")
    await wait_page_hears(page, TONES, audible={"b"}, timeout=2.0)
    await wait_heard(bots["a"], TONES, audible=set())


async def test_bad_input_raises_switchboard_errors_in_the_page(open_page: PageFactory) -> None:
    page = await open_page("alice")
    errors = await page.evaluate(
        """async () => {
          const { sdk, client } = window.switchboardPage;
          const caught = async (fn) => {
            try { await fn(); return null; } catch (err) {
              return [err.name, err instanceof sdk.SwitchboardError, err.code, err.message]; }
          };
          return {
            badToken: await caught(async () => {
              const c = new sdk.VideoClient(client.apiKey, { user: { id: "alice" }, token: "not-a-jwt" });
              await c.connect();
            }),
            badCallId: await caught(() => client.makeCall("default", "no spaces allowed").getOrCreate()),
            badPolicy: await caught(async () => new sdk.VideoClient(client.apiKey, {
              user: { id: "alice" }, token: client.token, options: { multiCallAudioPolicy: "loudest" } })),
            notJoined: await caught(() => client.switchFocus(client.makeCall("default", "x"),
                                                             client.makeCall("default", "y"))),
          };
        }"""
    )
    assert errors["badToken"][:3] == ["AuthenticationError", True, "token_invalid"], errors
    assert errors["badCallId"][:2] == ["InvalidRequestError", True], errors
    assert "call id" in errors["badCallId"][3]
    assert errors["badPolicy"][:2] == ["InvalidRequestError", True], errors
    assert "SUSPEND_EXISTING" in errors["badPolicy"][3]
    assert errors["notJoined"][:2] == ["CallStateError", True], errors
