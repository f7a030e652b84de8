"""Focus switch (SPEC §5): after ``client.switch_focus(a, b)`` returns, how soon is room A silent and
room B audible at the speaker?

Rooms A and B each have a bot (another process) playing its own tone; "me" is joined to both under
``SUSPEND_INCOMING`` with the microphone on, so A has the focus. Then ``switch_focus`` goes A->B, B->A,
... with a pause between switches. Everything is read afterwards from the speaker's sample timeline:
each 20 ms frame carries the loop time it was played at (``time_of_sample``), and
``frame_tone_levels`` gives each tone's level per frame. A tone counts as present in a frame when it is
above the threshold *and* a spectral peak (10 dB above the bands 250 Hz either side): the first frames
after a switch carry onset transients whose broadband leakage would otherwise read as every tone.

* silent: the first frame from which the old room's tones stay absent at -60 dBFS (until the next
  switch); ``silence_ms`` = that frame's start - the time ``switch_focus`` returned (0 if the frame
  playing when it returned was already silent). One frame is 20 ms: the frame being played when the
  call returns was mixed before it.
* audible: the first frame carrying the new room's *live* audio above -40 dBFS. Each bot alternates
  between two frequencies: while its room is suspended (just before the switch that resumes it) it
  changes tone, so audio from before the suspension (still queued somewhere when the room resumes) is
  told apart from live audio. Stale audio played after a switch (frames where the old tone is not
  silent, i.e. above -60 dBFS) is reported separately (``stale_audio_ms``), as is the first frame of
  *any* audio of the new room.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks.bots import BotSpec, start_bots
from benchmarks.common import (
    AUDIBLE_DBFS,
    SILENT_DBFS,
    BenchResult,
    Budget,
    Child,
    make_client,
    percentile,
    start_server,
    wait_audible,
)
from switchboard import Call, CallConnectOptions, MultiCallAudioPolicy, TrackOption, VideoClient
from switchboard.media import CaptureSpeaker, ToneMicrophone
from switchboard.media.analysis import frame_tone_levels
from switchboard.media.audio_format import FRAME_SAMPLES, FloatArray

# Two tones per room, the rooms in separate bands (20 ms frames resolve 50 Hz bins).
ROOM_TONES = {"a": (400.0, 1000.0), "b": (1700.0, 2600.0)}
#: a tone counts as present in a frame only if it also stands this far above the bands 250 Hz to
#: either side: the first frames after a switch carry onset transients whose broadband leakage would
#: otherwise read as a quiet tone at every frequency
PEAK_DB = 10.0
ME_HZ = 3000.0
#: after a bot changes its tone, wait this long before the switch: the new tone is then what the
#: bot sends (and what the SFU drops, the room being suspended)
TONE_LEAD_S = 0.15
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())


@dataclass
class SwitchSample:
    call_ms: float  # how long switch_focus() itself took
    silence_ms: float
    audible_ms: float
    any_audio_ms: float  # first frame of the new room's audio, live or stale
    stale_ms: float  # stale audio of the new room played after the switch (20 ms per frame)
    pre_ok: bool  # before the switch: old room audible, new room silent
    dropouts: int  # frames after first audible where the new room fell below the audible threshold
    old_level_after: float  # loudest level at an old-room frequency once silent (dBFS, leakage included)


def tone_present(samples: FloatArray, hz: float, threshold_dbfs: float) -> npt.NDArray[np.bool_]:
    """Per 20 ms frame: is ``hz`` above ``threshold_dbfs`` *and* a spectral peak (not leakage)?"""
    level = frame_tone_levels(samples, hz)
    neighbours = np.maximum(frame_tone_levels(samples, hz - 250.0), frame_tone_levels(samples, hz + 250.0))
    return np.asarray((level >= threshold_dbfs) & (level >= neighbours + PEAK_DB), dtype=np.bool_)


def analyse_switch(
    speaker: CaptureSpeaker,
    t_call: float,
    t_ret: float,
    t_end: float,
    old_hzs: tuple[float, ...],
    new_hz: float,
    stale_hz: float | None = None,
) -> SwitchSample:
    """Read one switch off the speaker's timeline (``t_end``: end of the observation window).

    ``old_hzs``: the tones of the room losing focus (all must go silent); ``new_hz``: the live tone of
    the room gaining focus; ``stale_hz``: what that room played before it was suspended.
    """
    first = speaker.sample_at_time(t_ret) // FRAME_SAMPLES  # the frame playing when the call returned
    last = speaker.sample_at_time(t_end) // FRAME_SAMPLES
    called = speaker.sample_at_time(t_call) // FRAME_SAMPLES  # frames before it are the steady state
    pre = max(called - 10, speaker.first_retained_sample // FRAME_SAMPLES)
    before = speaker.samples_range(pre * FRAME_SAMPLES, called * FRAME_SAMPLES)
    new_hzs = (new_hz,) if stale_hz is None else (new_hz, stale_hz)
    pre_ok = bool(
        before.size
        and any(np.all(tone_present(before, hz, AUDIBLE_DBFS)) for hz in old_hzs)
        and not any(np.any(tone_present(before, hz, SILENT_DBFS)) for hz in new_hzs)
    )
    samples = speaker.samples_range(first * FRAME_SAMPLES, last * FRAME_SAMPLES)
    old_heard = np.any([tone_present(samples, hz, SILENT_DBFS) for hz in old_hzs], axis=0)
    new = tone_present(samples, new_hz, AUDIBLE_DBFS)
    # stale audio counts as soon as it is not silent: a -45 dBFS tone is clearly heard
    stale = tone_present(samples, stale_hz, SILENT_DBFS) if stale_hz is not None else np.zeros_like(new)

    def start_ms(k: int) -> float:
        t = speaker.time_of_sample((first + k) * FRAME_SAMPLES)
        return max(0.0, (t - t_ret) * 1000.0)

    loud = np.flatnonzero(old_heard)
    k_silent = int(loud[-1]) + 1 if loud.size else 0
    silence_ms = start_ms(k_silent) if k_silent < old_heard.size else math.inf
    heard = np.flatnonzero(new)
    audible_ms = start_ms(int(heard[0])) if heard.size else math.inf
    anything = np.flatnonzero(new | stale)
    any_ms = start_ms(int(anything[0])) if anything.size else math.inf
    stale_ms = 20.0 * int(np.count_nonzero(stale))
    dropouts = int(np.count_nonzero(~new[int(heard[0]) :])) if heard.size else 0
    levels_after = np.max([frame_tone_levels(samples, hz) for hz in old_hzs], axis=0)[k_silent:]
    old_after = float(levels_after.max()) if levels_after.size else 0.0
    return SwitchSample(
        (t_ret - t_call) * 1000.0, silence_ms, audible_ms, any_ms, stale_ms, pre_ok, dropouts, old_after
    )


@dataclass
class _Room:
    call: Call
    bot: str
    tones: tuple[float, float]
    index: int = 0
    previous: float | None = None  # what it played before it was last suspended

    @property
    def hz(self) -> float:
        return self.tones[self.index]


async def measure_switches(
    client: VideoClient, speaker: CaptureSpeaker, bots: Child, rooms: list[_Room], switches: int, gap: float
) -> list[SwitchSample]:
    loop = asyncio.get_running_loop()
    events: list[tuple[float, float, tuple[float, ...], float, float | None]] = []
    current, other = rooms
    for _ in range(switches):
        await asyncio.sleep(max(0.0, gap - TONE_LEAD_S))
        # the suspended room changes its tone: anything of its old tone heard after the switch is stale
        other.previous = other.hz
        other.index = 1 - other.index
        await bots.request({"cmd": "tone", "user": other.bot, "hz": other.hz})
        await asyncio.sleep(TONE_LEAD_S)
        t_call = loop.time()
        await client.switch_focus(current.call, other.call)
        t_ret = loop.time()
        events.append((t_call, t_ret, current.tones, other.hz, other.previous))
        current, other = other, current
    await asyncio.sleep(gap)
    samples: list[SwitchSample] = []
    for i, (t_call, t_ret, old_hzs, new_hz, stale_hz) in enumerate(events):
        t_end = events[i + 1][0] - TONE_LEAD_S if i + 1 < len(events) else loop.time() - 0.05
        samples.append(analyse_switch(speaker, t_call, t_ret, t_end, old_hzs, new_hz, stale_hz))
    return samples


async def run(log_dir: Path, switches: int = 24, gap: float = 0.6) -> BenchResult:
    result = BenchResult("switch")
    server_child, server = await start_server(log_dir, "switch-server")
    children: list[Child] = [server_child]
    try:
        specs = [BotSpec(f"switch-bot-{r}", f"switch-{r}", tones[0]) for r, tones in ROOM_TONES.items()]
        bots = await start_bots(server, specs, log_dir, "switch-bots")
        children.append(bots)
        speaker = CaptureSpeaker(max_seconds=max(60.0, switches * gap * 2 + 10))
        me = make_client(
            server,
            "switch-me",
            microphone=ToneMicrophone(ME_HZ),
            speaker=speaker,
            multi=True,
            policy=MultiCallAudioPolicy.SUSPEND_INCOMING,
        )
        await me.connect()
        try:
            a, b = me.make_call("default", "switch-a"), me.make_call("default", "switch-b")
            for call in (a, b):
                await call.get_or_create()
                await call.join(MIC_ON)
            if not b.state.value.is_audio_suspended or a.state.value.is_audio_suspended:
                raise RuntimeError("SUSPEND_INCOMING did not leave A focused and B suspended")
            if not await wait_audible(speaker, ROOM_TONES["a"][0]):
                raise RuntimeError("room A's tone never reached the speaker")
            rooms = [_Room(a, "switch-bot-a", ROOM_TONES["a"]), _Room(b, "switch-bot-b", ROOM_TONES["b"])]
            samples = await measure_switches(me, speaker, bots, rooms, switches, gap)
        finally:
            await me.disconnect()
    finally:
        for child in reversed(children):
            await child.stop()

    silence = [s.silence_ms for s in samples]
    audible = [s.audible_ms for s in samples]
    calls = [s.call_ms for s in samples]
    any_audio = [s.any_audio_ms for s in samples]
    stale = [s.stale_ms for s in samples]
    result.add(
        "switch_silence_ms_p50", percentile(silence, 50), "ms", "switch_focus returned -> old room silent"
    )
    result.add(
        "switch_silence_ms_p95",
        percentile(silence, 95),
        "ms",
        "switch_focus returned -> old room silent (< -60 dBFS)",
        Budget("<=", 20.0),
    )
    result.add(
        "switch_audible_ms_p50", percentile(audible, 50), "ms", "switch_focus returned -> new room audible"
    )
    result.add(
        "switch_audible_ms_p95",
        percentile(audible, 95),
        "ms",
        "switch_focus returned -> new room's live audio audible (> -40 dBFS)",
        Budget("<=", 100.0),
    )
    result.add(
        "switch_any_audio_ms_p95",
        percentile(any_audio, 95),
        "ms",
        "switch_focus returned -> first audio of the new room, stale or live",
    )
    result.add(
        "switch_stale_audio_ms_p50",
        percentile(stale, 50),
        "ms",
        "audio from before the room's suspension played after it resumed",
    )
    result.add(
        "switch_call_ms_p50", percentile(calls, 50), "ms", "duration of the switch_focus() call itself"
    )
    result.details = {
        "switches": len(samples),
        "gap_s": gap,
        "silence_ms": [round(v, 1) for v in silence],
        "audible_ms": [round(v, 1) for v in audible],
        "any_audio_ms": [round(v, 1) for v in any_audio],
        "stale_audio_ms": [round(v, 1) for v in stale],
        "switch_call_ms": [round(v, 1) for v in calls],
        "switch_call_ms_p95": round(percentile(calls, 95), 1),
        "pre_state_not_steady": [i for i, s in enumerate(samples) if not s.pre_ok],
        "dropout_frames_after_audible": [s.dropouts for s in samples],
        "old_room_max_dbfs_once_silent": round(max(s.old_level_after for s in samples), 1),
    }
    return result
