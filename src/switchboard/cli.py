"""The ``switchboard`` command: ``serve``, ``token``, ``demo`` and ``devices``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from switchboard.protocol.tokens import create_user_token, generate_key_pair

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3030


def _key_pair(announce: bool) -> tuple[str, str]:
    key, secret = os.environ.get("SWITCHBOARD_API_KEY"), os.environ.get("SWITCHBOARD_API_SECRET")
    if key and secret:
        return key, secret
    if key or secret:
        sys.exit("switchboard: set both SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET, or neither")
    key, secret = generate_key_pair()
    if announce:
        print("No SWITCHBOARD_API_KEY / SWITCHBOARD_API_SECRET set: using a development pair:")
        print(f"  export SWITCHBOARD_API_KEY={key}")
        print(f"  export SWITCHBOARD_API_SECRET={secret}")
    return key, secret


async def _serve(host: str, port: int, sfu_port: int) -> None:
    from switchboard.server import EmbeddedServer

    key, secret = _key_pair(announce=True)
    server = EmbeddedServer(host=host, port=port, sfu_port=sfu_port, api_key=key, api_secret=secret)
    await server.start()
    print(f"switchboard coordinator on {server.url}, SFU on {server.sfu_url} (API key {server.api_key})")
    print("Ctrl-C stops", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def _devices() -> int:
    """Print the audio devices PortAudio sees; one line and exit status 1 when it cannot."""
    from switchboard.errors import DeviceError
    from switchboard.media import list_audio_devices

    try:
        devices = list_audio_devices()
    except DeviceError as exc:
        print(f"switchboard devices: {exc}", file=sys.stderr)
        return 1
    if not devices:
        print("no audio devices found")
        return 0
    print(f"{'index':>5}  {'in':>3}  {'out':>3}  {'rate':>6}  default  name")
    for d in devices:
        default = "/".join(n for n, on in (("in", d.is_default_input), ("out", d.is_default_output)) if on)
        rate = f"{d.default_sample_rate:.0f}"
        print(
            f"{d.index:>5}  {d.input_channels:>3}  {d.output_channels:>3}  {rate:>6}  {default:<7}  {d.name}"
        )
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the coordinator and SFU")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--sfu-port", type=int, default=DEFAULT_PORT + 1, help="SFU signalling port (0: any free)"
    )
    token = sub.add_parser("token", help="print a user token signed with SWITCHBOARD_API_SECRET")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=float, default=None, help="seconds until it expires (default: never)")
    demo = sub.add_parser("demo", help="both multicall use cases, end to end, on an embedded server")
    demo.add_argument("--json", dest="json_path", default=None, help="write a JSON report here")
    demo.add_argument("--plot", dest="plot_path", default=None, help="write a PNG plot here")
    sub.add_parser("devices", help="list the audio devices DeviceMicrophone / DeviceSpeaker can use")
    args = parser.parse_args(argv)

    if args.command == "serve":
        asyncio.run(_serve(args.host, args.port, args.sfu_port))
    elif args.command == "token":
        if not (os.environ.get("SWITCHBOARD_API_KEY") and os.environ.get("SWITCHBOARD_API_SECRET")):
            sys.exit(
                "switchboard token: set SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET (as printed by serve)"
            )
        print(create_user_token(os.environ["SWITCHBOARD_API_SECRET"], args.user_id, args.ttl))
    elif args.command == "devices":
        sys.exit(_devices())
    elif args.command == "demo":
        from switchboard.demo import run_demo

        sys.exit(asyncio.run(run_demo(json_path=args.json_path, plot_path=args.plot_path)))


if __name__ == "__main__":
    main()
