"""Shared benchmark plumbing: results and budgets, statistics, helper processes, clients, tone detection."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import numpy as np

from switchboard import ClientOptions, MultiCallAudioPolicy, SuspendMode, User, VideoClient
from switchboard.media import CaptureSpeaker, Microphone
from switchboard.media.analysis import frame_tone_levels
from switchboard.media.audio_format import FloatArray
from switchboard.protocol.tokens import create_user_token

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = REPO_ROOT / "bench-results.json"

#: a 20 ms frame at the speaker counts as carrying a tone above this level ...
AUDIBLE_DBFS = -40.0
#: ... and as silent for a tone below this one
SILENT_DBFS = -60.0

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    op: Literal["<=", ">="]
    limit: float

    def check(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass
class Metric:
    key: str
    value: float | None
    unit: str
    description: str
    budget: Budget | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.budget is None:
            return None
        if self.value is None or not np.isfinite(self.value):
            return False
        return self.budget.check(self.value)

    def to_json(self) -> Json:
        return {
            "value": round(float(self.value), 4)
            if self.value is not None and np.isfinite(self.value)
            else None,
            "unit": self.unit,
            "budget": None if self.budget is None else {"op": self.budget.op, "limit": self.budget.limit},
            "passed": self.passed,
            "description": self.description,
            "note": self.note,
        }


@dataclass
class BenchResult:
    """What one benchmark reports: headline metrics plus raw details for the JSON file."""

    name: str
    metrics: list[Metric] = field(default_factory=list)
    details: Json = field(default_factory=dict)
    wall_s: float = 0.0
    error: str | None = None

    def add(
        self,
        key: str,
        value: float | None,
        unit: str,
        description: str,
        budget: Budget | None = None,
        note: str = "",
    ) -> Metric:
        metric = Metric(key, value, unit, description, budget, note)
        self.metrics.append(metric)
        return metric


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def median(values: list[float]) -> float:
    return percentile(values, 50.0)


def machine_info() -> Json:
    import aiortc
    import av

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb: float | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "aiohttp": aiohttp.__version__,
        "pyav": av.__version__,
        "numpy": np.__version__,
    }


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Helper processes: JSON lines on stdout, commands as JSON lines on stdin, exit when stdin closes
# ---------------------------------------------------------------------------------------------


class ChildError(RuntimeError):
    pass


class Child:
    """A helper process started with ``python -m <module>`` (parent side)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(
        cls, name: str, module: str, config: Json, log_dir: Path, prefix: Sequence[str] = ()
    ) -> Child:
        """``prefix`` goes before the interpreter (e.g. ``ip netns exec NAME`` to run it in a namespace)."""
        log_path = log_dir / f"{name}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *prefix,
                sys.executable,
                "-m",
                module,
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=str(REPO_ROOT),
                env=env,
                limit=16 * 1024 * 1024,
            )
        return cls(name, proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def read(self, timeout: float = 60.0) -> Json:  # noqa: ASYNC109
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise ChildError(f"{self.name}: no answer within {timeout:.0f} s\n{self.log_tail()}") from None
        if not line:
            await self.proc.wait()
            raise ChildError(f"{self.name} exited ({self.proc.returncode})\n{self.log_tail()}")
        message: Json = json.loads(line)
        if "error" in message:
            raise ChildError(f"{self.name}: {message['error']}")
        return message

    async def send(self, message: Json) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def request(self, message: Json, timeout: float = 60.0) -> Json:  # noqa: ASYNC109
        await self.send(message)
        return await self.read(timeout)

    async def stop(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Close its stdin (it shuts down cleanly), then wait; kill it if it does not exit."""
        if self.proc.returncode is not None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


def child_config() -> Json:
    """The JSON config a helper process was started with (its only argument)."""
    config: Json = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    return config


def emit(message: Json) -> None:
    """Send one JSON line to the parent (child side)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def commands() -> AsyncIterator[Json]:
    """Commands from the parent (child side), until it closes our stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.strip():
            yield json.loads(line)


def run_child(main: Callable[[Json], Any]) -> None:
    """Entry point of a helper process: run ``main(config)``; report a crash as an ``error`` line."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(main(child_config()))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        logging.getLogger("benchmarks").exception("helper process failed")
        emit({"error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from exc


# ---------------------------------------------------------------------------------------------
# The server process and clients
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerInfo:
    url: str
    api_key: str
    api_secret: str
    sfu_url: str
    pid: int
    #: other processes doing the server's media work (Janus with the janus engine)
    media_pids: tuple[int, ...] = ()

    def cpu_seconds(self) -> float:
        """CPU time of the server process and its media processes."""
        return sum(proc_cpu_seconds(pid) for pid in (self.pid, *self.media_pids))

    @property
    def stats_url(self) -> str:
        return self.sfu_url.replace("ws://", "http://", 1) + "/stats"

    def token(self, user_id: str) -> str:
        return create_user_token(self.api_secret, user_id)

    def stats_headers(self) -> dict[str, str]:
        """Headers for ``/sfu/stats``: an operator token when the server has them (else the page is open)."""
        tokens = importlib.import_module("switchboard.protocol.tokens")
        make = getattr(tokens, "create_admin_token", None)
        return {"Authorization": f"Bearer {make(self.api_secret)}"} if make is not None else {}

    async def sfu_stats(self, http: aiohttp.ClientSession) -> Json:
        async with http.get(self.stats_url, headers=self.stats_headers()) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {self.stats_url}: HTTP {response.status}: {await response.text()}")
            stats: Json = await response.json()
        return stats

    def to_json(self) -> Json:
        return {
            "url": self.url,
            "api_key": self.api_key,
            "api_secret": self.api_secret,
            "sfu_url": self.sfu_url,
            "pid": self.pid,
        }

    @classmethod
    def from_json(cls, data: Json) -> ServerInfo:
        return cls(
            data["url"],
            data["api_key"],
            data["api_secret"],
            data["sfu_url"],
            int(data["pid"]),
            tuple(int(pid) for pid in data.get("media_pids", ())),
        )


async def start_server(
    log_dir: Path, name: str = "server", config: Json | None = None
) -> tuple[Child, ServerInfo]:
    child = await Child.start(name, "benchmarks.server", config or {}, log_dir)
    try:
        info = ServerInfo.from_json(await child.read(timeout=30))
    except BaseException:
        await child.stop()
        raise
    return child, info


def make_client(
    server: ServerInfo,
    user_id: str,
    *,
    microphone: Microphone | None = None,
    speaker: CaptureSpeaker | None = None,
    multi: bool = False,
    policy: MultiCallAudioPolicy = MultiCallAudioPolicy.SUSPEND_INCOMING,
    suspend_mode: SuspendMode = SuspendMode.SILENT,
) -> VideoClient:
    return VideoClient(
        server.api_key,
        user=User.regular(user_id),
        user_token=server.token(user_id),
        options=ClientOptions(
            base_url=server.url,
            allow_multiple_active_calls=multi,
            # a policy acts only in multi-call mode (ClientOptions warns otherwise)
            multi_call_audio_policy=policy if multi else MultiCallAudioPolicy.SUSPEND_EXISTING,
            microphone=microphone,
            speaker=speaker,
            suspend_mode=suspend_mode,
        ),
    )


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float, float]:
    """(busy, idle, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, (idle + iowait) / tick, steal / tick


def udp_counters() -> dict[str, int]:
    """System-wide UDP counters (``/proc/net/snmp``): datagrams in/out and receive-buffer drops."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    ]
    names, values = lines[0][1:], lines[1][1:]
    return {name: int(value) for name, value in zip(names, values, strict=True)}


def self_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# Tone detection at a CaptureSpeaker
# ---------------------------------------------------------------------------------------------


class ToneWatch:
    """A speaker ``on_tick`` hook: the loop time of the first 20 ms frame carrying a tone after ``arm()``.

    The time is the frame's own stamp on the speaker's sample timeline (when the speaker played it).
    """

    def __init__(self, speaker: CaptureSpeaker, hz: float, threshold_dbfs: float = AUDIBLE_DBFS) -> None:
        self.speaker = speaker
        self.hz = hz
        self.threshold = threshold_dbfs
        self._armed_at: float | None = None
        self._found: asyncio.Future[float] | None = None
        speaker.on_tick.append(self._tick)

    def arm(self, since: float) -> asyncio.Future[float]:
        self._armed_at = since
        self._found = asyncio.get_running_loop().create_future()
        return self._found

    def close(self) -> None:
        if self._tick in self.speaker.on_tick:
            self.speaker.on_tick.remove(self._tick)

    def _tick(self, t: float, frame: FloatArray) -> None:
        found = self._found
        if found is None or found.done() or self._armed_at is None or t < self._armed_at:
            return
        if float(frame_tone_levels(frame, self.hz)[0]) >= self.threshold:
            found.set_result(t)


class ToneSource(Microphone):
    """A phase-continuous tone whose frequency can change and which can be gated on and off.

    Changes apply from the next 20 ms frame. :meth:`start_burst` returns a future that resolves to the
    loop time the first frame of the burst was read (handed to the encoder): the "mouth" time.
    """

    def __init__(self, hz: float, level_dbfs: float = -12.0, on: bool = True) -> None:
        super().__init__(f"tone-source-{hz:g}Hz", 1)
        self.hz = float(hz)
        self.amplitude = float(10.0 ** (level_dbfs / 20.0))
        self.on = on
        self._phase = 0.0
        self._onset: asyncio.Future[float] | None = None
        self._ramp = np.arange(960, dtype=np.float64)

    def start_burst(self) -> asyncio.Future[float]:
        self.on = True
        self._onset = asyncio.get_running_loop().create_future()
        return self._onset

    def stop_burst(self) -> None:
        self.on = False

    def read_frame(self) -> FloatArray:
        if not self.on:
            return np.zeros((1, 960), dtype=np.float32)
        onset = self._onset
        if onset is not None and not onset.done():
            onset.set_result(asyncio.get_running_loop().time())
        step = 2.0 * np.pi * self.hz / 48000.0
        pcm = (self.amplitude * np.sin(self._phase + step * self._ramp)).astype(np.float32)
        self._phase = float((self._phase + step * 960) % (2.0 * np.pi))
        return pcm.reshape(1, 960)


async def wait_audible(
    speaker: CaptureSpeaker,
    hz: float,
    timeout: float = 10.0,  # noqa: ASYNC109
    seconds: float = 0.2,
) -> bool:
    """Wait until the last ``seconds`` played carry ``hz`` above the audible threshold."""
    from switchboard.media.analysis import tone_level_dbfs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if speaker.total_samples >= seconds * 48000 and tone_level_dbfs(speaker.samples(seconds), hz) > (
            AUDIBLE_DBFS
        ):
            return True
    return False
