"""Run a Janus gateway (Debian's ``janus`` 1.1) configured by switchboard.

:class:`JanusProcess` writes a complete configuration into a temporary directory (nothing from
``/etc/janus`` is read), starts ``janus`` on it, waits until its WebSocket API answers, and stops it
(SIGTERM, then SIGKILL) when asked or when this process exits.

What the configuration says, and why:

* only the VideoRoom plugin and the WebSocket transport are loaded; the API listens on
  ``api_host``:``api_port`` (loopback by default), the Admin API is off;
* ``event_loops``: Janus handles media on this many shared loops instead of one thread per handle
  (about 790 audio down-tracks per core with 2, against 470 with the default);
* ICE: no STUN/TURN server, no mDNS, host candidates only on ``ice_interface`` (an interface name or
  an address prefix; Janus never offers loopback addresses), RTP on ``rtp_port_range``;
* ``session_timeout``: Janus sessions whose controller stops sending keepalives are reclaimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

JANUS_BINARY = "janus"
#: where Debian's ``janus`` package puts its plugins and transports
JANUS_LIB_DIR = Path("/usr/lib/x86_64-linux-gnu/janus")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


@dataclass
class JanusConfig:
    """Settings of a Janus instance started by :class:`JanusProcess`."""

    #: interface name or address prefix Janus gathers ICE host candidates on (None: all but loopback)
    ice_interface: str | None = None
    #: address the WebSocket API listens on
    api_host: str = "127.0.0.1"
    #: its port (0: a free one)
    api_port: int = 0
    #: Janus's shared media event loops (0: one thread per handle, Janus's default)
    event_loops: int = 2
    #: UDP ports for RTP/RTCP, "min-max"
    rtp_port_range: str = "20000-40000"
    #: seconds without a keepalive before Janus drops a session
    session_timeout: int = 60
    #: Janus log level, 0 (none) .. 7 (huge)
    debug_level: int = 3
    #: the ``janus`` executable
    binary: str = JANUS_BINARY
    #: directory holding Janus's ``plugins`` and ``transports``
    lib_dir: Path = JANUS_LIB_DIR

    def __post_init__(self) -> None:
        self.lib_dir = Path(self.lib_dir)  # also when given as a string (settings read from JSON)

    def to_json(self) -> dict[str, object]:
        """The settings as JSON-ready values (``JanusConfig(**that)`` reads them back)."""
        return {**dataclasses.asdict(self), "lib_dir": str(self.lib_dir)}


def _free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def render_config(config: JanusConfig, folder: Path, api_port: int) -> dict[str, str]:
    """The configuration files (name -> libconfig text) for ``config``, Janus reading ``folder``."""
    nat = [
        "\tignore_mdns = true",
        "\tfull_trickle = false",
        "\tnice_debug = false",
    ]
    if config.ice_interface:
        nat.append(f'\tice_enforce_list = "{config.ice_interface}"')
    lib = config.lib_dir
    # every plugin / transport Debian ships except the ones we use
    plugins = sorted(p.name for p in (lib / "plugins").glob("*.so") if p.name != "libjanus_videoroom.so")
    transports = sorted(
        p.name for p in (lib / "transports").glob("*.so") if p.name != "libjanus_websockets.so"
    )
    general = [
        f'\tconfigs_folder = "{folder}"',
        f'\tplugins_folder = "{lib / "plugins"}"',
        f'\ttransports_folder = "{lib / "transports"}"',
        f'\tevents_folder = "{lib / "events"}"',
        f'\tloggers_folder = "{lib / "loggers"}"',
        f"\tdebug_level = {config.debug_level}",
        "\tdebug_timestamps = true",
        '\tserver_name = "switchboard-janus"',
        f"\tsession_timeout = {config.session_timeout}",
        "\treclaim_session_timeout = 0",
        "\tprotected_folders = []",
    ]
    if config.event_loops > 0:
        general.append(f"\tevent_loops = {config.event_loops}")
    janus = "\n".join(
        [
            "general: {",
            *general,
            "}",
            "certificates: {",
            "}",
            "media: {",
            f'\trtp_port_range = "{config.rtp_port_range}"',
            "}",
            "nat: {",
            *nat,
            "}",
            "plugins: {",
            f'\tdisable = "{",".join(plugins)}"',
            "}",
            "transports: {",
            f'\tdisable = "{",".join(transports)}"',
            "}",
            "loggers: {",
            '\tdisable = "libjanus_jsonlog.so"',
            "}",
            "events: {",
            "\tbroadcast = false",
            "}",
            "",
        ]
    )
    websockets = "\n".join(
        [
            "general: {",
            '\tjson = "compact"',
            "\tws = true",
            f"\tws_port = {api_port}",
            f'\tws_ip = "{config.api_host}"',
            "\twss = false",
            "}",
            "admin: {",
            "\tadmin_ws = false",
            "\tadmin_wss = false",
            "}",
            "",
        ]
    )
    return {
        "janus.jcfg": janus,
        "janus.transport.websockets.jcfg": websockets,
        "janus.plugin.videoroom.jcfg": "general: {\n}\n",
    }


class JanusProcess:
    """One ``janus`` child process with a generated configuration.

    ``await start()`` returns the WebSocket API URL (``ws://host:port``); ``RuntimeError`` if the
    binary is missing (install Debian's ``janus``: ``scripts/install-system-deps.sh``) or Janus does
    not answer within 15 s (its log is in the message).
    """

    def __init__(self, config: JanusConfig | None = None) -> None:
        self.config = config or JanusConfig()
        self._proc: asyncio.subprocess.Process | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return Path(self._dir.name) / "janus.log" if self._dir is not None else None

    def read_log(self) -> str:
        """Janus's log so far ("" before start)."""
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")

    async def start(self) -> str:
        binary = shutil.which(self.config.binary)
        if binary is None:
            raise RuntimeError(
                f"{self.config.binary!r} not found: install Debian's janus package "
                "(scripts/install-system-deps.sh)"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="switchboard-janus-")
        folder = Path(self._dir.name)
        port = self.config.api_port or _free_tcp_port(self.config.api_host)
        for name, text in render_config(self.config, folder, port).items():
            (folder / name).write_text(text)
        log = (folder / "janus.log").open("wb")
        self._proc = await asyncio.create_subprocess_exec(
            binary,
            "--configs-folder",
            str(folder),
            "--config",
            str(folder / "janus.jcfg"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()
        host = f"[{self.config.api_host}]" if ":" in self.config.api_host else self.config.api_host
        self.url = f"ws://{host}:{port}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while True:
                if self._proc.returncode is not None:
                    text = self.read_log()
                    await self.stop()
                    raise RuntimeError(f"janus exited at start:\n{text[-3000:]}")
                try:
                    async with http.ws_connect(self.url, protocols=("janus-protocol",)) as ws:
                        await ws.send_json({"janus": "info", "transaction": "probe"})
                        reply = await ws.receive_json(timeout=2.0)
                        if reply.get("janus") == "server_info":
                            return self.url
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                    pass
                if loop.time() > deadline:
                    text = self.read_log()
                    await self.stop()
                    raise RuntimeError(f"janus did not answer within {START_TIMEOUT} s:\n{text[-3000:]}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s; the configuration directory is removed."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                self._dir.cleanup()
            self._dir = None
