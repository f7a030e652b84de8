"""Browser (SPEC §5): mouth-to-ear between Chromium and Python through the SFU, beside Python-to-Python.

One room on a server in its own process: a Python publisher (a gated tone, ``ToneSource``), a Python
listener (a ``CaptureSpeaker``) and the call page in headless Chromium (Debian's ``chromium``, driven
by Playwright). The page's microphone is a gated WebAudio oscillator given to the client with
``audioSession.useMicrophone()``.

* **Python -> browser / Python -> Python**: mouth = when the publisher's first tone frame was read
  from its microphone; ear = when the page's speaker meter (the WebAudio mix every call plays
  through, polled every 2 ms over its newest 20 ms) first carries the tone above -40 dBFS, and when
  the Python listener's speaker first played a 20 ms frame carrying it.
* **Browser -> Python**: mouth = when the page opened the oscillator's gate (the next 128-sample
  render quantum carries it); ear = the Python listener's speaker, as above.

Mouth and ear are on different clocks (the page's ``performance.timeOrigin + now()``, the Python
loop's monotonic clock); both are converted to the machine's wall clock, which they share. The
browser's and the Python client's output devices are not part of either figure (neither has one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path

from benchmarks.common import (
    BenchResult,
    ToneSource,
    ToneWatch,
    make_client,
    percentile,
    start_server,
)
from switchboard import CallConnectOptions, TrackOption, VideoClient
from switchboard.media import CaptureSpeaker

PY_HZ = 700.0
BROWSER_HZ = 900.0
CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())
LISTEN = CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled())

#: installs window.m2e in the page: a gated oscillator as the microphone, and a tone watch
SETUP_JS = """(hz) => {
  const { client, sdk } = window.switchboardPage;
  const ctx = client.audioSession.context;
  const osc = new OscillatorNode(ctx, { frequency: hz });
  const gate = new GainNode(ctx, { gain: 0 });
  const out = new MediaStreamAudioDestinationNode(ctx, { channelCount: 1 });
  osc.connect(gate).connect(out);
  osc.start();
  client.audioSession.useMicrophone(out.stream.getAudioTracks()[0]);
  const now = () => performance.timeOrigin + performance.now();
  window.m2e = {
    gate(on) {
      gate.gain.setValueAtTime(on ? 0.25 : 0, ctx.currentTime);
      return now();
    },
    watch(toneHz, timeoutMs) {
      const meter = client.audioSession.speaker;
      const started = performance.now();
      return new Promise((resolve) => {
        const id = setInterval(() => {
          const samples = meter.samples();
          const tail = samples.subarray(samples.length - 960);
          if (sdk.toneLevelDbfs(tail, toneHz, ctx.sampleRate) > -40) {
            clearInterval(id);
            resolve(now());
          } else if (performance.now() - started > timeoutMs) {
            clearInterval(id);
            resolve(null);
          }
        }, 2);
      });
    },
  };
}"""


def _wall(loop_time: float) -> float:
    """A loop (monotonic) time as wall-clock seconds."""
    return loop_time + (time.time() - asyncio.get_running_loop().time())


def _stats(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if v != float("inf")]
    if not finite:
        return float("inf"), float("inf")
    return percentile(finite, 50), percentile(finite, 95)


async def run(log_dir: Path, bursts: int = 20, on_s: float = 0.25, off_s: float = 0.35) -> BenchResult:
    from playwright.async_api import async_playwright

    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: run scripts/install-system-deps.sh")
    result = BenchResult("browser")
    child, server = await start_server(log_dir, "browser-server")
    clients: list[VideoClient] = []
    try:
        py_mic = ToneSource(PY_HZ, on=False)
        mouth = make_client(server, "py-mouth", microphone=py_mic, speaker=CaptureSpeaker(max_seconds=2.0))
        ear_speaker = CaptureSpeaker(max_seconds=30.0)
        ear = make_client(server, "py-ear", speaker=ear_speaker)
        clients += [mouth, ear]
        for client, options in ((mouth, MIC_ON), (ear, LISTEN)):
            await client.connect()
            call = client.make_call("default", "m2e")
            await call.get_or_create()
            await call.join(options)
        from_python = ToneWatch(ear_speaker, PY_HZ)
        from_browser = ToneWatch(ear_speaker, BROWSER_HZ)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{server.url}/?user=web&token={server.token('web')}&autologin=1")
                await page.wait_for_function("window.switchboardPage && window.switchboardPage.client")
                await page.evaluate(SETUP_JS, BROWSER_HZ)
                await page.evaluate("() => window.switchboardPage.joinCall('default', 'm2e', false)")
                await asyncio.sleep(1.5)  # every listener receives every (silent) stream
                loop = asyncio.get_running_loop()
                py_to_browser: list[float] = []
                py_to_py: list[float] = []
                browser_to_py: list[float] = []
                for _ in range(bursts):
                    # Python speaks: the page and the Python listener hear it
                    heard_py = from_python.arm(loop.time())
                    heard_page = asyncio.ensure_future(
                        page.evaluate("([hz, ms]) => window.m2e.watch(hz, ms)", [PY_HZ, 3000])
                    )
                    await asyncio.sleep(0.05)
                    t_mouth = _wall(await asyncio.wait_for(py_mic.start_burst(), 5.0))
                    page_ms = await heard_page
                    py_to_browser.append(float("inf") if page_ms is None else page_ms - t_mouth * 1000.0)
                    try:
                        py_to_py.append((_wall(await asyncio.wait_for(heard_py, 3.0)) - t_mouth) * 1000.0)
                    except TimeoutError:
                        py_to_py.append(float("inf"))
                    await asyncio.sleep(on_s)
                    py_mic.stop_burst()
                    await asyncio.sleep(off_s)
                    # the browser speaks: the Python listener hears it
                    heard = from_browser.arm(loop.time())
                    t_mouth_ms = float(await page.evaluate("() => window.m2e.gate(true)"))
                    try:
                        browser_to_py.append(_wall(await asyncio.wait_for(heard, 3.0)) * 1000.0 - t_mouth_ms)
                    except TimeoutError:
                        browser_to_py.append(float("inf"))
                    await asyncio.sleep(on_s)
                    await page.evaluate("() => window.m2e.gate(false)")
                    await asyncio.sleep(off_s)
            finally:
                await browser.close()
        from_python.close()
        from_browser.close()
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.disconnect()
        await child.stop()
    for key, values, what in (
        ("browser_to_python_m2e_ms", browser_to_py, "Chromium page -> SFU -> Python listener"),
        ("python_to_browser_m2e_ms", py_to_browser, "Python publisher -> SFU -> Chromium page"),
        ("python_to_python_m2e_ms", py_to_py, "Python publisher -> SFU -> Python listener (same run)"),
    ):
        p50, p95 = _stats(values)
        missed = sum(1 for v in values if v == float("inf"))
        note = f"{missed} of {len(values)} bursts not heard within 3 s" if missed else ""
        result.add(f"{key}_p50", p50, "ms", f"mouth-to-ear p50, {what}", note=note)
        result.add(f"{key}_p95", p95, "ms", f"mouth-to-ear p95, {what}")
        result.details[key] = [round(v, 1) if v != float("inf") else None for v in values]
    return result
