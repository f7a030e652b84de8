"""``VideoClient``: the SDK's entry point: one user, one coordinator connection, many calls."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from switchboard.errors import CallStateError
from switchboard.media import CaptureSpeaker, Microphone, Speaker
from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.media.audio_session import AudioSession
from switchboard.protocol import coordinator as m
from switchboard.sdk.call import Call
from switchboard.sdk.coordinator import CoordinatorApi, EventsConnection
from switchboard.sdk.emitter import EventEmitter, local_event
from switchboard.sdk.multicall import ActiveCalls
from switchboard.sdk.observable import Observable
from switchboard.sdk.types import (
    CallPreferences,
    CallStatus,
    CallType,
    MultiCallAudioPolicy,
    RejectReason,
    User,
)

log = logging.getLogger("switchboard.sdk")

DEFAULT_BASE_URL = "http://127.0.0.1:3030"


@dataclass
class ClientOptions:
    base_url: str = DEFAULT_BASE_URL
    allow_multiple_active_calls: bool = False
    multi_call_audio_policy: MultiCallAudioPolicy = MultiCallAudioPolicy.SUSPEND_EXISTING
    audio_configuration_policy: AudioConfigurationPolicy | None = None
    reject_call_when_busy: bool = False
    #: the client's microphone (default: a silent virtual one)
    microphone: Microphone | None = None
    #: the client's speaker (default: a virtual one that records what it plays, a CaptureSpeaker)
    speaker: Speaker | None = None
    health_check_interval: float = 10.0


class ClientState:
    def __init__(self) -> None:
        self.connection: Observable[str] = Observable("disconnected")
        self.active_calls: Observable[list[Call]] = Observable([])
        self.incoming_call: Observable[Call | None] = Observable(None)
        self.outgoing_call: Observable[Call | None] = Observable(None)


class VideoClient:
    """``VideoClient(api_key, user=..., user_token=..., options=ClientOptions(...))``.

    Then ``await client.connect()``; ``make_call()`` gives calls; ``disconnect()`` leaves them all.
    """

    def __init__(
        self,
        api_key: str,
        *,
        user: User,
        user_token: str,
        options: ClientOptions | None = None,
    ) -> None:
        self.api_key = api_key
        self.user = user
        self.user_token = user_token
        self.options = options or ClientOptions()
        self.state = ClientState()
        self._calls: dict[str, Call] = {}
        self._events = EventEmitter()
        self._session: aiohttp.ClientSession | None = None
        self._api: CoordinatorApi | None = None
        self._socket: EventsConnection | None = None
        self.audio_session = AudioSession(self.options.microphone, self.options.speaker)
        self.audio_session.on_device_error.append(
            lambda failure: self._events.emit(local_event("client.device_error", None, **failure.as_data()))
        )
        self._active = ActiveCalls(self)
        self._tasks: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- connection

    async def connect(self) -> None:
        """Open the events socket (upserting the user). Bad/expired token: AuthenticationError, no retry."""
        if self._socket is not None:
            return
        # no pool limit: one signalling socket per joined call, and a client may hold hundreds of calls
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        auth = m.AuthRequest(
            api_key=self.api_key,
            token=self.user_token,
            user=m.UserRequest(
                id=self.user.id, name=self.user.name, image=self.user.image, custom=self.user.custom
            ),
        )
        socket = EventsConnection(
            self.options.base_url,
            auth,
            session,
            self._on_event,
            health_check_interval=self.options.health_check_interval,
            on_state=self.state.connection._set,
        )
        try:
            await socket.connect()
        except BaseException:
            await session.close()
            raise
        self._session = session
        self._socket = socket
        self._api = CoordinatorApi(self.options.base_url, self.api_key, self.user_token, session)
        await self.audio_session.start()

    async def disconnect(self) -> None:
        """Leave every call and close the connection."""
        # every call with media or a join in flight, listed or not (a call being handed over is not)
        for call in [c for c in self._calls.values() if c._media is not None or c._join_task is not None]:
            try:
                await call.leave()
            except Exception:
                log.exception("leaving %s during disconnect failed", call.cid)
        await self.audio_session.stop()
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._api = None

    async def __aenter__(self) -> VideoClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _require_api(self) -> CoordinatorApi:
        if self._api is None:
            raise CallStateError("the client is not connected: await client.connect() first")
        return self._api

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise CallStateError("the client is not connected: await client.connect() first")
        return self._session

    @property
    def speaker(self) -> Speaker:
        """The speaker every call plays through (a CaptureSpeaker unless ClientOptions gave another)."""
        return self.audio_session.speaker

    @property
    def capture_speaker(self) -> CaptureSpeaker:
        """The speaker as a :class:`CaptureSpeaker` (the default): what this client heard, per sample."""
        speaker = self.audio_session.speaker
        if not isinstance(speaker, CaptureSpeaker):
            raise TypeError(f"this client plays through {type(speaker).__name__}, not a CaptureSpeaker")
        return speaker

    @property
    def microphone(self) -> Microphone:
        return self.audio_session.microphone

    async def switch_focus(self, from_call: Call, to_call: Call) -> None:
        """Hand the microphone, camera and audio focus from ``from_call`` to ``to_call`` (SPEC §2.4.8).

        Notes whether the user's mic and camera are on in ``from_call``, turns them off there, suspends
        it, resumes ``to_call`` and turns mic and camera on or off there as they were. Both calls must
        be joined by this client (else CallStateError). Atomic with respect to other focus changes; if
        a step fails, both calls are put back and the error names the step.
        """
        await self._active.switch_focus(from_call, to_call)

    def _connection_id(self) -> str | None:
        return self._socket.connection_id if self._socket is not None else None

    @property
    def events_connection(self) -> EventsConnection | None:
        return self._socket

    # ---------------------------------------------------------------- calls

    def make_call(
        self,
        call_type: CallType | str = "default",
        id: str | None = None,
        preferences: CallPreferences | None = None,
    ) -> Call:
        """The :class:`Call` for ``type:id`` (the same object each time for the same cid)."""
        ct = call_type if isinstance(call_type, CallType) else CallType(call_type)
        call_id = id or uuid.uuid4().hex
        cid = f"{ct.name}:{call_id}"
        call = self._calls.get(cid)
        if call is None:
            call = self._calls[cid] = Call(self, ct, call_id, preferences)
        elif preferences is not None:
            call.preferences = preferences
        return call

    def _call_for_cid(self, cid: str) -> Call:
        call_type, _, call_id = cid.partition(":")
        return self.make_call(CallType(call_type), call_id)

    # ---------------------------------------------------------------- events

    def events(self, *types: str) -> AsyncIterator[m.Event]:
        return self._events.events(*types)

    def on(self, event_type: str, callback: Callable[[m.Event], None]) -> Callable[[], None]:
        return self._events.on(event_type, callback)

    def _on_event(self, event: m.Event) -> None:
        if event.cid:
            self._call_for_cid(event.cid)._handle_event(event)
        self._events.emit(event)

    def _on_call_event(self, call: Call, event: m.Event) -> None:
        """Client-wide reactions to a call's event (ringing, remote end)."""
        if isinstance(event, m.CallRingEvent):
            self._incoming_ring(call, event)
        elif isinstance(event, m.CallRingEndedEvent) and event.user_id == self.user.id:
            self._ring_ended(call, event.outcome, event.reason, outgoing=event.outgoing)
        elif isinstance(event, m.CallEndedEvent):
            self._spawn(self._call_ended(call))

    def _incoming_ring(self, call: Call, event: m.CallRingEvent) -> None:
        if self.options.reject_call_when_busy and self.state.active_calls.value:
            log.info("busy: rejecting ring of %s", call.cid)
            self._spawn(self._reject_busy(call))
            return
        call._apply_members(event.members)
        call._update(ring_outcome=None, reject_reason=None)
        if call.state.value.status in (CallStatus.IDLE, CallStatus.DISCONNECTED):
            call._update(status=CallStatus.INCOMING)
        self.state.incoming_call._set(call)

    async def _reject_busy(self, call: Call) -> None:
        try:
            await call.reject(RejectReason.BUSY)
        except Exception:
            log.exception("auto-reject (busy) of %s failed", call.cid)

    def _set_outgoing(self, call: Call) -> None:
        call._update(ring_outcome=None, reject_reason=None)
        if call.state.value.status in (CallStatus.IDLE, CallStatus.DISCONNECTED):
            call._update(status=CallStatus.OUTGOING)
        self.state.outgoing_call._set(call)

    def _ring_ended(
        self, call: Call, outcome: m.RingOutcome, reason: RejectReason | None, *, outgoing: bool
    ) -> None:
        observable = self.state.outgoing_call if outgoing else self.state.incoming_call
        if observable.value is call:
            observable._set(None)
        if call.state.value.status in (CallStatus.INCOMING, CallStatus.OUTGOING):
            call._update(status=CallStatus.IDLE)
        call._update(ring_outcome=outcome, reject_reason=reason)

    async def _call_ended(self, call: Call) -> None:
        """The call ended (here or remotely): it leaves every list it is on."""
        for observable in (self.state.incoming_call, self.state.outgoing_call):
            if observable.value is call:
                observable._set(None)
        await call._on_ended("call_ended")
