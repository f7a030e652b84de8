"""The run shape both demo commands share: the terminal view, the failure line, the outputs, the verdict."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

from switchboard.demo.recorder import Scenario
from switchboard.demo.report import write_json, write_plot
from switchboard.demo.view import LiveView, PlainView, scenario_header, segments_table

View = LiveView | PlainView


def open_view() -> tuple[Console, View]:
    """The console and the view of a run: a live view on an interactive terminal, else a plain
    timeline (100 columns wide when not a terminal: a log line is not wrapped at 80)."""
    console = Console(highlight=False)
    live = console.is_interactive and sys.stdout.isatty()
    if not sys.stdout.isatty():
        console = Console(highlight=False, width=100)
    return console, LiveView(console) if live else PlainView(console)


def close_view(view: View) -> None:
    """Give the terminal its cursor back (a live view); nothing for a plain one."""
    if isinstance(view, LiveView):
        view.close()


def show_failure(console: Console, view: View, exc: Exception, where: str) -> None:
    """The one line of a run that broke: ``where`` (e.g. `` at 'step'``), then the exception."""
    close_view(view)
    console.print(f"[bold red]✗ demo failed{where}:[/bold red] {type(exc).__name__}: {exc}")


def show_outputs(
    console: Console,
    view: View,
    scenarios: list[Scenario],
    legend: str,
    json_path: str | None,
    plot_path: str | None,
    extra: dict[str, object],
) -> None:
    """After a run: each scenario's table (a live view already left them on screen), the legend, and
    the JSON report (with ``extra``) and PNG plot when asked for."""
    console.print()
    if isinstance(view, PlainView):
        for sc in scenarios:
            console.print(segments_table(sc, title=scenario_header(sc)))
    console.print(Text(legend, style="dim"))
    if json_path:
        write_json(scenarios, json_path, extra)
        console.print(f"JSON report: {json_path}")
    if plot_path:
        write_plot(scenarios, plot_path)
        console.print(f"plot: {plot_path}")


def show_problems(console: Console, found: list[str], headline: str) -> bool:
    """Print ``headline`` (after the count) and each problem when there are any; whether there were."""
    if found:
        console.print(f"[bold red]✗ {len(found)} problem(s){headline}[/bold red]")
        for problem in found:
            console.print(f"  - {problem}")
    return bool(found)
