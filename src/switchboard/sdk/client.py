"""``VideoClient``: the SDK's entry point: one user, one coordinator connection, many calls."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from switchboard.errors import (
    CallStateError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    SwitchboardError,
)
from switchboard.media import CaptureSpeaker, Microphone, Speaker
from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.media.audio_session import AudioSession
from switchboard.media.playout_shaping import check_gain_db
from switchboard.protocol import coordinator as m
from switchboard.sdk.call import Call
from switchboard.sdk.coordinator import CoordinatorApi, EventsConnection
from switchboard.sdk.emitter import EventEmitter, local_event
from switchboard.sdk.multicall import ActiveCalls, warn_if_policy_ignored
from switchboard.sdk.observable import Observable
from switchboard.sdk.rings import PendingRing, RingBook
from switchboard.sdk.tokens import TokenProvider, UserTokenSource
from switchboard.sdk.types import (
    CallPreferences,
    CallStatus,
    CallType,
    MultiCallAudioPolicy,
    RejectReason,
    SuspendMode,
    User,
)
from switchboard.sdk.validation import (
    require_base_url,
    require_identifier,
    require_instance,
    require_non_negative_number,
    require_optional_identifier,
    require_positive_number,
)

log = logging.getLogger("switchboard.sdk")

DEFAULT_BASE_URL = "http://127.0.0.1:3030"


@dataclass
class ClientOptions:
    """How a :class:`VideoClient` connects and how its calls share the devices (SPEC §1, §2).

    Checked when built: a ``base_url`` that is not an ``http(s)://host[:port]`` URL, or a field of the
    wrong type, raises InvalidRequestError. A ``multi_call_audio_policy`` other than the default
    without ``allow_multiple_active_calls=True`` has no effect (single-call mode) and warns
    (``UserWarning``); see :func:`switchboard.sdk.multicall.warn_if_policy_ignored`.
    """

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
    #: how the policies' automatic suspends sound (SPEC §2.8); suspend_audio(mode=...) overrides per call
    suspend_mode: SuspendMode = SuspendMode.SILENT
    #: the gain (dB, <= 0) a DUCKED call's remote audio plays at
    duck_gain_db: float = -18.0
    #: seconds a call whose SFU session is lost (its SFU died or restarted) keeps trying to join
    #: again through the coordinator before it ends; 0: it ends at once (docs/architecture.md)
    rejoin_window: float = 30.0

    def __post_init__(self) -> None:
        require_base_url(self.base_url)
        require_instance(self.suspend_mode, SuspendMode, "ClientOptions.suspend_mode")
        check_gain_db(self.duck_gain_db, "ClientOptions.duck_gain_db")
        if self.duck_gain_db > 0:
            raise InvalidRequestError(
                f"ClientOptions.duck_gain_db must be <= 0 dB (ducking lowers), got {self.duck_gain_db!r}"
            )
        for flag in ("allow_multiple_active_calls", "reject_call_when_busy"):
            require_instance(getattr(self, flag), bool, f"ClientOptions.{flag}")
        require_instance(
            self.multi_call_audio_policy, MultiCallAudioPolicy, "ClientOptions.multi_call_audio_policy"
        )
        if self.audio_configuration_policy is not None:
            require_instance(
                self.audio_configuration_policy,
                AudioConfigurationPolicy,
                "ClientOptions.audio_configuration_policy",
            )
        require_positive_number(self.health_check_interval, "ClientOptions.health_check_interval", "seconds")
        require_non_negative_number(self.rejoin_window, "ClientOptions.rejoin_window", "seconds")
        warn_if_policy_ignored(self.allow_multiple_active_calls, self.multi_call_audio_policy)


class ClientState:
    """The client's observable state.

    ``connection``: "disconnected" / "connected" / "reconnecting" ("connected" once the events
    socket is open and ring state is reloaded). ``ringing_calls``: every call ringing this user
    right now, oldest first; ``incoming_call``: the newest of them (None when none rings);
    ``outgoing_call``: the newest call this user rings that is still ringing (SPEC §2.6.1).
    """

    def __init__(self) -> None:
        self.connection: Observable[str] = Observable("disconnected")
        self.active_calls: Observable[list[Call]] = Observable([])
        self.ringing_calls: Observable[list[Call]] = Observable([])
        self.incoming_call: Observable[Call | None] = Observable(None)
        self.outgoing_call: Observable[Call | None] = Observable(None)


class VideoClient:
    """``VideoClient(api_key, user=..., user_token=..., options=ClientOptions(...))``.

    Then ``await client.connect()``; ``make_call()`` gives calls; ``disconnect()`` leaves them all.

    ``token_provider`` (SPEC §2.10) is an async callable returning a fresh user token for ``user``. The
    client calls it when it has no ``user_token`` and whenever the server says the token expired, then
    carries on: the events socket reopens and replays what it missed, a refused REST request is retried
    once. Without a provider an expired token sets ``state.connection`` to ``"token_expired"`` and every
    later request raises :class:`~switchboard.errors.AuthenticationError`.
    """

    def __init__(
        self,
        api_key: str,
        *,
        user: User,
        user_token: str | None = None,
        token_provider: TokenProvider | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise InvalidRequestError(f"api_key must be a non-empty string, not {api_key!r}")
        require_instance(user, User, "user")
        if options is not None:
            require_instance(options, ClientOptions, "options")
        if user_token is not None and not isinstance(user_token, str):
            raise InvalidRequestError(
                f"user_token must be a string (JWT) or None, not {type(user_token).__name__} {user_token!r}"
            )
        if token_provider is not None and not callable(token_provider):
            raise InvalidRequestError(
                "token_provider must be an async function returning a fresh token, "
                f"not {type(token_provider).__name__} {token_provider!r}"
            )
        self.api_key = api_key
        self.user = user
        self._tokens = UserTokenSource(user_token, token_provider)
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
        self._rings = RingBook(self.state.ringing_calls, self.state.incoming_call, self.state.outgoing_call)
        self._tasks: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- connection

    @property
    def user_token(self) -> str | None:
        """The user token the client presents now (the latest one from ``token_provider``, if any)."""
        return self._tokens.token

    async def connect(self) -> None:
        """Open the events socket (upserting the user) and load this user's pending rings.

        A bad token raises AuthenticationError without retrying; an expired one too, unless there is a
        ``token_provider`` (then a fresh token is fetched once). No token and no provider:
        AuthenticationError. Every reconnect of the socket reloads the rings too, and the calls when
        the server could not replay what was missed (SPEC §2.6.1).
        """
        if self._socket is not None:
            return
        token = await self._tokens.get()
        # no pool limit: one signalling socket per joined call, and a client may hold hundreds of calls
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        auth = m.AuthRequest(
            api_key=self.api_key,
            token=token,
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
            on_open=self._socket_opened,
            tokens=self._tokens,
        )
        self._session = session
        self._socket = socket
        self._api = CoordinatorApi(self.options.base_url, self.api_key, self._tokens, session)
        try:
            await socket.connect()
        except BaseException:
            self._session = self._socket = self._api = None
            self._clear_rings()
            await session.close()
            raise
        await self.audio_session.start()

    async def disconnect(self) -> None:
        """Leave every call, close the connection and clear ``ringing_calls``, ``incoming_call`` and
        ``outgoing_call`` (the server keeps the rings; ``connect()`` shows those still pending).

        The connection is closed even when this runs in a task being cancelled (e.g. on Ctrl-C): the
        CancelledError propagates afterwards.
        """
        # every call with media or a join in flight, listed or not (a call being handed over is not)
        for call in [c for c in self._calls.values() if c._media is not None or c._join_task is not None]:
            try:
                await call.leave()
            except Exception:
                log.exception("leaving %s during disconnect failed", call.cid)
        try:
            await self.audio_session.stop()
        finally:
            await self._close_connection()

    async def _close_connection(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._api = None
        self._clear_rings()

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
        require_instance(from_call, Call, "switch_focus from_call")
        require_instance(to_call, Call, "switch_focus to_call")
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
        """The :class:`Call` for ``type:id`` (the same object each time for the same cid).

        ``id`` None: a random one. Raises InvalidRequestError, before any network, for a call type or
        id the server would refuse (ids: 1-64 characters from ``A-Z a-z 0-9 _ - . @``).
        """
        if isinstance(call_type, CallType):
            ct = call_type
        else:
            ct = CallType(require_identifier(call_type, "call type"))
        call_id = require_optional_identifier(id, "call id") or uuid.uuid4().hex
        if preferences is not None:
            require_instance(preferences, CallPreferences, "preferences")
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
            call._apply_members(event.members)
            if not self._rings.is_stale(event.id):
                self._incoming_ring(call, event.ring_id)
        elif isinstance(event, m.CallRingEndedEvent) and event.user_id == self.user.id:
            if not self._rings.is_stale(event.id):
                self._ring_ended(
                    call, event.outcome, event.reason, outgoing=event.outgoing, ring_id=event.ring_id
                )
        elif isinstance(event, m.CallEndedEvent):
            self._spawn(self._call_ended(call))

    # ---------------------------------------------------------------- rings (SPEC §2.6, §2.6.1)

    def _is_in(self, call: Call) -> bool:
        """This client has joined ``call`` (or is joining it)."""
        return call in self.state.active_calls.value or call._media is not None or call._join_task is not None

    def _answered_automatically(self, call: Call) -> bool:
        """Apply the automatic answers to a ring for ``call``; True when one was given (not shown).

        Already in the call: accepted at once. ``reject_call_when_busy`` and in another call:
        rejected ``busy`` (the rung call itself never counts). SPEC §2.4.5, §2.6.1.
        """
        if self._is_in(call):
            log.info("already in %s: accepting its ring", call.cid)
            self._spawn(self._answer(call, accept=True))
            return True
        if self.options.reject_call_when_busy and any(c is not call for c in self.state.active_calls.value):
            log.info("busy: rejecting ring of %s", call.cid)
            self._spawn(self._answer(call, accept=False))
            return True
        return False

    def _incoming_ring(self, call: Call, ring_id: str | None) -> None:
        """A ring for this user began: answered automatically, or shown."""
        ring_id = ring_id or uuid.uuid4().hex
        if self._rings.has_ended(ring_id):
            return
        previous = self._rings.find(call.cid, outgoing=False)
        if previous is not None:
            if previous.ring_id == ring_id:
                return
            self._rings.end(previous.ring_id, call.cid, outgoing=False)  # a new ring replaces it
        if self._answered_automatically(call):
            return
        if self._rings.add(PendingRing(ring_id, call, outgoing=False)):
            call._update(ring_outcome=None, reject_reason=None)
            if call.state.value.status in (CallStatus.IDLE, CallStatus.DISCONNECTED):
                call._update(status=CallStatus.INCOMING)

    async def _answer(self, call: Call, *, accept: bool) -> None:
        try:
            if accept:
                await call.accept()
            else:
                await call.reject(RejectReason.BUSY)
        except SwitchboardError as exc:
            log.info("automatic %s of %s's ring failed: %s", "accept" if accept else "reject", call.cid, exc)

    def _joined_while_ringing(self, call: Call) -> None:
        """This client joined a call still ringing it: the user is there, so the ring is accepted."""
        if self._rings.find(call.cid, outgoing=False) is not None:
            self._spawn(self._answer(call, accept=True))

    def _set_outgoing(self, call: Call, ring_id: str | None) -> None:
        """This client started a ring of ``call`` (the server's answer gave its id)."""
        ring_id = ring_id or uuid.uuid4().hex
        if self._rings.add(PendingRing(ring_id, call, outgoing=True)):
            call._update(ring_outcome=None, reject_reason=None)
            if call.state.value.status in (CallStatus.IDLE, CallStatus.DISCONNECTED):
                call._update(status=CallStatus.OUTGOING)

    def _ring_ended(
        self,
        call: Call,
        outcome: m.RingOutcome,
        reason: RejectReason | None,
        *,
        outgoing: bool,
        ring_id: str | None = None,
    ) -> None:
        """This user's side of a ring of ``call`` ended: only that ring leaves the lists."""
        self._rings.end(ring_id, call.cid, outgoing=outgoing)
        self._ring_gone(call)
        call._update(ring_outcome=outcome, reject_reason=reason)

    def _ring_gone(self, call: Call) -> None:
        """A ring of ``call`` left the lists: its status stops saying it rings (if nothing else does)."""
        still = self._rings.find(call.cid, outgoing=False) or self._rings.find(call.cid, outgoing=True)
        if still is None and call.state.value.status in (CallStatus.INCOMING, CallStatus.OUTGOING):
            call._update(status=CallStatus.IDLE)

    def _outgoing_ring_of(self, call: Call) -> bool:
        return self._rings.find(call.cid, outgoing=True) is not None

    def _incoming_ring_of(self, call: Call) -> bool:
        return self._rings.find(call.cid, outgoing=False) is not None

    def _clear_rings(self) -> None:
        for ring in self._rings.clear():
            self._ring_gone(ring.call)

    async def _socket_opened(self, ok: m.ConnectionOk, resumed: bool) -> None:
        """The events socket (re)opened; no event is dispatched until this returns.

        Reloads the calls this client knows when the server could not replay everything missed,
        or on ``connect()`` after a ``disconnect()`` (nothing is replayed then, and the new
        connection watches nothing yet); then the rings, always.
        """
        if not resumed or not ok.replay_complete:
            await self._reload_calls()
        await self._reload_rings()

    async def _reload_calls(self) -> None:
        """Fetch every call this client knows from the server again (and watch it on this connection)."""
        for call in list(self._calls.values()):
            if call.state.value.created_at is None:
                continue  # never fetched: nothing to bring up to date
            while True:
                try:
                    state = await call.get()
                    break
                except RateLimitedError as exc:  # many calls: pace the reload, never give up on one
                    await asyncio.sleep(exc.retry_after)
                except NotFoundError:
                    log.info("%s no longer exists on the server", call.cid)
                    state = None
                    break
            if state is None:
                continue
            if state.is_ended and (
                self._is_in(call) or state.status in (CallStatus.INCOMING, CallStatus.OUTGOING)
            ):
                self._spawn(self._call_ended(call))

    async def _reload_rings(self) -> None:
        """Make the rings exactly the server's pending ones (``GET /api/v1/rings``)."""
        snapshot = await self._require_api().request("GET", "/rings", m.PendingRingsResponse)
        socket = self._socket
        same_epoch = socket is not None and socket.epoch == snapshot.epoch
        shown: list[PendingRing] = []
        for pending in snapshot.rings:
            call = self._call_for_cid(pending.cid)
            call._apply_call(pending.call)
            call._apply_members(pending.members)
            # a ring already shown stays shown; a new one gets the automatic answers first
            if (
                pending.outgoing
                or self._rings.shows(pending.ring_id)
                or not self._answered_automatically(call)
            ):
                shown.append(PendingRing(pending.ring_id, call, pending.outgoing))
        added, removed = self._rings.replace(shown, snapshot.last_event_id if same_epoch else 0)
        for ring in removed:
            self._ring_gone(ring.call)
        for ring in added:
            ring.call._update(ring_outcome=None, reject_reason=None)
            if ring.call.state.value.status in (CallStatus.IDLE, CallStatus.DISCONNECTED):
                ring.call._update(status=CallStatus.OUTGOING if ring.outgoing else CallStatus.INCOMING)

    async def _call_ended(self, call: Call) -> None:
        """The call ended (here or remotely): it leaves every list it is on."""
        self._rings.end_call(call.cid)
        await call._on_ended("call_ended")
