"""The ``switchboard`` command: ``serve``, ``token`` and ``demo``."""

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


async def _serve(
    host: str, port: int, sfu_port: int, cors_origins: list[str] | None = None, dev_tokens: bool = False
) -> None:
    from switchboard.server import EmbeddedServer

    if dev_tokens and os.environ.get("SWITCHBOARD_API_SECRET"):
        sys.exit(
            "switchboard serve: --dev-tokens needs the generated development key pair; "
            "unset SWITCHBOARD_API_KEY / SWITCHBOARD_API_SECRET or drop --dev-tokens"
        )
    key, secret = _key_pair(announce=True)
    # the SFU in its own process: no client traffic on the coordinator can starve media forwarding
    server = EmbeddedServer(
        host=host,
        port=port,
        sfu_port=sfu_port,
        api_key=key,
        api_secret=secret,
        cors_origins=cors_origins,
        development_tokens=dev_tokens,
        sfu_process=True,
    )
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the coordinator and the SFU (in a process of its own)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--sfu-port", type=int, default=DEFAULT_PORT + 1, help="SFU signalling port (0: any free)"
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
    token = sub.add_parser("token", help="print a user token signed with SWITCHBOARD_API_SECRET")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=float, default=None, help="seconds until it expires (default: never)")
    demo = sub.add_parser("demo", help="both multicall use cases, end to end, on an embedded server")
    demo.add_argument("--json", dest="json_path", default=None, help="write a JSON report here")
    demo.add_argument("--plot", dest="plot_path", default=None, help="write a PNG plot here")
    args = parser.parse_args(argv)

    if args.command == "serve":
        asyncio.run(_serve(args.host, args.port, args.sfu_port, args.cors_origins, args.dev_tokens))
    elif args.command == "token":
        if not (os.environ.get("SWITCHBOARD_API_KEY") and os.environ.get("SWITCHBOARD_API_SECRET")):
            sys.exit(
                "switchboard token: set SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET (as printed by serve)"
            )
        print(create_user_token(os.environ["SWITCHBOARD_API_SECRET"], args.user_id, args.ttl))
    elif args.command == "demo":
        from switchboard.demo import run_demo

        sys.exit(asyncio.run(run_demo(json_path=args.json_path, plot_path=args.plot_path)))


if __name__ == "__main__":
    main()
