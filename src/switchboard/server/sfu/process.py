"""The SFU in a process of its own, so no client traffic on the coordinator can starve media.

``EmbeddedServer(sfu_process=True)`` and ``switchboard serve`` start ``python -m
switchboard.server.sfu``: the child reads its settings as one JSON line on stdin (so the API
secret never shows in a process list), runs :class:`SfuServer` on its own event loop, prints
``{"sfu_url": ...}`` once it listens, and shuts down when its stdin closes (its parent stopped or
died) or on SIGTERM.

The channel between the two processes is HTTP on loopback, authenticated both ways with admin tokens
signed by the API secret: the SFU asks the coordinator before admitting a token and reports sessions
joining and leaving (``server/coordinator/internal.py``); the coordinator tells the SFU when a call
ends (``POST /sfu/internal/end_call``). See ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

import aiohttp
from aiohttp import web

from switchboard.errors import CallStateError, SwitchboardError, error_for
from switchboard.media.local_ice import loopback_ice_address
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims, create_admin_token
from switchboard.server.sfu.internal_routes import add_sfu_internal_routes
from switchboard.server.sfu.registration import (
    LoadProbe,
    NodeRegistration,
    SessionCounter,
    internal_url_of,
    signalling_load,
)
from switchboard.server.sfu.server import SfuConfig, SfuServer

log = logging.getLogger("switchboard.sfu.process")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
#: seconds the SFU waits for the coordinator's answer at admission
CHANNEL_TIMEOUT = 5.0


class _AdminAuth:
    """A cached admin token for one side of the channel (re-minted every half hour)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._token = ""
        self._minted = 0.0

    def headers(self) -> dict[str, str]:
        now = time.monotonic()
        if not self._token or now - self._minted > 1800:
            self._token, self._minted = create_admin_token(self._secret, ttl=3600.0), now
        return {"Authorization": f"Bearer {self._token}"}


# ---------------------------------------------------------------- the child: SFU side


class CoordinatorChannel:
    """The SFU's hooks, carried to the coordinator over HTTP."""

    def __init__(self, base_url: str, secret: str) -> None:
        self._base = base_url.rstrip("/")
        self._auth = _AdminAuth(secret)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHANNEL_TIMEOUT))

    async def _post(self, path: str, body: str) -> None:
        headers = {**self._auth.headers(), "Content-Type": "application/json"}
        for attempt in (1, 2):
            try:
                async with self._http.post(self._base + path, data=body, headers=headers) as resp:
                    if resp.status < 400:
                        return
                    raw = await resp.read()
                    break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # a kept-alive connection the coordinator (or a balancer) closed as it was reused:
                # admission and session reports are safe to send again, once, on a new connection
                if attempt == 1:
                    continue
                raise CallStateError(
                    f"the coordinator is unreachable: {exc}", code="coordinator_unavailable"
                ) from exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise CallStateError(
                    f"the coordinator is unreachable: {exc}", code="coordinator_unavailable"
                ) from exc
        try:
            err = json.loads(raw)
            raise error_for(resp.status, str(err["code"]), str(err["message"]))
        except (ValueError, KeyError, TypeError):
            raise error_for(resp.status, None, f"coordinator answered HTTP {resp.status}") from None

    async def admit(self, claims: SfuClaims) -> None:
        await self._post(p.INTERNAL_ADMIT_PATH, claims.model_dump_json())

    async def participant_changed(self, cid: str, user_id: str, session_id: str, joined: bool) -> None:
        body = json.dumps({"cid": cid, "user_id": user_id, "session_id": session_id, "joined": joined})
        try:
            await self._post(p.INTERNAL_PARTICIPANT_PATH, body)
        except SwitchboardError as exc:
            log.warning("could not tell the coordinator about %s in %s: %s", session_id, cid, exc)

    async def close(self) -> None:
        await self._http.close()


def _registration(settings: dict[str, Any], url: str, probe: LoadProbe) -> NodeRegistration | None:
    """The node's registration in Redis when ``settings`` name one (``redis``), else None."""
    if not settings.get("redis"):
        return None
    return NodeRegistration(
        str(settings["redis"]),
        url=str(settings.get("public_url") or url),
        internal_url=internal_url_of(url),
        probe=probe,
        engine=str(settings.get("engine", "embedded")),
        prefix=str(settings.get("prefix", "sb:")),
        node_id=settings.get("node_id"),
    )


