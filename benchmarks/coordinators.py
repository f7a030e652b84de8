"""Coordinator ring latency on Redis, with 1 and with 2 coordinator processes (``make bench``), and
what SFU node placement adds to a join (one Redis script) and a node heartbeat costs.

A private redis-server (unix socket in a temporary directory) and ``switchboard coordinator --redis``
processes. The caller's client is on coordinator 1; the callee's on coordinator 1 (1 coordinator) or
on coordinator 2 (2 coordinators, so every ring crosses Redis from one process to the other). Each
sample is one ``Call.ring()`` (a fresh call each time) until the callee's client receives the
``call.ring`` event that makes it the ``incoming_call``; the callee then declines (not timed).

Standalone: ``python -m benchmarks.coordinators [--rings N]`` prints the metrics as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import BenchResult, percentile
from switchboard import ClientOptions, RejectReason, User, VideoClient
from switchboard.protocol import coordinator as m
from switchboard.protocol.tokens import create_user_token, generate_key_pair
from switchboard.server.coordinator.redis_sfu_nodes import RedisSfuNodes
from switchboard.server.coordinator.redis_store import RedisStore
from switchboard.server.coordinator.sfu_nodes import SfuNode

#: pause between rings (not timed): two requests per ring stay under the per-user rate limit (50/s)
PACE_S = 0.045
#: the coordinators need an SFU URL; ringing never reaches it
UNUSED_SFU_URL = "ws://127.0.0.1:9/sfu"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _redis_server(tmp: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (run scripts/install-system-deps.sh as root)")
    sock = tmp / "redis.sock"
    proc = await asyncio.create_subprocess_exec(
        binary,
        *("--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no", "--dir", str(tmp)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(500):
        if sock.exists():
            return proc, f"unix://{sock}"
        await asyncio.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


async def _coordinator(
    redis_url: str, port: int, keys: tuple[str, str], log: Path
) -> asyncio.subprocess.Process:
    env = {**os.environ, "SWITCHBOARD_API_KEY": keys[0], "SWITCHBOARD_API_SECRET": keys[1]}
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "switchboard.cli", "coordinator", "--redis", redis_url, "--port", str(port)),
            *("--sfu-url", UNUSED_SFU_URL, "--log-level", "warning"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line.startswith(b"switchboard coordinator on"):
        proc.kill()
        raise RuntimeError(f"the coordinator did not start: {line!r} (see {log})")
    return proc


def _client(user_id: str, port: int, keys: tuple[str, str]) -> VideoClient:
    return VideoClient(
        keys[0],
        user=User.regular(user_id),
        user_token=create_user_token(keys[1], user_id),
        options=ClientOptions(base_url=f"http://127.0.0.1:{port}"),
    )


async def _ring_latencies(caller: VideoClient, callee: VideoClient, rings: int, tag: str) -> list[float]:
    arrived: dict[str, asyncio.Future[float]] = {}

    def on_ring(event: m.Event) -> None:
        future = arrived.get(event.cid or "")
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    unlisten = callee.on("call.ring", on_ring)
    samples: list[float] = []
    try:
        for n in range(rings):
            call = caller.make_call("audio_room", f"{tag}-{n}")  # audio_room: no ring deadline
            await call.get_or_create(members=[caller.user.id, callee.user.id])
            future = arrived[call.cid] = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            await call.ring()
            end = await asyncio.wait_for(future, 10)
            samples.append((end - start) * 1000)
            await callee.make_call("audio_room", f"{tag}-{n}").reject(RejectReason.DECLINE)
            await asyncio.sleep(PACE_S)
    finally:
        unlisten()
    return samples


async def _placement_ms(redis_url: str, samples: int) -> dict[str, list[float]]:
    """Time the SFU node registry's operations against the benchmark's Redis, from this process:
    a node's heartbeat, placing a new call (two live nodes), and a later join of a placed call."""
    store = RedisStore.from_url(redis_url, prefix="bench-nodes:")
    nodes = RedisSfuNodes(store)
    times: dict[str, list[float]] = {"heartbeat": [], "place_new": [], "place_sticky": []}
    try:
        for i in range(samples):
            for name in ("a", "b"):
                node = SfuNode(name, f"ws://127.0.0.1:9/{name}/sfu", "http://127.0.0.1:9", sessions=i)
                start = time.perf_counter()
                await nodes.heartbeat(node)
                times["heartbeat"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await nodes.place(f"default:bench-{i}")
            times["place_new"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await nodes.place(f"default:bench-{i}")
            times["place_sticky"].append((time.perf_counter() - start) * 1000)
    finally:
        await store.close()
    return times


async def run(log_dir: Path, *, rings: int = 100) -> BenchResult:
    result = BenchResult("coordinators")
    keys = generate_key_pair()
    processes: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory(prefix="sb-bench-redis-") as tmp:
        redis, redis_url = await _redis_server(Path(tmp))
        processes.append(redis)
        try:
            ports = [_free_port(), _free_port()]
            for port in ports:
                processes.append(await _coordinator(redis_url, port, keys, log_dir / "coordinators.log"))
            for count in (1, 2):
                caller = _client(f"caller{count}", ports[0], keys)
                callee = _client(f"callee{count}", ports[count - 1], keys)
                await caller.connect()
                await callee.connect()
                try:
                    await _ring_latencies(caller, callee, min(5, rings), f"warm{count}")
                    samples = await _ring_latencies(caller, callee, rings, f"c{count}")
                finally:
                    await caller.disconnect()
                    await callee.disconnect()
                what = "the callee on the same coordinator" if count == 1 else "the callee on the other one"
                for q in (50, 95):
                    result.add(
                        f"ring_latency_{count}_coordinator{'s' if count > 1 else ''}_ms_p{q}",
                        percentile(samples, q),
                        "ms",
                        f"Call.ring() until the callee's client has the call.ring event, Redis, {what}",
                    )
                result.details[f"ring_latency_{count}_samples"] = len(samples)
            placement = await _placement_ms(redis_url, max(rings, 20))
            explain = {
                "heartbeat": "one SFU node heartbeat (URLs, engine, load) written to Redis",
                "place_new": "placing a new call on the less loaded of two live SFU nodes (what join adds)",
                "place_sticky": "finding the node of a call already placed (every later join's extra cost)",
            }
            for name, values in placement.items():
                result.add(f"sfu_{name}_ms_p50", percentile(values, 50), "ms", explain[name])
        finally:
            for proc in reversed(processes):
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), 10)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rings", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("switchboard").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as logs:
        result = asyncio.run(run(Path(logs), rings=args.rings))
    print(json.dumps({metric.key: metric.value for metric in result.metrics}, indent=2))


if __name__ == "__main__":
    main()
