"""The ``switchboard`` command: ``serve``, ``sfu``, ``coordinator``, ``cluster``, ``token``, ``demo``,
``devices``.

Every error is one readable line on stderr and a non-zero exit: 2 for a bad command line (argparse's
convention), 1 for anything else, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from switchboard import __version__
from switchboard.cli_common import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    KEY_ENV,
    PORT_ENV,
    SECRET_ENV,
    SFU_PORT_ENV,
    CliError,
    KeyPair,
    _coordinator_url,
    _env_port,
    _Parser,
    _port,
    _ttl,
    _user_id,
    add_host_argument,
    add_log_level_argument,
    bind_failure,
    configure_logging,
    resolve_key_pair,
    run_until_stopped,
    start_unless_stopped,
    stop_on_signals,
)
from switchboard.protocol.tokens import create_user_token


def announce(coordinator_url: str, sfu_url: str, keys: KeyPair) -> None:
    """What ``serve`` prints once it listens: where, and the key pair clients need."""
    print(f"switchboard coordinator on {coordinator_url}, SFU on {sfu_url} (API key {keys.api_key})")
    if keys.stored_in is not None:
        print(f"Using the {keys.source} stored in {keys.stored_in} (kept across restarts):")
        print(f"  export {KEY_ENV}={keys.api_key}")
        print(f"  export {SECRET_ENV}={keys.api_secret}")
        print("`switchboard token USER_ID` signs user tokens with it.")
    else:
        print(f"Using the key pair from {KEY_ENV} / {SECRET_ENV}.")
    print("Logging requests to stderr. Ctrl-C stops.", flush=True)


TURN_SECRET_ENV = "SWITCHBOARD_TURN_SECRET"


async def _serve(
    host: str,
    port: int,
    sfu_port: int,
    cors_origins: list[str] | None = None,
    dev_tokens: bool = False,
    *,
    public_url: str | None = None,
    public_sfu_url: str | None = None,
    stun_urls: list[str] | None = None,
    turn_urls: list[str] | None = None,
) -> None:
    from switchboard.server import EmbeddedServer, IceServerSettings

    stop = stop_on_signals()  # Ctrl-C / SIGTERM from here on, even during start-up: a clean stop
    keys = resolve_key_pair(create=True)
    if dev_tokens and keys.stored_in is None:
        raise CliError(
            f"--dev-tokens needs the generated development key pair; unset {KEY_ENV} / {SECRET_ENV} "
            "or drop --dev-tokens"
        )
    # the SFU in its own process: no client traffic on the coordinator can starve media forwarding
    try:
        ice = IceServerSettings(
            stun_urls=tuple(stun_urls or ()),
            turn_urls=tuple(turn_urls or ()),
            turn_secret=os.environ.get(TURN_SECRET_ENV) or None,
        )
        server = EmbeddedServer(
            host=host,
            port=port,
            sfu_port=sfu_port,
            api_key=keys.api_key,
            api_secret=keys.api_secret,
            cors_origins=cors_origins,
            development_tokens=dev_tokens,
            sfu_process=True,
            public_url=public_url,
            public_sfu_url=public_sfu_url,
            ice_servers=ice,
        )
    except ValueError as exc:
        detail = f" (set {TURN_SECRET_ENV})" if "turn_secret" in str(exc) else ""
        raise CliError(f"{exc}{detail}") from None
    try:
        if not await start_unless_stopped(stop, server):
            return
    except OSError as exc:
        await server.stop()
        raise bind_failure(host, f"ports {port} and {sfu_port}", exc) from None
    announce(server.url, server.sfu_url, keys)
    if public_url or public_sfu_url:
        print(f"Clients reach it at {server.public_url} (SFU {server.public_sfu_url}).", flush=True)
    await run_until_stopped(stop, server, "switchboard.serve")


# ---------------------------------------------------------------- sfu


async def _sfu_node(
    engine: str,
    host: str,
    port: int,
    coordinator: str,
    event_loops: int,
    registration: dict[str, Any] | None = None,
) -> None:
    """An SFU node for a coordinator elsewhere (prints ``{"sfu_url": ...}`` once it listens);
    ``registration``: the node registers in Redis (``server/sfu/registration.py``)."""
    from switchboard.server.sfu.process import run_sfu_node
    from switchboard.server.sfu_janus.janus_process import JanusConfig
    from switchboard.server.sfu_janus.node import janus_config_for

    keys = resolve_key_pair(create=False)
    janus = None
    if engine == "janus":
        try:
            janus = janus_config_for(host, JanusConfig(event_loops=event_loops)).to_json()
        except ValueError as exc:
            raise CliError(f"{exc}; give --host an address of a non-loopback interface") from None
    stop = stop_on_signals()
    try:
        await run_sfu_node(
            keys.api_secret,
            host=host,
            port=port,
            coordinator_url=coordinator,
            engine=engine,
            janus=janus,
            stop=stop,
            registration=registration,
        )
    except OSError as exc:
        raise bind_failure(host, f"port {port}", exc) from None
    except RuntimeError as exc:
        raise CliError(str(exc).splitlines()[0]) from None


# ---------------------------------------------------------------- the command line


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="switchboard",
        description="Real-time audio/video calls with multicall: run a server, sign tokens, see the demo.",
    )
    parser.add_argument("--version", action="version", version=f"switchboard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    serve = sub.add_parser(
        "serve",
        help="run the coordinator and the SFU",
        description=(
            "Run the coordinator (REST + events, the call page at /) and the SFU (media, in a process of "
            "its own). The key pair comes "
            f"from {KEY_ENV} / {SECRET_ENV}; when they are unset, a development pair is created once, "
            "stored in your config directory and reused on every start. Requests and errors are logged "
            "to stderr."
        ),
    )
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=_env_port(PORT_ENV, DEFAULT_PORT),
        help=f"coordinator port, the clients' base_url (default ${PORT_ENV} or {DEFAULT_PORT}; 0: any free)",
    )
    serve.add_argument(
        "--sfu-port",
        type=_port,
        default=_env_port(SFU_PORT_ENV, DEFAULT_PORT + 1),
        help=f"SFU signalling port (default ${SFU_PORT_ENV} or {DEFAULT_PORT + 1}; 0: any free port)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="allow browser pages from this origin (repeatable; default: any origin)",
    )
    serve.add_argument(
        "--dev-tokens",
        action="store_true",
        help="let the call page at / mint a token for any user (development key pair only)",
    )
    serve.add_argument(
        "--public-url",
        metavar="URL",
        help="the coordinator's address as clients see it behind a TLS proxy (https://calls.example.com)",
    )
    serve.add_argument(
        "--public-sfu-url",
        metavar="URL",
        help="the SFU's address handed to clients behind a TLS proxy (wss://calls.example.com/sfu)",
    )
    serve.add_argument(
        "--stun-url",
        action="append",
        dest="stun_urls",
        metavar="URL",
        help="a STUN server clients get (stun:host:3478; repeatable)",
    )
    serve.add_argument(
        "--turn-url",
        action="append",
        dest="turn_urls",
        metavar="URL",
        help=f"a TURN server clients get, with time-limited credentials from ${TURN_SECRET_ENV} "
        "(turn:host:3478?transport=udp, turns:host:5349; repeatable)",
    )
    add_log_level_argument(
        serve, "info", "how much to log on stderr (default info: every request and every error)"
    )

    token = sub.add_parser(
        "token",
        help="print a user token",
        description=(
            f"Print a user token signed with {SECRET_ENV} (or, when unset, with the development pair "
            "`switchboard serve` stored)."
        ),
    )
    token.add_argument("user_id", type=_user_id, help="the user it is for (letters, digits, _ - . @)")
    token.add_argument(
        "--ttl", type=_ttl, default=None, help="seconds until it expires (default: it never expires)"
    )

    sfu = sub.add_parser(
        "sfu",
        help="run an SFU node for a coordinator",
        description=(
            "Run an SFU node (media) that admits the SFU tokens of the coordinator at --coordinator. "
            "--engine janus starts a Janus gateway (Debian's janus package) behind the same signalling; "
            f"it needs --host on a non-loopback interface. The API secret comes from {SECRET_ENV} "
            "(or the development pair)."
        ),
    )
    sfu.add_argument("--engine", choices=("embedded", "janus"), default="embedded", help="media engine")
    add_host_argument(sfu)
    sfu.add_argument("--port", type=_port, default=DEFAULT_PORT + 1, help="signalling port (0: any free)")
    sfu.add_argument(
        "--coordinator", required=True, type=_coordinator_url, metavar="URL", help="the coordinator's URL"
    )
    sfu.add_argument(
        "--janus-event-loops", type=int, default=2, metavar="N", help="Janus media event loops (default 2)"
    )
    from switchboard.cli_cluster import add_node_arguments

    add_node_arguments(sfu)
    add_log_level_argument(sfu, "warning", "stderr logging")

    demo = sub.add_parser(
        "demo",
        help="the multicall use cases, end to end, on an embedded server",
        description=(
            "Three multicall stories with real WebRTC audio on a server inside this process: "
            "foreground/background rooms, a livestream paused by a 1:1 call, and a supervisor who "
            "monitors three calls ducked, whispers to one agent and barges in. Exits 1 if what is "
            "heard does not follow the policy."
        ),
    )
    demo.add_argument("--json", dest="json_path", default=None, help="write the measurements here (JSON)")
    demo.add_argument("--plot", dest="plot_path", default=None, help="write a plot of the levels here (PNG)")
    demo.add_argument(
        "--cluster",
        action="store_true",
        help="run against a local cluster (redis-server, 2 coordinators, 2 SFU nodes) instead",
    )
    demo.add_argument(
        "--devices",
        action="store_true",
        help="the livestream story on this machine's default microphone and speaker (PortAudio)",
    )
    sub.add_parser(
        "devices",
        help="list the audio devices DeviceMicrophone / DeviceSpeaker can use",
        description=(
            "The audio devices PortAudio sees (index, input and output channels, default sample rate, "
            "which are the defaults, name): what DeviceMicrophone(device=...) and DeviceSpeaker(device=...) "
            "accept."
        ),
    )
    from switchboard.cli_cluster import add_cluster_parser
    from switchboard.cli_coordinator import add_coordinator_parser

    add_coordinator_parser(sub)
    add_cluster_parser(sub)
    return parser


def _devices() -> int:
    """Print the audio devices PortAudio sees (``CliError`` when PortAudio is missing)."""
    from switchboard.errors import DeviceError
    from switchboard.media import list_audio_devices

    try:
        devices = list_audio_devices()
    except DeviceError as exc:
        raise CliError(str(exc)) from exc
    if not devices:
        print("no audio devices found")
        return 0
    print(f"{'index':>5}  {'in':>3}  {'out':>3}  {'rate':>6}  default  name")
    for d in devices:
        default = "/".join(n for n, on in (("in", d.is_default_input), ("out", d.is_default_output)) if on)
        channels = f"{d.index:>5}  {d.input_channels:>3}  {d.output_channels:>3}"
        print(f"{channels}  {d.default_sample_rate:>6.0f}  {default:<7}  {d.name}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        configure_logging(args.log_level)
        asyncio.run(
            _serve(
                args.host,
                args.port,
                args.sfu_port,
                args.cors_origins,
                args.dev_tokens,
                public_url=args.public_url,
                public_sfu_url=args.public_sfu_url,
                stun_urls=args.stun_urls,
                turn_urls=args.turn_urls,
            )
        )
        return 0
    if args.command == "coordinator":
        from switchboard.cli_coordinator import CoordinatorCommandError, run_coordinator_command

        try:
            return run_coordinator_command(args)
        except CoordinatorCommandError as exc:
            raise CliError(str(exc)) from None
    if args.command == "cluster":
        from switchboard.cli_cluster import run_cluster_command

        return run_cluster_command(args)
    if args.command == "sfu":
        configure_logging(args.log_level)
        from switchboard.cli_cluster import node_registration

        asyncio.run(
            _sfu_node(
                args.engine,
                args.host,
                args.port,
                args.coordinator,
                args.janus_event_loops,
                node_registration(args),
            )
        )
        return 0
    if args.command == "token":
        keys = resolve_key_pair(create=False)
        print(create_user_token(keys.api_secret, args.user_id, args.ttl))
        return 0
    if args.command == "devices":
        return _devices()
    for option, path in (("--json", args.json_path), ("--plot", args.plot_path)):
        if path is not None:
            require_writable(path, option)
    if args.devices and args.cluster:
        raise CliError("--devices and --cluster cannot be combined: the devices demo runs in this process")
    if args.devices:
        return _devices_demo(args.json_path, args.plot_path)
    from switchboard.demo import run_demo

    return asyncio.run(run_demo(json_path=args.json_path, plot_path=args.plot_path, cluster=args.cluster))


def _devices_demo(json_path: str | None, plot_path: str | None) -> int:
    """``demo --devices``: one line and exit 1 when there is no usable audio device."""
    from switchboard.demo.devices import run_devices_demo
    from switchboard.errors import DeviceError

    try:
        return asyncio.run(run_devices_demo(json_path=json_path, plot_path=plot_path))
    except DeviceError as exc:
        raise CliError(f"no usable audio device: {exc}") from exc


def require_writable(path: str, option: str) -> None:
    """Fail now, not after a 30 s demo, when ``path`` cannot be written (no such directory, no permission)."""
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise CliError(f"{option} {path}: is a directory; give a file name")
    if not os.path.isdir(folder):
        raise CliError(f"{option} {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK) or (os.path.exists(target) and not os.access(target, os.W_OK)):
        raise CliError(f"{option} {path}: not writable")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = _run(args)
    except CliError as exc:
        print(f"switchboard {args.command}: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print(f"switchboard {args.command}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
