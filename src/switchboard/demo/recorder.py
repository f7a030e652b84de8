"""What the demo measures while a scenario runs, and how it cuts the run into segments.

Every remote participant is a bot speaking its own tone, so one FFT per 20 ms frame tells which call
is reaching a speaker. Two things are metered for each call of a scenario:

* **speaker**: that call's bot tone at *my* speaker (the audio focus of my speaker);
* **mic**: *my* tone at the speaker of the bot that listens in that call (the focus of my microphone).

A scenario is a list of focus changes (a join, a ``switch_focus``, a leave, ...). The time between two
changes is one segment per joined call; its level is the median of the per-frame levels after a
300 ms settle. A focused call must be audible both ways, every other call silent both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from switchboard import Call, CallStatus, MultiCallAudioPolicy, VideoClient
from switchboard.media import CaptureSpeaker
from switchboard.media.analysis import SILENCE_DBFS, tone_levels_dbfs
from switchboard.media.audio_format import FloatArray

SETTLE_S = 0.3
FOCUSED_MIN_DBFS = -40.0
SILENT_MAX_DBFS = -60.0
#: what the live meters average over (frames of 20 ms)
METER_FRAMES = 5


@dataclass(frozen=True)
class Voice:
    """One call of a scenario: the bot speaking in it and that bot's tone."""

    key: str
    label: str
    cid: str
    bot: str
    hz: float


class LevelTrack:
    """Per-frame levels of a few tones at one speaker, stamped with scenario time (its on_tick hook)."""

    def __init__(self, speaker: CaptureSpeaker, hzs: list[float], t0: float) -> None:
        self.speaker = speaker
        self.hzs = hzs
        self.t0 = t0
        self.times: list[float] = []
        self.levels: list[list[float]] = [[] for _ in hzs]

    def _tick(self, t: float, frame: FloatArray) -> None:
        self.times.append(t - self.t0)
        for series, level in zip(self.levels, tone_levels_dbfs(frame, self.hzs), strict=True):
            series.append(level)

    def attach(self) -> None:
        self.speaker.on_tick.append(self._tick)

    def detach(self) -> None:
        if self._tick in self.speaker.on_tick:
            self.speaker.on_tick.remove(self._tick)

    def median(self, index: int, start: float, end: float) -> float:
        """Median per-frame level of tone ``index`` over frames played in ``[start, end)`` (scenario s)."""
        times = np.asarray(self.times)
        picked = np.asarray(self.levels[index])[(times >= start) & (times < end)]
        return float(np.median(picked)) if picked.size else SILENCE_DBFS

    def recent(self, index: int, frames: int = METER_FRAMES) -> float:
        series = self.levels[index][-frames:]
        return float(np.median(series)) if series else SILENCE_DBFS


@dataclass(frozen=True)
class Segment:
    voice: Voice
    from_s: float
    to_s: float
    focused: bool
    level_dbfs: float
    mic_level_dbfs: float
    #: False when my microphone is a real one: it carries no known tone, its level is only shown
    mic_checked: bool = True

    @property
    def speaker_ok(self) -> bool:
        return _as_expected(self.level_dbfs, self.focused)

    @property
    def mic_ok(self) -> bool:
        return _as_expected(self.mic_level_dbfs, self.focused)

    @property
    def ok(self) -> bool:
        return self.speaker_ok and (self.mic_ok or not self.mic_checked)

    def to_json(self) -> dict[str, object]:
        return {
            "call": self.voice.cid,
            "label": self.voice.label,
            "from_s": round(self.from_s, 3),
            "to_s": round(self.to_s, 3),
            "focused": self.focused,
            "level_dbfs": round(self.level_dbfs, 1),
            "mic_level_dbfs": round(self.mic_level_dbfs, 1),
        }


def _as_expected(level: float, focused: bool) -> bool:
    return level > FOCUSED_MIN_DBFS if focused else level < SILENT_MAX_DBFS


@dataclass(frozen=True)
class Change:
    """A focus change: the action ran from ``start`` to ``end``; afterwards ``focus`` holds."""

    what: str
    short: str
    start: float
    end: float
    focus: Mapping[str, bool]


