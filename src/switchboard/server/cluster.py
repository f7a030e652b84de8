"""A whole deployment on this machine: redis-server, N coordinators, M SFU nodes and a balancer.

:class:`LocalCluster` is what ``switchboard cluster`` runs and ``switchboard demo --cluster`` talks
to (``docs/deploy.md``): every part is a process of its own, started the way an operator would start
it on separate hosts (``switchboard coordinator --redis URL --no-sfu``, ``switchboard sfu --redis
URL``), with Redis on a unix socket in a temporary directory. Clients use one URL, the balancer's,
which spreads connections over the coordinators round robin. :meth:`LocalCluster.stop` stops
every process it started (SIGTERM, then SIGKILL after a timeout), nodes first.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path

from switchboard.protocol.tokens import create_user_token, generate_key_pair
from switchboard.server.balancer import TcpBalancer
from switchboard.server.lifecycle import StartStop

#: seconds a process gets to say it listens, then to stop after SIGTERM
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

_COORDINATOR_LINE = re.compile(rb"^switchboard coordinator on (http://\S+) ")


async def _all(starts: Iterable[Awaitable[object]]) -> None:
    """Run ``starts`` concurrently; once every one has finished, raise the first failure (so no start
    is still under way when the caller cleans up)."""
    results = await asyncio.gather(*starts, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class ClusterError(Exception):
    """A part of the cluster could not start (the message is one line for the command line)."""


@dataclass
class ClusterProcess:
    """One process of the cluster: ``role`` is ``redis``, ``coordinator`` or ``sfu``."""

    role: str
    proc: asyncio.subprocess.Process
    url: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid


def redis_server_binary() -> str:
    """The path of Debian's ``redis-server`` (ClusterError when it is not installed)."""
    path = shutil.which("redis-server")
    if path is None:
        raise ClusterError("redis-server is not installed (run scripts/install-system-deps.sh as root)")
    return path


