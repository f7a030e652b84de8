"""How the demo looks: a live terminal view on a TTY, a plain timeline otherwise, and the summary."""

from __future__ import annotations

import asyncio
import contextlib

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from switchboard import CallStatus
from switchboard.demo.recorder import (
    FOCUSED_MIN_DBFS,
    SILENT_MAX_DBFS,
    Entry,
    Scenario,
    Segment,
)

SCENARIO_COUNT = 3
METER_WIDTH = 16
METER_FLOOR_DBFS = -80.0
EVENT_LINES = 12
ENTRY_STYLES = {"step": "bold", "event": "cyan", "state": "dim", "note": "green"}


def level_text(level: float) -> str:
    return "silent" if level <= -100.0 else f"{level:.0f} dBFS"


def meter(level: float, width: int = METER_WIDTH) -> Text:
    """A bar from -80 to 0 dBFS and the number: green when audible, dim when silent."""
    filled = round(max(0.0, min(1.0, (level - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS)) * width)
    style = "green" if level > FOCUSED_MIN_DBFS else "dim"
    text = Text("█" * filled, style=style)
    text.append("░" * (width - filled), style="grey30")
    text.append(f" {'silent' if level <= -100.0 else f'{level:.0f} dB':>7}", style=style)
    return text


def entry_text(entry: Entry) -> Text:
    text = Text(f"{entry.t:6.2f}s  ", style="dim")
    if entry.kind == "step":
        text.append(f"{entry.who:<10} ▶ ", style="bold")
        text.append(entry.text, style="bold")
    elif entry.kind == "note":
        text.append(f"{'':<10}   {entry.text}", style="green")
    else:
        text.append(f"{entry.who:<10}   ", style="dim")
        text.append(entry.text, style=ENTRY_STYLES.get(entry.kind, ""))
    return text


def scenario_header(sc: Scenario) -> str:
    return f"{sc.number}/{SCENARIO_COUNT} {sc.title} · MultiCallAudioPolicy.{sc.policy.name}"


def cast_lines(sc: Scenario) -> Text:
    text = Text()
    for voice in sc.voices:
        text.append(f"  {voice.label:<11}", style="bold")
        text.append(f"{voice.bot} speaks a {voice.hz:.0f} Hz tone\n")
    text.append(f"  {'me':<11}", style="bold")
    text.append(f"I speak a {sc.me_hz:.0f} Hz tone", style="")
    return text


class PlainView:
    """A timeline, one line per thing that happens: for pipes, CI logs and dumb terminals."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.current: Scenario | None = None

    def scenario_started(self, scenario: Scenario) -> None:
        self.current = scenario
        self.console.print()
        self.console.rule(scenario_header(scenario))
        self.console.print(scenario.blurb)
        self.console.print(cast_lines(scenario))
        self.console.print()

    def logged(self, scenario: Scenario, entry: Entry) -> None:
        self.console.print(entry_text(entry))

    def segments_closed(self, scenario: Scenario, segments: list[Segment]) -> None:
        for index, seg in enumerate(segments):
            when = f"{seg.from_s:.1f}-{seg.to_s:.1f} s" if index == 0 else ""
            text = Text(f"{'':9}┊ {when:<12}", style="dim")
            text.append_text(segment_line(seg))
            self.console.print(text)

    def scenario_finished(self, scenario: Scenario) -> None:
        pass


def _check(ok: bool) -> Text:
    return Text("✓", style="green") if ok else Text("✗", style="bold red")


def segment_line(seg: Segment) -> Text:
    """``room A  focused    I hear it  -15 dBFS ✓   it hears me  -15 dBFS ✓``"""
    style = "" if seg.focused else "dim"
    text = Text(f"{seg.voice.label:<11}")
    text.append(
        f"{'focused' if seg.focused else 'suspended':<11}", style="green" if seg.focused else "yellow"
    )
    text.append("I hear it ", style="dim")
    text.append(f"{level_text(seg.level_dbfs):>9} ", style=style)
    text.append_text(_check(seg.speaker_ok))
    text.append("   it hears me ", style="dim")
    text.append(f"{level_text(seg.mic_level_dbfs):>9} ", style=style)
    text.append_text(_check(seg.mic_ok) if seg.mic_checked else Text("·", style="dim"))
    return text


class LiveView:
    """The live terminal view: calls, focus, level meters and events, redrawn ten times a second."""

    def __init__(self, console: Console) -> None:
        self.console = console
        # fit the panel to the terminal: narrower meters and fewer event lines on small ones
        self.wide = console.width >= 100
        self.meter_width = METER_WIDTH if self.wide else 8
        self.event_lines = max(4, min(EVENT_LINES, console.height - 20))
        self.current: Scenario | None = None
        self._live: Live | None = None
        self._task: asyncio.Task[None] | None = None

    def scenario_started(self, scenario: Scenario) -> None:
        self.current = scenario
        self._live = Live(
            self.render(scenario), console=self.console, auto_refresh=False, vertical_overflow="visible"
        )
        self._live.start()
        self._task = asyncio.get_running_loop().create_task(self._refresh(scenario))

    async def _refresh(self, scenario: Scenario) -> None:
        while self._live is not None:
            self._live.update(self.render(scenario), refresh=True)
            await asyncio.sleep(0.1)

    def logged(self, scenario: Scenario, entry: Entry) -> None:
        pass

    def segments_closed(self, scenario: Scenario, segments: list[Segment]) -> None:
        pass

    def scenario_finished(self, scenario: Scenario) -> None:
        live, self._live = self._live, None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if live is not None:
            live.update(self.render(scenario), refresh=True)
            with contextlib.suppress(Exception):
                live.stop()

    def close(self) -> None:
        """Stop the view if a scenario failed half-way (the terminal gets its cursor back)."""
        live, self._live = self._live, None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if live is not None:
            live.stop()

    def render(self, sc: Scenario) -> RenderableType:
        now = Text("now  ", style="dim")
        now.append(sc.step or "starting", style="bold")
        events = Text("\n").join(entry_text(e) for e in sc.entries[-self.event_lines :])
        if sc.finished:  # what was measured stays on screen; the events have scrolled by
            body = Group(Text(sc.blurb, style="italic"), Text(""), segments_table(sc))
        else:
            body = Group(
                Text(sc.blurb, style="italic"),
                Text(""),
                now,
                Text(""),
                self.calls_table(sc),
                Text(""),
                Text("events", style="bold underline"),
                events,
            )
        clock = "done" if sc.finished else f"{sc.now():5.1f} s"
        return Panel(body, title=scenario_header(sc), subtitle=clock, border_style="blue", expand=True)

    def calls_table(self, sc: Scenario) -> Table:
        calls = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        calls.add_column("call", no_wrap=True, min_width=10)
        calls.add_column("voice", no_wrap=True)
        calls.add_column("focus", no_wrap=True, min_width=11)
        calls.add_column("I hear it" + (" (my speaker)" if self.wide else ""), no_wrap=True)
        calls.add_column("it hears me" + (" (my mic)" if self.wide else ""), no_wrap=True)
        for voice in sc.voices:
            state = sc.calls[voice.key].state.value
            joined = state.status is CallStatus.JOINED
            if joined and not state.is_audio_suspended:
                focus = Text("● focus", style="bold green")
            elif joined:
                focus = Text("◌ suspended", style="yellow")
            elif state.status is CallStatus.JOINING:
                focus = Text("… joining", style="yellow")
            else:
                focus = Text("· not joined", style="dim")
            calls.add_row(
                Text(voice.label, style="bold"),
                f"{voice.bot} {voice.hz:.0f} Hz",
                focus,
                meter(sc.speaker_level(voice.key), self.meter_width) if joined else Text(""),
                meter(sc.mic_level(voice.key), self.meter_width) if joined else Text(""),
            )
        return calls


def segments_table(sc: Scenario, title: str | None = None) -> Table:
    """Every segment of a scenario: what the policy says, what was measured both ways."""
    table = Table(title=title, title_style="bold", title_justify="left")
    table.add_column("time", justify="right", no_wrap=True, min_width=12)
    table.add_column("call", no_wrap=True, min_width=10)
    table.add_column("policy says", no_wrap=True, min_width=11)
    table.add_column("I hear it", justify="right", no_wrap=True, min_width=9)
    table.add_column("it hears me", justify="right", no_wrap=True, min_width=11)
    table.add_column("", justify="center", no_wrap=True)
    for seg in sc.segments:
        table.add_row(
            f"{seg.from_s:4.1f}-{seg.to_s:4.1f} s",
            seg.voice.label,
            Text("focused", style="green") if seg.focused else Text("suspended", style="yellow"),
            level_text(seg.level_dbfs),
            level_text(seg.mic_level_dbfs),
            _check(seg.ok),
        )
    return table


LEGEND = (
    f"A focused call must be above {FOCUSED_MIN_DBFS:.0f} dBFS both ways, a suspended one below "
    f"{SILENT_MAX_DBFS:.0f} dBFS (median of the 20 ms frames after a 0.3 s settle). A suspended call "
    "sends nothing: readings around -85 dBFS are the focused call's codec noise in the other tone's band."
)
