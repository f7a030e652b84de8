"""Scenarios 1 and 2 (rooms; a livestream paused by a call), played by "me" and bots on one server."""

from __future__ import annotations

import asyncio

from switchboard import (
    AudioConfigurationPolicy,
    CallConnectOptions,
    CallPreferences,
    CallType,
    ClientOptions,
    MemberRequest,
    MultiCallAudioPolicy,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.demo.recorder import Narrator, Scenario, Voice
from switchboard.demo.server import DemoServer
from switchboard.media import CaptureSpeaker, Microphone, SilentMicrophone, ToneMicrophone

#: my own voice; each bot has its own (tones on the 50 Hz grid of a 20 ms frame, >= 250 Hz apart)
ME_HZ = 1000.0
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
MIC_OFF = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())
#: how long each focus state plays (long enough for a stable median after the 300 ms settle)
HOLD_S = 2.0
SHORT_HOLD_S = 1.6


class Cast:
    """Connects the people of a scenario to the server and disconnects them all at the end."""

    def __init__(self, server: DemoServer) -> None:
        self.server = server
        self.clients: list[VideoClient] = []

    async def person(
        self,
        user_id: str,
        microphone: Microphone,
        *,
        policy: MultiCallAudioPolicy | None = None,
        speaker: CaptureSpeaker | None = None,
    ) -> VideoClient:
        options = ClientOptions(
            base_url=self.server.url,
            microphone=microphone,
            speaker=speaker if speaker is not None else CaptureSpeaker(max_seconds=10.0),
        )
        if policy is not None:
            options.allow_multiple_active_calls = True
            options.multi_call_audio_policy = policy
        client = VideoClient(
            self.server.api_key,
            user=User.regular(user_id, name=user_id.title()),
            user_token=self.server.create_token(user_id),
            options=options,
        )
        await client.connect()
        self.clients.append(client)
        return client

    async def close(self) -> None:
        """Disconnect everyone, all of them even when the demo is being cancelled (Ctrl-C)."""
        clients, self.clients = self.clients, []
        cancelled = False
        for client in reversed(clients):
            try:
                await client.disconnect()
            except asyncio.CancelledError:
                cancelled = True  # keep closing the others; the cancellation goes on below
        if cancelled:
            raise asyncio.CancelledError


async def foreground_background_rooms(server: DemoServer, narrator: Narrator) -> Scenario:
    """Use case 1: two rooms joined at once, focus switched between them (SUSPEND_INCOMING)."""
    cast = Cast(server)
    try:
        voices = [
            Voice("A", "room A", "default:room-a", "Alice", 400.0),
            Voice("B", "room B", "default:room-b", "Bob", 700.0),
        ]
        bots = {}
        for voice in voices:
            bot = await cast.person(voice.bot.lower(), ToneMicrophone(voice.hz))
            room = bot.make_call(CallType.default(), voice.cid.split(":")[1])
            await room.get_or_create(members=[MemberRequest("me")])
            await room.join(MIC_ON)
            bots[voice.key] = bot
        me = await cast.person("me", ToneMicrophone(ME_HZ), policy=MultiCallAudioPolicy.SUSPEND_INCOMING)
        room_a = me.make_call(CallType.default(), "room-a")
        room_b = me.make_call(CallType.default(), "room-b")
        sc = Scenario(
            number=1,
            name="foreground/background rooms",
            title="Foreground / background rooms",
            blurb=(
                "I sit in two rooms at once and talk in one. The first room I join keeps the focus; "
                "the second joins muted in the background; client.switch_focus() moves mic and speaker."
            ),
            policy=MultiCallAudioPolicy.SUSPEND_INCOMING,
            voices=voices,
            me=me,
            me_hz=ME_HZ,
            calls={"A": room_a, "B": room_b},
            listeners={k: bot.capture_speaker for k, bot in bots.items()},
            narrator=narrator,
        )
        sc.start()
        async with sc.change("room A: join() with the microphone on", "join A", {"A": True}):
            await room_a.join(MIC_ON)
        await sc.hold(HOLD_S, "talking in room A")
        async with sc.change(
            "room B: join() in the background (mic and camera off)", "join B", {"A": True, "B": False}
        ):
            await room_b.join(MIC_OFF)
        await sc.hold(HOLD_S, "room B is joined but suspended: only room A plays")
        async with sc.change("client.switch_focus(room A -> room B)", "focus B", {"A": False, "B": True}):
            await me.switch_focus(room_a, room_b)
        await sc.hold(HOLD_S, "talking in room B; room A waits in the background")
        async with sc.change("client.switch_focus(room B -> room A)", "focus A", {"A": True, "B": False}):
            await me.switch_focus(room_b, room_a)
        await sc.hold(HOLD_S, "back in room A")
        async with sc.change(
            "room A: leave(); SUSPEND_INCOMING resumes nothing by itself", "leave A", {"B": False}
        ):
            await room_a.leave()
        await sc.hold(SHORT_HOLD_S, "room B stays suspended until the app resumes it")
        async with sc.change(
            "room B: resume_audio() and set_microphone_enabled(True)", "resume B", {"B": True}
        ):
            await room_b.resume_audio()
            await room_b.set_microphone_enabled(True)
        await sc.hold(SHORT_HOLD_S, "talking in room B")
        async with sc.change("room B: leave()", "leave B", {}):
            await room_b.leave()
        sc.finish()
        return sc
    finally:
        await cast.close()


