"""``switchboard cluster`` and the SFU node options of ``switchboard sfu`` (``--redis`` and co).

``switchboard cluster`` runs a whole deployment on this machine (:class:`LocalCluster`): Debian's
redis-server, N coordinators, M SFU nodes of either engine and a small balancer in front of the
coordinators; it prints the one URL clients use and stops every part on Ctrl-C or SIGTERM.
Kept apart from :mod:`switchboard.cli`, which only registers the command.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from switchboard.cli_common import (
    DEFAULT_PORT,
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError(f"{value} is out of range (1 to 16)")
    return value


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """``switchboard sfu``'s options for registering as a node in Redis."""
    parser.add_argument(
        "--redis",
        type=_redis_url,
        default=None,
        metavar="URL",
        help="register as an SFU node in this Redis (the coordinators' --redis) so calls are placed on it",
    )
    parser.add_argument("--prefix", default="sb:", help="Redis key prefix of the deployment (default sb:)")
    parser.add_argument("--node-id", default=None, help="this node's id (default: host name + random)")
    parser.add_argument(
        "--public-url",
        type=_sfu_url("wss://media1.example.com/sfu"),
        default=None,
        help="the signalling URL clients use for this node, behind a proxy (default: where it listens)",
    )


def node_registration(args: argparse.Namespace) -> dict[str, Any] | None:
    """The registration settings ``switchboard sfu`` was given (None without ``--redis``)."""
    if args.redis is None:
        return None
    return {
        "redis": args.redis,
        "prefix": args.prefix,
        "node_id": args.node_id,
        "public_url": args.public_url,
    }


def add_cluster_parser(sub: Any) -> None:
    """Register ``cluster`` on the ``switchboard`` subcommands (``sub`` from add_subparsers)."""
    parser = sub.add_parser(
        "cluster",
        help="run redis-server, coordinators and SFU nodes on this machine (development)",
        description=(
            "Start a local deployment: redis-server, --coordinators coordinators, --nodes SFU nodes and a "
            "balancer in front of the coordinators, each a process of its own. Clients use the one URL it "
            "prints. Ctrl-C stops everything. --engine janus needs --host on a non-loopback interface."
        ),
    )
    parser.add_argument(
        "--coordinators", type=_count, default=2, metavar="N", help="coordinators (default 2)"
    )
    parser.add_argument("--nodes", type=_count, default=2, metavar="M", help="SFU nodes (default 2)")
    parser.add_argument("--engine", choices=("embedded", "janus"), default="embedded", help="SFU engine")
    add_host_argument(parser)
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"the clients' port (default {DEFAULT_PORT}; 0: any)"
    )
    add_log_level_argument(parser, "warning", "stderr logging")


def run_cluster_command(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop. CliError (one line) when a part fails to start."""
    configure_logging(args.log_level)
    asyncio.run(_cluster(args))
    return 0


async def _cluster(args: argparse.Namespace) -> None:
    from switchboard.server.cluster import ClusterError, LocalCluster

    keys = resolve_key_pair(create=True)
    stop = stop_on_signals()
    try:
        cluster = LocalCluster(
            coordinators=args.coordinators,
            nodes=args.nodes,
            engine=args.engine,
            host=args.host,
            port=args.port,
            api_key=keys.api_key,
            api_secret=keys.api_secret,
            log_level=args.log_level,
        )
        if not await start_unless_stopped(stop, cluster):
            return
    except ClusterError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise bind_failure(args.host, f"port {args.port}", exc) from None
    print(
        f"switchboard cluster on {cluster.url}: {args.coordinators} coordinators, "
        f"{args.nodes} {args.engine} SFU nodes, Redis {cluster.redis_url} (API key {keys.api_key})",
        flush=True,
    )
    for part in cluster.processes:
        print(f"  {part.role:<11} pid {part.pid:<7} {part.url}", flush=True)
    await run_until_stopped(stop, cluster, "switchboard.cluster")
