"""The SDK's connection to the coordinator: REST requests and the events WebSocket.

The events socket reconnects by itself after a drop and asks for what it missed (the last event id,
its epoch and the previous connection id), so a short disconnect loses no event and delivers none
twice. Event ids are only compared within one epoch: when the server's ids started over (a restart
that lost its events), the cursor starts over with them instead of dropping every new event as
"already seen". Each time the socket opens, ``on_open`` runs before any event is dispatched (the
client reloads its state there, e.g. when the server could not replay everything); the connection
state becomes "connected" only once it has. A bad or expired token is never retried: it fails
``connect()`` at once with :class:`AuthenticationError`, unless the client has a ``token_provider``
(SPEC §2.10): then an expired token (REST 401 ``token_expired``, events socket closed with 4001
``token_expired``) is replaced by a fresh one and the request retried once, the socket reopened with
replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from switchboard.errors import (
    AuthenticationError,
    InvalidRequestError,
    NetworkError,
    SwitchboardError,
    error_for,
)
from switchboard.protocol import coordinator as m
from switchboard.protocol.close_codes import TOKEN_EXPIRED_REASON, EventsCloseCode
from switchboard.sdk.tokens import UserTokenSource

log = logging.getLogger("switchboard.sdk.coordinator")
R = TypeVar("R", bound=BaseModel)


class CoordinatorApi:
    """Typed REST calls; every failure is a :class:`SwitchboardError` subclass."""

    def __init__(
        self, base_url: str, api_key: str, token: str | UserTokenSource, session: aiohttp.ClientSession
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._tokens = token if isinstance(token, UserTokenSource) else UserTokenSource(token)
        self._session = session

    async def request(self, method: str, path: str, response: type[R], body: BaseModel | None = None) -> R:
        """``method path`` with ``body``, parsed as ``response``.

        A 401 ``token_expired`` is answered by getting a fresh token from the token provider and
        retrying once (the server refused the request before doing anything); without a provider it
        raises :class:`AuthenticationError`, as every later request does.
        """
        token = await self._tokens.get()
        try:
            return await self._request_once(method, path, response, body, token)
        except AuthenticationError as exc:
            if exc.code != TOKEN_EXPIRED_REASON:
                raise
            fresh = await self._tokens.refresh(token)
        return await self._request_once(method, path, response, body, fresh)

    async def _request_once(
        self, method: str, path: str, response: type[R], body: BaseModel | None, token: str
    ) -> R:
        url = f"{self.base_url}/api/v1{path}"
        data = body.model_dump_json(exclude_none=True) if body is not None else None
        headers = {"X-Api-Key": self._api_key, "Authorization": f"Bearer {token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise NetworkError(f"cannot reach the coordinator at {self.base_url}: {exc}") from exc
        except RuntimeError as exc:  # the aiohttp session was closed: the client disconnected
            raise NetworkError(f"the client is disconnected: {exc}") from exc
        if status >= 400:
            try:
                err = m.ErrorResponse.model_validate_json(raw)
                raise error_for(status, err.code, err.message)
            except ValidationError:
                raise error_for(status, None, f"HTTP {status}: {raw[:200]!r}") from None
        try:
            return response.model_validate_json(raw)
        except ValidationError as exc:
            raise SwitchboardError(
                f"unexpected answer from the coordinator for {method} {path}: {exc}"
            ) from exc

    @staticmethod
    def call_path(call_type: str, call_id: str) -> str:
        return f"/calls/{call_type}/{call_id}"

    async def sfu_token(self, call_type: str, call_id: str, session_id: str) -> m.SfuTokenResponse:
        """A fresh SFU token for this user's joined session ``session_id`` (its first one may expire).

        Raises NotFoundError (not this user's session in this call), CallStateError (the session
        left, or the call ended), PermissionDeniedError (the user may no longer join), NetworkError,
        InvalidRequestError (an empty or over-long ``session_id``).
        """
        try:
            body = m.SfuTokenRequest(session_id=session_id)
        except ValidationError as exc:
            raise InvalidRequestError(
                f"invalid session_id {session_id!r}: {exc.errors()[0]['msg']}"
            ) from None
        return await self.request(
            "POST", self.call_path(call_type, call_id) + "/sfu_token", m.SfuTokenResponse, body
        )


EventCallback = Callable[[m.Event], None]
#: ``(connection.ok, resumed)``: resumed is true on a reconnect (the server was asked to replay)
OpenCallback = Callable[[m.ConnectionOk, bool], Awaitable[None]]


class EventsConnection:
    """One events WebSocket with automatic reconnect and replay."""

    def __init__(
        self,
        base_url: str,
        auth: m.AuthRequest,
        session: aiohttp.ClientSession,
        on_event: EventCallback,
        *,
        health_check_interval: float = 10.0,
        on_state: Callable[[str], None] | None = None,
        on_open: OpenCallback | None = None,
        tokens: UserTokenSource | None = None,
    ) -> None:
        self._url = (
            base_url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://") + "/api/v1/events"
        )
        self._auth = auth
        self._session = session
        self._on_event = on_event
        self._on_state = on_state or (lambda state: None)
        self._on_open = on_open
        self._interval = health_check_interval
        self._tokens = tokens if tokens is not None else UserTokenSource(auth.token)
        #: the token the open socket authenticated with; set when the server said it expired
        self._socket_token: str | None = None
        self._token_expired = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connection_id: str | None = None
        self.last_event_id: int = 0
        #: the epoch ``last_event_id`` belongs to (None until the first connection.ok)
        self.epoch: str | None = None
        self.reconnects = 0
        self.user: m.UserResponse | None = None

    async def connect(self) -> m.ConnectionOk:
        ok = await self._open_refreshing(replay=False)
        self._task = asyncio.get_running_loop().create_task(self._run())
        return ok

    async def _open_refreshing(self, *, replay: bool) -> m.ConnectionOk:
        """:meth:`_open`; when the server answers ``token_expired`` and there is a token provider, once
        more with a fresh token."""
        token = await self._tokens.get()
        try:
            return await self._open(replay=replay, token=token)
        except AuthenticationError as exc:
            if exc.code != TOKEN_EXPIRED_REASON or not self._tokens.can_refresh:
                raise
            fresh = await self._tokens.refresh(token)
        return await self._open(replay=replay, token=fresh)

    async def _open(self, *, replay: bool, token: str) -> m.ConnectionOk:
        auth = self._auth.model_copy(
            update={
                "token": token,
                "last_event_id": self.last_event_id if replay else None,
                "epoch": self.epoch if replay else None,
                "previous_connection_id": self.connection_id if replay else None,
            }
        )
        try:
            ws = await self._session.ws_connect(
                self._url, heartbeat=self._interval, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
            )
        except aiohttp.WSServerHandshakeError as exc:
            # something answers HTTP there, but not a coordinator's events socket (a wrong port or path)
            raise NetworkError(
                f"cannot open the events socket at {self._url}: HTTP {exc.status}; is ClientOptions.base_url "
                "a switchboard coordinator (e.g. 'http://127.0.0.1:3030', without '/api/v1')?"
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise NetworkError(f"cannot open the events socket at {self._url}: {exc}") from exc
        try:
            await ws.send_str(auth.model_dump_json(exclude_none=True))
            msg = await ws.receive(timeout=10)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await ws.close()
            raise NetworkError(f"events socket failed during auth: {exc}") from exc
        if msg.type != aiohttp.WSMsgType.TEXT:
            await ws.close()
            raise NetworkError(f"events socket closed during auth ({ws.close_code})")
        data = json.loads(msg.data)
        if data.get("type") == "error":
            await ws.close()
            if data.get("code") in (
                "unauthenticated",
                "invalid_api_key",
                "token_expired",
                "token_invalid",
                "token_missing",
                "token_user_mismatch",
            ):
                raise AuthenticationError(str(data.get("message")), code=str(data.get("code")))
            raise error_for(400, str(data.get("code")), str(data.get("message")))
        ok = m.ConnectionOk.model_validate(data)
        if ok.epoch is not None and ok.epoch != self.epoch:
            if self.epoch is not None:
                log.info("events socket: the server's event ids started over (new epoch)")
            self.epoch = ok.epoch
            self.last_event_id = 0
        self._socket_token = token
        self._token_expired = False
        self.connection_id = ok.connection_id
        self.user = ok.user
        if replay and not ok.replay_complete:
            log.info("events socket: the server could not replay what was missed; reloading state")
        if self._on_open is not None:
            try:
                await self._on_open(ok, replay)
            except BaseException:
                await ws.close()
                raise
        if self._closing:  # closed while on_open ran
            await ws.close()
            raise NetworkError("the events socket was closed while it opened")
        self._ws = ws
        self._on_state("connected")
        return ok

    async def _run(self) -> None:
        try:
            await self._run_until_closed()
        except asyncio.CancelledError:
            if not self._closing:
                # cancelled from outside close(): asyncio.run() ending with the client still connected
                # (no disconnect()). Close the HTTP session so the program exits without aiohttp's
                # "Unclosed client session" report.
                with contextlib.suppress(Exception):
                    await self._session.close()
            raise

    async def _run_until_closed(self) -> None:
        backoff = 0.05
        while not self._closing:
            ws = self._ws
            if ws is not None:
                await self._read(ws)
            if self._closing:
                return
            self._ws = None
            if self._token_expired:
                if not self._tokens.can_refresh:
                    self._tokens.expired = True
                    log.error("events socket: the user token expired and there is no token_provider")
                    self._on_state("token_expired")
                    return
                log.info("events socket: the user token expired; reconnecting with a fresh one")
            self._on_state("reconnecting")
            while not self._closing:
                try:
                    if self._token_expired:
                        await self._tokens.refresh(self._socket_token)
                        self._token_expired = False
                    await self._open_refreshing(replay=True)
                    self.reconnects += 1
                    backoff = 0.05
                    break
                except AuthenticationError as exc:
                    if exc.code == "token_provider_failed":
                        log.warning("events socket: %s; retrying in %.2fs", exc, backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    log.error("events socket: reconnect refused: %s", exc)
                    expired = exc.code == TOKEN_EXPIRED_REASON
                    if expired:
                        self._tokens.expired = True  # later requests fail at once, as the server would
                    self._on_state("token_expired" if expired else "disconnected")
                    return
                except SwitchboardError as exc:
                    log.info("events socket: reconnect failed (%s); retrying in %.2fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        pinger = asyncio.get_running_loop().create_task(self._health_checks(ws))
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=3 * self._interval)
                except TimeoutError:
                    log.info("events socket: no frame for %.0fs; reconnecting", 3 * self._interval)
                    return
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if (msg.type, msg.data, msg.extra) == (
                        aiohttp.WSMsgType.CLOSE,
                        EventsCloseCode.UNAUTHENTICATED,
                        TOKEN_EXPIRED_REASON,
                    ):
                        self._token_expired = True
                    return
                self._dispatch(msg.data)
        finally:
            pinger.cancel()
            with contextlib.suppress(Exception):
                await ws.close()

    def _dispatch(self, raw: str) -> None:
        try:
            data: dict[str, Any] = json.loads(raw)
            if data.get("type") in ("health.check", "error"):
                if data.get("type") == "error":
                    if data.get("code") == TOKEN_EXPIRED_REASON:
                        self._token_expired = True  # the server closes the socket next
                        log.info("events socket: the user token expired")
                    else:
                        log.warning("coordinator error on events socket: %s", data.get("message"))
                return
            event = m.parse_event(data)
        except (ValueError, ValidationError) as exc:
            log.warning("ignoring malformed event: %s", exc)
            return
        if event.id:
            if event.id <= self.last_event_id:
                return  # already delivered (replay overlap)
            self.last_event_id = event.id
        try:
            self._on_event(event)
        except Exception:
            log.exception("event handler failed for %s", event.type)

    async def _health_checks(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        frame = m.HealthCheck().model_dump_json()
        while not ws.closed:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(Exception):
                await ws.send_str(frame)

    async def drop(self) -> None:
        """Close the socket as a network failure would (used by tests; the client reconnects)."""
        if self._ws is not None:
            await self._ws.close()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._on_state("disconnected")
