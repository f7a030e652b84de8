"""``python -m benchmarks`` (``make bench``): run every benchmark, print a table, write bench-results.json.

Options: ``--quick`` (a shortened run, for smoke tests: the numbers are not meaningful), ``--only
join,switch,held,ducked,whisper,loss,sfu``, ``--output PATH``, ``--strict`` (exit 1 when a budget is missed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from rich.console import Console
from rich.table import Table

from benchmarks import browser, coordinators, engines, held, join, loss, sfu, switch, whisper
from benchmarks.common import (
    RESULTS_PATH,
    BenchResult,
    Budget,
    Json,
    Metric,
    machine_cpu_seconds,
    machine_info,
    utc_now,
)

#: the whole run must finish within this; the SFU ramp (last) uses what is left
TOTAL_BUDGET_S = 720.0


@dataclass(frozen=True)
class Plan:
    quick: bool
    started: float

    def remaining(self) -> float:
        return TOTAL_BUDGET_S - (time.monotonic() - self.started)


Runner = Callable[[Path, Plan], Awaitable[BenchResult]]


async def _join(log_dir: Path, plan: Plan) -> BenchResult:
    return await join.run(log_dir, runs=2 if plan.quick else 7)


async def _switch(log_dir: Path, plan: Plan) -> BenchResult:
    return await switch.run(log_dir, switches=6 if plan.quick else 24, gap=0.5 if plan.quick else 0.6)


async def _held(log_dir: Path, plan: Plan) -> BenchResult:
    if plan.quick:
        return await held.run(log_dir, runs=1, suspended=5, window_s=3.0, settle_s=1.0)
    return await held.run(log_dir, runs=3, suspended=20, window_s=30.0, settle_s=3.0)


async def _ducked(log_dir: Path, plan: Plan) -> BenchResult:
    if plan.quick:
        return await held.run(log_dir, runs=1, suspended=5, window_s=3.0, settle_s=1.0, mode="ducked")
    return await held.run(log_dir, runs=3, suspended=20, window_s=30.0, settle_s=3.0, mode="ducked")


async def _whisper(log_dir: Path, plan: Plan) -> BenchResult:
    return await whisper.run(log_dir, rounds=3 if plan.quick else 10)


async def _loss(log_dir: Path, plan: Plan) -> BenchResult:
    if plan.quick:
        return await loss.run(log_dir, seconds=3.0, losses=(loss.TARGET_LOSS,))
    return await loss.run(log_dir, seconds=15.0)


async def _coordinators(log_dir: Path, plan: Plan) -> BenchResult:
    return await coordinators.run(log_dir, rings=10 if plan.quick else 200)


async def _sfu(log_dir: Path, plan: Plan) -> BenchResult:
    if plan.quick:
        return await sfu.run(log_dir, frames=100, bursts=4, ramp_budget_s=15.0, levels=(1, 2))
    budget = max(30.0, min(150.0, plan.remaining() - 40.0))
    return await sfu.run(log_dir, frames=400, bursts=20, ramp_budget_s=budget)


async def _engines(log_dir: Path, plan: Plan) -> BenchResult:
    if plan.quick:
        return await engines.run(log_dir, frames=100, budget_s=15.0, levels=(1, 2))
    return await engines.run(log_dir, frames=300, budget_s=75.0)


async def _browser(log_dir: Path, plan: Plan) -> BenchResult:
    return await browser.run(log_dir, bursts=3 if plan.quick else 20)


BENCHMARKS: dict[str, Runner] = {
    "join": _join,
    "switch": _switch,
    "held": _held,
    "ducked": _ducked,
    "whisper": _whisper,
    "loss": _loss,
    "browser": _browser,
    "coordinators": _coordinators,
    "sfu": _sfu,
    "engines": _engines,
}

#: headline keys, reported (as failed when budgeted) even if their benchmark crashed
HEADLINE: dict[str, list[tuple[str, str, Budget | None]]] = {
    "join": [
        ("join_ratio_vs_aiortc", "x", Budget("<=", 1.5)),
        ("join_ms_p50", "ms", None),
        ("aiortc_p2p_ms_p50", "ms", None),
    ],
    "switch": [
        ("switch_silence_ms_p50", "ms", None),
        ("switch_silence_ms_p95", "ms", Budget("<=", 20.0)),
        ("switch_audible_ms_p50", "ms", None),
        ("switch_audible_ms_p95", "ms", Budget("<=", 100.0)),
    ],
    "held": [("held_calls_cpu_ratio", "x", Budget("<=", 2.0))],
    "ducked": [("ducked_calls_cpu_ratio", "x", None)],
    "whisper": [("whisper_on_ms_p50", "ms", None), ("whisper_off_ms_p50", "ms", None)],
    "loss": [("loss_10pct_fec_plc_on_share", "share", Budget(">=", 0.98))],
    "browser": [
        ("browser_to_python_m2e_ms_p50", "ms", None),
        ("browser_to_python_m2e_ms_p95", "ms", None),
        ("python_to_browser_m2e_ms_p50", "ms", None),
        ("python_to_browser_m2e_ms_p95", "ms", None),
        ("python_to_python_m2e_ms_p50", "ms", None),
        ("python_to_python_m2e_ms_p95", "ms", None),
    ],
    "coordinators": [
        ("ring_latency_1_coordinator_ms_p50", "ms", None),
        ("ring_latency_1_coordinator_ms_p95", "ms", None),
        ("ring_latency_2_coordinators_ms_p50", "ms", None),
        ("ring_latency_2_coordinators_ms_p95", "ms", None),
        ("sfu_place_new_ms_p50", "ms", None),
        ("sfu_place_sticky_ms_p50", "ms", None),
        ("sfu_heartbeat_ms_p50", "ms", None),
    ],
    "sfu": [
        ("sfu_audio_downtracks_per_core", "tracks/core", None),
        ("mouth_to_ear_ms_p50", "ms", None),
        ("mouth_to_ear_ms_p95", "ms", None),
    ],
    "engines": [
        ("embedded_audio_downtracks_per_core", "tracks/core", Budget(">=", 600.0)),
        ("embedded_aiortc_sender_audio_downtracks_per_core", "tracks/core", None),
        ("janus_audio_downtracks_per_core", "tracks/core", None),
    ],
}


async def run_all(names: list[str], quick: bool, log_dir: Path) -> list[BenchResult]:
    plan = Plan(quick, time.monotonic())
    console = Console(stderr=True)
    results: list[BenchResult] = []
    for name in names:
        console.print(f"[bold]{name}[/bold] ...", end=" ")
        t0, (busy0, _, _) = time.monotonic(), machine_cpu_seconds()
        try:
            result = await BENCHMARKS[name](log_dir, plan)
        except Exception as exc:
            logging.getLogger("benchmarks").exception("%s failed", name)
            result = BenchResult(name, error=f"{type(exc).__name__}: {exc}")
            for key, unit, budget in HEADLINE[name]:
                result.add(key, None, unit, "not measured: the benchmark failed", budget)
        result.wall_s = time.monotonic() - t0
        busy1, _, _ = machine_cpu_seconds()
        result.details["machine_busy_cores_avg"] = round((busy1 - busy0) / result.wall_s, 2)
        console.print(
            f"{result.wall_s:.0f} s" + (f" [red]FAILED: {result.error}[/red]" if result.error else "")
        )
        results.append(result)
    return results


def _finite(value: object) -> object:
    """JSON has no inf/NaN: they become null (a latency that was never observed in its window)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(results: list[BenchResult], quick: bool, wall_s: float, log_dir: Path) -> Json:
    out: Json = {
        "metadata": {
            "date": utc_now(),
            "machine": machine_info(),
            "load_average": list(os.getloadavg()),
            "quick": quick,
            "wall_s": round(wall_s, 1),
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", *sys.argv[1:]]),
            "logs": str(log_dir),
        }
    }
    for result in results:
        for metric in result.metrics:
            out[metric.key] = metric.to_json()
    out["benchmarks"] = {
        r.name: {"wall_s": round(r.wall_s, 1), "error": r.error, "details": r.details} for r in results
    }
    return cast(Json, _finite(out))


