"""``switchboard coordinator --redis URL``: one of several coordinators sharing state through Redis.

Kept apart from :mod:`switchboard.cli` (which only registers the command; both build on
:mod:`switchboard.cli_common`) so the scale-out command
grows without touching the others.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from switchboard.cli_common import (
    KEY_ENV,
    SECRET_ENV,
    CliError,
    _port,
    _redis_url,
    _sfu_url,
    add_host_argument,
    add_log_level_argument,
    bind_failure,
    configure_logging,
    resolve_key_pair,
    run_until_stopped,
    start_unless_stopped,
    stop_on_signals,
)


class CoordinatorCommandError(Exception):
    """A failure of ``switchboard coordinator`` for :mod:`switchboard.cli` to print as one line.

    (Not :class:`switchboard.cli.CliError` itself: under ``python -m switchboard.cli`` that module
    runs as ``__main__``, whose CliError is another class than the one imported here.)
    """


def add_coordinator_parser(sub: Any) -> None:
    """Register ``coordinator`` on the ``switchboard`` subcommands (``sub`` from add_subparsers)."""
    parser = sub.add_parser(
        "coordinator",
        help="run one coordinator of several sharing state through Redis",
        description=(
            "Run a coordinator whose calls, rings and events live in Redis, so several coordinators "
            "behind one load balancer serve the same clients (see docs/deploy.md). The key pair comes "
            f"from {KEY_ENV} / {SECRET_ENV} (the same on every coordinator). Calls go to the SFU nodes "
            "registered in Redis; without --sfu-url (and --no-sfu) it also starts its own SFU process, "
            "which registers as one."
        ),
    )
    parser.add_argument(
        "--redis", required=True, type=_redis_url, metavar="URL", help="redis://host:6379/0 or unix:///path"
    )
    add_host_argument(parser)
    parser.add_argument("--port", type=_port, default=3030, help="coordinator port (default 3030; 0: any)")
    parser.add_argument(
        "--sfu-url",
        type=_sfu_url("ws://host:3031/sfu"),
        default=None,
        help="the shared SFU clients join (ws://host:3031/sfu); default: start an SFU process",
    )
    parser.add_argument("--sfu-port", type=_port, default=0, help="port of the own SFU process (default any)")
    parser.add_argument(
        "--no-sfu",
        action="store_true",
        help="start no SFU process: calls go to the SFU nodes registered in Redis (switchboard sfu --redis)",
    )
    parser.add_argument("--prefix", default="sb:", help="Redis key prefix of this deployment (default sb:)")
    add_log_level_argument(parser, "info", "stderr log level")


def run_coordinator_command(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop. CoordinatorCommandError for a bad start."""
    configure_logging(args.log_level)
    try:
        asyncio.run(_coordinator(args))
    except CliError as exc:
        raise CoordinatorCommandError(str(exc)) from None
    return 0


async def _coordinator(args: argparse.Namespace) -> None:
    from switchboard.server.coordinator.standalone import CoordinatorServer, RedisUnavailableError

    stop = stop_on_signals()
    keys = resolve_key_pair(create=False)
    server = CoordinatorServer(
        redis_url=args.redis,
        api_key=keys.api_key,
        api_secret=keys.api_secret,
        host=args.host,
        port=args.port,
        sfu_url=args.sfu_url,
        sfu_port=args.sfu_port,
        prefix=args.prefix,
        own_sfu=not args.no_sfu,
    )
    try:
        if not await start_unless_stopped(stop, server):
            return
    except RedisUnavailableError as exc:
        raise CliError(exc.message) from None
    except OSError as exc:
        await server.stop()
        raise bind_failure(args.host, f"port {args.port}", exc) from None
    print(
        f"switchboard coordinator on {server.url} (Redis {args.redis}, prefix {args.prefix!r}), "
        f"SFU {server.sfu_url or 'nodes registered in Redis'}, API key {keys.api_key}",
        flush=True,
    )
    await run_until_stopped(stop, server, "switchboard.coordinator")
