"""A client of Janus's JSON API over its WebSocket transport (subprotocol ``janus-protocol``).

One :class:`JanusConnection` holds one WebSocket and one Janus session (kept alive every 20 s);
:meth:`JanusConnection.attach` gives a :class:`JanusHandle` on a plugin. Requests are matched to
their answers by ``transaction``; asynchronous plugin events (``janus: event`` without a pending
transaction, ``webrtcup``, ``hangup``, ``media``, ``slowlink``) go to the handle's ``on_event``.
Janus API reference: https://janus.conf.meetecho.com/docs/rest.html
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger("switchboard.sfu.janus")

REQUEST_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 20.0

JsonObject = dict[str, Any]
EventHandler = Callable[[JsonObject], None]


class JanusError(Exception):
    """Janus (or its plugin) refused a request: ``code`` and ``reason`` as Janus gave them."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusHandle:
    """A handle on a Janus plugin (here: one VideoRoom publisher or subscriber)."""

    def __init__(self, connection: JanusConnection, handle_id: int) -> None:
        self.connection = connection
        self.id = handle_id
        self.on_event: EventHandler | None = None

    async def message(self, body: JsonObject, jsep: JsonObject | None = None) -> JsonObject:
        """Send a plugin request; the plugin's answer ``{"plugindata": {"data": ...}, "jsep"?}``.

        Synchronous requests are answered with ``success``, asynchronous ones (``join``,
        ``publish``, ``configure``, ``start``, ``update``) with ``ack`` then an ``event`` carrying the
        same transaction, which is what this returns. ``JanusError`` if Janus or the plugin refuses.
        """
        request: JsonObject = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self.connection.request(request)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "")))
        return reply

    async def detach(self) -> None:
        with contextlib.suppress(JanusError, ConnectionError, TimeoutError):
            await self.connection.request({"janus": "detach", "handle_id": self.id})
        self.connection.handles.pop(self.id, None)


class JanusConnection:
    """One WebSocket to Janus and one Janus session on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session_id = 0
        self.handles: dict[int, JanusHandle] = {}
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[JsonObject]] = {}
        #: transactions whose ``ack`` is the final answer (keepalive, trickle)
        self._ack_final: set[str] = set()
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def connect(self) -> None:
        """Open the socket and create the session (``ConnectionError`` if Janus is unreachable)."""
        self._http = aiohttp.ClientSession()
        try:
            self._ws = await self._http.ws_connect(self.url, protocols=("janus-protocol",), heartbeat=None)
        except (aiohttp.ClientError, OSError) as exc:
            await self._http.close()
            raise ConnectionError(f"janus at {self.url} is unreachable: {exc}") from exc
        self._tasks.append(asyncio.ensure_future(self._read()))
        reply = await self.request({"janus": "create"})
        self.session_id = int(reply["data"]["id"])
        self._tasks.append(asyncio.ensure_future(self._keepalive()))

    async def attach(self, plugin: str = "janus.plugin.videoroom") -> JanusHandle:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle = JanusHandle(self, int(reply["data"]["id"]))
        self.handles[handle.id] = handle
        return handle

    async def request(self, request: JsonObject) -> JsonObject:
        """Send ``request`` (transaction and session filled in) and return Janus's final answer."""
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("the connection to janus is closed")
        transaction = f"t{next(self._ids)}"
        message = {**request, "transaction": transaction}
        if self.session_id and "session_id" not in message:
            message["session_id"] = self.session_id
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        if request["janus"] in ("keepalive", "trickle"):
            self._ack_final.add(transaction)
        try:
            await ws.send_json(message)
            reply = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self._pending.pop(transaction, None)
            self._ack_final.discard(transaction)
        if reply.get("janus") == "error":
            err = reply.get("error", {})
            raise JanusError(int(err.get("code", 0)), str(err.get("reason", "")))
        return reply

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    self._dispatch(msg.json())
                except Exception:
                    log.exception("janus message not handled: %.300s", msg.data)
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the connection to janus closed"))

    def _dispatch(self, message: JsonObject) -> None:
        transaction = message.get("transaction")
        if message.get("janus") == "ack" and transaction not in self._ack_final:
            return  # an asynchronous request was accepted: its event follows
        future = self._pending.get(transaction) if isinstance(transaction, str) else None
        if future is not None and not future.done():
            future.set_result(message)
            return
        handle = self.handles.get(int(message.get("sender", 0) or 0))
        if handle is not None and handle.on_event is not None:
            handle.on_event(message)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            try:
                await self.request({"janus": "keepalive"})
            except (JanusError, ConnectionError, TimeoutError) as exc:
                log.warning("janus keepalive failed: %s", exc)
                return

    async def close(self) -> None:
        """Destroy the session (Janus tears down its handles and peer connections) and close."""
        if self._ws is not None and not self._ws.closed and self.session_id:
            with contextlib.suppress(JanusError, ConnectionError, TimeoutError):
                await asyncio.wait_for(self.request({"janus": "destroy"}), 2.0)
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        self.closed.set()
