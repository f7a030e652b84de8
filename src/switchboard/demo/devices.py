"""``switchboard demo --devices``: the livestream story on this machine's microphone and speaker.

I host a livestream, take a 1:1 call (the livestream is suspended by itself) and hang up (it is back
on air), speaking into the default microphone (:class:`~switchboard.media.DeviceMicrophone`) and
listening on the default speaker (:class:`~switchboard.media.DeviceSpeaker`): the bots' tones come out
of the speaker while their call has the focus. What my speaker plays is checked per segment as in
``switchboard demo``; my real microphone carries no known tone, so what the bots hear of me is shown,
not checked.
"""

from __future__ import annotations

import asyncio

from rich.text import Text

from switchboard.demo.recorder import Narrator, Scenario
from switchboard.demo.run import close_view, open_view, show_failure, show_outputs, show_problems
from switchboard.demo.scenarios import pause_on_incoming_call
from switchboard.demo.view import LEGEND
from switchboard.errors import DeviceError
from switchboard.media import DeviceMicrophone, DeviceSpeaker
from switchboard.media.devices import DeviceFailure
from switchboard.server import EmbeddedServer

__all__ = ["open_default_devices", "run_devices_demo"]

#: the scenario normally takes about 10 s; this only stops a hung run
TIMEOUT_S = 60.0


async def open_default_devices() -> tuple[DeviceMicrophone, DeviceSpeaker]:
    """The default microphone and speaker, each opened once to be sure it works (then closed again:
    the client opens them when it connects). Raises :class:`~switchboard.errors.DeviceError` (one
    readable message) when PortAudio or either device is missing or cannot be opened."""
    microphone, speaker = DeviceMicrophone(), DeviceSpeaker()
    microphone.start()
    microphone.stop()
    await speaker.start()
    await speaker.stop()
    for failure in (microphone.failure, speaker.failure):
        if failure is not None:
            raise DeviceError(f"the {failure.direction} device {failure.device!r}: {failure.message}")
    return microphone, speaker


async def run_devices_demo(json_path: str | None = None, plot_path: str | None = None) -> int:
    """Run the livestream story on the default devices; returns the exit code (1: not as the policy says).

    Raises :class:`~switchboard.errors.DeviceError` when there is no usable audio device.
    """
    microphone, speaker = await open_default_devices()
    console, view = open_view()
    narrator: Narrator = view
    console.print(Text("switchboard demo --devices", style="bold"), Text("· your mic and speaker", "dim"))
    console.print(f"microphone: {microphone.device.name}   speaker: {speaker.device.name}", style="dim")
    failures: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT_S), EmbeddedServer() as server:
            scenario: Scenario = await pause_on_incoming_call(
                server, narrator, microphone=microphone, speaker=speaker
            )
            failures = [
                f"{f.direction} device {f.device!r}: {f.message}" for f in _failures(microphone, speaker)
            ]
    except DeviceError:
        raise  # the command line says it in one line
    except Exception as exc:
        show_failure(console, view, exc, f" at {view.current.step!r}" if view.current else "")
        return 1
    finally:
        close_view(view)
    names = {"microphone": microphone.device.name, "speaker": speaker.device.name}
    legend = LEGEND + "  · : my real microphone, shown, not checked"
    show_outputs(console, view, [scenario], legend, json_path, plot_path, {"devices": names})
    problems = (
        scenario.problems
        + [
            f"{s.voice.label} {s.from_s:.1f}-{s.to_s:.1f} s: my speaker played it at {s.level_dbfs:.1f} dBFS"
            for s in scenario.segments
            if not s.ok
        ]
        + failures
    )
    if show_problems(console, problems, ""):
        return 1
    console.print(
        f"[bold green]✓ all {len(scenario.segments)} segments follow the policy[/bold green] on "
        f"{speaker.device.name}"
    )
    return 0


def _failures(microphone: DeviceMicrophone, speaker: DeviceSpeaker) -> list[DeviceFailure]:
    return [f for f in (microphone.failure, speaker.failure) if f is not None]