async def _serve(settings: dict[str, Any], stop: asyncio.Event) -> None:
    config = SfuConfig(**settings["sfu"])
    channel = CoordinatorChannel(str(settings["coordinator_url"]), config.api_secret)
    registration: NodeRegistration | None = None
    if settings.get("engine", "embedded") == "janus":
        from switchboard.server.sfu_janus.janus_process import JanusConfig
        from switchboard.server.sfu_janus.node import serve_janus_node

        counter = SessionCounter(channel.participant_changed)
        registered = asyncio.Event()  # set once Janus and the signalling endpoint are up

        listening_at: list[str] = []

        def listening(url: str) -> None:
            listening_at.append(url)
            registered.set()

        janus_task = asyncio.create_task(
            serve_janus_node(
                config,
                JanusConfig(**settings.get("janus", {})),
                host=str(settings["host"]),
                port=int(settings["port"]),
                stop=stop,
                admission=channel.admit,
                on_participant=counter.participant_changed,
                on_listening=listening,
            )
        )
        waiter = asyncio.create_task(registered.wait())
        try:
            await asyncio.wait({janus_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if listening_at:  # registered before it says it listens, like the embedded engine
                registration = _registration(settings, listening_at[0], counter.load)
                if registration is not None:
                    await registration.start()
                print(json.dumps({"sfu_url": listening_at[0]}), flush=True)
            await janus_task
        finally:
            waiter.cancel()
            if registration is not None:
                await registration.stop()
            if not janus_task.done():
                stop.set()
                await asyncio.gather(janus_task, return_exceptions=True)
            await channel.close()
        return
    sfu = SfuServer(config, admission=channel.admit, on_participant=channel.participant_changed)
    app = sfu.app()

    add_sfu_internal_routes(app, sfu, config.api_secret)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, str(settings["host"]), int(settings["port"])).start()
        host, port = runner.addresses[0][:2]
        registration = _registration(settings, f"ws://{host}:{port}/sfu", lambda: signalling_load(sfu))
        if registration is not None:
            await registration.start()
        print(json.dumps({"sfu_url": f"ws://{host}:{port}/sfu"}), flush=True)
        await stop.wait()
    finally:
        if registration is not None:
            await registration.stop()
        await sfu.close()
        await runner.cleanup()
        await channel.close()


async def run_sfu_node(
    api_secret: str,
    *,
    host: str,
    port: int,
    coordinator_url: str,
    engine: str = "embedded",
    janus: dict[str, Any] | None = None,
    stop: asyncio.Event,
    registration: dict[str, Any] | None = None,
) -> None:
    """An SFU node of either engine for the coordinator at ``coordinator_url`` until ``stop`` is set
    (``switchboard sfu``); prints ``{"sfu_url": ...}`` once it listens.

    ``registration`` (``{"redis": URL, "prefix": ..., "node_id": ..., "public_url": ...}``) makes
    it register and heartbeat in Redis as a node the coordinators place calls on
    (``server/sfu/registration.py``); RuntimeError when that Redis does not answer.
    """
    # media stays on loopback when the node listens there (aioice gathers no loopback candidates)
    config = SfuConfig(api_secret=api_secret, ice_loopback_address=loopback_ice_address(host))
    settings = {
        "sfu": dataclasses.asdict(config),
        "host": host,
        "port": port,
        "coordinator_url": coordinator_url,
        "engine": engine,
        "janus": janus or {},
        **(registration or {}),
    }
    await _serve(settings, stop)


async def _child_main() -> None:
    loop = asyncio.get_running_loop()
    settings = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed our stdin or died
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="sfu-stdin-watch", daemon=True).start()
    await _serve(settings, stop)


# ---------------------------------------------------------------- the parent: coordinator side


