"""What a one-user flood of the events socket costs the server, with and without the frame limits.

``python -m benchmarks.events_flood [--sockets 10] [--seconds 2]``: an :class:`EmbeddedServer` in this
process, ``benchmarks.events_flooder`` in another sending ``health.check`` frames as fast as it can on
``--sockets`` sockets of one user for ``--seconds``. For the default limits and for none (a frame rate
no client reaches), it prints one JSON line each: the server process's CPU seconds during the flood,
the longest stall of its event loop (which also forwards media), frames sent and frames the server
processed, and the close codes the flooder saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from switchboard.server import EmbeddedServer
from switchboard.server.coordinator.limits import CoordinatorLimits

UNLIMITED = CoordinatorLimits(frames_per_second=1e9, frame_burst=1_000_000_000)


async def _loop_lag(samples: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(0.005)
        samples.append(loop.time() - start - 0.005)


async def measure(limits: CoordinatorLimits, sockets: int, seconds: float) -> dict[str, Any]:
    async with EmbeddedServer(limits=limits) as server:
        flooder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.events_flooder",
            server.url,
            server.api_key,
            server.create_token("mallory"),
            str(sockets),
            str(seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert flooder.stdout is not None
        if await asyncio.wait_for(flooder.stdout.readline(), 30) != b"ready\n":
            raise RuntimeError("the flooder did not start")
        lags: list[float] = []
        monitor = asyncio.get_running_loop().create_task(_loop_lag(lags))
        cpu0, wall0 = time.process_time(), time.monotonic()
        out, _ = await flooder.communicate(b"go\n")
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        monitor.cancel()
        report = json.loads(out)
    return {
        "limits": "default" if limits == CoordinatorLimits() else "none",
        "server_cpu_s": round(cpu, 3),
        "wall_s": round(wall, 2),
        "max_loop_stall_ms": round(max(lags, default=0.0) * 1000, 1),
        "sent": report["sent"],
        "processed": report["answered"],
        "close_codes": sorted(set(report["close_codes"])),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sockets", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    for limits in (CoordinatorLimits(), UNLIMITED):
        print(json.dumps(await measure(limits, args.sockets, args.seconds)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
