"""One joined call's media: the SFU signalling socket and the publisher/subscriber peer connections.

The client offers the *publisher* connection (its microphone as pre-encoded Opus from the call's
audio device module, its camera as VP8); the SFU offers the *subscriber* connection with everyone
else's tracks and renegotiates it as they come and go. Which participant a remote track belongs to is
told by the SFU per transceiver ``mid``.

When the signalling socket drops, the session is resumed on the same SFU within a short window (peer
connections untouched). When that cannot work (the SFU refuses connections twice in a row, does not
know the session any more, or the window passes) or the media transport itself fails (ICE/DTLS), the
session is *lost*: ``on_lost`` tells the owning :class:`~switchboard.sdk.call.Call`, which rejoins the
call through the coordinator with a new session (``docs/architecture.md``, "When an SFU dies").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import av
import jwt
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from pydantic import ValidationError

from switchboard.errors import (
    AuthenticationError,
    CallStateError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    SwitchboardError,
)
from switchboard.media.audio_session import AudioDeviceModule
from switchboard.media.local_ice import create_peer_connection, loopback_ice_address
from switchboard.media.rtp_hooks import forward_audio_level, route_remote_ssrcs
from switchboard.media.tracks import CameraTrack
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p

log = logging.getLogger("switchboard.sdk.session")

JOIN_TIMEOUT = 20.0
SOCKET_TIMEOUT = 10.0
#: a resume asks the coordinator for a fresh SFU token when the current one expires within this
#: many seconds (or a quarter of its lifetime, if shorter)
TOKEN_REFRESH_MARGIN = 10.0
#: SFU refusals a fresh token cures
_STALE_TOKEN_CODES = frozenset({"token_expired", "grants_changed"})
#: connections the SFU refuses in a row before the session counts as lost without waiting out the
#: resume window (nothing listens there any more: the SFU process or node is gone)
REFUSALS_BEFORE_LOST = 2
#: why a session is lost (``on_lost``): the SFU cannot be reached, it no longer has (or admits) the
#: session, or the media transport (ICE/DTLS) failed
LOST_UNREACHABLE = "sfu_unreachable"
LOST_SESSION = "session_lost"
LOST_MEDIA = "media_failed"
M = TypeVar("M", bound=p._Msg)
_PREFERRED = {"audio": ("audio/opus",), "video": ("video/vp8", "video/rtx")}


def _codecs(kind: str) -> list[object]:
    caps = RTCRtpSender.getCapabilities(kind)
    return [c for c in caps.codecs if c.mimeType.lower() in _PREFERRED[kind]]


@dataclass
class RemoteParticipant:
    user_id: str
    session_id: str
    tracks: dict[str, bool] = field(default_factory=dict)  # kind -> muted
    #: the users this participant's audio goes to (a whisper); None: everyone
    audience: tuple[str, ...] | None = None
    video_frames: int = 0
    last_video_frame: av.VideoFrame | None = None


class CallSession:
    """Media for one joined call. Created by ``Call.join()``; closed by ``leave()``."""

    def __init__(
        self,
        credentials: m.Credentials,
        adm: AudioDeviceModule,
        http: aiohttp.ClientSession,
        *,
        on_change: Callable[[], None],
        on_ended: Callable[[str], None],
        on_connection: Callable[[str], None] | None = None,
        reconnect_window: float = 4.0,
        refresh_credentials: Callable[[str], Awaitable[m.Credentials]] | None = None,
        on_message: Callable[[p.ParticipantMessage], None] | None = None,
        on_moderation: Callable[[p.ModerationNotice], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.credentials = credentials
        self.adm = adm
        self._http = http
        self._on_change = on_change
        self._on_ended = on_ended
        self._on_connection = on_connection or (lambda state: None)
        self._reconnect_window = reconnect_window
        self._refresh_credentials = refresh_credentials
        self._on_message = on_message or (lambda message: None)
        self._on_moderation = on_moderation or (lambda notice: None)
        self._on_lost = on_lost
        #: why the session cannot be resumed (reported once through ``on_lost``); None while it can
        self.lost: str | None = None
        #: a moderator removed this session: the socket's close that follows is not a drop to resume
        self.removed = False
        #: the SFU's latest audio levels by session (``audio_levels``) and dominant speaker's session
        self.audio_levels: dict[str, p.AudioLevel] = {}
        self.dominant_speaker: str | None = None
        #: the SFU's connection quality rating by session (``connection_quality``)
        self.connection_quality: dict[str, str] = {}
        self.reconnects = 0
        self._reconnecting = False
        # ICE: loopback only when the SFU is local (the SFU applies the same rule to its URL).
        loopback = loopback_ice_address(credentials.server.url)
        self.publisher = create_peer_connection(loopback_address=loopback)
        self.subscriber = create_peer_connection(loopback_address=loopback)
        self.session_id: str | None = None
        self.participants: dict[str, RemoteParticipant] = {}
        self.mid_owner: dict[str, p.RemoteTrack] = {}
        self.camera: CameraTrack | None = None
        self._transceivers: dict[str, RTCRtpTransceiver] = {}
        self.published: dict[str, bool] = {}  # kind -> muted
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[p._Msg]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._publish_lock = asyncio.Lock()
        self.closed = False
        self.errors: list[p.ErrorMessage] = []
        self.subscriber.on("track", self._on_track)
        self.publisher.on("connectionstatechange", lambda: self._transport_changed(self.publisher))
        self.subscriber.on("connectionstatechange", lambda: self._transport_changed(self.subscriber))

    # ---------------------------------------------------------------- losing the session

    def _lose(self, reason: str) -> None:
        """The session cannot be resumed: ``on_lost(reason)`` (the call rejoins), else the call ends."""
        if self.closed or self.lost is not None:
            return
        self.lost = reason
        log.info("SFU session %s lost (%s)", self.session_id, reason)
        if self._on_lost is not None:
            self._on_lost(reason)
        else:
            self._on_ended("sfu_disconnected")

    def _transport_changed(self, pc: RTCPeerConnection) -> None:
        """ICE or DTLS failed on a joined session: its media cannot come back by resuming."""
        if pc.connectionState == "failed" and self.session_id is not None and not self.removed:
            self._lose(LOST_MEDIA)

    # ---------------------------------------------------------------- signalling

    async def _send(self, message: p._Msg) -> None:
        if self._ws is None or self._ws.closed:
            raise NetworkError("the SFU connection is closed")
        await self._ws.send_str(message.model_dump_json())

    async def _open_socket(self) -> aiohttp.ClientWebSocketResponse:
        """The SFU signalling socket, or TimeoutError when it cannot be opened in time."""
        return await asyncio.wait_for(
            self._http.ws_connect(
                self.credentials.server.url, heartbeat=10.0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
            ),
            SOCKET_TIMEOUT,
        )

    async def _await(self, future: asyncio.Future[p._Msg], kind: type[M], what: str) -> M:
        """The awaited SFU message, or a SwitchboardError (timeout, wrong answer, closed session)."""
        try:
            message = await asyncio.wait_for(future, JOIN_TIMEOUT)
        except TimeoutError:
            raise NetworkError(f"{what} within {JOIN_TIMEOUT:.0f}s") from None
        if not isinstance(message, kind):
            raise NetworkError(f"{what}: unexpected {type(message).__name__}")
        return message

    def _expect(self, message_type: str) -> asyncio.Future[p._Msg]:
        future: asyncio.Future[p._Msg] = asyncio.get_running_loop().create_future()
        self._pending[message_type] = future
        return future

    async def connect(self, *, audio_paused: bool = False) -> None:
        """Open the SFU socket and join with the SFU token. Errors: AuthenticationError, NetworkError."""
        try:
            self._ws = await self._open_socket()
        except (aiohttp.ClientError, OSError, RuntimeError, TimeoutError) as exc:
            raise NetworkError(f"cannot reach the SFU at {self.credentials.server.url}: {exc}") from exc
        joined = self._expect("join_response")
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))
        await self._send(p.JoinRequest(token=self.credentials.token, audio_paused=audio_paused))
        response = await self._await(joined, p.JoinResponse, "the SFU did not accept the session")
        self.session_id = response.session_id
        for info in response.participants:
            self._add_participant(info)
        self._on_change()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    message = p.server_message.validate_json(msg.data)
                except ValidationError:
                    log.warning("ignoring malformed SFU message: %.200s", msg.data)
                    continue
                try:
                    await self._handle(message)
                except Exception:
                    log.exception("handling SFU message %s failed", message.type)
        finally:
            if not self.closed and self._ws is ws:
                error = NetworkError("the SFU connection dropped")
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(error)
                self._pending.clear()
                if self.session_id is None:
                    self._on_ended("sfu_disconnected")
                elif self.removed or self.lost is not None:
                    pass  # removed by a moderator, or already lost: nothing to resume
                elif not self._reconnecting:
                    self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        """The signalling socket dropped: resume the same session (peer connections untouched)."""
        self._reconnecting = True
        try:
            await self._resume_session()
        finally:
            self._reconnecting = False

    def _token_expires_soon(self) -> bool:
        """Whether the SFU token is (nearly) expired; its signature is the SFU's business, not ours."""
        try:
            claims = jwt.decode(self.credentials.token, options={"verify_signature": False})
            exp, iat = float(claims["exp"]), float(claims.get("iat", 0))
            return exp - time.time() < min(TOKEN_REFRESH_MARGIN, (exp - iat) / 4)
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
            return False

    async def _refresh_token(self) -> None:
        """Replace the SFU token with a fresh one from the coordinator (same session, current grants)."""
        if self._refresh_credentials is None or self.session_id is None:
            raise AuthenticationError("the SFU token expired and there is no way to get a new one")
        self.credentials = await self._refresh_credentials(self.session_id)

    async def _resume_session(self) -> None:
        """Resume within the reconnect window; a call older than its SFU token gets a fresh token.

        The SFU saying the call ended ends the call (``on_ended("call_ended")``). Every other failure
        loses the session (:meth:`_lose`): the window passing, the SFU refusing connections
        ``REFUSALS_BEFORE_LOST`` times in a row (``sfu_unreachable``), or the SFU or the coordinator
        no longer admitting the session (``session_lost``: a restarted SFU or another node does not
        know it; the coordinator forgot it or refuses a fresh token).
        """
        self._on_connection("reconnecting")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reconnect_window
        delay = 0.05
        refreshed = False
        refusals = 0
        while not self.closed and self.lost is None and loop.time() < deadline:
            try:
                if self._refresh_credentials is not None and not refreshed and self._token_expires_soon():
                    await self._refresh_token()
                    refreshed = True
                ws = await self._open_socket()
            except (AuthenticationError, CallStateError, PermissionDeniedError, NotFoundError) as exc:
                log.info("cannot get a fresh SFU token: %s", exc)
                self._lose(LOST_SESSION)
                return
            except (
                SwitchboardError,
                aiohttp.ClientError,
                OSError,
                RuntimeError,
                TimeoutError,
            ) as exc:  # RuntimeError: the client is closing
                refusals = refusals + 1 if connection_refused(exc) else 0
                if refusals >= REFUSALS_BEFORE_LOST:
                    log.info("the SFU at %s refuses connections", self.credentials.server.url)
                    self._lose(LOST_UNREACHABLE)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            refusals = 0
            self._ws = ws
            joined = self._expect("join_response")
            self._reader = loop.create_task(self._read(ws))
            try:
                await ws.send_str(
                    p.JoinRequest(token=self.credentials.token, reconnect=True).model_dump_json()
                )
                await asyncio.wait_for(joined, max(0.5, deadline - loop.time()))
            except AuthenticationError as exc:
                if exc.code in _STALE_TOKEN_CODES and not refreshed and self._refresh_credentials is not None:
                    log.info("SFU token refused (%s): asking the coordinator for a fresh one", exc.code)
                    try:
                        await self._refresh_token()
                    except SwitchboardError as refresh_exc:
                        log.info("cannot get a fresh SFU token: %s", refresh_exc)
                        self._lose(LOST_SESSION)
                        return
                    refreshed = True
                    continue
                log.info("SFU refused to resume the session: %s", exc)
                self._lose(LOST_SESSION)
                return
            except (CallStateError, PermissionDeniedError) as exc:
                log.info("SFU refused to resume the session: %s", exc)
                if exc.code == "call_ended":
                    if not self.closed:
                        self._on_ended("call_ended")
                else:
                    self._lose(LOST_SESSION)
                return
            except (SwitchboardError, TimeoutError, aiohttp.ClientError, OSError):
                with contextlib.suppress(Exception):
                    await ws.close()
                await asyncio.sleep(delay)
                continue
            self.reconnects += 1
            self._on_connection("connected")
            return
        self._lose(LOST_UNREACHABLE)

    async def _handle(self, message: p._Msg) -> None:
        future = self._pending.pop(getattr(message, "type", ""), None)
        if isinstance(message, p.ErrorMessage):
            self.errors.append(message)
            log.warning("SFU error %s: %s", message.code, message.message)
            waiting = [f for f in self._pending.values() if not f.done()]
            if message.fatal or message.code in ("permission_denied", "invalid_sdp"):
                exc = _error_for(message)
                for f in waiting:
                    f.set_exception(exc)
                self._pending.clear()
            # the SFU removed the session: its user may no longer be in the call (a refused resume
            # ends the call in _resume_session instead)
            if message.fatal and message.code == "permission_denied" and self._in_call():
                self.removed = True
                self._on_ended("permission_denied")
            return
        if future is not None and not future.done():
            future.set_result(message)
        if isinstance(message, p.JoinResponse) and message.reconnected:
            # events missed while the socket was down: take the SFU's view of who is here
            present = {info.session_id for info in message.participants}
            for session in [s for s in self.participants if s not in present]:
                del self.participants[session]
            for info in message.participants:
                if info.session_id not in self.participants:
                    self._add_participant(info)
                else:
                    self.participants[info.session_id].tracks = {t.kind: t.muted for t in info.tracks}
                    self.participants[info.session_id].audience = _audience(info.audience)
        elif isinstance(message, p.SubscriberOffer):
            await self._on_subscriber_offer(message)
        elif isinstance(message, p.ParticipantJoined):
            self._add_participant(message.participant)
        elif isinstance(message, p.ParticipantLeft):
            self.participants.pop(message.session_id, None)
        elif isinstance(message, p.TrackPublished):
            part = self.participants.get(message.session_id)
            if part is not None:
                part.tracks[message.kind] = message.muted
        elif isinstance(message, p.TrackUnpublished):
            part = self.participants.get(message.session_id)
            if part is not None:
                part.tracks.pop(message.kind, None)
        elif isinstance(message, p.MuteStateChanged):
            part = self.participants.get(message.session_id)
            if part is not None and message.kind in part.tracks:
                part.tracks[message.kind] = message.muted
        elif isinstance(message, p.AudienceChanged):
            part = self.participants.get(message.session_id)
            if part is not None:
                part.audience = _audience(message.user_ids)
        elif isinstance(message, p.CallEnded):
            self._on_ended("call_ended")
            return
        elif isinstance(message, p.ParticipantMessage):
            self._on_message(message)
            return
        elif isinstance(message, p.AudioLevels):
            self.audio_levels = {level.session_id: level for level in message.levels}
            self.dominant_speaker = message.dominant_speaker
        elif isinstance(message, p.ConnectionQuality):
            self.connection_quality = dict(message.qualities)
        elif isinstance(message, p.ModerationNotice):
            if message.action == "removed":
                self.removed = True
            self._on_moderation(message)
            if self.removed:
                self._on_ended("removed")
                return
        self._on_change()

    def _in_call(self) -> bool:
        """Joined and not resuming right now."""
        return self.session_id is not None and not self._reconnecting

    def _add_participant(self, info: p.ParticipantInfo) -> None:
        if info.session_id == self.session_id:
            return
        self.participants[info.session_id] = RemoteParticipant(
            info.user_id,
            info.session_id,
            {t.kind: t.muted for t in info.tracks},
            audience=_audience(info.audience),
        )

    # ---------------------------------------------------------------- subscriber

    async def _on_subscriber_offer(self, offer: p.SubscriberOffer) -> None:
        self.mid_owner = dict(offer.tracks)
        await self.subscriber.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        answer = await self.subscriber.createAnswer()
        await self.subscriber.setLocalDescription(answer)
        route_remote_ssrcs(self.subscriber)  # an m-line the SFU reused for another source (Janus)
        await self._send(p.SubscriberAnswer(sdp=self.subscriber.localDescription.sdp))

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in self.subscriber.getTransceivers() if t.receiver.track is track), None)
        if transceiver is None or transceiver.mid is None:
            return
        mid = transceiver.mid
        if track.kind == "audio":
            self.adm.add_remote(mid, transceiver.receiver)
        else:
            self._spawn(self._consume_video(mid, track))

    async def _consume_video(self, mid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                owner = self.mid_owner.get(mid)
                part = self.participants.get(owner.session_id) if owner else None
                if part is not None and isinstance(frame, av.VideoFrame):
                    part.video_frames += 1
                    part.last_video_frame = frame

    # ---------------------------------------------------------------- publisher

    async def publish(
        self,
        *,
        audio: bool,
        video: bool,
        audio_muted: bool,
        video_muted: bool,
        camera: MediaStreamTrack | None = None,
    ) -> None:
        """Make sure these kinds are published (adds transceivers and renegotiates when needed)."""
        async with self._publish_lock:
            added = False
            if audio and "audio" not in self._transceivers:
                t = self.publisher.addTransceiver(self.adm.capture_track, direction="sendonly")
                t.setCodecPreferences(_codecs("audio"))  # type: ignore[arg-type]
                forward_audio_level(t.sender)  # RFC 6464 levels: the SFU's active-speaker input
                self.adm.watch_receiver_reports(t.sender)  # the encoder's expected loss (FEC)
                self._transceivers["audio"] = t
                self.published["audio"] = audio_muted
                added = True
            if video and "video" not in self._transceivers:
                video_track: MediaStreamTrack
                if camera is not None:
                    video_track = camera
                else:
                    self.camera = CameraTrack()
                    self.camera.enabled = not video_muted
                    video_track = self.camera
                t = self.publisher.addTransceiver(video_track, direction="sendonly")
                t.setCodecPreferences(_codecs("video"))  # type: ignore[arg-type]
                self._transceivers["video"] = t
                self.published["video"] = video_muted
                added = True
            if not added:
                return
            offer = await self.publisher.createOffer()
            await self.publisher.setLocalDescription(offer)
            answered = self._expect("publisher_answer")
            await self._send(p.PublisherOffer(sdp=self.publisher.localDescription.sdp))
            answer = await self._await(
                answered, p.PublisherAnswer, "the SFU did not answer the publisher offer"
            )
            await self.publisher.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
            await self._wait_connected(self.publisher)
            for kind in ("audio", "video"):
                if kind in self._transceivers:
                    await self._send(p.UpdateMuteState(kind=kind, muted=self.published[kind]))

    async def _wait_connected(self, pc: RTCPeerConnection) -> None:
        if pc.connectionState == "connected":
            return
        done = asyncio.get_running_loop().create_future()

        def check() -> None:
            if pc.connectionState in ("connected", "failed", "closed") and not done.done():
                done.set_result(pc.connectionState)

        pc.on("connectionstatechange", check)
        check()
        try:
            state = await asyncio.wait_for(done, JOIN_TIMEOUT)
        except TimeoutError:
            raise NetworkError(
                f"media connection to the SFU not established within {JOIN_TIMEOUT:.0f}s"
            ) from None
        if state != "connected":
            raise NetworkError(f"media connection to the SFU {state}")

    async def set_muted(self, kind: str, muted: bool) -> None:
        """Apply locally and tell the SFU; while the socket is down, the resumed session re-sends it."""
        if kind not in self.published:
            return
        self.published[kind] = muted
        if kind == "video" and self.camera is not None:
            self.camera.enabled = not muted
        with contextlib.suppress(NetworkError):
            await self._send(p.UpdateMuteState(kind=kind, muted=muted))  # type: ignore[arg-type]

    def published_transceivers(self) -> dict[str, RTCRtpTransceiver]:
        """This session's publishing transceivers by kind (for statistics)."""
        return dict(self._transceivers)

    async def send_message(self, data: dict[str, Any], session_ids: list[str] | None) -> None:
        """Send a participant message on the signalling socket; NetworkError while it is down."""
        await self._send(p.SendMessage(data=data, session_ids=session_ids))

    async def set_audio_forwarding(self, paused: bool) -> None:
        """Ask the SFU to stop (or restart) forwarding every audio track to this session."""
        with contextlib.suppress(NetworkError):
            await self._send(p.UpdateSubscription(kind="audio", paused=paused))

    async def set_audience(self, user_ids: Sequence[str] | None) -> None:
        """Ask the SFU to forward this session's audio only to ``user_ids`` (None: everyone)."""
        with contextlib.suppress(NetworkError):
            await self._send(p.UpdateAudience(user_ids=list(user_ids) if user_ids is not None else None))

    # ---------------------------------------------------------------- lifecycle

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, *, send_leave: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        if send_leave:
            with contextlib.suppress(Exception):
                await self._send(p.Leave())
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        left = CallStateError("the call was left")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(left)
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
        if self.camera is not None:
            self.camera.stop()
        await asyncio.gather(self.publisher.close(), self.subscriber.close(), return_exceptions=True)


def connection_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a refused TCP connection: nothing listens at that address."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return True
        os_error = getattr(cause, "os_error", None)  # aiohttp.ClientConnectorError keeps the OSError
        if isinstance(os_error, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _audience(user_ids: list[str] | None) -> tuple[str, ...] | None:
    return tuple(user_ids) if user_ids is not None else None


def _error_for(message: p.ErrorMessage) -> SwitchboardError:
    if message.code in (
        "token_invalid",
        "token_expired",
        "unauthenticated",
        "session_mismatch",
        "session_ended",
        "grants_changed",
    ):
        return AuthenticationError(message.message, code=message.code)
    if message.code == "permission_denied":
        return PermissionDeniedError(message.message)
    if message.code in ("call_ended", "session_in_use", "session_expired", "server_shutdown"):
        return CallStateError(message.message, code=message.code)
    if message.code in ("rate_limited", "too_many_sessions"):
        return RateLimitedError(message.message, code=message.code)
    return SwitchboardError(f"SFU error {message.code}: {message.message}")


__all__ = ["CallSession", "RemoteParticipant", "connection_refused"]