async def pause_on_incoming_call(
    server: DemoServer,
    narrator: Narrator,
    *,
    microphone: Microphone | None = None,
    speaker: CaptureSpeaker | None = None,
) -> Scenario:
    """Use case 2: a livestream paused by a ringing 1:1 and resumed after it (SUSPEND_EXISTING).

    ``microphone`` / ``speaker``: my devices (default: my tone and a virtual speaker). A real
    microphone carries no known tone, so what the bots hear of me is then shown but not checked.
    """
    cast = Cast(server)
    try:
        voices = [
            Voice("live", "livestream", "livestream:show", "Carol", 500.0),
            Voice("call", "1:1 call", "default:fan-call", "Erin", 800.0),
        ]
        me = await cast.person(
            "me",
            microphone if microphone is not None else ToneMicrophone(ME_HZ),
            policy=MultiCallAudioPolicy.SUSPEND_EXISTING,
            speaker=speaker,
        )
        carol = await cast.person("carol", ToneMicrophone(500.0))
        dave = await cast.person("dave", SilentMicrophone())
        erin = await cast.person("erin", ToneMicrophone(800.0))
        live = me.make_call(
            CallType.livestream(),
            "show",
            preferences=CallPreferences(audio_configuration_policy=AudioConfigurationPolicy.broadcaster()),
        )
        one = me.make_call(CallType.default(), "fan-call")
        sc = Scenario(
            number=2,
            name="pause-on-incoming-call",
            title="Pause on incoming call",
            blurb=(
                "I host a livestream with Carol; Dave watches. Erin rings me: I take her call and the "
                "livestream pauses by itself; when I hang up it resumes by itself."
            ),
            policy=MultiCallAudioPolicy.SUSPEND_EXISTING,
            voices=voices,
            me=me,
            me_hz=ME_HZ,
            calls={"live": live, "call": one},
            listeners={"live": dave.capture_speaker, "call": erin.capture_speaker},
            narrator=narrator,
            check_mic=microphone is None or microphone.is_virtual,
        )
        sc.start()
        async with sc.change(
            "livestream: join() and go_live(); Carol joins on stage, Dave watches", "go live", {"live": True}
        ):
            await live.get_or_create(members=[MemberRequest("carol", role="host")])
            await live.join(MIC_ON)
            await live.go_live()
            await carol.make_call(CallType.livestream(), "show").join(MIC_ON)
            audience = dave.make_call(
                CallType.livestream(),
                "show",
                preferences=CallPreferences(audio_configuration_policy=AudioConfigurationPolicy.viewer()),
            )
            await audience.join(MIC_OFF)
        await sc.hold(HOLD_S - 0.6, "on air with Carol")
        sc.log("Erin", "rings me: get_or_create(members=[me], ringing=True), then join()", "step")
        fan_call = erin.make_call(CallType.default(), "fan-call")
        await fan_call.get_or_create(members=[MemberRequest("me")], ringing=True)
        await fan_call.join(MIC_ON)
        incoming = await me.state.incoming_call.wait_for(lambda c: c is not None, timeout=10)
        assert incoming is not None and incoming is one
        await sc.hold(0.8, "my phone rings; the livestream goes on")
        async with sc.change(
            "livestream: mic off; 1:1: accept() and join(), which suspends the livestream",
            "take 1:1",
            {"live": False, "call": True},
        ):
            await live.set_microphone_enabled(False)
            await incoming.accept()
            await incoming.join(MIC_ON)
        await sc.hold(HOLD_S + 0.5, "talking with Erin; the livestream is suspended")
        async with sc.change(
            "1:1: leave(), which resumes the livestream; livestream: mic back on", "hang up", {"live": True}
        ):
            await incoming.leave()
            await live.set_microphone_enabled(True)
        await sc.hold(HOLD_S, "back on air")
        async with sc.change("livestream: end()", "end show", {}):
            await live.end()
        sc.finish()
        return sc
    finally:
        await cast.close()
