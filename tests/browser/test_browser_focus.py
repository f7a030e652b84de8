"""Focus beyond on/off in the browser client (SPEC §2.8), in real Chromium, measured by listening.

The page sits in rooms with Python bots, each bot playing its own tone; the page's fake microphone
plays ``BROWSER_TONE_HZ``. What the page hears is measured on its speaker (the mono meter, or each
channel through a splitter); what the bots hear by FFT on their capture speakers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from playwright.async_api import Page

from switchboard import Call, CallConnectOptions, TrackOption, VideoClient
from switchboard.media import ToneMicrophone
from switchboard.sdk.messages import ParticipantMessageEvent
from tests.browser.conftest import (
    BROWSER_TONE_HZ,
    SILENT_DBFS,
    PageFactory,
    page_tone_levels,
    wait_page_hears,
)
from tests.browser.test_browser_stereo import CHANNEL_LEVELS
from tests.conftest import ClientFactory, stays_heard, wait_heard

MIC_ONLY = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
ROOM_TONES = {"A": 440.0, "B": 550.0, "C": 770.0}
BROWSER = {"browser": BROWSER_TONE_HZ}
#: the hold tone: far from the page's microphone tone and quieter than it, so that a glitch of the
#: hold tone on a loaded machine (its broadband click) stays below -60 dBFS at the microphone's tone
HOLD_HZ, HOLD_DBFS = 1250.0, -24.0
DUCK_DB = -18.0  # the client's default duckGainDb


async def on_call(page: Page, call_id: str, body: str, arg: Any = None) -> Any:
    """Evaluate the JS expression ``body`` in the page, with ``client`` (the page's VideoClient),
    ``call`` (its call default:``call_id``) and ``arg`` in scope; returns its (awaited) value."""
    script = (
        "async (arg) => { const client = window.switchboardPage.client;"
        f" const call = client.makeCall('default', {json.dumps(call_id)}); return await ({body}); }}"
    )
    return await page.evaluate(script, arg)


async def join(page: Page, call_id: str, priority: int | None = None) -> None:
    prefs = {"priority": priority} if priority is not None else None
    await on_call(
        page,
        call_id,
        "(async () => { const c = client.makeCall('default', call.id, arg ?? undefined);"
        " await c.getOrCreate(); await c.join({ microphone: true, camera: false }); })()",
        prefs,
    )


async def room_bots(make_client: ClientFactory, rooms: str) -> dict[str, VideoClient]:
    bots = {}
    for name in rooms:
        bot = await make_client(f"bot{name}", microphone=ToneMicrophone(ROOM_TONES[name]))
        call = bot.make_call("default", f"room{name}")
        await call.get_or_create()
        await call.join(MIC_ONLY)
        bots[name] = bot
    return bots


async def mean_level(page: Page, hz: float, *, readings: int = 5) -> float:
    """Mean level (dBFS) of ``hz`` on the page's speaker over ``readings`` windows ~0.15 s apart."""
    levels = []
    for _ in range(readings):
        levels.append((await page_tone_levels(page, {"t": hz}))["t"])
        await asyncio.sleep(0.15)
    return sum(levels) / len(levels)


async def channel_levels(page: Page, tones: list[float]) -> list[list[float]]:
    """[[left level of each tone], [right level of each tone]] in dBFS, from the next ~0.34 s."""
    levels: list[list[float]] = await page.evaluate(CHANNEL_LEVELS, tones)
    return levels


async def test_ducked_call_gain_pan_and_hold_audio(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    bots = await room_bots(make_client, "AB")
    page = await open_page("alice", policy="manual")
    await join(page, "roomA")
    await wait_page_hears(page, ROOM_TONES, audible={"A"})
    await wait_heard(bots["A"], BROWSER, audible={"browser"})
    full = await mean_level(page, ROOM_TONES["A"])

    # ducked: the room plays on at the duck gain, the page's microphone no longer reaches it
    await on_call(
        page,
        "roomA",
        "(window.seen = [], call.on('*', (e) => e.type.startsWith('call.audio_')"
        " && window.seen.push([e.type, e.mode])), call.suspendAudio({ mode: 'ducked' }))",
    )
    state = await on_call(page, "roomA", "[call.state.value.isAudioSuspended, call.state.value.suspendMode]")
    assert state == [True, "ducked"]
    await page.wait_for_selector('article[data-cid="default:roomA"] .badge:text("background, quiet")')
    await wait_heard(bots["A"], BROWSER, audible=set())
    await asyncio.sleep(0.4)  # the analyser window holds only audio played after the change
    ducked = await mean_level(page, ROOM_TONES["A"])
    print(f"room A at the page: {full:.1f} dBFS in focus, {ducked:.1f} dBFS ducked")
    assert abs((ducked - full) - DUCK_DB) < 2.0, f"full {full:.1f} dBFS, ducked {ducked:.1f} dBFS"
    await on_call(page, "roomA", "call.suspendAudio({ mode: 'silent' })")  # switches the mode
    await wait_page_hears(page, ROOM_TONES, audible=set(), timeout=2.0)
    await on_call(page, "roomA", "call.resumeAudio()")
    assert await page.evaluate("window.seen") == [
        ["call.audio_suspended", "ducked"],
        ["call.audio_suspended", "silent"],
        ["call.audio_resumed", "silent"],
    ]
    assert await on_call(page, "roomA", "call.state.value.suspendMode") is None
    await wait_heard(bots["A"], BROWSER, audible={"browser"})

    # gain and pan, per channel: A 12 dB down and hard left, B hard right
    await join(page, "roomB")  # MANUAL: both rooms play
    await wait_page_hears(page, ROOM_TONES, audible={"A", "B"})
    tones = [ROOM_TONES["A"], ROOM_TONES["B"]]
    (base_left, _), (base_right, _) = await channel_levels(page, tones)
    assert abs(base_left - base_right) < 1.0, (base_left, base_right)
    await on_call(page, "roomA", "(await call.setPlayoutGain(-12), await call.setPlayoutPan(-1))")
    await on_call(page, "roomB", "call.setPlayoutPan(1)")
    (a_left, b_left), (a_right, b_right) = await channel_levels(page, tones)
    print(f"A (-12 dB, pan -1): L {a_left:.1f} R {a_right:.1f}; B (pan +1): L {b_left:.1f} R {b_right:.1f}")
    # constant power, unity at the centre: hard left is +3 dB on the left and nothing on the right
    assert abs(a_left - (base_left - 12.0 + 3.0)) < 2.0, (base_left, a_left)
    assert a_right < SILENT_DBFS, a_right
    assert b_left < SILENT_DBFS and b_right > -40.0, (b_left, b_right)
    await on_call(page, "roomA", "(await call.setPlayoutGain(0), await call.setPlayoutPan(0.5))")
    (a_left, _), (a_right, _) = await channel_levels(page, tones)
    # right of centre: right louder by 20*log10(tan(3*pi/8)) = 7.7 dB
    assert abs((a_right - a_left) - 7.66) < 1.5, (a_left, a_right)

    # hold audio: room A hears the hold tone, not the page's microphone, only while suspended
    both = {**BROWSER, "hold": HOLD_HZ}
    await on_call(
        page,
        "roomA",
        "call.suspendAudio({ holdAudio: client.audioSession.toneTrack(...arg) })",
        [HOLD_HZ, HOLD_DBFS],
    )
    await wait_heard(bots["A"], both, audible={"hold"})
    await stays_heard(bots["A"], both, audible={"hold"})
    await wait_heard(bots["B"], both, audible={"browser"})  # the other room still has the microphone
    await on_call(page, "roomA", "call.resumeAudio()")
    await wait_heard(bots["A"], both, audible={"browser"})
    await stays_heard(bots["A"], both, audible={"browser"})
    await on_call(page, "roomA", "call.suspendAudio()")  # a plain suspension after it: silence
    await wait_heard(bots["A"], both, audible=set())


def suspended_js() -> str:
    return "client.state.activeCalls.value.map((c) => [c.id, c.state.value.isAudioSuspended])"


async def test_restore_previous_and_priority(open_page: PageFactory, make_client: ClientFactory) -> None:
    bots = await room_bots(make_client, "ABC")
    page = await open_page("alice", policy="restore_previous")

    async def focused() -> list[str]:
        calls: list[list[Any]] = await on_call(page, "roomA", suspended_js())
        return [cid for cid, is_suspended in calls if not is_suspended]

    await join(page, "roomA")
    await join(page, "roomB")  # newest wins
    assert await focused() == ["roomB"]
    await on_call(page, "roomB", "client.switchFocus(call, client.makeCall('default', 'roomA'))")  # back to A
    await join(page, "roomC")  # the side call
    assert await focused() == ["roomC"]
    assert await on_call(page, "roomC", "client.focusStack.map((c) => c.id)") == ["roomB", "roomA", "roomC"]
    await wait_page_hears(page, ROOM_TONES, audible={"C"})
    await on_call(page, "roomC", "call.leave()")  # focus returns to A (SUSPEND_EXISTING would pick B)
    assert await focused() == ["roomA"]
    await wait_page_hears(page, ROOM_TONES, audible={"A"})
    await wait_heard(bots["A"], BROWSER, audible={"browser"})
    await wait_heard(bots["B"], BROWSER, audible=set())

    # a lower-priority call joins suspended and takes nothing from the focused one
    await join(page, "roomC", priority=-1)
    assert await focused() == ["roomA"]
    await wait_page_hears(page, ROOM_TONES, audible={"A"}, timeout=2.0)
    await wait_heard(bots["C"], BROWSER, audible=set())
    # A took focus from B (switchFocus): when A leaves, B gets it back, not the newer C
    await on_call(page, "roomA", "call.leave()")
    assert await focused() == ["roomB"]
    await wait_page_hears(page, ROOM_TONES, audible={"B"})


#: the agent's tone is far below the page's and quieter (RMS -24 dBFS), so that what the customer
#: hears of the agent, glitches included, stays below -60 dBFS at the page's tone
WHISPER_TONES = {"agent": 330.0, "customer": 550.0}
WHISPER_PEAK_DBFS = {"agent": -21.0, "customer": -12.0}


def audience_of(call: Call, user_id: str) -> tuple[str, ...] | None:
    return next(p.audience for p in call.state.value.participants if p.user_id == user_id)


async def wait_until(page: Page, expression: str, timeout_ms: int = 5000) -> None:
    await page.wait_for_function(expression, timeout=timeout_ms)


async def test_whisper_audience_levels_and_moderation(
    open_page: PageFactory, make_client: ClientFactory
) -> None:
    """The page supervises a support call: whispers to the agent, sees the agent whisper back, barges
    in, sees who speaks; then the agent (host) mutes and removes it."""
    room: dict[str, tuple[VideoClient, Call]] = {}
    for name in ("agent", "customer"):
        client = await make_client(
            name, microphone=ToneMicrophone(WHISPER_TONES[name], level_dbfs=WHISPER_PEAK_DBFS[name])
        )
        call = client.make_call("default", "support")
        if not room:
            await call.get_or_create()  # the agent creates it: host, may mute and remove
        await call.join(MIC_ONLY)
        room[name] = (client, call)
    (agent, agent_call), (customer, customer_call) = room["agent"], room["customer"]
    page = await open_page("sup")
    await on_call(page, "support", "call.join({ microphone: true, camera: false })")
    for client in (agent, customer):
        await wait_heard(client, BROWSER, audible={"browser"})

    card = 'article[data-cid="default:support"]'
    await page.click(f"{card} .audio-controls summary")  # the page's own control: "Who hears me"
    await page.select_option(f"{card} select[data-control=audience]", "agent")
    await wait_heard(customer, BROWSER, audible=set())  # below -60 dBFS
    await stays_heard(agent, BROWSER, audible={"browser"})
    await stays_heard(customer, BROWSER, audible=set())
    assert await on_call(page, "support", "call.state.value.localParticipant.audience") == ["agent"]
    await wait_for(lambda: audience_of(agent_call, "sup") == ("agent",))
    assert audience_of(customer_call, "sup") == ("agent",)

    # the agent whispers back: the page sees it, and hears it; the customer does not
    await agent_call.set_microphone_audience(["sup"])
    await wait_until(
        page,
        """() => {
          const call = window.switchboardPage.client.makeCall("default", "support");
          const agent = call.state.value.participants.find((p) => p.userId === "agent");
          return agent && agent.isWhisperingTo("sup") && JSON.stringify(agent.audience) === '["sup"]';
        }""",
    )
    await page.wait_for_selector(f"{card} li:has-text('agent') .tag:text('whispering to you')")
    await wait_heard(customer, {"agent": WHISPER_TONES["agent"]}, audible=set())
    await wait_page_hears(page, WHISPER_TONES, audible={"agent", "customer"})

    # barge in: everyone hears the page again, and sees it
    await on_call(page, "support", "call.setMicrophoneAudience(null)")
    await wait_heard(customer, BROWSER, audible={"browser"})
    await wait_for(lambda: audience_of(customer_call, "sup") is None)

    # the SFU's audio levels: who is speaking, and a dominant speaker
    await wait_until(
        page,
        """() => {
          const s = window.switchboardPage.client.makeCall("default", "support").state.value;
          const customer = s.participants.find((p) => p.userId === "customer");
          const loud = customer && customer.isSpeaking && customer.sfuAudioLevel > 0.01;
          return loud && s.dominantSpeaker !== null;
        }""",
    )

    # participant messages both ways (the SFU relays them on the signalling sockets)
    got: list[ParticipantMessageEvent] = []
    customer_call.on("participant_message", lambda e: got.append(cast(ParticipantMessageEvent, e)))
    await page.evaluate(
        """() => window.switchboardPage.client.makeCall("default", "support")
          .on("participant_message", (e) => { window.fromCustomer = [e.user_id, e.data]; })"""
    )
    await on_call(page, "support", "call.sendMessage({ note: 'call me back' })")
    await customer_call.send_message({"note": "thanks"})
    await wait_for(lambda: bool(got))
    assert (got[0].user_id, got[0].data) == ("sup", {"note": "call me back"})
    await wait_until(page, "() => window.fromCustomer !== undefined")
    assert await page.evaluate("window.fromCustomer") == ["customer", {"note": "thanks"}]

    # moderation: the agent (host) mutes the page, which unmutes itself, then removes it
    await page.evaluate(
        """() => {
          window.moderation = [];
          const call = window.switchboardPage.client.makeCall("default", "support");
          for (const type of ["call.muted_by_moderator", "call.removed", "call.left"]) {
            call.on(type, (e) => window.moderation.push([e.type, e.by ?? e.reason, e.kinds ?? null]));
          }
        }"""
    )
    await agent_call.mute_users(["sup"], audio=True)
    await wait_until(page, "() => window.moderation.length === 1")
    assert await page.evaluate("window.moderation") == [["call.muted_by_moderator", "agent", ["audio"]]]
    assert await on_call(page, "support", "call.microphoneEnabled") is False
    await wait_heard(customer, BROWSER, audible=set())
    await on_call(page, "support", "call.setMicrophoneEnabled(true)")
    await wait_heard(customer, BROWSER, audible={"browser"})

    await agent_call.remove_participant("sup")
    await wait_until(page, "() => window.moderation.length === 3")
    assert await page.evaluate("window.moderation.slice(1)") == [
        ["call.removed", "agent", None],
        ["call.left", "removed", None],
    ]
    status = await on_call(
        page, "support", "[call.state.value.status, client.state.activeCalls.value.length]"
    )
    assert status == ["idle", 0]
    await wait_heard(customer, BROWSER, audible=set())


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


#: the browser client's focus policy (multicall.js ActiveCalls) over small fake calls: pure logic,
#: checked against the same orders as the Python SDK's tests/integration/test_focus_beyond.py
FOCUS_ORDERS_JS = """async ([policy, orders]) => {
  const { ActiveCalls } = await import("/sdk/multicall.js");
  const { Observable } = await import("/sdk/emitter.js");
  const results = [];
  for (const steps of orders) {
    const client = { options: { allowMultipleActiveCalls: true, multiCallAudioPolicy: policy },
                     state: { activeCalls: new Observable([]) } };
    const active = new ActiveCalls(client);
    const fake = (name, priority) => {
      const call = {
        cid: `default:${name}`, name, preferences: { priority },
        state: new Observable({ status: "idle", isAudioSuspended: false }),
        microphoneEnabled: true, cameraEnabled: false,
        set(changes) { call.state._set({ ...call.state.value, ...changes }); },
        async suspendAudio() { call.set({ isAudioSuspended: true }); },
        async resumeAudio() { call.set({ isAudioSuspended: false }); },
        async setMicrophoneEnabled(on) { call.microphoneEnabled = on; },
        async setCameraEnabled(on) { call.cameraEnabled = on; },
        async _setMicrophoneIfAllowed(on) { call.microphoneEnabled = on; },
        async _setCameraIfAllowed(on) { call.cameraEnabled = on; },
      };
      return call;
    };
    const calls = { A: fake("A", 0), B: fake("B", 0), C: fake("C", 0), L: fake("L", -1) };
    for (const step of steps) {
      const [verb, x, y] = step.split(" ");
      if (verb === "join") {
        calls[x].set({ status: "joining" });
        await active.joinStarted(calls[x]);
        calls[x].set({ status: "joined" });
      } else if (verb === "leave") {
        calls[x].set({ status: "idle", isAudioSuspended: false });
        await active.removed(calls[x]);
      } else {
        await active.switchFocus(calls[x], calls[y]);
      }
    }
    const live = client.state.activeCalls.value.filter((c) => !c.state.value.isAudioSuspended);
    results.push(live.map((c) => c.name));
  }
  return results;
}"""

#: (steps, the calls in focus after them) under RESTORE_PREVIOUS; L joins with a lower priority
RESTORE_PREVIOUS_ORDERS = [
    # join A, B, C; the side call C leaves: B (which had focus before C) gets it back
    (["join A", "join B", "join C", "leave C"], ["B"]),
    # a call without focus leaves: focus stays where it is
    (["join A", "join B", "join C", "leave B"], ["C"]),
    (["join A", "join B", "join C", "leave B", "leave C"], ["A"]),
    # switch back and forth, then leave: the call switched away from gets focus back
    (["join A", "join B", "switch B A", "switch A B", "leave B"], ["A"]),
    (["join A", "join B", "switch B A", "join C", "switch C B", "leave B"], ["C"]),
    # the call C took focus from has left in between: the most recently focused remaining call
    (["join A", "join B", "join C", "leave B", "switch C A", "leave A"], ["C"]),
    # a lower-priority join takes nothing; when the focused call leaves, the one before it returns
    (["join A", "join B", "join L", "leave B"], ["A"]),
    (["join A", "join L", "leave A"], ["L"]),
]


async def test_focus_policy_orders_and_bad_input(open_page: PageFactory) -> None:
    page = await open_page("alice")
    orders = [steps for steps, _ in RESTORE_PREVIOUS_ORDERS]
    focused = await page.evaluate(FOCUS_ORDERS_JS, ["restore_previous", orders])
    assert focused == [want for _, want in RESTORE_PREVIOUS_ORDERS], list(zip(orders, focused, strict=True))
    # SUSPEND_EXISTING resumes the newest remaining call instead, and honours priority too
    suspend_existing = await page.evaluate(
        FOCUS_ORDERS_JS,
        ["suspend_existing", [["join A", "join B", "switch B A", "join C", "leave C"], ["join A", "join L"]]],
    )
    assert suspend_existing == [["B"], ["A"]]

    errors = await page.evaluate(
        """async () => {
          const { sdk, client } = window.switchboardPage;
          const caught = async (fn) => {
            try { await fn(); return null; } catch (err) {
              return [err.name, err instanceof sdk.SwitchboardError, err.message]; }
          };
          const idle = client.makeCall("default", "idle");
          const options = (extra) => new sdk.VideoClient(client.apiKey, {
            user: { id: "alice" }, token: client.token, options: extra });
          return {
            duckGain: await caught(async () => options({ duckGainDb: 6 })),
            suspendMode: await caught(async () => options({ suspendMode: "loud" })),
            priority: await caught(async () => client.makeCall("default", "p", { priority: 1.5 })),
            gain: await caught(() => idle.setPlayoutGain(200)),
            gainNaN: await caught(() => idle.setPlayoutGain(NaN)),
            pan: await caught(() => idle.setPlayoutPan(1.5)),
            audienceString: await caught(() => idle.setMicrophoneAudience("agent")),
            audienceBadId: await caught(() => idle.setMicrophoneAudience(["no spaces"])),
            audienceTooMany: await caught(() => idle.setMicrophoneAudience(
              Array.from({ length: 65 }, (_, i) => `u${i}`))),
            mode: await caught(() => idle.suspendAudio({ mode: "loud" })),
            hold: await caught(() => idle.suspendAudio({ holdAudio: "music.wav" })),
            notJoined: await caught(() => idle.suspendAudio()),
          };
        }"""
    )
    expected = {
        "duckGain": "InvalidRequestError",
        "suspendMode": "InvalidRequestError",
        "priority": "InvalidRequestError",
        "gain": "InvalidRequestError",
        "gainNaN": "InvalidRequestError",
        "pan": "InvalidRequestError",
        "audienceString": "InvalidRequestError",
        "audienceBadId": "InvalidRequestError",
        "audienceTooMany": "InvalidRequestError",
        "mode": "InvalidRequestError",
        "hold": "InvalidRequestError",
        "notJoined": "CallStateError",
    }
    assert {k: v[0] if v else None for k, v in errors.items()} == expected, errors
    assert all(v[1] for v in errors.values()), errors
    assert "-120..24 dB" in errors["gain"][2] and "at most 64" in errors["audienceTooMany"][2], errors
