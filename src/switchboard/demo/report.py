"""The demo's outputs besides the terminal: the verdict, the JSON report and the PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from switchboard.demo.recorder import FOCUSED_MIN_DBFS, SILENT_MAX_DBFS, Scenario
from switchboard.media.analysis import SILENCE_DBFS

MIN_SEGMENTS = 6
COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red"]


def problems(scenarios: list[Scenario]) -> list[str]:
    """Everything that does not match the policies (empty: the run is correct)."""
    found: list[str] = []
    for sc in scenarios:
        found += [f"{sc.title}: {p}" for p in sc.problems]
        for seg in sc.segments:
            if seg.ok:
                continue
            want = (
                f"above {FOCUSED_MIN_DBFS:.0f}" if seg.focused else f"below {SILENT_MAX_DBFS:.0f}"
            ) + " dBFS"
            found.append(
                f"{sc.title}, {seg.from_s:.1f}-{seg.to_s:.1f} s, {seg.voice.label} "
                f"({'focused' if seg.focused else 'suspended'}): my speaker played it at "
                f"{seg.level_dbfs:.1f} dBFS, it heard me at {seg.mic_level_dbfs:.1f} dBFS; want both {want}"
            )
    total = sum(len(sc.segments) for sc in scenarios)
    if total < MIN_SEGMENTS:
        found.append(f"only {total} segments were measured (want at least {MIN_SEGMENTS})")
    return found


def write_json(scenarios: list[Scenario], path: str, extra: dict[str, object] | None = None) -> None:
    report: dict[str, object] = {"scenarios": [sc.to_json() for sc in scenarios], **(extra or {})}
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


def _smooth(values: list[float], frames: int = 5) -> np.ndarray:
    """Running median over ``frames`` frames (the meters' smoothing), for a readable line."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < frames:
        return x
    pad = frames // 2
    padded = np.pad(x, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, frames)
    return np.asarray(np.median(windows, axis=1), dtype=np.float64)


def _joined_mask(sc: Scenario, key: str, times: np.ndarray) -> np.ndarray:
    """Where call ``key`` was joined: its segments, with the short actions between them filled in."""
    mask = np.zeros(times.size, dtype=bool)
    spans: list[list[float]] = []
    for seg in sc.segments:
        if seg.voice.key != key:
            continue
        if spans and seg.from_s - spans[-1][1] < 0.5:
            spans[-1][1] = seg.to_s
        else:
            spans.append([seg.from_s, seg.to_s])
    for begin, end in spans:
        mask |= (times >= begin) & (times <= end + 0.02)
    return mask


def write_plot(scenarios: list[Scenario], path: str) -> None:
    """One panel per scenario: each call's voice at my speaker over time, focus changes marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(scenarios), 1, figsize=(13, 3.6 * len(scenarios)), squeeze=False)
    for ax, sc in zip(axes[:, 0], scenarios, strict=True):
        track = sc.speaker_track
        if track is None:
            continue
        times = np.asarray(track.times)
        end = max((c.end for c in sc.changes), default=float(times[-1]) if times.size else 1.0)
        keep = (times >= 0) & (times <= end + 0.3)
        for index, voice in enumerate(sc.voices):
            color = COLORS[index % len(COLORS)]
            for seg in sc.segments:
                if seg.voice.key == voice.key and seg.focused:
                    ax.axvspan(seg.from_s, seg.to_s, color=color, alpha=0.10, lw=0)
            levels = _smooth(track.levels[index])
            count = min(levels.size, times.size)
            joined = _joined_mask(sc, voice.key, times[:count])
            shown = np.where(joined & keep[:count], levels[:count], np.nan)
            ax.plot(
                times[:count],
                shown,
                color=color,
                lw=1.6,
                label=f"{voice.label} ({voice.bot}, {voice.hz:.0f} Hz)",
            )
        for change in sc.changes:
            ax.axvline(change.end, color="0.35", lw=0.8, ls="--")
            ax.text(
                change.end + 0.05,
                -4,
                change.short,
                rotation=0,
                fontsize=8.5,
                va="top",
                ha="left",
                color="0.2",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.8", "alpha": 0.9},
            )
        ax.axhline(FOCUSED_MIN_DBFS, color="green", lw=0.7, ls=":", label="focused: above -40 dBFS")
        ax.axhline(SILENT_MAX_DBFS, color="red", lw=0.7, ls=":", label="suspended: below -60 dBFS")
        ax.set_ylim(SILENCE_DBFS - 5, 8)
        ax.set_xlim(0, end + 0.9)
        ax.set_ylabel("level at my speaker (dBFS)")
        ax.set_title(
            f"{sc.number}. {sc.title}  (MultiCallAudioPolicy.{sc.policy.name}); shaded: the call in focus",
            fontsize=11,
            loc="left",
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
        ax.grid(alpha=0.25)
    axes[-1, 0].set_xlabel("seconds into the scenario")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