@dataclass(frozen=True)
class Entry:
    """One line of the event log."""

    t: float
    who: str
    text: str
    kind: str = "event"  # "step" (what the demo does), "event" (what the SDK reports), "state", "note"


class Narrator(Protocol):
    """How a scenario is shown: a live terminal view or a plain timeline."""

    def scenario_started(self, scenario: Scenario) -> None: ...

    def logged(self, scenario: Scenario, entry: Entry) -> None: ...

    def segments_closed(self, scenario: Scenario, segments: list[Segment]) -> None: ...

    def scenario_finished(self, scenario: Scenario) -> None: ...


@dataclass
class Scenario:
    """One use case being played: its calls, what was measured, what happened."""

    number: int
    name: str
    title: str
    blurb: str
    policy: MultiCallAudioPolicy
    voices: list[Voice]
    me: VideoClient
    me_hz: float
    calls: dict[str, Call]
    listeners: dict[str, CaptureSpeaker]
    narrator: Narrator
    #: whether my microphone's tone is checked at the bots (not when it is a real microphone)
    check_mic: bool = True
    t0: float = 0.0
    speaker_track: LevelTrack | None = None
    mic_tracks: dict[str, LevelTrack] = field(default_factory=dict)
    focus: dict[str, bool] = field(default_factory=dict)
    focus_since: float = 0.0
    step: str = ""
    changes: list[Change] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    finished: bool = False
    _unsubscribe: list[Callable[[], None]] = field(default_factory=list)

    # ---------------------------------------------------------------- lifecycle

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    def voice(self, key: str) -> Voice:
        return next(v for v in self.voices if v.key == key)

    def start(self) -> None:
        """Start the clock and the meters, and log what the SDK reports about my calls from now on."""
        self.t0 = asyncio.get_running_loop().time()
        speaker = self.me.capture_speaker
        self.speaker_track = LevelTrack(speaker, [v.hz for v in self.voices], self.t0)
        self.speaker_track.attach()
        for key, listener in self.listeners.items():
            self.mic_tracks[key] = LevelTrack(listener, [self.me_hz], self.t0)
            self.mic_tracks[key].attach()
        labels = {v.cid: v.label for v in self.voices}

        def on_active(calls: list[Call]) -> None:
            self.log("me", f"active_calls = [{', '.join(labels.get(c.cid, c.cid) for c in calls)}]", "state")

        def on_incoming(call: Call | None) -> None:
            self.log("me", f"incoming_call = {labels.get(call.cid, call.cid) if call else None}", "state")

        self._unsubscribe += [
            self.me.state.active_calls.listen(on_active),
            self.me.state.incoming_call.listen(on_incoming),
        ]
        for voice in self.voices:
            self._unsubscribe.append(self.calls[voice.key].on("*", self._event_logger(voice)))
        self.narrator.scenario_started(self)

    def finish(self) -> None:
        self._close_segments(self.now())
        self.focus = {}
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self.speaker_track is not None:
            self.speaker_track.detach()
        for track in self.mic_tracks.values():
            track.detach()
        self.step = "done"
        self.finished = True
        self.narrator.scenario_finished(self)

    # ---------------------------------------------------------------- the log

    def log(self, who: str, text: str, kind: str = "event") -> None:
        entry = Entry(self.now(), who, text, kind)
        self.entries.append(entry)
        self.narrator.logged(self, entry)

    def _event_logger(self, voice: Voice) -> Callable[[object], None]:
        def on_event(event: object) -> None:
            text = describe_event(event, self.me.user.id)
            if text is not None:
                self.log(voice.label, text)

        return on_event

    # ---------------------------------------------------------------- focus changes and segments

    @contextlib.asynccontextmanager
    async def change(self, what: str, short: str, focus: Mapping[str, bool]) -> AsyncIterator[None]:
        """Run a focus change: segments so far end when it starts, new ones begin when it is done.

        ``focus`` is what the policy says must hold afterwards: joined call key -> focused. It is
        checked against the SDK's own state (``is_audio_suspended``, ``active_calls``).
        """
        start = self.now()
        self._close_segments(start)
        self.step = what
        self.log("me", what, "step")
        yield
        end = self.now()
        self.changes.append(Change(what, short, start, end, dict(focus)))
        self.focus, self.focus_since = dict(focus), end
        self._check_state(what)
        focused = [self.voice(k).label for k, on in focus.items() if on]
        background = [self.voice(k).label for k, on in focus.items() if not on]
        summary = f"focus: {', '.join(focused) or 'none'}"
        if background:
            summary += f"   suspended: {', '.join(background)}"
        self.log("me", summary, "note")

    def _check_state(self, what: str) -> None:
        joined = {self.calls[k].cid for k in self.focus}
        active = {c.cid for c in self.me.state.active_calls.value}
        if active != joined:
            self.problems.append(
                f"after {what!r}: active_calls is {sorted(active)}, expected {sorted(joined)}"
            )
        for key, focused in self.focus.items():
            state = self.calls[key].state.value
            if state.status is not CallStatus.JOINED:
                self.problems.append(f"after {what!r}: {self.voice(key).label} is {state.status.value}")
            if state.is_audio_suspended == focused:
                expected = "resumed" if focused else "suspended"
                self.problems.append(
                    f"after {what!r}: {self.voice(key).label} should be {expected} by "
                    f"{self.policy.name}, but is_audio_suspended={state.is_audio_suspended}"
                )

    def _close_segments(self, end: float) -> None:
        if not self.focus or self.speaker_track is None:
            return
        begin = self.focus_since
        closed: list[Segment] = []
        for index, voice in enumerate(self.voices):
            if voice.key not in self.focus:
                continue
            speaker = self.speaker_track.median(index, begin + SETTLE_S, end)
            mic_track = self.mic_tracks.get(voice.key)
            mic = mic_track.median(0, begin + SETTLE_S, end) if mic_track else SILENCE_DBFS
            closed.append(Segment(voice, begin, end, self.focus[voice.key], speaker, mic, self.check_mic))
        self.segments += closed
        self.focus = {}
        self.narrator.segments_closed(self, closed)

    async def hold(self, seconds: float, note: str | None = None) -> None:
        """Let the current focus play for ``seconds`` (the meters keep running)."""
        if note:
            self.step = note
        await asyncio.sleep(seconds)

    # ---------------------------------------------------------------- reading the meters

    def speaker_level(self, key: str) -> float:
        if self.speaker_track is None:
            return SILENCE_DBFS
        index = next(i for i, v in enumerate(self.voices) if v.key == key)
        return self.speaker_track.recent(index)

    def mic_level(self, key: str) -> float:
        track = self.mic_tracks.get(key)
        return track.recent(0) if track else SILENCE_DBFS

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.segments)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "policy": self.policy.name,
            "segments": [s.to_json() for s in self.segments],
            "focus_changes": [
                {"what": c.what, "from_s": round(c.start, 3), "to_s": round(c.end, 3)} for c in self.changes
            ],
            "problems": list(self.problems),
        }


def describe_event(event: object, me: str) -> str | None:
    """A short line for the SDK events worth showing (None: not shown)."""
    kind = getattr(event, "type", "")
    data = getattr(event, "data", {}) or {}
    user = getattr(getattr(event, "user", None), "id", None)
    if kind in ("call.audio_suspended", "call.audio_resumed"):
        return kind
    if kind in ("call.session_participant_joined", "call.session_participant_left"):
        who = getattr(event, "user_id", "?")
        return f"{kind}  ({who})" if who != me else None
    if kind == "call.ring":
        return f"call.ring  ({user} is calling)"
    if kind == "call.accepted":
        return f"call.accepted  (by {user})"
    if kind == "call.live_started":
        return "call.live_started"
    if kind == "call.left":
        return f"call.left  ({data.get('reason', '')})"
    if kind == "call.ended":
        return "call.ended"
    return None
