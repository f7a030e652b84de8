"""Media engines compared (``make bench``): embedded SFU vs Janus, audio down-tracks per core.

Every engine gets the same load generator and the same ramp as ``benchmarks.sfu`` (rooms of 2
publishers + 10 listeners, raw-protocol clients in ``benchmarks.loadgen``, exact frame counts; a
level holds below 1 % loss), one engine after the other in one run:

* ``embedded``: the embedded SFU as shipped (audio written straight from the ingest path,
  ``switchboard.media.rtp_hooks.DirectRtpSender``);
* ``embedded_aiortc_sender``: the same SFU with audio down-tracks sent through aiortc's sender task
  (``switchboard.server.sfu.forwarding.DIRECT_AUDIO`` off), what the embedded SFU did before: the
  baseline of the ``embedded_speedup`` ratio;
* ``janus``: Janus VideoRoom driven by the Janus engine.

Janus never offers loopback addresses, so the whole comparison runs in a private network namespace
with a veth pair carrying 10.213.0.1 (nothing leaves it); the server, Janus and the load generators
all run inside. An engine's CPU is its server process plus, for Janus, the Janus process (whose
configuration sets 2 event loops). CPU per forwarded packet = engine CPU over the send (idle tail
removed) / (frames sent x down-tracks), in microseconds. No mouth-to-ear probe here:
``benchmarks.sfu`` measures that for the embedded SFU.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import BenchResult, Budget, Json, start_server
from benchmarks.sfu import LevelResult, ramp, us_per_packet

ADDRESS = "10.213.0.1"
NAMESPACE_SETUP = (
    "set -e; ip link set lo up; "
    "ip link add sbj0 type veth peer name sbj1; "
    f"ip addr add {ADDRESS}/24 dev sbj0; "
    "ip link set sbj0 up; ip link set sbj1 up; "
)
#: engine name -> the benchmark server's configuration (``benchmarks/server.py``)
ENGINES: dict[str, Json] = {
    "embedded": {"engine": "embedded"},
    "embedded_aiortc_sender": {"engine": "embedded", "direct_audio": False},
    "janus": {"engine": "janus"},
}
LEVELS = (2, 4, 8, 12, 16, 20, 25, 30)
#: SPEC §5: the embedded SFU forwards at least 600 audio down-tracks per core
SPEC_BUDGET = Budget(">=", 600.0)


def _best(levels: list[LevelResult]) -> LevelResult | None:
    holding = [lv for lv in levels if lv.holds]
    return holding[-1] if holding else None


async def _inside(config: Json) -> Json:
    """In the namespace: ramp each engine in turn; the levels measured and why each ramp stopped."""
    log_dir = Path(str(config["log_dir"]))
    out: Json = {}
    for engine, server_config in ENGINES.items():
        child, server = await start_server(log_dir, f"engines-{engine}", {**server_config, "host": ADDRESS})
        try:
            levels, stopped = await ramp(
                server,
                log_dir,
                int(config["frames"]),
                float(config["budget_s"]),
                tuple(config["levels"]),
            )
        finally:
            await child.stop(timeout=30)
        out[engine] = {"levels": [asdict(lv) for lv in levels], "stopped_by": stopped}
    return out


async def run(
    log_dir: Path, frames: int = 300, budget_s: float = 75.0, levels: tuple[int, ...] = LEVELS
) -> BenchResult:
    """Both engines, ``budget_s`` seconds of ramp each; raises RuntimeError if the namespace fails."""
    result = BenchResult("engines")
    config = {"log_dir": str(log_dir), "frames": frames, "budget_s": budget_s, "levels": list(levels)}
    command = [sys.executable, "-m", "benchmarks.engines", json.dumps(config)]
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "-n",
        "sh",
        "-c",
        NAMESPACE_SETUP + "exec " + shlex.join(command),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the engines comparison failed: {stderr.decode(errors='replace')[-2000:]}")
    measured: Json = json.loads(stdout.decode().strip().splitlines()[-1])
    bests: dict[str, LevelResult | None] = {}
    for engine in ENGINES:
        levels_measured = [LevelResult(**lv) for lv in measured[engine]["levels"]]
        best = bests[engine] = _best(levels_measured)
        stopped = measured[engine]["stopped_by"]
        result.add(
            f"{engine}_audio_downtracks_per_core",
            best.downtracks_per_core if best else None,
            "tracks/core",
            f"{engine} engine: audio down-tracks per core at the highest load with < 1 % loss",
            SPEC_BUDGET if engine == "embedded" else None,
            note=(
                f"{best.downtracks} down-tracks on {best.sfu_cores:.2f} cores, loss "
                f"{100 * best.loss_e2e:.2f} %; ramp stopped by {stopped}"
                if best
                else f"no level held; ramp stopped by {stopped}"
            ),
        )
        result.add(
            f"{engine}_us_per_packet",
            round(us_per_packet(best), 1) if best else None,
            "us",
            f"{engine} engine: CPU per forwarded audio packet at that level",
        )
    embedded = bests["embedded"]
    ratios = (
        (
            "embedded_speedup",
            bests["embedded_aiortc_sender"],
            "embedded down-tracks per core over the same SFU sending through aiortc's sender (before)",
        ),
        ("embedded_vs_janus", bests["janus"], "embedded down-tracks per core over Janus's, same run"),
    )
    for name, other, description in ratios:
        if embedded and other:
            result.add(
                name, round(embedded.downtracks_per_core / other.downtracks_per_core, 2), "x", description
            )
    result.details = {"address": ADDRESS, **measured}
    return result


def _main() -> None:
    config: Json = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(_inside(config))), flush=True)


if __name__ == "__main__":
    _main()