class LocalCluster(StartStop):
    """Start with ``await start()`` (or ``async with``); then ``url`` is where clients connect.

    ``coordinators`` and ``nodes``: how many of each (at least 1); ``engine``: ``embedded`` or
    ``janus`` for the SFU nodes (janus needs ``host`` on a non-loopback interface: ClusterError
    otherwise); ``port``: the balancer's port (0: any free); ``api_key``/``api_secret``: the
    deployment's key pair (default: a fresh one). ClusterError when a part does not start (every part
    started so far is stopped again), OSError when the balancer cannot bind.
    """

    def __init__(
        self,
        *,
        coordinators: int = 2,
        nodes: int = 2,
        engine: str = "embedded",
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        api_secret: str | None = None,
        prefix: str = "sb:",
        log_level: str = "warning",
    ) -> None:
        if coordinators < 1 or nodes < 1:
            raise ClusterError("a cluster needs at least one coordinator and one SFU node")
        if engine not in ("embedded", "janus"):
            raise ClusterError(f"engine must be 'embedded' or 'janus', not {engine!r}")
        if engine == "janus":
            from switchboard.server.sfu_janus.node import janus_config_for

            try:
                janus_config_for(host)
            except ValueError as exc:
                raise ClusterError(f"{exc}; give --host an address of a non-loopback interface") from None
        if (api_key is None) != (api_secret is None):
            raise ValueError("give both api_key and api_secret, or neither")
        if api_key is None or api_secret is None:
            api_key, api_secret = generate_key_pair()
        self.api_key, self._api_secret = api_key, api_secret
        self.coordinator_count, self.node_count = coordinators, nodes
        self.engine, self.host, self.port, self.prefix = engine, host, port, prefix
        self.log_level = log_level
        self.processes: list[ClusterProcess] = []
        self.redis_url = ""
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._balancer: TcpBalancer | None = None

    # ---------------------------------------------------------------- what clients and tests use

    def create_token(self, user_id: str, ttl: float | None = None) -> str:
        """A user token signed with the cluster's API secret."""
        return create_user_token(self._api_secret, user_id, ttl)

    def of_role(self, role: str) -> list[ClusterProcess]:
        return [p for p in self.processes if p.role == role]

    @property
    def coordinator_urls(self) -> list[str]:
        return [p.url for p in self.of_role("coordinator")]

    @property
    def node_urls(self) -> list[str]:
        return [p.url for p in self.of_role("sfu")]

    # ---------------------------------------------------------------- start and stop

    async def start(self) -> str:
        """Start Redis, the coordinators, the balancer, then the SFU nodes; returns ``url``."""
        try:
            await self._start_redis()
            coordinator = ["coordinator", "--redis", self.redis_url, "--prefix", self.prefix, "--no-sfu"]
            await _all(
                self._spawn("coordinator", coordinator, ["--host", self.host, "--port", "0"])
                for _ in range(self.coordinator_count)
            )
            backends: list[tuple[str, int]] = []
            for url in self.coordinator_urls:
                host, port = url.removeprefix("http://").rsplit(":", 1)
                backends.append((host.strip("[]"), int(port)))
            self._balancer = TcpBalancer(backends, rotate=True, host=self.host, port=self.port)
            self.url = await self._balancer.start()
            await _all(self.add_node() for _ in range(self.node_count))
        except BaseException:
            await self.stop()
            raise
        return self.url

    async def add_node(self) -> ClusterProcess:
        """Start one more SFU node (it registers, and new calls may land on it); ClusterError if it
        does not start."""
        return await self._spawn(
            "sfu",
            ["sfu", "--redis", self.redis_url, "--prefix", self.prefix, "--engine", self.engine],
            ["--host", self.host, "--port", "0", "--coordinator", self.url],
        )

    async def _start_redis(self) -> None:
        binary = redis_server_binary()
        self._tmp = tempfile.TemporaryDirectory(prefix="sb-cluster-")
        sock = Path(self._tmp.name) / "redis.sock"
        proc = await asyncio.create_subprocess_exec(
            binary,
            *("--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"),
            *("--save", "", "--appendonly", "no", "--dir", self._tmp.name),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(ClusterProcess("redis", proc))
        self.redis_url = f"unix://{sock}"
        for _ in range(int(START_TIMEOUT / 0.02)):
            if sock.exists():
                return
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.02)
        raise ClusterError(f"redis-server did not start (exit {proc.returncode})")

    async def _spawn(self, role: str, command: list[str], where: list[str]) -> ClusterProcess:
        env = {
            **os.environ,
            "SWITCHBOARD_API_KEY": self.api_key,
            "SWITCHBOARD_API_SECRET": self._api_secret,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "switchboard.cli",
            *command,
            *where,
            "--log-level",
            self.log_level,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the cluster, which stops its parts in order
        )
        part = ClusterProcess(role, proc)
        self.processes.append(part)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            raise ClusterError(f"the {role} process did not start within {START_TIMEOUT:.0f} s") from None
        if role == "coordinator":
            match = _COORDINATOR_LINE.match(line)
            part.url = match.group(1).decode() if match else ""
        else:
            try:
                part.url = str(json.loads(line)["sfu_url"])
            except (ValueError, KeyError, TypeError):
                part.url = ""
        if not part.url:
            raise ClusterError(f"the {role} process did not start (see its error above)")
        return part

    async def stop(self) -> None:
        """Stop every process started (SFU nodes, coordinators, then Redis) and the balancer."""
        order = {"sfu": 0, "coordinator": 1, "redis": 2}
        for role in sorted(order, key=order.__getitem__):
            parts = [p for p in self.processes if p.role == role]
            await asyncio.gather(*(self._terminate(p.proc) for p in parts))
            if role == "coordinator" and self._balancer is not None:
                await self._balancer.stop()
                self._balancer = None
        self.processes.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @staticmethod
    async def _terminate(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
