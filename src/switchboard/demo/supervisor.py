"""Scenario 3, the supervisor (SPEC §2.8): monitor three agent calls ducked and panned, whisper to one
agent, barge in, hand back. Every step is measured: an FFT of the supervisor's stereo speaker (which
call is heard, on which side, how loud) and of each agent's and customer's speaker (who hears the
supervisor)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard import (
    Call,
    CallConnectOptions,
    ClientOptions,
    MultiCallAudioPolicy,
    SuspendMode,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.demo.server import DemoServer
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_levels_dbfs

SUPERVISOR_HZ = 1200.0
#: (agent, customer) tone of each call, on the 50 Hz grid, apart from each other and the supervisor
CALLS = {"call 1": (300.0, 600.0), "call 2": (400.0, 700.0), "call 3": (500.0, 800.0)}
PANS = {"call 1": -1.0, "call 2": 0.0, "call 3": 1.0}
DUCK_DB = -18.0
HEARD_DBFS = -40.0
SILENT_DBFS = -60.0
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
SETTLE_S = 0.8

#: the scenario's header, and what it shows before its first step (printed by ``switchboard demo``)
TITLE = "3/3 Supervisor · SuspendMode.DUCKED, pan, microphone audience"
BLURB = (
    "I supervise three support calls at once (MultiCallAudioPolicy.MANUAL): I hear all three quietly, "
    "call 1 on my left, call 2 in the centre, call 3 on my right, and nobody hears me. I whisper to "
    "one agent, barge in, and hand the call back. Each check measures one tone at one speaker (FFT, 1 s)."
)


def cast() -> list[str]:
    """Who speaks which tone, one line each, as the other scenarios list their voices."""
    lines = [
        f"  {name:<11}agent{name.split()[1]} speaks a {agent:.0f} Hz tone, "
        f"customer{name.split()[1]} a {customer:.0f} Hz tone"
        for name, (agent, customer) in CALLS.items()
    ]
    return [*lines, f"  {'me':<11}I (the supervisor) speak a {SUPERVISOR_HZ:.0f} Hz tone"]


MEASURE_S = 1.0


@dataclass
class Check:
    step: str
    what: str
    level_dbfs: float
    ok: bool


@dataclass
class SupervisorRun:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"supervisor, {c.step}: {c.what} at {c.level_dbfs:.1f} dBFS" for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, object]:
        return {
            "name": "supervisor",
            "checks": [
                {"step": c.step, "what": c.what, "level_dbfs": round(c.level_dbfs, 1), "ok": c.ok}
                for c in self.checks
            ],
        }


async def _levels(client: VideoClient, hz: float) -> list[float]:
    """Per-channel level (dBFS) of ``hz`` over the next MEASURE_S of ``client``'s speaker."""
    speaker = client.capture_speaker
    start = speaker.total_samples
    await asyncio.sleep(MEASURE_S)
    pcm = speaker.samples_range_channels(start, speaker.total_samples)
    return [tone_levels_dbfs(row, [hz])[0] for row in pcm]


async def _levels_of(client: VideoClient, hzs: list[float]) -> list[list[float]]:
    """For each of ``hzs``, its per-channel level (dBFS) over the next MEASURE_S of ``client``'s speaker."""
    speaker = client.capture_speaker
    start = speaker.total_samples
    await asyncio.sleep(MEASURE_S)
    pcm = speaker.samples_range_channels(start, speaker.total_samples)
    per_channel = [tone_levels_dbfs(row, hzs) for row in pcm]
    return [[channel[i] for channel in per_channel] for i in range(len(hzs))]