def _fmt(metric: Metric) -> str:
    if metric.value is None:
        return "-"
    v = metric.value
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"


def print_report(results: list[BenchResult], wall_s: float, quick: bool) -> None:
    console = Console()
    title = "switchboard benchmarks" + (" (--quick: not meaningful)" if quick else "")
    table = Table(title=title)
    for column in ("metric", "value", "unit", "budget", "result"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for result in results:
        for metric in result.metrics:
            verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: ""}[metric.passed]
            table.add_row(metric.key, _fmt(metric), metric.unit, str(metric.budget or ""), verdict)
    console.print(table)
    for result in results:
        d = result.details
        if result.name == "join" and "sdk_milestones_ms_p50" in d:
            console.print(f"join milestones (ms, p50): SDK {d['sdk_milestones_ms_p50']}")
            console.print(f"                           P2P {d['p2p_milestones_ms_p50']}")
        if result.name == "switch" and "stale_audio_ms" in d:
            console.print(f"switch: stale audio played after each resume (ms): {d['stale_audio_ms']}")
        if result.name == "sfu" and d.get("levels"):
            levels = Table(title="SFU load ramp (rooms of 2 publishers + 10 listeners)")
            columns = (
                "down-tracks",
                "SFU cores",
                "tracks/core",
                "loss %",
                "lost at",
                "probe m2e p95",
                "holds",
            )
            for column in columns:
                levels.add_column(column, justify="right")
            for lv in d["levels"]:
                levels.add_row(
                    str(lv["downtracks"]),
                    f"{lv['sfu_cores']:.2f}",
                    f"{lv['downtracks_per_core']:.0f}",
                    f"{100 * lv['loss_e2e']:.2f}",
                    lv["lost_at"],
                    f"{lv['probe_m2e_ms_p95']:.0f} ms",
                    "yes" if lv["holds"] else "[red]no[/red]",
                )
            console.print(levels)
            console.print(f"SFU ramp stopped by {d['ramp_stopped_by']}")
        for metric in result.metrics:
            if metric.note:
                console.print(f"{metric.key}: {metric.note}")
    console.print(f"wall time {wall_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a short run (smoke test; numbers not meaningful)"
    )
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help="comma-separated: join,switch,held,ducked,whisper,loss,browser,coordinators,sfu,engines",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the JSON results")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log_dir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    started = time.monotonic()
    results = asyncio.run(run_all(names, args.quick, log_dir))
    wall_s = time.monotonic() - started
    data = to_json(results, args.quick, wall_s, log_dir)
    args.output.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    print_report(results, wall_s, args.quick)
    Console().print(f"results: {args.output}  (helper process logs: {log_dir})")
    if any(r.error for r in results):
        return 1
    if args.strict and any(m.passed is False for r in results for m in r.metrics):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
