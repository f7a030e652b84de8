"""One participant session on the SFU: its signalling socket and its two peer connections.

The *publisher* connection is offered by the client and carries its microphone/camera; every
incoming track is tapped (never decoded) into a :class:`PublishedTrack`. The *subscriber* connection
is offered by the SFU and carries one :class:`DownTrack` per other participant's track; it is
renegotiated (one offer in flight at a time) whenever tracks come and go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiohttp import web
from aiortc import (
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp

from switchboard.media.local_ice import create_peer_connection
from switchboard.media.rtp_hooks import EncodedFrame, EncodedTrack, ReceiverTap, tap_receiver
from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims, SfuGrants
from switchboard.server.sfu.forwarding import DownTrack, Kind, PublishedTrack
from switchboard.server.sfu.sdp import (
    NoForwardableCodec,
    opus_fmtp,
    restrict_codecs,
    set_stream_ids,
    wants_stereo,
)
from switchboard.server.sfu.sessions import (
    BackgroundTasks,
    apply_pause,
    audience_changed,
    audience_of,
    forwarding_paused,
    participant_info,
)

if TYPE_CHECKING:
    from switchboard.server.sfu.room import Room

log = logging.getLogger("switchboard.sfu")

FORWARDED_CODECS = {"audio/opus", "video/vp8", "video/rtx"}
NEGOTIATION_TIMEOUT = 10.0


def _preferred_codecs(kind: str) -> list[object]:
    caps = RTCRtpSender.getCapabilities(kind)
    return [c for c in caps.codecs if c.mimeType.lower() in FORWARDED_CODECS]


#: media sections a publisher offer may carry (one audio and one video track, room to renegotiate)
MAX_PUBLISHER_MEDIA = 4
#: trickled candidates held per peer connection until its remote description is set
MAX_PENDING_CANDIDATES = 64


def _drop(frame: EncodedFrame) -> None:
    """Sink of a refused track: its frames go nowhere."""


class Participant:
    def __init__(
        self,
        room: Room,
        claims: SfuClaims,
        ws: web.WebSocketResponse,
        *,
        ice_loopback_address: str | None = None,
    ) -> None:
        self.room = room
        self.user_id = claims.user_id
        self.session_id = claims.session_id
        self.grants = claims.grants
        self.ws: web.WebSocketResponse | None = ws
        # ICE: loopback only when the SFU's advertised URL is local (the SDK applies the same rule).
        self.publisher = create_peer_connection(loopback_address=ice_loopback_address)
        self.subscriber = create_peer_connection(loopback_address=ice_loopback_address)
        self.published: dict[Kind, PublishedTrack] = {}
        #: tracks the grants do not allow: tapped (never decoded, never queued) and dropped
        self.refused: list[ReceiverTap] = []
        self._refused_kinds: set[Kind] = set()
        self.muted: dict[Kind, bool] = {}
        #: kinds a moderator muted: not forwarded until this client unmutes them (``moderation.py``)
        self.moderated: set[Kind] = set()
        self.downtracks: list[DownTrack] = []
        #: forwarding pauses this subscriber asked for: (publisher session or None for all, kind)
        self.paused: set[tuple[str | None, Kind]] = set()
        #: users this session's audio goes to (SPEC §2.8 whisper); None: everyone
        self.audience: frozenset[str] | None = None
        self.disconnected_at: float | None = None
        self.closed = False
        self._negotiating = False
        self._renegotiate = False
        self._answer: asyncio.Future[str] | None = None
        self._tasks = BackgroundTasks(self)
        #: trickled candidates that arrived before the description they belong to was applied
        self._pending_candidates: dict[str, list[p.IceCandidate]] = {"publisher": [], "subscriber": []}
        self.publisher.on("track", self._on_publisher_track)
        self.publisher.on("connectionstatechange", self._on_connection_state)
        self.subscriber.on("connectionstatechange", self._on_connection_state)

    def __repr__(self) -> str:
        return f"Participant({self.user_id}/{self.session_id[:8]})"

    def info(self) -> p.ParticipantInfo:
        tracks = [(kind, t.muted) for kind, t in self.published.items()]
        return participant_info(self.user_id, self.session_id, tracks, self.audience)

    def spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.spawn(coro)

    async def send(self, message: p.ServerMessage | p._Msg) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(message.model_dump_json())

    async def error(self, code: str, message: str, *, fatal: bool = False) -> None:
        await self.send(p.ErrorMessage(code=code, message=message, fatal=fatal))

    # ---------------------------------------------------------------- publishing

    def may_send(self, kind: Kind) -> bool:
        """Whether this session's SFU token grants publishing ``kind`` (SPEC §2.7, §2.10)."""
        return self.grants.send_audio if kind == "audio" else self.grants.send_video

    async def handle_publisher_offer(self, offer: p.PublisherOffer) -> None:
        """Apply the client's offer and answer it.

        Send grants are enforced on the tracks aiortc creates, not on the offer text: whatever the
        SDP says (port 0, extra m-lines, renegotiation), a track of a kind the grants do not allow is
        never forwarded, and the client gets ``permission_denied`` (the rest of the offer, e.g. the
        audio of an ``audio_room`` admin, is answered and works).
        """
        try:
            media = len(SessionDescription.parse(offer.sdp).media)
        except Exception as exc:  # aiortc's SDP parser raises assorted errors on garbage
            await self.error("invalid_sdp", f"publisher offer is not valid SDP: {exc}")
            return
        if media > MAX_PUBLISHER_MEDIA:
            await self.error(
                "invalid_sdp", f"publisher offer has {media} media sections; at most {MAX_PUBLISHER_MEDIA}"
            )
            return
        try:
            sdp = restrict_codecs(offer.sdp)
        except NoForwardableCodec as exc:
            await self.error("unsupported_codec", f"publisher offer refused: {exc}")
            return
        try:
            await self.publisher.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            answer = await self.publisher.createAnswer()
            await self.publisher.setLocalDescription(answer)
        except Exception as exc:
            log.info("%r: bad publisher offer: %s", self, exc)
            await self.error("invalid_sdp", f"cannot apply publisher offer: {exc}")
            return
        if self._refused_kinds:
            refused = ", ".join(sorted(self._refused_kinds))
            self._refused_kinds.clear()
            await self.error(
                "permission_denied",
                f"{self.user_id!r} may not publish {refused} in {self.room.cid}; not forwarded",
            )
        self._unpublish_stopped()
        await self._flush_candidates("publisher")
        answer_sdp = opus_fmtp(self.publisher.localDescription.sdp, stereo=wants_stereo(offer.sdp))
        await self.send(p.PublisherAnswer(sdp=answer_sdp))

    def _unpublish_stopped(self) -> None:
        """Unpublish the tracks whose transceiver the newest offer no longer sends on.

        A publisher that removes a track (``removeTrack``, direction ``recvonly``/``inactive``, or a
        rejected m-line) is seen by the others as that track gone (``track_unpublished``).
        """
        receiving = {
            id(t.receiver)
            for t in self.publisher.getTransceivers()
            if t.currentDirection in ("recvonly", "sendrecv")
        }
        for kind in [k for k, t in self.published.items() if id(t.receiver) not in receiving]:
            log.info("%r: publisher stopped sending %s; unpublished", self, kind)
            self.room.track_unpublished(self, self.published.pop(kind))

    def _on_publisher_track(self, track: MediaStreamTrack) -> None:
        receiver = next(
            (t.receiver for t in self.publisher.getTransceivers() if t.receiver.track is track), None
        )
        if receiver is None or track.kind not in ("audio", "video"):
            return
        kind: Kind = track.kind  # type: ignore[assignment]
        if self.may_send(kind):
            self._publish(kind, receiver)
        else:
            log.info("%r: refused a %s track (not granted)", self, kind)
            self.refused.append(tap_receiver(receiver, _drop))
            self._refused_kinds.add(kind)

    def apply_grants(self, grants: SfuGrants) -> None:
        """A resumed session's fresh token: stop forwarding what the new grants no longer allow."""
        self.grants = grants
        for kind in [k for k in self.published if not self.may_send(k)]:
            self.room.track_unpublished(self, self.published.pop(kind))

    def publish_receiver(self, kind: Kind, receiver: RTCRtpReceiver) -> None:
        """Forward an existing receiver's track (its kind newly granted: ``moderation.update_grants``)."""
        self._publish(kind, receiver)

    def _publish(self, kind: Kind, receiver: RTCRtpReceiver) -> None:
        old = self.published.pop(kind, None)
        if old is not None:
            old.close()
        published = PublishedTrack(
            self.user_id, self.session_id, kind, receiver, muted=self.muted.get(kind, False)
        )
        published.moderated = kind in self.moderated
        published.start()
        self.published[kind] = published
        self.room.track_published(self, published)

    async def update_mute_state(self, message: p.UpdateMuteState) -> None:
        self.muted[message.kind] = message.muted
        track = self.published.get(message.kind)
        if not message.muted:
            self.moderated.discard(message.kind)  # the user unmutes after a moderator's mute
        if track is not None:
            track.muted = message.muted
            track.moderated = message.kind in self.moderated
        await self.room.broadcast(
            p.MuteStateChanged(
                user_id=self.user_id, session_id=self.session_id, kind=message.kind, muted=message.muted
            ),
            exclude=None,
        )

    # ---------------------------------------------------------------- subscribing

    def is_paused(self, publisher_session: str, kind: Kind) -> bool:
        """Forwarding of that publisher's ``kind`` to this subscriber is off: asked by this subscriber,
        or this subscriber's user is outside the publisher's audio audience (SPEC §2.8)."""
        publisher = self.room.participants.get(publisher_session)
        audience = publisher.audience if publisher is not None else None
        return forwarding_paused(self.paused, self.user_id, publisher_session, audience, kind)

    def refresh_pauses(self, publisher_session: str) -> None:
        """Re-apply :meth:`is_paused` to the down-tracks fed by ``publisher_session``."""
        for down in self.downtracks:
            if down.source is not None and down.source.session_id == publisher_session:
                down.set_paused(self.is_paused(publisher_session, down.kind))

    async def update_audience(self, message: p.UpdateAudience) -> None:
        """Forward this session's audio only to ``message.user_ids`` (None: everyone) and say so to all."""
        self.audience = audience_of(message.user_ids)
        for other in self.room.others(self):
            other.refresh_pauses(self.session_id)
        await self.room.broadcast(
            audience_changed(self.user_id, self.session_id, self.audience), exclude=None
        )

    def subscribe(self, source: PublishedTrack) -> None:
        """Forward ``source`` to this participant, reusing an idle transceiver when there is one."""
        down = next((d for d in self.downtracks if d.kind == source.kind and d.source is None), None)
        if down is None:
            track = EncodedTrack(source.kind)
            transceiver = self.subscriber.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_preferred_codecs(source.kind))  # type: ignore[arg-type]
            down = DownTrack(source.kind, transceiver, track)
            self.downtracks.append(down)
        down.bind(source, paused=self.is_paused(source.session_id, source.kind))
        # an idle transceiver is offered inactive; sending again (with the new publisher's msid)
        # makes a browser fire ``track`` for the reused transceiver (W3C WebRTC 1.0 §4.4.1.6)
        down.transceiver.direction = "sendonly"
        self.request_negotiation()

    def unsubscribe(self, source: PublishedTrack) -> None:
        changed = False
        for down in self.downtracks:
            if down.source is source:
                down.unbind()
                down.transceiver.direction = "inactive"
                changed = True
        if changed:
            self.request_negotiation()

    def update_subscription(self, message: p.UpdateSubscription) -> bool:
        """Apply a pause/resume; False (and nothing remembered) for a session not in the room.

        What is remembered is bounded: one entry per kind, plus one per kind for each session in
        the room (the room drops a session's entries when it leaves).
        """
        if message.session_id is not None and message.session_id not in self.room.participants:
            return False
        self.paused = apply_pause(self.paused, message.session_id, message.kind, message.paused)
        for down in self.downtracks:
            if down.source is not None and down.kind == message.kind:
                down.set_paused(self.is_paused(down.source.session_id, down.kind))
        return True

    def request_negotiation(self) -> None:
        self._renegotiate = True
        if not self._negotiating and not self.closed:
            self._negotiating = True
            self.spawn(self._negotiate())

    async def _negotiate(self) -> None:
        try:
            while self._renegotiate and not self.closed:
                if self.ws is None or self.ws.closed:
                    return  # resumes on reconnect
                self._renegotiate = False
                offer = await self.subscriber.createOffer()
                await self.subscriber.setLocalDescription(offer)
                tracks = {
                    d.mid: p.RemoteTrack(
                        user_id=d.source.user_id, session_id=d.source.session_id, kind=d.kind
                    )
                    for d in self.downtracks
                    if d.source is not None and d.mid is not None
                }
                self._answer = asyncio.get_running_loop().create_future()
                await self.send(p.SubscriberOffer(sdp=self._subscriber_offer_sdp(tracks), tracks=tracks))
                try:
                    sdp = await asyncio.wait_for(self._answer, NEGOTIATION_TIMEOUT)
                except TimeoutError:
                    log.warning("%r: no subscriber answer within %.0fs", self, NEGOTIATION_TIMEOUT)
                    self._renegotiate = True
                    return
                await self.subscriber.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
                await self._flush_candidates("subscriber")
        finally:
            self._answer = None
            self._negotiating = False

    def _subscriber_offer_sdp(self, tracks: dict[str, p.RemoteTrack]) -> str:
        """The subscriber offer as sent: one stream id per publisher session (``a=msid``), stereo Opus.

        Stream id = the publisher's session id, track id = ``<session id>:<kind>`` (docs/protocol.md).
        Opus is offered with ``stereo=1;sprop-stereo=1``: the SFU forwards what each publisher encodes
        (two channels under a stereo audio configuration policy, otherwise one) and never re-encodes.
        """
        streams = {mid: (t.session_id, f"{t.session_id}:{t.kind}") for mid, t in tracks.items()}
        sdp = opus_fmtp(self.subscriber.localDescription.sdp, stereo=True)
        return set_stream_ids(sdp, streams)

    async def handle_subscriber_answer(self, message: p.SubscriberAnswer) -> None:
        if self._answer is None or self._answer.done():
            await self.error("unexpected_answer", "no subscriber offer is waiting for an answer")
            return
        self._answer.set_result(message.sdp)

    # ---------------------------------------------------------------- trickle ICE

    async def add_ice_candidate(self, message: p.IceCandidate) -> None:
        """Apply a candidate the client trickled (RFC 8838), or hold it until its description is set.

        ``.local`` (mDNS) host candidates are resolved by aioice (multicast DNS); one that does not
        resolve is dropped and the browser is reached through the peer-reflexive candidate its
        connectivity checks reveal (draft-ietf-mmusic-mdns-ice-candidates section 3.3).
        """
        pc = self.publisher if message.target == "publisher" else self.subscriber
        waiting = pc.remoteDescription is None or (
            message.target == "subscriber" and self._answer is not None and not self._answer.done()
        )
        if waiting:
            pending = self._pending_candidates[message.target]
            if len(pending) >= MAX_PENDING_CANDIDATES:
                await self.error("invalid_request", f"more than {MAX_PENDING_CANDIDATES} early candidates")
                return
            pending.append(message)
            return
        # in the background: resolving a .local name must not hold up the session's other messages
        self.spawn(self._apply_candidate(message))

    async def _flush_candidates(self, target: str) -> None:
        pending, self._pending_candidates[target] = self._pending_candidates[target], []
        for message in pending:
            self.spawn(self._apply_candidate(message))

    async def _apply_candidate(self, message: p.IceCandidate) -> None:
        pc = self.publisher if message.target == "publisher" else self.subscriber
        try:
            if message.candidate is None or not message.candidate.strip():
                if message.candidate is None:
                    await pc.addIceCandidate(None)
                return
            candidate = candidate_from_sdp(message.candidate.strip().removeprefix("candidate:"))
            candidate.sdpMid = message.sdp_mid
            candidate.sdpMLineIndex = message.sdp_mline_index
            if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
                candidate.sdpMLineIndex = 0
            await pc.addIceCandidate(candidate)
        except Exception as exc:  # aiortc/aioice raise assorted errors on bad or late candidates
            log.info("%r: %s candidate not applied: %s", self, message.target, exc)
            await self.error("invalid_candidate", f"{message.target} candidate not applied: {exc}")

    # ---------------------------------------------------------------- lifecycle

    def _on_connection_state(self) -> None:
        if self.closed:
            return
        if "failed" in (self.publisher.connectionState, self.subscriber.connectionState):
            log.info("%r: peer connection failed; removing", self)
            self.spawn(self.room.remove(self, reason="connection_failed"))

    def attach(self, ws: web.WebSocketResponse) -> None:
        """A new socket for this session (reconnect)."""
        self.ws = ws
        self.disconnected_at = None

    def detach(self) -> None:
        self.ws = None
        self.disconnected_at = time.monotonic()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for track in self.published.values():
            track.close()
        self.published.clear()
        for tap in self.refused:
            tap.close()
        self.refused.clear()
        for down in self.downtracks:
            down.close()
        self._tasks.cancel()
        await asyncio.gather(self.publisher.close(), self.subscriber.close(), return_exceptions=True)
        ws = self.ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