async def supervisor_scenario(server: DemoServer, say: Callable[[str], None]) -> SupervisorRun:
    """Play the supervisor story on ``server``; ``say`` prints each line. Returns the measured checks."""
    run = SupervisorRun()
    clients: list[VideoClient] = []

    async def person(user_id: str, hz: float, *, stereo: bool = False, **options: object) -> VideoClient:
        client = VideoClient(
            server.api_key,
            user=User.regular(user_id, name=user_id.title()),
            user_token=server.create_token(user_id),
            options=ClientOptions(
                base_url=server.url,
                microphone=ToneMicrophone(hz),
                speaker=CaptureSpeaker(max_seconds=10.0, channels=2 if stereo else 1),
                **options,  # type: ignore[arg-type]
            ),
        )
        await client.connect()
        clients.append(client)
        return client

    def check(step: str, what: str, level: float, *, heard: bool) -> None:
        ok = level > HEARD_DBFS if heard else level < SILENT_DBFS
        run.checks.append(Check(step, what, level, ok))
        say(f"    {'✓' if ok else '✗'} {what}: {level:6.1f} dBFS")

    try:
        people: dict[str, tuple[VideoClient, VideoClient]] = {}
        for name, (agent_hz, customer_hz) in CALLS.items():
            number = name.split()[1]
            agent = await person(f"agent{number}", agent_hz)
            customer = await person(f"customer{number}", customer_hz)
            for client in (agent, customer):
                await client.make_call("default", f"support-{number}").join(MIC_ON)
            people[name] = (agent, customer)
        supervisor = await person(
            "supervisor",
            SUPERVISOR_HZ,
            stereo=True,
            allow_multiple_active_calls=True,
            multi_call_audio_policy=MultiCallAudioPolicy.MANUAL,
            suspend_mode=SuspendMode.DUCKED,
            duck_gain_db=DUCK_DB,
        )
        calls: dict[str, Call] = {}

        step = "monitor"
        say(
            "supervisor: join the three calls ducked (-18 dB): I hear each agent quietly, call 1 on my "
            "left, call 2 centre, call 3 on my right; no agent hears me"
        )
        for name in CALLS:
            call = supervisor.make_call("default", f"support-{name.split()[1]}")
            await call.set_playout_pan(PANS[name])
            await call.join(MIC_ON)
            await call.suspend_audio()  # ClientOptions.suspend_mode: DUCKED
            calls[name] = call
        await asyncio.sleep(SETTLE_S)
        heard = await _levels_of(supervisor, [hz for hz, _ in CALLS.values()])
        for name, (left, right) in zip(CALLS, heard, strict=True):
            if PANS[name] < 0:
                check(step, f"{name}'s agent on the supervisor's left", left, heard=True)
                check(step, f"{name}'s agent on the supervisor's right", right, heard=False)
            elif PANS[name] > 0:
                check(step, f"{name}'s agent on the supervisor's right", right, heard=True)
                check(step, f"{name}'s agent on the supervisor's left", left, heard=False)
            else:
                check(step, f"{name}'s agent, centre (left)", left, heard=True)
        agents = [agent for agent, _ in people.values()]
        at_agents = await asyncio.gather(*(_levels(agent, SUPERVISOR_HZ) for agent in agents))
        for name, levels in zip(people, at_agents, strict=True):
            check(step, f"supervisor at {name}'s agent", levels[0], heard=False)

        step = "whisper"
        agent1, customer1 = people["call 1"]
        say("supervisor: whisper to agent1 (audience ['agent1'], call 1 resumed): only agent1 hears me")
        await calls["call 1"].set_microphone_audience(["agent1"])
        await calls["call 1"].resume_audio()
        await asyncio.sleep(SETTLE_S)
        at_agent, at_customer = await asyncio.gather(
            _levels(agent1, SUPERVISOR_HZ), _levels(customer1, SUPERVISOR_HZ)
        )
        check(step, "supervisor at agent1", at_agent[0], heard=True)
        check(step, "supervisor at customer1", at_customer[0], heard=False)

        step = "barge in"
        say("supervisor: barge in (call 1: set_microphone_audience(None)): agent1 and customer1 both hear me")
        await calls["call 1"].set_microphone_audience(None)
        await asyncio.sleep(SETTLE_S)
        at_agent, at_customer = await asyncio.gather(
            _levels(agent1, SUPERVISOR_HZ), _levels(customer1, SUPERVISOR_HZ)
        )
        check(step, "supervisor at agent1", at_agent[0], heard=True)
        check(step, "supervisor at customer1", at_customer[0], heard=True)

        step = "hand back"
        say(
            "supervisor: hand back (call 1: suspend_audio(), ducked again): nobody hears me, "
            "I hear call 1's agent quietly on my left"
        )
        await calls["call 1"].suspend_audio()
        await asyncio.sleep(SETTLE_S)
        at_agent, at_customer, at_supervisor = await asyncio.gather(
            _levels(agent1, SUPERVISOR_HZ),
            _levels(customer1, SUPERVISOR_HZ),
            _levels(supervisor, CALLS["call 1"][0]),
        )
        check(step, "supervisor at agent1", at_agent[0], heard=False)
        check(step, "supervisor at customer1", at_customer[0], heard=False)
        left = at_supervisor[0]
        check(step, "call 1's agent, ducked, on the supervisor's left", left, heard=True)
    finally:
        for client in reversed(clients):
            await client.disconnect()
    return run
