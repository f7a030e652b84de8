"""Held calls (SPEC §5): CPU of one client process holding 1 active + 20 suspended calls, over the same
process holding the active call alone.

Processes: the server (``benchmarks.server``), the bots (``benchmarks.bots``: one per room, each
publishing a tone) and, per run, a fresh client process (``benchmarks.held_client``) that does
nothing but the calls. CPU is ``getrusage(RUSAGE_SELF)`` user + system time of the client process
over a window of at least 30 s; the active call alone is measured first, then with the 20 suspended
calls joined. Median of 3 runs. The client also reports, per window, frames decoded and encoded for
the suspended calls and the frames the SFU sent to their sessions: all should be 0.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.bots import BotSpec, start_bots
from benchmarks.common import BenchResult, Budget, Child, Json, median, start_server

BOT_HZ = 600.0


async def run(
    log_dir: Path,
    runs: int = 3,
    suspended: int = 20,
    window_s: float = 30.0,
    settle_s: float = 3.0,
    mode: str = "silent",
) -> BenchResult:
    """``mode`` "silent" (the held benchmark) or "ducked" (the ducked one: the 20 calls keep playing)."""
    ducked = mode == "ducked"
    result = BenchResult("ducked" if ducked else "held")
    prefix = "ducked" if ducked else "held"
    server_child, server = await start_server(log_dir, "held-server")
    children: list[Child] = [server_child]
    reports: list[Json] = []
    try:
        rooms = [f"held-{i}" for i in range(suspended + 1)]
        children.append(
            await start_bots(
                server,
                [BotSpec(f"held-bot-{i}", r, BOT_HZ) for i, r in enumerate(rooms)],
                log_dir,
                "held-bots",
            )
        )
        for i in range(runs):
            config = {
                "server": server.to_json(),
                "user": f"held-me-{i}",
                "rooms": rooms,
                "window_s": window_s,
                "settle_s": settle_s,
                "hz": BOT_HZ,
                "suspend_mode": mode,
            }
            client = await Child.start(f"held-client-{i}", "benchmarks.held_client", config, log_dir)
            try:
                reports.append(await client.read(timeout=2 * window_s + 4 * settle_s + 60 + 3 * suspended))
            finally:
                await client.stop()
    finally:
        for child in reversed(children):
            await child.stop()

    def pct(report: Json, phase: str) -> float:
        return float(report[phase]["cpu_s"]) / float(report[phase]["wall_s"]) * 100.0

    ratios = [pct(r, "held") / pct(r, "alone") for r in reports]
    alone = median([pct(r, "alone") for r in reports])
    held = median([pct(r, "held") for r in reports])
    what = "ducked (decoded and mixed at -18 dB)" if ducked else "suspended"
    result.add(
        f"{prefix}_calls_cpu_ratio",
        median(ratios),
        "x",
        f"client CPU with 1 active + {suspended} {what} calls over 1 active call alone (median of {runs})",
        None if ducked else Budget("<=", 2.0),
    )
    result.add(f"{prefix}_cpu_pct_alone_p50", alone, "% core", "client process CPU, 1 active call")
    result.add(f"{prefix}_cpu_pct_p50", held, "% core", f"client process CPU, 1 active + {suspended} {what}")
    result.add(
        f"{prefix}_cpu_pct_per_suspended_call",
        (held - alone) / max(1, suspended),
        "% core",
        f"extra client CPU per {what} call",
    )
    result.details = {
        "runs": runs,
        "suspended_calls": suspended,
        "window_s": window_s,
        "ratios": [round(r, 3) for r in ratios],
        "reports": reports,
    }
    return result
