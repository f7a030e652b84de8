"""A private PulseAudio server for device tests: null sinks instead of sound cards.

The daemon runs with its own runtime directory (nothing shared with a desktop session or another test
run), never exits on idle, and loads only its socket module; tests add ``module-null-sink`` s. The
test process reaches it the way any PortAudio program would: PortAudio -> ALSA's ``pulse`` plugin ->
libpulse, pointed at this server by ``PULSE_SERVER``.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

TOOLS = ("pulseaudio", "pactl", "parec", "pacat")


def require_pulse() -> None:
    """Fail (under CI) or skip (elsewhere, with the reason) when PulseAudio or PortAudio is missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    reason = ""
    if missing:
        reason = f"{', '.join(missing)} not installed (scripts/install-system-deps.sh installs them)"
    elif ctypes.util.find_library("portaudio") is None:
        # (not ``import sounddevice``: PortAudio lists devices once, when first loaded, and must
        # do so after the test's PulseAudio is up)
        reason = "PortAudio (libportaudio2) not installed (scripts/install-system-deps.sh installs it)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"device tests need PulseAudio and PortAudio under CI: {reason}")
        pytest.skip(reason)


class Pulse:
    """A running private PulseAudio daemon (see :func:`start`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        runtime = root / "pulse"
        runtime.mkdir(parents=True, exist_ok=True)
        self.socket = runtime / "native"
        self.env = {
            "XDG_RUNTIME_DIR": str(root),
            "PULSE_RUNTIME_PATH": str(runtime),
            "HOME": str(root),
            "PULSE_SERVER": f"unix:{self.socket}",
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self.modules: list[int] = []

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def start(self) -> None:
        log = (self.root / "pulseaudio.log").open("wb")
        self._proc = subprocess.Popen(
            [
                "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
                "--disable-shm", "--use-pid-file=no", "--log-target=stderr",
                "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            ],
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {(self.root / 'pulseaudio.log').read_text()[-800:]}")
            if subprocess.run(["pactl", "info"], env=self._env(), capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("pulseaudio did not answer within 15 s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self._env(), capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def null_sink(self, name: str) -> int:
        """Load a null sink (its monitor source is ``<name>.monitor``); returns the module index."""
        module = int(self.pactl("load-module", "module-null-sink", f"sink_name={name}", "rate=48000"))
        self.modules.append(module)
        return module

    def unload(self, module: int) -> None:
        self.pactl("unload-module", str(module))
        self.modules.remove(module)

    def unload_all(self) -> None:
        """Unplug every sink the tests added (PulseAudio moves streams to a remaining sink, if any)."""
        for module in list(self.modules):
            self.unload(module)

    def record(self, source: str, seconds: float) -> npt.NDArray[np.float32]:
        """The next ``seconds`` of mono 48 kHz float audio from ``source`` (blocks while recording)."""
        proc = subprocess.Popen(
            [
                "parec",
                "-d",
                source,
                "--raw",
                "--format=float32le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ],
            env=self._env(),
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        want = round(seconds * 48000) * 4
        data = b""
        try:
            while len(data) < want:
                chunk = proc.stdout.read(want - len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            proc.terminate()
            proc.wait(10)
        return np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4").astype(np.float32)

    def play(self, sink: str, pcm: npt.NDArray[np.float32]) -> subprocess.Popen[bytes]:
        """Start playing mono 48 kHz float ``pcm`` into ``sink``; returns the player (terminate when done)."""
        path = self.root / f"play-{time.monotonic_ns()}.raw"
        path.write_bytes(pcm.astype("<f4").tobytes())
        with path.open("rb") as source:
            return subprocess.Popen(
                ["pacat", "-d", sink, "--raw", "--format=float32le", "--rate=48000", "--channels=1"],
                env=self._env(),
                stdin=source,
            )
