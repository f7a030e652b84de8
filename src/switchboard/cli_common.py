"""What every ``switchboard`` subcommand shares: the one-line error, argument types and common options,
the key pair, logging, and the run shape of a server command (stop on SIGINT/SIGTERM, then stop cleanly).

:mod:`switchboard.cli` (serve, sfu, token, demo, devices), :mod:`switchboard.cli_coordinator` and
:mod:`switchboard.cli_cluster` build on it, so none imports another's internals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from switchboard.dev_keys import DevKeyError, load_dev_key_pair, load_or_create_dev_key_pair
from switchboard.errors import InvalidRequestError
from switchboard.sdk.validation import require_identifier

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3030

#: the choices of every server command's ``--log-level``
LOG_LEVELS = ("debug", "info", "warning", "error")

KEY_ENV, SECRET_ENV = "SWITCHBOARD_API_KEY", "SWITCHBOARD_API_SECRET"
PORT_ENV, SFU_PORT_ENV = "SWITCHBOARD_PORT", "SWITCHBOARD_SFU_PORT"


class CliError(Exception):
    """A failure to report as one line (``switchboard <command>: <message>``) and exit ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the help to read, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- argument types


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0: any free port)")
    return port


def _coordinator_url(text: str) -> str:
    """A coordinator base URL (http:// or https:// with a host), as the SDK's base_url accepts."""
    from switchboard.errors import InvalidRequestError
    from switchboard.sdk.validation import require_base_url

    try:
        return require_base_url(text)
    except InvalidRequestError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a coordinator URL: use http:// or https:// with a host "
            "(e.g. http://127.0.0.1:3030)"
        ) from None


def _env_port(name: str, default: int) -> str:
    """The default of a port option: ``$name`` when set (checked like the option), else ``default``."""
    return os.environ.get(name) or str(default)


def _ttl(text: str) -> float:
    try:
        ttl = float(text)
    except ValueError:
        ttl = math.nan
    if not (math.isfinite(ttl) and ttl > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return ttl


def _user_id(text: str) -> str:
    try:
        return require_identifier(text, "user id")
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a redis://, rediss:// or unix:// URL")
    return text


def _sfu_url(example: str) -> Callable[[str], str]:
    """The argument type of an SFU signalling URL (``ws://`` or ``wss://``, path ending in ``/sfu``);
    ``example`` is the URL its error message shows."""

    def check(text: str) -> str:
        if not text.startswith(("ws://", "wss://")) or not text.rstrip("/").endswith("/sfu"):
            raise argparse.ArgumentTypeError(f"{text!r} is not an SFU URL like {example}")
        return text

    return check


# ---------------------------------------------------------------- common options


def add_host_argument(parser: argparse.ArgumentParser) -> None:
    """``--host``, the address a server command listens on."""
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")


def add_log_level_argument(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    """``--log-level``: how much a server command logs on stderr (one of :data:`LOG_LEVELS`)."""
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=default, help=help)


# ---------------------------------------------------------------- key pair


@dataclass(frozen=True)
class KeyPair:
    api_key: str
    api_secret: str
    #: where it came from, for the user: the environment, or the development key file
    source: str
    #: the development pair's file (None when it came from the environment)
    stored_in: str | None = None


def resolve_key_pair(*, create: bool) -> KeyPair:
    """The key pair from SWITCHBOARD_API_KEY / SWITCHBOARD_API_SECRET, else the stored development pair.

    ``create``: make and store a development pair when none is stored (``serve``); otherwise its absence
    is a CliError (``token``). Half a pair in the environment is a CliError either way.
    """
    key, secret = os.environ.get(KEY_ENV), os.environ.get(SECRET_ENV)
    if key and secret:
        return KeyPair(key, secret, "environment")
    if key or secret:
        raise CliError(f"set both {KEY_ENV} and {SECRET_ENV}, or neither (to use the development pair)")
    try:
        stored = load_or_create_dev_key_pair() if create else load_dev_key_pair()
    except DevKeyError as exc:
        raise CliError(str(exc)) from None
    if stored is None:
        raise CliError(
            f"no key pair: set {KEY_ENV} and {SECRET_ENV}, or run `switchboard serve` once "
            "to create a development pair"
        )
    source = "new development pair" if stored.created else "development pair"
    return KeyPair(stored.api_key, stored.api_secret, source, str(stored.path))


# ---------------------------------------------------------------- serve


def configure_logging(level: str) -> None:
    """Server logs on stderr: each request (aiohttp's access log) and each error, at ``level``."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for chatty in ("aioice", "aiortc"):  # per-packet ICE/DTLS chatter: only problems
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


class _Startable(_Stoppable, Protocol):
    async def start(self) -> object: ...


async def start_unless_stopped(stop: asyncio.Event, server: _Startable) -> bool:
    """``await server.start()`` unless ``stop`` (SIGINT/SIGTERM) is set first: then the start-up is
    cancelled and ``server.stop()`` undoes what it had done. Whether the server started; the errors
    of ``start()`` propagate. (A start-up that waits on something that never answers, such as a
    silent Redis, must not make a server deaf to SIGTERM.)"""
    starting = asyncio.ensure_future(server.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if starting.done():
        starting.result()
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await starting
    await server.stop()
    return False


def stop_on_signals() -> asyncio.Event:
    """An event set on SIGINT (Ctrl-C) or SIGTERM, for a server command to stop cleanly.

    Call it on the running loop, before start-up (a signal during start-up stops it too); where the
    loop has no signal handlers (Windows), the signals keep their default behaviour.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def run_until_stopped(stop: asyncio.Event, server: _Stoppable, logger: str) -> None:
    """Wait for ``stop``, then log ``stopping`` on ``logger`` and stop ``server`` (also when cancelled)."""
    try:
        await stop.wait()
    finally:
        logging.getLogger(logger).info("stopping")
        await server.stop()


def bind_failure(host: str, ports: str, exc: OSError) -> CliError:
    """The one line for a server that could not listen (port taken, unknown host, no permission)."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror):
        return CliError(f"cannot listen on {host!r}: {reason}; check --host")
    two = " and " in ports  # serve listens on two ports; sfu, coordinator and cluster on one
    if exc.errno == errno.EADDRINUSE:
        options = "--port and --sfu-port" if two else "--port"
        hint = f"Is another server running? Stop it, or choose other ports with {options}"
    else:
        hint = "Check --host, --port and --sfu-port" if two else "Check --host and --port"
    return CliError(f"cannot listen on {host} ({ports}): {reason}. {hint}")
