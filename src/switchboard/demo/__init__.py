"""``switchboard demo``: the multicall use cases, end to end, with real media.

Three scenarios: foreground/background rooms, a livestream paused by a 1:1 call, and a supervisor
monitoring three calls ducked and panned, whispering and barging in.

An embedded server (coordinator + SFU) runs in this process; "me" and a few bots connect to it as
ordinary :class:`~switchboard.VideoClient` s over real WebRTC. Each bot speaks its own tone, so a
per-frame FFT of my speaker tells which call I am hearing, and a bot's speaker tells whether my
microphone reaches its call. The demo checks every stretch of time against what the multicall policy
says and exits 1 if any is wrong.
"""

from __future__ import annotations

import asyncio
import time

from rich.text import Text

from switchboard.demo.recorder import Narrator, Scenario
from switchboard.demo.report import problems
from switchboard.demo.run import close_view, open_view, show_failure, show_outputs, show_problems
from switchboard.demo.scenarios import foreground_background_rooms, pause_on_incoming_call
from switchboard.demo.supervisor import BLURB as SUPERVISOR_BLURB
from switchboard.demo.supervisor import TITLE as SUPERVISOR_TITLE
from switchboard.demo.supervisor import cast as supervisor_cast
from switchboard.demo.supervisor import supervisor_scenario
from switchboard.demo.view import LEGEND, LiveView
from switchboard.server import EmbeddedServer
from switchboard.server.cluster import LocalCluster

__all__ = ["run_demo"]

#: the whole demo normally takes about 25 s; this only stops a hung run
TIMEOUT_S = 120.0

INTRO = (
    'One client ("me") keeps several calls joined at once, and a multicall audio policy decides which '
    "call owns my microphone and my speaker. Everyone else is a bot in this process, speaking its own "
    "tone over real WebRTC through the SFU. Every 20 ms an FFT measures each call's tone at my speaker "
    '("I hear it") and my tone at that call\'s bot ("it hears me").'
)


async def run_demo(
    json_path: str | None = None, plot_path: str | None = None, *, cluster: bool = False
) -> int:
    """Run the three scenarios, show them, write the optional report and plot; returns the exit code.

    ``cluster``: against a local cluster (redis-server, two coordinators, two SFU nodes, each a
    process: :class:`~switchboard.server.cluster.LocalCluster`) instead of a server in this process.
    """
    console, view = open_view()
    live = isinstance(view, LiveView)
    narrator: Narrator = view
    started = time.monotonic()

    console.print(Text("switchboard demo", style="bold"), Text("· multicall, end to end", style="dim"))
    console.print(INTRO, style="dim" if live else "")
    scenarios: list[Scenario] = []
    try:
        async with asyncio.timeout(TIMEOUT_S), LocalCluster() if cluster else EmbeddedServer() as server:
            where = (
                "a local cluster: redis-server, 2 coordinators, 2 SFU nodes, a balancer"
                if cluster
                else "coordinator + SFU, embedded in this process"
            )
            console.print(Text(f"server: {server.url} ({where})", "dim"))
            scenarios.append(await foreground_background_rooms(server, narrator))
            scenarios.append(await pause_on_incoming_call(server, narrator))
            console.print()
            console.rule(SUPERVISOR_TITLE)
            console.print(SUPERVISOR_BLURB)
            for line in supervisor_cast():
                console.print(Text(line))
            console.print()
            supervisor = await supervisor_scenario(server, lambda line: console.print(Text(line)))
    except Exception as exc:  # the demo's message is the product here: say what broke, exit 1
        where = f" in scenario {view.current.number} at {view.current.step!r}" if view.current else ""
        show_failure(console, view, exc, where)
        return 1
    finally:
        close_view(view)  # give the terminal its cursor back, even on Ctrl-C

    show_outputs(console, view, scenarios, LEGEND, json_path, plot_path, {"supervisor": supervisor.to_json()})
    found = problems(scenarios) + supervisor.problems
    elapsed = time.monotonic() - started
    segments = sum(len(sc.segments) for sc in scenarios)
    checks = len(supervisor.checks)
    if show_problems(console, found, ": the audio did not follow the policy"):
        return 1
    console.print(
        f"[bold green]✓ all {segments} segments follow the policies and {checks} supervisor checks pass"
        f"[/bold green] [dim]({elapsed:.0f} s)[/dim]: focused calls audible both ways, suspended ones "
        "silent, a whisper heard by its audience only"
    )
    return 0