class SfuProcess:
    """Starts, talks to and stops the SFU child process (used by :class:`EmbeddedServer`).

    ``registration``: see :func:`run_sfu_node` (the child registers as an SFU node in Redis).
    """

    def __init__(
        self,
        config: SfuConfig,
        *,
        host: str,
        port: int,
        coordinator_url: str,
        engine: str = "embedded",
        janus: dict[str, Any] | None = None,
        registration: dict[str, Any] | None = None,
    ) -> None:
        self._settings = {
            "sfu": dataclasses.asdict(config),
            "host": host,
            "port": port,
            "coordinator_url": coordinator_url,
            "engine": engine,
            "janus": janus or {},
            **(registration or {}),
        }
        self._auth = _AdminAuth(config.api_secret)
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> str:
        """Spawn the child and wait until it listens; its signalling URL. RuntimeError if it fails.

        Called again after the child died, it starts a new child on the port the first one listened on.
        """
        if self._http is not None:  # a restart: the previous child's channel
            await self._http.close()
            self._http = None
        proc = self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "switchboard.server.sfu",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(self._settings).encode() + b"\n")
        await proc.stdin.drain()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
            self.url = str(json.loads(line)["sfu_url"])
        except (TimeoutError, ValueError, KeyError) as exc:
            await self.stop()
            raise RuntimeError(f"the SFU process did not start: {exc!r}") from exc
        self._settings["port"] = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])  # kept by a restart
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHANNEL_TIMEOUT))
        return self.url

    async def wait_exit(self) -> int | None:
        """Wait until the child exits on its own: its exit code (negative: the signal that killed it).

        None when :meth:`stop` ended it or it is not running.
        """
        proc = self._proc
        if proc is None:
            return None
        code = await proc.wait()
        if self._proc is not proc:
            return None
        if proc.stdin is not None:
            proc.stdin.close()
        return code

    async def end_call(self, cid: str) -> None:
        """Tell the SFU the call ended: it says ``call_ended`` to every session and closes the room."""
        if self._http is None:
            return
        base = self.url.replace("ws://", "http://", 1).removesuffix("/sfu")
        try:
            async with self._http.post(
                base + p.INTERNAL_END_CALL_PATH, json={"cid": cid}, headers=self._auth.headers()
            ) as resp:
                if resp.status >= 400:
                    raise RuntimeError(f"the SFU refused end_call for {cid}: HTTP {resp.status}")
        except (aiohttp.ClientConnectionError, OSError) as exc:
            # the child died (and is restarting empty): none of its sessions is left to tell
            log.warning("end_call for %s: the SFU process is unreachable (%s)", cid, exc)

    async def moderate(self, command: p.ModerationCommand) -> None:
        """Tell the SFU what a moderator did (``server/sfu/moderation.py``)."""
        if self._http is None:
            return
        base = self.url.replace("ws://", "http://", 1).removesuffix("/sfu")
        try:
            async with self._http.post(
                base + p.INTERNAL_MODERATE_PATH, data=command.model_dump_json(), headers=self._auth.headers()
            ) as resp:
                if resp.status >= 400:
                    raise RuntimeError(
                        f"the SFU refused a moderation command for {command.cid}: HTTP {resp.status}"
                    )
        except (aiohttp.ClientConnectionError, OSError) as exc:
            # the child died: its sessions are gone; the coordinator's event tells the clients
            log.warning("%s in %s: the SFU process is unreachable (%s)", command.action, command.cid, exc)

    async def update_grants(self, update: p.GrantsUpdate) -> int:
        """Tell the SFU users' grants changed in a call (``server/sfu/live_grants.py``); the number of
        sessions it acted on. RuntimeError when the SFU refuses."""
        if self._http is None:
            return 0
        base = self.url.replace("ws://", "http://", 1).removesuffix("/sfu")
        async with self._http.post(
            base + p.INTERNAL_GRANTS_PATH, data=update.model_dump_json(), headers=self._auth.headers()
        ) as resp:
            body = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"the SFU refused a grants update for {update.cid}: HTTP {resp.status}")
            return p.GrantsReport.model_validate_json(body).sessions

    async def recording(self, command: p.RecordingCommand) -> p.RecordingsReport:
        """Start, stop or list a call's recordings on the SFU; its SwitchboardError when refused."""
        if self._http is None:
            raise CallStateError("the SFU process is not running", code="sfu_unavailable")
        base = self.url.replace("ws://", "http://", 1).removesuffix("/sfu")
        async with self._http.post(
            base + p.INTERNAL_RECORDING_PATH, data=command.model_dump_json(), headers=self._auth.headers()
        ) as resp:
            body = await resp.text()
            if resp.status >= 400:
                try:
                    error = json.loads(body)
                    raise error_for(resp.status, error.get("code"), str(error.get("message")))
                except ValueError:
                    raise RuntimeError(f"the SFU refused a recording command: HTTP {resp.status}") from None
            return p.RecordingsReport.model_validate_json(body)

    async def stop(self) -> None:
        """Close the child's stdin (it shuts down cleanly), then SIGTERM / SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def child_main() -> None:
    """Entry point of the child (``python -m switchboard.server.sfu``)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s sfu %(levelname)s %(name)s: %(message)s")
    asyncio.run(_child_main())
